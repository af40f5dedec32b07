// SPDX-License-Identifier: AGPL-3.0-or-later
//! Finding where SIP messages start in a byte stream, to resynchronise after lost or damaged
//! bytes (RFC 3261 §18.3 frames stream messages only by Content-Length, so a lost byte loses
//! the framing until the next start line).

use memchr::memchr_iter;

use super::detect::looks_like_sip;

/// Offset of the first line in `data` that is a SIP start line, if one is complete.
pub fn find_message_start(data: &[u8]) -> Option<usize> {
    if looks_like_sip(data) {
        return Some(0);
    }
    memchr_iter(b'\n', data)
        .map(|nl| nl + 1)
        .find(|&start| start < data.len() && looks_like_sip(&data[start..]))
}

/// True when `data` holds only line ends and spaces: the RFC 5626 double-CRLF keep-alive and
/// its kin between stream messages.
pub fn is_stream_keepalive(data: &[u8]) -> bool {
    data.iter()
        .all(|&b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_start_line() {
        let data = b"ength: 12\r\n\r\nbody of lost\r\nSIP/2.0 200 OK\r\nCall-ID: x\r\n";
        let at = find_message_start(data).expect("found");
        assert!(data[at..].starts_with(b"SIP/2.0 200 OK"));
        assert_eq!(find_message_start(b"INVITE sip:a@b SIP/2.0\r\n"), Some(0));
        assert_eq!(
            find_message_start(b"garbage\r\nmore garbage\r\nINVITE sip:a@b SIP/2."),
            None
        );
        assert!(is_stream_keepalive(b"\r\n\r\n") && !is_stream_keepalive(b"\r\nx"));
    }
}
