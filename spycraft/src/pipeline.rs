// SPDX-License-Identifier: AGPL-3.0-or-later
//! The stages wired together: frames → decode → SIP parse → [`Input`] → call tracker →
//! [`CallRecord`] → sink, with the counters every stage keeps.
//!
//! With two threads, the reading thread decodes and parses while a second one tracks calls and
//! writes records; events cross in batches through a bounded channel, so a slow sink holds the
//! reader back instead of growing memory.

use std::path::PathBuf;
use std::sync::mpsc;

use crate::call::{CallRecord, CallTracker, Disposition, TrackerConfig, TrackerCounters};
use crate::capture::{CaptureError, OfflineSource};
use crate::decode::DecodeLimits;
use crate::sink::{RecordSink, SinkError};
use crate::sip::ParseError;

pub use crate::parse_stage::{Input, ParseCounters, ParseStage, SeenMessage, SipPorts};

/// Everything the pipeline needs to know.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub ports: SipPorts,
    /// Headers whose value links the legs of one call across a B2BUA, in order of preference.
    pub collation_headers: Vec<String>,
    pub tracker: TrackerConfig,
    /// 1: everything on the calling thread; 2: call tracking and sinks on a second thread.
    pub threads: usize,
    /// Bounds of TCP and fragment reassembly.
    pub decode: DecodeLimits,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            ports: SipPorts::default(),
            collation_headers: vec!["X-CollateID".into()],
            tracker: TrackerConfig::default(),
            threads: 2,
            decode: DecodeLimits::default(),
        }
    }
}

/// Everything counted in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub parse: ParseCounters,
    pub tracker: TrackerCounters,
    pub dispositions: [u64; Disposition::ALL.len()],
}

impl Summary {
    pub fn records(&self) -> u64 {
        self.dispositions.iter().sum()
    }

    /// Every counter as a JSON object (for `sensor_stats`); counts kept per kind in arrays
    /// (parse errors, skipped frames, dispositions) become objects keyed by the kind's name.
    pub fn counters_json(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        fn named<T: Copy>(kinds: &[T], counts: &[u64], name: fn(T) -> &'static str) -> Value {
            let map: Map<String, Value> = kinds
                .iter()
                .zip(counts)
                .map(|(k, n)| (name(*k).to_owned(), json!(n)))
                .collect();
            Value::Object(map)
        }
        let mut parse = serde_json::to_value(&self.parse).unwrap_or_default();
        parse["parse_errors"] = named(&ParseError::ALL, &self.parse.parse_errors, ParseError::name);
        parse["decode"]["skipped"] = named(
            &crate::decode::Skip::ALL,
            &self.parse.decode.skipped,
            crate::decode::Skip::name,
        );
        json!({
            "parse": parse,
            "tracker": serde_json::to_value(self.tracker).unwrap_or_default(),
            "records": self.records(),
            "dispositions": named(&Disposition::ALL, &self.dispositions, Disposition::as_str),
        })
    }

    /// One line for stderr: frames, SIP messages, parse errors, calls by disposition.
    pub fn one_line(&self) -> String {
        let p = &self.parse;
        let mut line = format!(
            "{} frames, {} SIP messages, {} parse errors, {} calls",
            p.decode.frames,
            p.sip_messages,
            p.total_parse_errors(),
            self.records()
        );
        let by: Vec<String> = Disposition::ALL
            .iter()
            .zip(self.dispositions)
            .filter(|(_, n)| *n > 0)
            .map(|(d, n)| format!("{d} {n}"))
            .collect();
        if !by.is_empty() {
            line.push_str(&format!(" ({})", by.join(", ")));
        }
        let errors: Vec<String> = ParseError::ALL
            .iter()
            .zip(p.parse_errors)
            .filter(|(_, n)| *n > 0)
            .map(|(e, n)| format!("{} {n}", e.name()))
            .collect();
        if !errors.is_empty() {
            line.push_str(&format!("; errors: {}", errors.join(", ")));
        }
        let d = &p.decode;
        if p.tls_flows > 0 {
            line.push_str(&format!(
                "; {} SIP-over-TLS flows (not decrypted)",
                p.tls_flows
            ));
        }
        if d.tcp.gaps > 0 {
            line.push_str(&format!("; {} TCP gaps", d.tcp.gaps));
        }
        if d.duplicates > 0 {
            line.push_str(&format!("; {} duplicate frames dropped", d.duplicates));
        }
        if self.tracker.evicted > 0 {
            line.push_str(&format!(
                "; {} legs evicted at the live-dialog cap",
                self.tracker.evicted
            ));
        }
        line
    }
}

/// Why a run stopped early or could not finish cleanly.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("writing records: {0}")]
    Sink(#[from] SinkError),
}

/// Tracks calls and writes their records; the consuming half of the pipeline.
struct RecordStage<'s> {
    tracker: CallTracker,
    sink: &'s mut dyn RecordSink,
    dispositions: [u64; Disposition::ALL.len()],
    error: Option<SinkError>,
}

impl<'s> RecordStage<'s> {
    fn on_input(&mut self, input: &Input) {
        let (sink, dispositions, error) =
            (&mut *self.sink, &mut self.dispositions, &mut self.error);
        match input {
            Input::Event(ev) => self
                .tracker
                .on_event(ev, &mut |r| deliver(sink, dispositions, error, &r)),
            Input::StreamGap { a, b, .. } => self.tracker.on_stream_gap(*a, *b),
        }
    }

    fn finish(mut self) -> Result<(TrackerCounters, [u64; Disposition::ALL.len()]), SinkError> {
        let (sink, dispositions, error) =
            (&mut *self.sink, &mut self.dispositions, &mut self.error);
        self.tracker
            .finish(&mut |r| deliver(sink, dispositions, error, &r));
        if let Some(e) = self.error {
            return Err(e);
        }
        Ok((self.tracker.counters(), self.dispositions))
    }
}

/// Counts a finished record and writes it, unless the sink already failed.
fn deliver(
    sink: &mut dyn RecordSink,
    dispositions: &mut [u64; Disposition::ALL.len()],
    error: &mut Option<SinkError>,
    record: &CallRecord,
) {
    if error.is_some() {
        return;
    }
    dispositions[record.disposition as usize] += 1;
    if let Err(e) = sink.write(record) {
        *error = Some(e);
    }
}

/// Events handed across threads at a time; amortises the channel.
const BATCH: usize = 512;

/// Batches in flight between the threads: the bound that makes a slow consumer hold the
/// reader back.
const QUEUED_BATCHES: usize = 16;

/// Analyses capture files in order as one stream: a call may start in one file and end in the
/// next. Records of a file that breaks off are still written; the damage is reported after.
/// The caller finishes the sink, so it can add the run's counters first.
pub fn analyze_files(
    inputs: &[PathBuf],
    filter: Option<&str>,
    config: &PipelineConfig,
    sink: &mut dyn RecordSink,
    progress: &mut dyn FnMut(u64),
) -> (Summary, Result<(), AnalyzeError>) {
    // Open everything first, so a typo in the last name fails before a long run.
    let mut sources = Vec::with_capacity(inputs.len());
    for path in inputs {
        match OfflineSource::open(path, filter) {
            Ok(s) => sources.push(s),
            Err(e) => return (Summary::default(), Err(e.into())),
        }
    }
    let mut parse = ParseStage::with_limits(
        config.ports.clone(),
        config.collation_headers.clone(),
        config.decode,
    );
    let stage = RecordStage {
        tracker: CallTracker::new(config.tracker.clone()),
        sink,
        dispositions: [0; Disposition::ALL.len()],
        error: None,
    };
    let mut damage = None;
    let finished = if config.threads <= 1 {
        let mut stage = stage;
        damage = read_all(&mut sources, &mut parse, progress, &mut |input| {
            stage.on_input(&input)
        });
        stage.finish()
    } else {
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::sync_channel::<Vec<Input>>(QUEUED_BATCHES);
            // Emptied batches go back to the reader, so batches are allocated only at start.
            let (recycle_tx, recycle_rx) = mpsc::sync_channel::<Vec<Input>>(QUEUED_BATCHES + 2);
            let consumer = scope.spawn(move || {
                let mut stage = stage;
                for mut batch in rx {
                    for input in batch.drain(..) {
                        stage.on_input(&input);
                    }
                    let _ = recycle_tx.try_send(batch);
                }
                stage.finish()
            });
            let mut batch = Vec::with_capacity(BATCH);
            damage = read_all(&mut sources, &mut parse, progress, &mut |input| {
                batch.push(input);
                if batch.len() == BATCH {
                    let empty = recycle_rx
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                    // A send fails only if the consumer stopped; its error is reported below.
                    let _ = tx.send(std::mem::replace(&mut batch, empty));
                }
            });
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
            drop(tx);
            consumer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    };
    let mut summary = Summary {
        parse: parse.counters(),
        ..Summary::default()
    };
    let result = match finished {
        Ok((tracker, dispositions)) => {
            summary.tracker = tracker;
            summary.dispositions = dispositions;
            damage.map_or(Ok(()), |e| Err(e.into()))
        }
        Err(e) => Err(e.into()),
    };
    (summary, result)
}

/// Reads every source to its end; returns the first damage met (later files are still read).
fn read_all(
    sources: &mut [OfflineSource],
    parse: &mut ParseStage,
    progress: &mut dyn FnMut(u64),
    out: &mut dyn FnMut(Input),
) -> Option<CaptureError> {
    let mut damage = None;
    let mut done_bytes = 0;
    let mut frames = 0u64;
    for source in sources.iter_mut() {
        loop {
            match source.next_frame() {
                Ok(Some(frame)) => {
                    parse.on_frame(&frame, out);
                    frames += 1;
                    if frames % 4096 == 0 {
                        progress(done_bytes + source.bytes_read());
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    damage.get_or_insert(e);
                    break;
                }
            }
        }
        done_bytes += source.bytes_read();
    }
    progress(done_bytes);
    damage
}
