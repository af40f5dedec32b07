// SPDX-License-Identifier: AGPL-3.0-or-later
//! Drops a datagram captured twice in quick succession, as a mirror port does when it copies
//! both the ingress and egress of a switch port. A genuine SIP retransmission comes at least
//! T1 (500 ms) later, far outside the window.

use super::PacketInfo;

/// Two copies closer than this are one datagram.
const WINDOW_US: i64 = 20_000;
/// Recent datagrams remembered.
const RECENT: usize = 64;

#[derive(Debug)]
pub(super) struct Dedup {
    recent: [(u64, i64); RECENT],
    next: usize,
}

impl Default for Dedup {
    fn default() -> Self {
        Self {
            recent: [(0, i64::MIN); RECENT],
            next: 0,
        }
    }
}

impl Dedup {
    /// Whether this datagram was seen within the window; remembers it if not.
    pub fn is_duplicate(&mut self, info: &PacketInfo, payload: &[u8]) -> bool {
        let hash = fingerprint(info, payload);
        let seen = self
            .recent
            .iter()
            .any(|&(h, ts)| h == hash && (info.ts_us - ts).abs() <= WINDOW_US);
        if !seen {
            self.recent[self.next] = (hash, info.ts_us);
            self.next = (self.next + 1) % RECENT;
        }
        seen
    }
}

/// A fast word-wise hash of the addresses, the length, and the head and tail of the payload:
/// enough to tell datagrams apart within the window, cheap enough for every datagram. Four
/// independent lanes let the multiplications overlap instead of waiting on one another.
fn fingerprint(info: &PacketInfo, payload: &[u8]) -> u64 {
    let mut lanes: [u64; 4] = [
        0x9e37_79b9_7f4a_7c15 ^ payload.len() as u64,
        0xc2b2_ae3d_27d4_eb4f,
        0x1656_67b1_9e37_79f9,
        0x27d4_eb2f_1656_67c5,
    ];
    let mut n = 0;
    let mut mix = |word: u64| {
        let h = &mut lanes[n % 4];
        *h = (*h ^ word).wrapping_mul(0xff51_afd7_ed55_8ccd);
        *h ^= *h >> 32;
        n += 1;
    };
    for addr in [info.src, info.dst] {
        let ip = match addr.ip() {
            std::net::IpAddr::V4(ip) => u128::from(u32::from(ip)),
            std::net::IpAddr::V6(ip) => u128::from(ip),
        };
        mix(ip as u64);
        mix((ip >> 64) as u64 ^ u64::from(addr.port()));
    }
    let head = &payload[..payload.len().min(128)];
    let tail = &payload[payload.len().saturating_sub(64)..];
    for part in [head, tail] {
        let mut words = part.chunks_exact(8);
        for w in &mut words {
            mix(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        let mut last = [0u8; 8];
        last[..words.remainder().len()].copy_from_slice(words.remainder());
        mix(u64::from_le_bytes(last));
    }
    lanes.into_iter().fold(0, |h, lane| {
        (h ^ lane)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Transport;

    fn info(ts_us: i64) -> PacketInfo {
        PacketInfo {
            ts_us,
            src: "10.0.0.1:5060".parse().expect("addr"),
            dst: "10.0.0.2:5060".parse().expect("addr"),
            transport: Transport::Udp,
            vlan: None,
        }
    }

    #[test]
    fn drops_only_close_copies() {
        let mut d = Dedup::default();
        let msg = b"INVITE sip:x SIP/2.0\r\nCall-ID: 1\r\n\r\n";
        assert!(!d.is_duplicate(&info(0), msg));
        assert!(d.is_duplicate(&info(50), msg), "mirror copy");
        assert!(
            !d.is_duplicate(&info(500_000), msg),
            "a retransmission after T1 is kept"
        );
        assert!(!d.is_duplicate(
            &info(500_010),
            b"INVITE sip:x SIP/2.0\r\nCall-ID: 2\r\n\r\n"
        ));
    }
}
