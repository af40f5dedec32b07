// SPDX-License-Identifier: AGPL-3.0-or-later
//! Drops a datagram captured twice in quick succession, as a mirror port does when it copies
//! both the ingress and egress of a switch port. A genuine SIP retransmission comes at least
//! T1 (500 ms) later, far outside the window.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;

use super::PacketInfo;

/// Two copies closer than this are one datagram.
const WINDOW_US: i64 = 20_000;
/// Recent datagrams remembered.
const RECENT: usize = 64;

#[derive(Debug)]
pub(super) struct Dedup {
    recent: [(u64, i64); RECENT],
    next: usize,
    hasher: DefaultHashBuilder,
}

impl Default for Dedup {
    fn default() -> Self {
        Self {
            recent: [(0, i64::MIN); RECENT],
            next: 0,
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl Dedup {
    /// Whether this datagram was seen within the window; remembers it if not.
    pub fn is_duplicate(&mut self, info: &PacketInfo, payload: &[u8]) -> bool {
        let hash = fingerprint(&self.hasher, info, payload);
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

/// A hash of the addresses and the whole payload. Only a byte-identical copy may match:
/// two calls' INVITEs can share long prefixes and suffixes (same proxy, same SDP template),
/// so a partial fingerprint could drop a real message.
fn fingerprint(hasher: &DefaultHashBuilder, info: &PacketInfo, payload: &[u8]) -> u64 {
    hasher.hash_one((info.src, info.dst, payload))
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

    #[test]
    fn keeps_messages_that_differ_only_in_the_middle() {
        // Two calls through one proxy 5 ms apart: same length, same first 200 and last
        // 200 bytes, different Call-IDs.
        let make = |n: u8| {
            let mut m = vec![b'a'; 200];
            m.extend_from_slice(b"Call-ID: ");
            m.push(n);
            m.extend_from_slice(&[b'z'; 200]);
            m
        };
        let mut d = Dedup::default();
        assert!(!d.is_duplicate(&info(0), &make(b'1')));
        assert!(!d.is_duplicate(&info(5_000), &make(b'2')));
        assert!(d.is_duplicate(&info(5_100), &make(b'2')), "its mirror copy");
    }
}
