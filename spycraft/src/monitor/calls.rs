// SPDX-License-Identifier: AGPL-3.0-or-later
//! Figures over the call records written: counts by disposition, the PDD and duration
//! histograms, and the attempts per minute behind the ASR, NER and SER windows; overall and
//! per named peer group. Updated once per record, never per packet.

use super::peers::PeerGroups;
use super::window::MinuteWindow;
use crate::call::{CallRecord, Disposition};
use crate::packet::Timestamp;
use crate::stats::Attempts;

/// Upper bounds of the post-dial delay buckets, seconds.
pub const PDD_BUCKETS: [f64; 11] = [0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0];
/// Upper bounds of the call duration buckets (billable time of answered calls), seconds.
pub const DURATION_BUCKETS: [f64; 11] = [
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];

/// A histogram over fixed bounds.
#[derive(Clone, Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations in each bucket (not cumulative); the last is above every bound.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: f64) {
        let bucket = self.bounds.partition_point(|&upper| upper < value);
        self.counts[bucket] += 1;
        self.sum += value;
    }

    /// (upper bound, observations in that bucket alone), the last bound +Inf.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts.iter().copied())
            .collect()
    }

    /// The sum of the observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// How many were observed.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The figures of one group of calls.
#[derive(Clone, Debug)]
pub struct GroupFigures {
    /// Records by disposition, in [`Disposition::ALL`] order.
    pub dispositions: [u64; Disposition::ALL.len()],
    /// Attempts per minute of capture time.
    pub window: MinuteWindow,
}

impl Default for GroupFigures {
    fn default() -> Self {
        Self {
            dispositions: [0; Disposition::ALL.len()],
            window: MinuteWindow::default(),
        }
    }
}

impl GroupFigures {
    fn add(&mut self, record: &CallRecord, minute: i64, attempts: &Attempts) {
        self.dispositions[record.disposition as usize] += 1;
        self.window.add(minute, attempts);
    }
}

/// The figures of every call written so far.
#[derive(Clone, Debug)]
pub struct CallFigures {
    /// All calls.
    pub all: GroupFigures,
    /// Per peer group, in the groups' order.
    pub groups: Vec<GroupFigures>,
    /// INVITE to the first 18x or final response (RFC 6076 SRD), seconds.
    pub pdd: Histogram,
    /// Billable time of answered calls, seconds.
    pub duration: Histogram,
    /// The latest capture time a record ended at: the windows' "now" for files.
    pub latest: Option<Timestamp>,
}

impl CallFigures {
    /// Figures for `groups` named peer groups.
    pub fn new(groups: usize) -> Self {
        Self {
            all: GroupFigures::default(),
            groups: vec![GroupFigures::default(); groups],
            pdd: Histogram::new(&PDD_BUCKETS),
            duration: Histogram::new(&DURATION_BUCKETS),
            latest: None,
        }
    }

    /// Counts one record.
    pub fn add(&mut self, record: &CallRecord, peers: &PeerGroups) {
        let ended = record.end_at.unwrap_or(record.invite_at);
        let minute = minute_of(ended);
        let attempts = Attempts::of(record);
        self.all.add(record, minute, &attempts);
        if let Some(group) = peers.of(record).and_then(|g| self.groups.get_mut(g)) {
            group.add(record, minute, &attempts);
        }
        if let Some(pdd) = record.pdd_ms {
            self.pdd.observe(pdd as f64 / 1000.0);
        }
        if record.disposition == Disposition::Answered {
            self.duration
                .observe(record.billable_ms.unwrap_or(0) as f64 / 1000.0);
        }
        self.latest = Some(self.latest.map_or(ended, |t| t.max(ended)));
    }
}

/// The minute (since the epoch) a time falls in.
pub fn minute_of(time: Timestamp) -> i64 {
    time.micros().div_euclid(60_000_000)
}
