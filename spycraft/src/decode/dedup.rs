// SPDX-License-Identifier: AGPL-3.0-or-later
//! Drops a datagram captured twice in quick succession, as a mirror port does when it copies
//! both the ingress and egress of a switch port. A genuine SIP retransmission comes at least
//! T1 (500 ms) later, far outside the window.

use std::hash::BuildHasher;
use std::net::SocketAddr;

use foldhash::fast::FixedState;

use super::PacketInfo;

/// Two copies closer than this are one datagram.
const WINDOW_US: i64 = 20_000;
/// Datagrams are remembered in sets chosen by their hash, `WAYS` to a set, the oldest
/// replaced: a lookup compares one cache line instead of scanning every datagram kept.
/// A copy goes unnoticed only if `WAYS` other datagrams of its set came in between, which
/// takes thousands of datagrams in a 20 ms window.
const SETS: usize = 256;
const WAYS: usize = 4;

/// One set: (hash, time) of its last `WAYS` datagrams, in one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Set([(u64, i64); WAYS]);

#[derive(Debug)]
pub(super) struct Dedup {
    sets: Box<[Set; SETS]>,
    /// Seeded the same every run, so a capture always gives the same records.
    hasher: FixedState,
}

impl Default for Dedup {
    fn default() -> Self {
        Self {
            sets: Box::new([Set([(0, i64::MIN); WAYS]); SETS]),
            hasher: FixedState::with_seed(0x5350_5943_5241_4654),
        }
    }
}

impl Dedup {
    /// Whether this datagram was seen within the window; remembers it if not.
    pub fn is_duplicate(&mut self, info: &PacketInfo, payload: &[u8]) -> bool {
        let hash = fingerprint(&self.hasher, info, payload);
        // The set comes from the high bits, which foldhash mixes best.
        let set = &mut self.sets[(hash >> 56) as usize % SETS].0;
        let seen = set
            .iter()
            .any(|&(h, ts)| h == hash && info.time.micros().abs_diff(ts) <= WINDOW_US as u64);
        if !seen {
            let oldest = (0..WAYS).min_by_key(|&way| set[way].1).unwrap_or(0);
            set[oldest] = (hash, info.time.micros());
        }
        seen
    }
}

/// A hash of the addresses and the whole payload. Only a byte-identical copy may match:
/// two calls' INVITEs can share long prefixes and suffixes (same proxy, same SDP template),
/// so a partial fingerprint could drop a real message.
fn fingerprint(hasher: &FixedState, info: &PacketInfo, payload: &[u8]) -> u64 {
    hasher.hash_one((address_key(&info.src), address_key(&info.dst), payload))
}

/// An address as plain numbers, read field by field: the decoder has just written them
/// that way, and reading the whole `SocketAddr` at once would wait for those stores.
fn address_key(address: &SocketAddr) -> (bool, u128, u16) {
    match address {
        SocketAddr::V4(a) => (false, u128::from(a.ip().to_bits()), a.port()),
        SocketAddr::V6(a) => (true, a.ip().to_bits(), a.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Transport;

    fn info(us: i64) -> PacketInfo {
        PacketInfo {
            time: crate::packet::Timestamp(us),
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

    #[test]
    fn finds_a_copy_behind_hundreds_of_other_datagrams() {
        // A busy mirror port: 300 datagrams between a message and its copy, all within
        // the window. A ring of the last 64 would have forgotten it.
        let message = |n: u32| format!("OPTIONS sip:x SIP/2.0\r\nCall-ID: {n}\r\n\r\n");
        let mut d = Dedup::default();
        assert!(!d.is_duplicate(&info(0), message(0).as_bytes()));
        for n in 1..=300 {
            assert!(!d.is_duplicate(&info(i64::from(n) * 10), message(n).as_bytes()));
        }
        assert!(d.is_duplicate(&info(3_100), message(0).as_bytes()));
        assert!(d.is_duplicate(&info(3_110), message(300).as_bytes()));
    }
}
