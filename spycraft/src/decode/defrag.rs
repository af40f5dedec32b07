// SPDX-License-Identifier: AGPL-3.0-or-later
//! IPv4 and IPv6 fragment reassembly with timeouts and memory bounds.
//!
//! Overlapping fragments drop the whole datagram, as RFC 5722 requires for IPv6 and as is the
//! only safe reading for IPv4 (an overlap is either an attack or a broken stack).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Identifies the datagram a fragment belongs to (RFC 791 / RFC 8200).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 protocol, or the IPv6 next header after the fragment header.
    pub protocol: u8,
    /// The datagram's identification.
    pub id: u32,
}

/// One fragment: its byte offset, whether more follow, and its payload.
#[derive(Clone, Copy, Debug)]
pub struct Fragment<'a> {
    /// Byte offset of this fragment in the datagram.
    pub offset: usize,
    /// More fragments follow.
    pub more: bool,
    /// The fragment's bytes.
    pub payload: &'a [u8],
}

/// Limits of the reassembler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefragLimits {
    /// Datagrams being reassembled at once; beyond it the oldest is dropped.
    pub max_datagrams: usize,
    /// Bytes all partial datagrams together may hold.
    pub max_total_bytes: usize,
    /// A datagram not completed within this long (capture time) is dropped (RFC 791 suggests
    /// 15 s; RFC 8200 60 s).
    pub timeout_us: i64,
}

impl Default for DefragLimits {
    fn default() -> Self {
        Self {
            max_datagrams: 10_000,
            max_total_bytes: 32 << 20,
            timeout_us: 30_000_000,
        }
    }
}

/// What the reassembler counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DefragCounters {
    /// Fragments seen.
    pub fragments: u64,
    /// Datagrams put back together.
    pub reassembled: u64,
    /// Datagrams dropped because fragments overlapped (RFC 5722).
    pub overlaps: u64,
    /// Datagrams given up on: fragments missing past the timeout.
    pub timeouts: u64,
    /// Datagrams dropped by a bound, or because they would exceed 65,535 bytes.
    pub capped: u64,
}

#[derive(Debug)]
struct Partial {
    data: Vec<u8>,
    /// Byte ranges received, unsorted (few per datagram).
    have: Vec<(usize, usize)>,
    /// Total length, once the last fragment arrived.
    total: Option<usize>,
    first_seen: i64,
    /// The datagram overlapped: remember the key until timeout so that its remaining
    /// fragments are dropped too.
    poisoned: bool,
}

/// The partial datagrams of a capture.
#[derive(Debug, Default)]
pub struct Defragmenter {
    limits: DefragLimits,
    partial: HashMap<FragmentKey, Partial>,
    /// Datagrams in arrival order of their first fragment, for dropping the oldest in O(1);
    /// entries of datagrams already gone are skipped and compacted.
    order: VecDeque<(FragmentKey, i64)>,
    total_bytes: usize,
    counters: DefragCounters,
}

/// Largest reassembled IP payload.
const MAX_DATAGRAM: usize = 65_535;

impl Defragmenter {
    /// A defragmenter holding nothing.
    pub fn new(limits: DefragLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> DefragCounters {
        self.counters
    }

    /// Partial datagrams held now.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Bytes held for datagrams not yet complete.
    pub fn held_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Adds a fragment; returns the whole payload once every byte has arrived.
    pub fn add(&mut self, now: i64, key: FragmentKey, frag: Fragment<'_>) -> Option<Vec<u8>> {
        self.counters.fragments += 1;
        let end = frag.offset + frag.payload.len();
        if end > MAX_DATAGRAM {
            self.counters.capped += 1;
            self.drop_datagram(&key);
            return None;
        }
        if !self.partial.contains_key(&key) {
            if self.partial.len() >= self.limits.max_datagrams {
                self.drop_oldest();
            }
            self.order.push_back((key, now));
            if self.order.len() > 2 * self.partial.len() + 1024 {
                let partial = &self.partial;
                self.order
                    .retain(|(k, first)| partial.get(k).is_some_and(|p| p.first_seen == *first));
            }
            self.partial.insert(
                key,
                Partial {
                    data: Vec::new(),
                    have: Vec::new(),
                    total: None,
                    first_seen: now,
                    poisoned: false,
                },
            );
        }
        let p = self.partial.get_mut(&key).expect("inserted above");
        if p.poisoned {
            return None;
        }
        let exact_duplicate = p.have.contains(&(frag.offset, end))
            && p.data.get(frag.offset..end) == Some(frag.payload);
        if exact_duplicate {
            return None;
        }
        let overlaps = p.have.iter().any(|&(s, e)| frag.offset < e && s < end);
        let conflicting_end = match (p.total, frag.more) {
            (Some(total), _) if end > total => true,
            (Some(total), false) => end != total,
            _ => false,
        };
        if overlaps || conflicting_end {
            self.counters.overlaps += 1;
            self.total_bytes -= p.data.len();
            p.data = Vec::new();
            p.have = Vec::new();
            p.poisoned = true;
            return None;
        }
        if !frag.more {
            p.total = Some(end);
        }
        if p.data.len() < end {
            self.total_bytes += end - p.data.len();
            p.data.resize(end, 0);
        }
        p.data[frag.offset..end].copy_from_slice(frag.payload);
        p.have.push((frag.offset, end));
        let complete = p.total.is_some_and(|total| {
            p.have.sort_unstable();
            let mut covered = 0;
            for &(s, e) in &p.have {
                if s > covered {
                    return false;
                }
                covered = covered.max(e);
            }
            covered >= total
        });
        if complete {
            let p = self.partial.remove(&key).expect("present");
            self.total_bytes -= p.data.len();
            self.counters.reassembled += 1;
            return Some(p.data);
        }
        if self.total_bytes > self.limits.max_total_bytes {
            self.counters.capped += 1;
            self.drop_oldest();
        }
        None
    }

    /// Drops datagrams older than the timeout; call now and then.
    pub fn expire(&mut self, now: i64) {
        let timeout = self.limits.timeout_us;
        let (counters, total) = (&mut self.counters, &mut self.total_bytes);
        self.partial.retain(|_, p| {
            let keep = now - p.first_seen <= timeout;
            if !keep {
                if !p.poisoned {
                    counters.timeouts += 1;
                }
                *total -= p.data.len();
            }
            keep
        });
    }

    fn drop_datagram(&mut self, key: &FragmentKey) {
        if let Some(p) = self.partial.remove(key) {
            self.total_bytes -= p.data.len();
        }
    }

    fn drop_oldest(&mut self) {
        while let Some((key, first_seen)) = self.order.pop_front() {
            if self
                .partial
                .get(&key)
                .is_some_and(|p| p.first_seen == first_seen)
            {
                self.counters.capped += 1;
                self.drop_datagram(&key);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> FragmentKey {
        FragmentKey {
            src: "10.0.0.1".parse().expect("ip"),
            dst: "10.0.0.2".parse().expect("ip"),
            protocol: 17,
            id,
        }
    }

    fn data() -> Vec<u8> {
        (0..3000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn split(data: &[u8], size: usize) -> Vec<(usize, bool, &[u8])> {
        data.chunks(size)
            .enumerate()
            .map(|(i, c)| (i * size, (i + 1) * size < data.len(), c))
            .collect()
    }

    #[test]
    fn any_order_reassembles_the_same_datagram() {
        let d = data();
        for size in [8usize, 64, 512, 1480, 2999] {
            let parts = split(&d, size);
            // Forward, reverse, and a rotation with a duplicate.
            let mut orders: Vec<Vec<usize>> =
                vec![(0..parts.len()).collect(), (0..parts.len()).rev().collect()];
            let mut rot: Vec<usize> = (0..parts.len())
                .map(|i| (i + parts.len() / 2) % parts.len())
                .collect();
            rot.insert(1, rot[0]);
            orders.push(rot);
            for order in orders {
                let mut r = Defragmenter::new(DefragLimits::default());
                let mut out = None;
                for &i in &order {
                    let (offset, more, payload) = parts[i];
                    if let Some(whole) = r.add(
                        0,
                        key(1),
                        Fragment {
                            offset,
                            more,
                            payload,
                        },
                    ) {
                        assert!(out.is_none(), "completed once");
                        out = Some(whole);
                    }
                }
                assert_eq!(out.as_deref(), Some(&d[..]), "size {size}, order {order:?}");
                assert_eq!((r.pending(), r.held_bytes()), (0, 0));
            }
        }
    }

    #[test]
    fn overlapping_fragments_drop_the_datagram() {
        let d = data();
        let mut r = Defragmenter::new(DefragLimits::default());
        assert!(r
            .add(
                0,
                key(2),
                Fragment {
                    offset: 0,
                    more: true,
                    payload: &d[..1000]
                }
            )
            .is_none());
        assert!(r
            .add(
                0,
                key(2),
                Fragment {
                    offset: 992,
                    more: true,
                    payload: &d[992..2000]
                }
            )
            .is_none());
        assert!(r
            .add(
                0,
                key(2),
                Fragment {
                    offset: 2000,
                    more: false,
                    payload: &d[2000..]
                }
            )
            .is_none());
        assert!(r
            .add(
                0,
                key(2),
                Fragment {
                    offset: 1000,
                    more: true,
                    payload: &d[1000..2000]
                }
            )
            .is_none());
        assert_eq!(r.counters().overlaps, 1);
        r.expire(60_000_000);
        assert_eq!((r.pending(), r.held_bytes()), (0, 0));
    }

    #[test]
    fn unfinished_trains_time_out_and_memory_stays_bounded() {
        let limits = DefragLimits {
            max_datagrams: 100,
            max_total_bytes: 64 * 1024,
            timeout_us: 1_000_000,
        };
        let mut r = Defragmenter::new(limits);
        let d = data();
        for id in 0..100_000u32 {
            r.add(
                i64::from(id),
                key(id),
                Fragment {
                    offset: 0,
                    more: true,
                    payload: &d[..1480],
                },
            );
            assert!(r.pending() <= 100 && r.held_bytes() <= 64 * 1024 + 1480);
        }
        r.expire(10_000_000_000);
        assert_eq!((r.pending(), r.held_bytes()), (0, 0));
        assert!(r.counters().capped > 99_000);
        assert!(r
            .add(
                0,
                key(1),
                Fragment {
                    offset: 65_000,
                    more: false,
                    payload: &d[..1000]
                }
            )
            .is_none());
    }
}
