// SPDX-License-Identifier: AGPL-3.0-or-later
//! What a running sensor shows about itself, for `/metrics`, `/healthz` and `/readyz`.
//!
//! Nothing here runs per packet. The pipeline publishes its counters at its checkpoints
//! (every 4,096 frames or when idle, at most twice a second) and hands over each record as it
//! is written; capture counters are read from the sources' shared atomics when a scrape asks.

mod calls;
mod exposition;
pub mod peers;
mod window;

use std::sync::{Arc, Mutex, MutexGuard};

use crate::alert::AlertLog;
use crate::call::CallRecord;
use crate::capture::CaptureCounts;
use crate::hep::HepExport;
use crate::pipeline::{RunObserver, Summary};
use crate::sink::OutputReport;

pub use calls::{CallFigures, Histogram, DURATION_BUCKETS, PDD_BUCKETS};
pub use exposition::CONTENT_TYPE;
pub use peers::{PeerGroup, PeerGroups};

/// Where a run stands, for readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Opening its inputs and outputs.
    Starting,
    /// Reading its inputs.
    Running,
    /// Its inputs have ended (a file read to its end, a capture stopped).
    Ended,
}

/// The state a sensor shows; shared by the pipeline (writing) and the HTTP server (reading).
#[derive(Debug)]
pub struct Monitor {
    /// Live captures: the ratio windows end at the wall clock, not at the last record.
    live: bool,
    started: std::time::SystemTime,
    calls: Mutex<Calls>,
    run: Mutex<RunState>,
    captures: Mutex<Vec<Capture>>,
    /// HEP exporters whose counters a scrape reads.
    hep: Mutex<Vec<Arc<HepExport>>>,
    /// The run's alerting, if on.
    alerts: Mutex<Option<AlertLog>>,
}

#[derive(Debug)]
struct Calls {
    figures: CallFigures,
    peers: PeerGroups,
}

#[derive(Debug)]
struct RunState {
    phase: Phase,
    summary: Summary,
    live_legs: u64,
    outputs: Vec<OutputReport>,
}

#[derive(Debug)]
struct Capture {
    interface: String,
    counts: Arc<dyn CaptureCounts>,
}

impl Monitor {
    /// A monitor for a live capture (`live`) or a run over files, with per-peer figures for
    /// `peers`.
    pub fn new(live: bool, peers: PeerGroups) -> Self {
        Self {
            live,
            started: std::time::SystemTime::now(),
            calls: Mutex::new(Calls {
                figures: CallFigures::new(peers.len()),
                peers,
            }),
            run: Mutex::new(RunState {
                phase: Phase::Starting,
                summary: Summary::default(),
                live_legs: 0,
                outputs: Vec::new(),
            }),
            captures: Mutex::new(Vec::new()),
            hep: Mutex::new(Vec::new()),
            alerts: Mutex::new(None),
        }
    }

    /// Whether it watches a live capture (its windows end at the wall clock).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Adds a live capture whose counters a scrape reads.
    pub fn add_capture(&self, interface: &str, counts: Arc<dyn CaptureCounts>) {
        lock(&self.captures).push(Capture {
            interface: interface.to_owned(),
            counts,
        });
    }

    /// Adds a HEP exporter whose counters a scrape reads.
    pub fn add_hep_export(&self, export: Arc<HepExport>) {
        lock(&self.hep).push(export);
    }

    /// Shows the run's alerts: their counters in a scrape, the latest in the web API.
    pub fn set_alerts(&self, alerts: AlertLog) {
        *lock(&self.alerts) = Some(alerts);
    }

    /// The run's alerting, if on.
    pub fn alerts(&self) -> Option<AlertLog> {
        lock(&self.alerts).clone()
    }

    /// Moves the run to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        lock(&self.run).phase = phase;
    }

    /// Replaces the peer groups (a reload). Per-group figures start again from zero, since a
    /// group's calls so far were counted under the old addresses.
    pub fn set_peer_groups(&self, peers: PeerGroups) {
        let mut calls = lock(&self.calls);
        calls.figures.groups = vec![Default::default(); peers.len()];
        calls.peers = peers;
    }

    /// The run's counters on one line, and each output's trouble, if any.
    pub fn health(&self) -> (String, Vec<String>) {
        let run = lock(&self.run);
        let troubles = run
            .outputs
            .iter()
            .filter_map(|o| Some(format!("{}: {}", o.output, o.trouble()?)))
            .collect();
        (run.summary.one_line(), troubles)
    }

    /// Why the sensor is not ready now, if it is not: it has not started or has ended, or
    /// an output cannot deliver.
    pub fn readiness(&self) -> Result<(), String> {
        let run = lock(&self.run);
        match run.phase {
            Phase::Starting => return Err("starting: the inputs are not open yet".into()),
            Phase::Ended => return Err("the run has ended: its inputs are closed".into()),
            Phase::Running => {}
        }
        let troubles: Vec<String> = run
            .outputs
            .iter()
            .filter_map(|o| Some(format!("{}: {}", o.output, o.trouble()?)))
            .collect();
        if troubles.is_empty() {
            Ok(())
        } else {
            Err(troubles.join("; "))
        }
    }
}

impl RunObserver for Monitor {
    fn record(&self, record: &CallRecord) {
        let mut calls = lock(&self.calls);
        let Calls { figures, peers } = &mut *calls;
        figures.add(record, peers);
    }

    fn snapshot(&self, summary: &Summary, live_legs: usize, outputs: Vec<OutputReport>) {
        let mut run = lock(&self.run);
        run.summary.clone_from(summary);
        run.live_legs = live_legs as u64;
        run.outputs = outputs;
    }
}

/// Locks `m`, taking over a lock a panicking holder left: the figures stay readable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
