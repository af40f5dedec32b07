// SPDX-License-Identifier: AGPL-3.0-or-later
//! TCP stream reassembly: each direction of each connection becomes a contiguous byte stream,
//! whatever the segmentation, retransmission, overlap or reordering on the wire.
//!
//! Bytes are delivered to the consumer as soon as they are contiguous; the consumer says how
//! many it used (a whole SIP message, say) and the rest waits for more. In the common case of
//! in-order segments with nothing pending, the segment itself is handed over without a copy.
//! Memory is bounded per flow and in total; whatever a bound drops is counted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

/// One direction of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
}

/// How the bytes handed to a consumer relate to what came before on the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuity {
    /// The first bytes of a flow whose SYN was seen.
    Start,
    /// They follow the bytes delivered last.
    Continuing,
    /// The flow was joined mid-stream (no SYN seen): they may start inside a message.
    Joined,
    /// Bytes were lost just before them.
    AfterLoss,
}

/// Per-flow state a consumer keeps with the flow (what the flow turned out to carry), so that
/// it lives and dies with the flow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowState {
    /// What the flow carries, once known.
    pub kind: FlowKind,
    /// A message being assembled from several pieces (fragmented WebSocket messages).
    pub message: Vec<u8>,
}

/// What a flow carries, as far as the consumer could tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowKind {
    /// Not yet known.
    #[default]
    Unknown,
    /// SIP.
    Sip,
    /// WebSocket frames after an HTTP upgrade (RFC 6455, RFC 7118).
    WebSocket,
}

/// What the consumer makes of a flow's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumed {
    /// This many bytes were used; keep the rest.
    Bytes(usize),
    /// The flow carries nothing of interest: drop its bytes from now on.
    Ignore,
}

/// Limits of the reassembler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Unconsumed plus out-of-order bytes one direction may hold.
    pub max_flow_bytes: usize,
    /// Bytes all flows together may hold.
    pub max_total_bytes: usize,
    /// Directions tracked at once; beyond it the least recently active is dropped.
    pub max_flows: usize,
    /// How far ahead of the expected sequence number a segment may be kept.
    pub window: u32,
    /// A flow idle this long (capture time) is forgotten.
    pub idle_us: i64,
    /// A hole not filled within this long is declared lost and skipped.
    pub gap_wait_us: i64,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_flow_bytes: 1 << 20,
            max_total_bytes: 64 << 20,
            max_flows: 100_000,
            window: 256 * 1024,
            idle_us: 300_000_000,
            gap_wait_us: 2_000_000,
        }
    }
}

/// What the reassembler counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TcpCounters {
    /// Segments seen.
    pub segments: u64,
    /// Flows (one direction of a connection) seen.
    pub flows: u64,
    /// Bytes seen again (retransmissions, overlaps) and dropped.
    pub duplicate_bytes: u64,
    /// Segments that arrived ahead of a gap.
    pub out_of_order_segments: u64,
    /// Holes skipped because the missing bytes never came.
    pub gaps: u64,
    /// Bytes dropped by a per-flow or total bound, or outside the window.
    pub capped_bytes: u64,
    /// Flows dropped because too many were held.
    pub evicted_flows: u64,
    /// Flows dropped after going idle.
    pub expired_flows: u64,
}

#[derive(Debug)]
struct Flow {
    /// Sequence number of the next byte expected.
    next_seq: u32,
    /// Contiguous bytes not yet consumed.
    buffer: Vec<u8>,
    /// Segments beyond a hole, by sequence number.
    pending: BTreeMap<u32, Vec<u8>>,
    pending_bytes: usize,
    /// When the oldest hole appeared.
    hole_since: Option<i64>,
    last_seen: i64,
    /// Creation number, to recognise this flow's entry in the eviction queue.
    created: u64,
    ignored: bool,
    /// How the next delivery relates to the last.
    continuity: Continuity,
    state: FlowState,
}

impl Flow {
    fn held(&self) -> usize {
        self.buffer.len() + self.pending_bytes + self.state.message.len()
    }
}

/// Receives the bytes of each flow in order.
pub trait StreamConsumer {
    /// `data` continues the flow's byte stream, as `continuity` says.
    fn bytes(
        &mut self,
        key: &FlowKey,
        state: &mut FlowState,
        data: &[u8],
        continuity: Continuity,
    ) -> Consumed;
}

/// All TCP flows being reassembled.
#[derive(Debug, Default)]
pub struct TcpReassembler {
    limits: TcpLimits,
    flows: HashMap<FlowKey, Flow>,
    /// Flows in creation order, for eviction; stale entries are skipped and compacted.
    order: VecDeque<(FlowKey, u64)>,
    created: u64,
    total_bytes: usize,
    counters: TcpCounters,
}

/// The flags and numbers of one segment.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// Sequence number of the first payload byte.
    pub seq: u32,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// The payload.
    pub payload: &'a [u8],
}

impl TcpReassembler {
    /// A reassembler holding nothing.
    pub fn new(limits: TcpLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> TcpCounters {
        self.counters
    }

    /// Directions currently tracked.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Bytes held across all flows.
    pub fn held_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Adds one segment and hands whatever became contiguous to `consumer`.
    pub fn segment(
        &mut self,
        now: i64,
        key: FlowKey,
        seg: Segment<'_>,
        consumer: &mut dyn StreamConsumer,
    ) {
        self.counters.segments += 1;
        if seg.rst {
            self.remove(&key);
            return;
        }
        if !self.flows.contains_key(&key) {
            if seg.payload.is_empty() && !seg.syn {
                return;
            }
            if self.flows.len() >= self.limits.max_flows {
                self.evict_oldest();
            }
            // A SYN's sequence number is consumed by the SYN itself; a flow joined mid-stream
            // starts at this segment, and the consumer resynchronises on a message start.
            let next_seq = if seg.syn {
                seg.seq.wrapping_add(1)
            } else {
                seg.seq
            };
            self.counters.flows += 1;
            self.created += 1;
            self.order.push_back((key, self.created));
            self.compact_order();
            self.flows.insert(
                key,
                Flow {
                    next_seq,
                    buffer: Vec::new(),
                    pending: BTreeMap::new(),
                    pending_bytes: 0,
                    hole_since: None,
                    last_seen: now,
                    created: self.created,
                    ignored: false,
                    continuity: if seg.syn {
                        Continuity::Start
                    } else {
                        Continuity::Joined
                    },
                    state: FlowState::default(),
                },
            );
        }
        let limits = self.limits;
        let flow = self.flows.get_mut(&key).expect("inserted above");
        flow.last_seen = now;
        if seg.syn {
            if flow.buffer.is_empty() && flow.pending.is_empty() {
                flow.next_seq = seg.seq.wrapping_add(1);
            }
            if seg.payload.is_empty() {
                return;
            }
        }
        let seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let before = flow.held();
        Self::insert(
            flow,
            &mut self.counters,
            &limits,
            seq,
            seg.payload,
            &key,
            consumer,
            now,
        );
        self.total_bytes = (self.total_bytes + flow.held()).saturating_sub(before);
        let fin = seg.fin;
        if fin && flow.pending.is_empty() {
            self.remove(&key);
        }
        if self.total_bytes > self.limits.max_total_bytes {
            self.shrink();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        flow: &mut Flow,
        counters: &mut TcpCounters,
        limits: &TcpLimits,
        seq: u32,
        mut payload: &[u8],
        key: &FlowKey,
        consumer: &mut dyn StreamConsumer,
        now: i64,
    ) {
        let offset = seq.wrapping_sub(flow.next_seq) as i32;
        if offset < 0 {
            // Retransmission or overlap: keep only what is new.
            let seen = (-(offset as i64)) as usize;
            if seen >= payload.len() {
                counters.duplicate_bytes += payload.len() as u64;
                return;
            }
            counters.duplicate_bytes += seen as u64;
            payload = &payload[seen..];
        } else if offset > 0 {
            counters.out_of_order_segments += 1;
            if offset as u32 > limits.window || flow.held() + payload.len() > limits.max_flow_bytes
            {
                counters.capped_bytes += payload.len() as u64;
            } else {
                let previous = flow.pending.insert(seq, payload.to_vec());
                flow.pending_bytes += payload.len();
                if let Some(old) = previous {
                    flow.pending_bytes -= old.len();
                    counters.duplicate_bytes += old.len() as u64;
                }
                flow.hole_since.get_or_insert(now);
            }
            Self::fill_hole_if_stale(flow, counters, limits, key, consumer, now);
            return;
        }
        Self::append(flow, counters, limits, payload, key, consumer);
        Self::drain_pending(flow, counters, limits, key, consumer);
    }

    /// Appends in-order bytes and lets the consumer take what it can.
    fn append(
        flow: &mut Flow,
        counters: &mut TcpCounters,
        limits: &TcpLimits,
        payload: &[u8],
        key: &FlowKey,
        consumer: &mut dyn StreamConsumer,
    ) {
        flow.next_seq = flow.next_seq.wrapping_add(payload.len() as u32);
        if flow.ignored || payload.is_empty() {
            return;
        }
        let continuity = std::mem::replace(&mut flow.continuity, Continuity::Continuing);
        if flow.buffer.is_empty() {
            // Fast path: hand the segment over in place; copy only what is left.
            match consumer.bytes(key, &mut flow.state, payload, continuity) {
                Consumed::Bytes(n) => flow
                    .buffer
                    .extend_from_slice(&payload[n.min(payload.len())..]),
                Consumed::Ignore => flow.ignored = true,
            }
        } else {
            flow.buffer.extend_from_slice(payload);
            match consumer.bytes(key, &mut flow.state, &flow.buffer, continuity) {
                Consumed::Bytes(n) => {
                    flow.buffer.drain(..n.min(flow.buffer.len()));
                }
                Consumed::Ignore => {
                    flow.ignored = true;
                    flow.buffer = Vec::new();
                }
            }
        }
        if flow.buffer.len() > limits.max_flow_bytes {
            // The consumer could not use this much: give up on it and start afresh.
            counters.capped_bytes += flow.buffer.len() as u64;
            flow.buffer = Vec::new();
            flow.continuity = Continuity::AfterLoss;
        }
    }

    /// Moves pending segments that now continue the stream into it.
    fn drain_pending(
        flow: &mut Flow,
        counters: &mut TcpCounters,
        limits: &TcpLimits,
        key: &FlowKey,
        consumer: &mut dyn StreamConsumer,
    ) {
        while let Some((&seq, _)) = flow.pending.first_key_value() {
            let offset = seq.wrapping_sub(flow.next_seq) as i32;
            if offset > 0 {
                return;
            }
            let (_, data) = flow.pending.pop_first().expect("non-empty");
            flow.pending_bytes -= data.len();
            let seen = (-(offset as i64)) as usize;
            if seen >= data.len() {
                counters.duplicate_bytes += data.len() as u64;
                continue;
            }
            counters.duplicate_bytes += seen as u64;
            Self::append(flow, counters, limits, &data[seen..], key, consumer);
        }
        flow.hole_since = None;
    }

    /// Skips a hole that has waited too long, or when pending bytes hit the flow's bound.
    fn fill_hole_if_stale(
        flow: &mut Flow,
        counters: &mut TcpCounters,
        limits: &TcpLimits,
        key: &FlowKey,
        consumer: &mut dyn StreamConsumer,
        now: i64,
    ) {
        let stale = flow
            .hole_since
            .is_some_and(|since| now - since >= limits.gap_wait_us);
        let full = flow.held() >= limits.max_flow_bytes;
        if !(stale || full) {
            return;
        }
        let Some((&seq, _)) = flow.pending.first_key_value() else {
            return;
        };
        counters.gaps += 1;
        // What was buffered before the hole can no longer complete a message.
        counters.capped_bytes += flow.buffer.len() as u64;
        flow.buffer.clear();
        flow.next_seq = seq;
        flow.continuity = Continuity::AfterLoss;
        flow.state.message.clear();
        flow.hole_since = None;
        Self::drain_pending(flow, counters, limits, key, consumer);
    }

    /// Forgets idle flows and skips holes nobody will fill; call now and then.
    pub fn expire(&mut self, now: i64, consumer: &mut dyn StreamConsumer) {
        let limits = self.limits;
        let counters = &mut self.counters;
        let mut freed = 0;
        self.flows.retain(|key, flow| {
            let idle = now - flow.last_seen > limits.idle_us;
            let before = flow.held();
            if idle && flow.hole_since.is_some() {
                // An idle flow's hole will never fill: deliver what waits beyond it first.
                flow.hole_since = Some(i64::MIN / 2);
            }
            Self::fill_hole_if_stale(flow, counters, &limits, key, consumer, now);
            freed += before.saturating_sub(flow.held());
            if idle {
                counters.expired_flows += 1;
                freed += flow.held();
            }
            !idle
        });
        self.total_bytes = self.total_bytes.saturating_sub(freed);
        self.compact_order();
    }

    /// Drops queue entries of flows that are gone, once they outnumber the live ones.
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.flows.len() + 1024 {
            let flows = &self.flows;
            self.order
                .retain(|(key, created)| flows.get(key).is_some_and(|f| f.created == *created));
        }
    }

    fn remove(&mut self, key: &FlowKey) {
        if let Some(flow) = self.flows.remove(key) {
            self.total_bytes = self.total_bytes.saturating_sub(flow.held());
        }
    }

    /// Drops the flow created longest ago (the queue holds flows in creation order; entries
    /// of flows already gone are skipped), so a flood of new flows costs O(1) each.
    fn evict_oldest(&mut self) {
        while let Some((key, created)) = self.order.pop_front() {
            if self.flows.get(&key).is_none_or(|f| f.created != created) {
                continue;
            }
            self.counters.evicted_flows += 1;
            if let Some(flow) = self.flows.get(&key) {
                self.counters.capped_bytes += flow.held() as u64;
            }
            self.remove(&key);
            return;
        }
    }

    /// Over the total bound: drop the oldest flows until under it.
    fn shrink(&mut self) {
        while self.total_bytes > self.limits.max_total_bytes && !self.flows.is_empty() {
            self.evict_oldest();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Consumes whole lines, like a framing consumer would consume whole messages.
    #[derive(Default)]
    struct Lines {
        lines: Vec<String>,
        gaps: usize,
    }

    impl StreamConsumer for Lines {
        fn bytes(
            &mut self,
            _: &FlowKey,
            _: &mut FlowState,
            data: &[u8],
            continuity: Continuity,
        ) -> Consumed {
            self.gaps += usize::from(matches!(
                continuity,
                Continuity::Joined | Continuity::AfterLoss
            ));
            let mut used = 0;
            while let Some(nl) = data[used..].iter().position(|&b| b == b'\n') {
                self.lines
                    .push(String::from_utf8_lossy(&data[used..used + nl]).into_owned());
                used += nl + 1;
            }
            Consumed::Bytes(used)
        }
    }

    fn key() -> FlowKey {
        FlowKey {
            src: "10.0.0.1:40000".parse().expect("addr"),
            dst: "10.0.0.2:5060".parse().expect("addr"),
        }
    }

    fn seg(seq: u32, payload: &[u8]) -> Segment<'_> {
        Segment {
            seq,
            syn: false,
            fin: false,
            rst: false,
            payload,
        }
    }

    const STREAM: &[u8] = b"alpha\nbravo\ncharlie\ndelta\necho\nfoxtrot\n";

    fn run(parts: &[(u32, &[u8])]) -> (Vec<String>, TcpReassembler, usize) {
        let mut r = TcpReassembler::new(TcpLimits::default());
        let mut c = Lines::default();
        r.segment(
            0,
            key(),
            Segment {
                seq: 999,
                syn: true,
                fin: false,
                rst: false,
                payload: b"",
            },
            &mut c,
        );
        for (i, &(offset, bytes)) in parts.iter().enumerate() {
            r.segment(i as i64, key(), seg(1000 + offset, bytes), &mut c);
        }
        (c.lines, r, c.gaps)
    }

    fn expected() -> Vec<String> {
        STREAM
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    #[test]
    fn every_split_point_gives_the_same_stream() {
        for cut in 0..=STREAM.len() {
            let (lines, r, gaps) = run(&[(0, &STREAM[..cut]), (cut as u32, &STREAM[cut..])]);
            assert_eq!(lines, expected(), "cut at {cut}");
            assert_eq!(gaps, 0);
            assert_eq!(r.held_bytes(), 0, "nothing left over at {cut}");
        }
    }

    #[test]
    fn reordering_duplicates_and_overlaps_give_the_same_stream() {
        let s = STREAM;
        let (lines, r, _) = run(&[
            (20, &s[20..30]),
            (0, &s[0..12]),
            (5, &s[5..25]),
            (0, &s[0..12]),
            (30, &s[30..]),
            (12, &s[12..20]),
            (25, &s[25..35]),
        ]);
        assert_eq!(lines, expected());
        assert!(r.counters().duplicate_bytes > 0);
        assert!(r.counters().out_of_order_segments > 0);
    }

    #[test]
    fn a_lost_segment_is_skipped_after_the_wait_and_flagged() {
        let mut r = TcpReassembler::new(TcpLimits::default());
        let mut c = Lines::default();
        r.segment(0, key(), seg(1000, b"one\ntw"), &mut c);
        // "o\nthree\n" is lost.
        r.segment(1, key(), seg(1014, b"four\n"), &mut c);
        assert_eq!(c.lines, ["one"]);
        r.expire(3_000_000, &mut c);
        assert_eq!(c.lines, ["one", "four"]);
        assert_eq!(r.counters().gaps, 1);
        assert_eq!(
            c.gaps, 2,
            "the mid-stream start and the hole are both flagged"
        );
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut r = TcpReassembler::new(TcpLimits::default());
        let mut c = Lines::default();
        r.segment(
            0,
            key(),
            Segment {
                seq: u32::MAX - 2,
                syn: true,
                fin: false,
                rst: false,
                payload: b"",
            },
            &mut c,
        );
        r.segment(1, key(), seg(u32::MAX - 1, b"ab"), &mut c);
        r.segment(2, key(), seg(0, b"c\n"), &mut c);
        assert_eq!(c.lines, ["abc"]);
    }

    #[test]
    fn fin_and_rst_forget_the_flow() {
        let mut r = TcpReassembler::new(TcpLimits::default());
        let mut c = Lines::default();
        r.segment(0, key(), seg(1, b"partial"), &mut c);
        assert_eq!(r.flows(), 1);
        r.segment(
            1,
            key(),
            Segment {
                seq: 8,
                syn: false,
                fin: false,
                rst: true,
                payload: b"",
            },
            &mut c,
        );
        assert_eq!((r.flows(), r.held_bytes()), (0, 0));
        r.segment(
            2,
            key(),
            Segment {
                seq: 1,
                syn: false,
                fin: true,
                rst: false,
                payload: b"x\n",
            },
            &mut c,
        );
        assert_eq!(r.flows(), 0);
        assert_eq!(c.lines, ["x"]);
    }

    #[test]
    fn memory_stays_bounded_under_half_open_floods() {
        let limits = TcpLimits {
            max_flows: 1000,
            max_total_bytes: 1 << 20,
            ..TcpLimits::default()
        };
        let mut r = TcpReassembler::new(limits);
        let mut c = Lines::default();
        let junk = [b'x'; 900];
        for i in 0..50_000u32 {
            let k = FlowKey {
                src: SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 40000)),
                dst: "10.0.0.2:5060".parse().expect("addr"),
            };
            // Data that never completes a line, and a hole that is never filled.
            r.segment(i64::from(i), k, seg(1, &junk), &mut c);
            r.segment(i64::from(i), k, seg(5000, &junk), &mut c);
            assert!(r.flows() <= 1000, "flows bounded");
            assert!(r.held_bytes() <= 1 << 20, "bytes bounded");
        }
        assert!(r.counters().evicted_flows >= 49_000);
    }
}
