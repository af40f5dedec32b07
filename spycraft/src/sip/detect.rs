// SPDX-License-Identifier: AGPL-3.0-or-later
//! Cheap recognition of SIP on ports nobody configured, so captures on 6060 or 15060 just work.

use memchr::memchr;

use super::syntax::is_token_word;

/// Longest first line considered; real request lines are far shorter.
const MAX_START_LINE: usize = 2048;

/// True when `payload` begins with a well-formed SIP request line (`METHOD SP uri SP SIP/2.0`)
/// or status line (`SIP/2.0 SP 3DIGIT`). Checks only the first line, so it costs a few dozen
/// byte comparisons on non-SIP traffic (RTP, DNS, SSDP's `HTTP/1.1`, MGCP's `MGCP 1.0`).
pub fn looks_like_sip(payload: &[u8]) -> bool {
    let start = payload
        .iter()
        .take(8)
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let payload = &payload[start..];
    if let Some(rest) = payload.strip_prefix(b"SIP/2.0 ") {
        return rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit);
    }
    if !payload.first().is_some_and(u8::is_ascii_uppercase) {
        return false;
    }
    let window = &payload[..payload.len().min(MAX_START_LINE)];
    let Some(nl) = memchr(b'\n', window) else {
        return false;
    };
    let line = &window[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(line) = line.strip_suffix(b" SIP/2.0") else {
        return false;
    };
    match memchr(b' ', line) {
        Some(sp) => is_token_word(&line[..sp]) && sp + 1 < line.len(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_sip_and_rejects_lookalikes() {
        let yes: &[&[u8]] = &[
            b"INVITE sip:bob@example.com SIP/2.0\r\nVia: x\r\n",
            b"OPTIONS sip:x SIP/2.0\n",
            b"SIP/2.0 200 OK\r\n",
            b"\r\nREGISTER sip:registrar SIP/2.0\r\n",
        ];
        let no: &[&[u8]] = &[
            b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n",
            b"CRCX 1204 ds/ds1-2/1@10.0.0.1 MGCP 1.0\r\n",
            b"GET / HTTP/1.1\r\n",
            b"\x80\x00\x12\x34rtp payload",
            b"INVITE sip:bob SIP/2.0",
            b"SIP/2.0 2",
            b"",
            b"invite sip:x SIP/2.0\r\n",
        ];
        for p in yes {
            assert!(looks_like_sip(p), "{}", String::from_utf8_lossy(p));
        }
        for p in no {
            assert!(!looks_like_sip(p), "{}", String::from_utf8_lossy(p));
        }
    }
}
