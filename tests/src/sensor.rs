// SPDX-License-Identifier: AGPL-3.0-or-later
//! A parse stage and a call tracker driven frame by frame, for the tests that push millions of
//! messages through them and measure memory (floods, open dialogs, allocations).

use etherparse::PacketBuilder;
use spycraft::call::{CallRecord, CallTracker, TrackerConfig};
use spycraft::capture::Frame;
use spycraft::decode::LinkType;
use spycraft::packet::Timestamp;
use spycraft::pipeline::{Input, ParseStage, SipPorts};

/// The two stages of the pipeline on one thread, fed raw IPv4 frames.
#[derive(Debug)]
pub struct Sensor {
    pub parse: ParseStage,
    pub tracker: CallTracker,
    /// Records kept (the rest are only counted by the tracker).
    pub records: Vec<CallRecord>,
    keep: fn(&CallRecord) -> bool,
    /// Inputs of the last frame, handed back to the parse stage as the pipeline does.
    spent: Vec<Input>,
}

impl Sensor {
    /// Stages with the default ports and `X-CollateID`; records for which `keep` says yes
    /// are kept.
    pub fn new(tracker: TrackerConfig, keep: fn(&CallRecord) -> bool) -> Self {
        Self {
            parse: ParseStage::new(SipPorts::default(), vec!["X-CollateID".into()]),
            tracker: CallTracker::new(tracker),
            records: Vec::new(),
            keep,
            spent: Vec::with_capacity(16),
        }
    }

    /// One raw IPv4 frame.
    pub fn frame(&mut self, ts_us: i64, data: &[u8]) {
        let frame = Frame::whole(Timestamp(ts_us), LinkType::RawIp, data);
        let (tracker, records, keep, spent) = (
            &mut self.tracker,
            &mut self.records,
            self.keep,
            &mut self.spent,
        );
        self.parse.on_frame(&frame, &mut |input| {
            match &input {
                Input::Event(ev) => tracker.on_event(ev, &mut |r| {
                    if keep(r) {
                        records.push(r.clone())
                    }
                }),
                Input::StreamGap { a, b, .. } => tracker.on_stream_gap(*a, *b),
                // Counted by the parse stage already; only alerting watches who sent it.
                Input::Malformed { .. } => {}
                // Only the pipeline's reading loop sends these.
                Input::Clock { .. } | Input::CaptureLoss | Input::Flush => {
                    unreachable!("the parse stage sends no clocks, losses or flushes")
                }
            }
            spent.push(input);
        });
        self.parse.recycle(&mut self.spent);
    }

    /// A UDP datagram from `src`:`sport` to the PBX at 10.0.0.1:5060.
    pub fn udp(&mut self, ts_us: i64, src: [u8; 4], sport: u16, text: &str) {
        let mut out = Vec::with_capacity(text.len() + 28);
        PacketBuilder::ipv4(src, [10, 0, 0, 1], 64)
            .udp(sport, 5060)
            .write(&mut out, text.as_bytes())
            .expect("build");
        self.frame(ts_us, &out);
    }

    /// Ends the input: every leg still held is written.
    pub fn finish(mut self) -> (Vec<CallRecord>, CallTracker, ParseStage) {
        let (records, keep) = (&mut self.records, self.keep);
        self.tracker.finish(&mut |r| {
            if keep(r) {
                records.push(r.clone())
            }
        });
        (self.records, self.tracker, self.parse)
    }
}

/// A memory figure of this process from /proc/self/status, in KiB: `VmHWM` (peak resident)
/// or `VmRSS` (resident now).
pub fn memory_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// A cheap deterministic stream of random numbers.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
