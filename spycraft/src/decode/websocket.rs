// SPDX-License-Identifier: AGPL-3.0-or-later
//! WebSocket framing (RFC 6455) as used for SIP (RFC 7118): one SIP message per WebSocket
//! message, client frames masked.

/// One frame's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    /// Header bytes, including the masking key.
    pub header_len: usize,
    pub payload_len: usize,
}

/// Parses the header of the frame at the start of `data`; `None` until it is all there.
/// Lengths beyond `max` are reported as they are; the caller decides.
pub fn frame_header(data: &[u8]) -> Option<FrameHeader> {
    let b0 = *data.first()?;
    let b1 = *data.get(1)?;
    let (mut len, mut at) = (u64::from(b1 & 0x7f), 2usize);
    if len == 126 {
        len = u64::from(u16::from_be_bytes([*data.get(2)?, *data.get(3)?]));
        at = 4;
    } else if len == 127 {
        let bytes: [u8; 8] = data.get(2..10)?.try_into().ok()?;
        len = u64::from_be_bytes(bytes);
        at = 10;
    }
    let mask = if b1 & 0x80 != 0 {
        let key: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(key)
    } else {
        None
    };
    Some(FrameHeader {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        mask,
        header_len: at,
        payload_len: usize::try_from(len).unwrap_or(usize::MAX),
    })
}

/// Appends `payload` to `out`, unmasked with `mask` if there is one.
pub fn unmask_into(out: &mut Vec<u8>, payload: &[u8], mask: Option<[u8; 4]>) {
    match mask {
        None => out.extend_from_slice(payload),
        Some(key) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4])),
    }
}

/// Whether an HTTP head (up to its blank line) asks to switch to WebSocket, or accepts it.
pub fn is_upgrade(head: &[u8]) -> bool {
    let lower: Vec<u8> = head.iter().take(8192).map(u8::to_ascii_lowercase).collect();
    let has = |needle: &[u8]| memchr::memmem::find(&lower, needle).is_some();
    has(b"upgrade: websocket") || (lower.starts_with(b"http/1.1 101") && has(b"websocket"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_masked_and_extended_frames() {
        let key = [1, 2, 3, 4];
        let text = b"OPTIONS sip:x SIP/2.0";
        let mut frame = vec![0x81, 0x80 | text.len() as u8];
        frame.extend_from_slice(&key);
        frame.extend(text.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        let h = frame_header(&frame).expect("complete header");
        assert_eq!(
            (h.fin, h.opcode, h.header_len, h.payload_len),
            (true, 1, 6, text.len())
        );
        let mut out = Vec::new();
        unmask_into(&mut out, &frame[h.header_len..], h.mask);
        assert_eq!(out, text);

        let long = [0x82, 126, 0x01, 0x00];
        assert_eq!(frame_header(&long).map(|h| h.payload_len), Some(256));
        assert_eq!(frame_header(&[0x81]), None);
        assert_eq!(frame_header(&[0x81, 0xfe, 0]), None);
    }

    #[test]
    fn recognises_upgrades() {
        assert!(is_upgrade(
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
        ));
        assert!(is_upgrade(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n\r\n"
        ));
        assert!(!is_upgrade(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
}
