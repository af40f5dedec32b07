// SPDX-License-Identifier: AGPL-3.0-or-later
//! The stages wired together: frames → decode → SIP parse → [`SipEvent`] → call tracker →
//! [`CallRecord`] → sink, with the counters every stage keeps.
//!
//! With two threads, the reading thread decodes and parses while a second one tracks calls and
//! writes records; events cross in batches through a bounded channel, so a slow sink holds the
//! reader back instead of growing memory.

use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::sync::mpsc;

use crate::call::{CallRecord, CallTracker, Disposition, TrackerConfig, TrackerCounters};
use crate::capture::{CaptureError, Frame, OfflineSource};
use crate::decode::{decode, Skip};
use crate::sink::{RecordSink, SinkError};
use crate::sip::{
    is_keepalive, looks_like_sip, parse_datagram_uninit, PacketMeta, ParseError, SipEvent,
    MAX_HEADERS,
};

/// Shorter than `ACK sip:a SIP/2.0\r\n\r\n`: a keep-alive ("hello", "jaK") or junk, never SIP.
const MIN_SIP_MESSAGE: usize = 20;

/// Which UDP ports carry SIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipPorts {
    /// Payloads to or from these ports are parsed as SIP (errors counted).
    pub ports: Vec<u16>,
    /// Also take payloads on any other port that begin with a SIP start line.
    pub detect_elsewhere: bool,
}

impl Default for SipPorts {
    fn default() -> Self {
        Self {
            ports: spycraft_common::DEFAULT_SIP_PORTS.to_vec(),
            detect_elsewhere: true,
        }
    }
}

/// Everything the pipeline needs to know.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub ports: SipPorts,
    /// Headers whose value links the legs of one call across a B2BUA, in order of preference.
    pub collation_headers: Vec<String>,
    pub tracker: TrackerConfig,
    /// 1: everything on the calling thread; 2: call tracking and sinks on a second thread.
    pub threads: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            ports: SipPorts::default(),
            collation_headers: vec!["X-CollateID".into()],
            tracker: TrackerConfig::default(),
            threads: 2,
        }
    }
}

/// Counters of the capture, decode and parse stages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParseCounters {
    pub frames: u64,
    pub bytes: u64,
    /// Frames cut by the snap length.
    pub snapped_frames: u64,
    pub skipped: [u64; Skip::ALL.len()],
    pub udp_datagrams: u64,
    /// Datagrams on non-SIP ports that did not look like SIP.
    pub not_sip: u64,
    /// Keep-alives, and payloads on SIP ports too short to be any SIP message.
    pub keepalives: u64,
    pub sip_messages: u64,
    pub parse_errors: [u64; ParseError::ALL.len()],
    /// Messages kept although their body did not match their Content-Length.
    pub body_issues: u64,
    /// Header lines skipped inside otherwise usable messages.
    pub malformed_header_lines: u64,
}

impl ParseCounters {
    pub fn total_parse_errors(&self) -> u64 {
        self.parse_errors.iter().sum()
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

    /// One line for stderr: frames, SIP messages, parse errors, calls by disposition.
    pub fn one_line(&self) -> String {
        let p = &self.parse;
        let mut line = format!(
            "{} frames, {} SIP messages, {} parse errors, {} calls",
            p.frames,
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
        if self.tracker.evicted > 0 {
            line.push_str(&format!(
                "; {} legs evicted at the live-dialog cap",
                self.tracker.evicted
            ));
        }
        line
    }
}

/// Turns frames into SIP events; owns the parse-side counters.
#[derive(Debug)]
pub struct ParseStage {
    ports: SipPorts,
    collation_headers: Vec<String>,
    counters: ParseCounters,
}

impl ParseStage {
    pub fn new(ports: SipPorts, collation_headers: Vec<String>) -> Self {
        Self {
            ports,
            collation_headers,
            counters: ParseCounters::default(),
        }
    }

    pub fn counters(&self) -> &ParseCounters {
        &self.counters
    }

    /// Decodes and parses one frame; a SIP message becomes an event, anything else a counter.
    pub fn on_frame(&mut self, frame: &Frame<'_>) -> Option<SipEvent> {
        let c = &mut self.counters;
        c.frames += 1;
        c.bytes += frame.data.len() as u64;
        if (frame.data.len() as u64) < u64::from(frame.original_len) {
            c.snapped_frames += 1;
        }
        let datagram = match decode(frame.link, frame.data) {
            Ok(d) => d,
            Err(skip) => {
                c.skipped[skip.index()] += 1;
                return None;
            }
        };
        c.udp_datagrams += 1;
        let payload = datagram.payload;
        let on_sip_port = self.ports.ports.contains(&datagram.dst.port())
            || self.ports.ports.contains(&datagram.src.port());
        let is_sip = on_sip_port || (self.ports.detect_elsewhere && looks_like_sip(payload));
        if !is_sip {
            c.not_sip += 1;
            return None;
        }
        if payload.len() < MIN_SIP_MESSAGE || is_keepalive(payload) {
            c.keepalives += 1;
            return None;
        }
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let result = parse_datagram_uninit(payload, &mut headers).and_then(|msg| {
            if msg.body_issue.is_some() {
                c.body_issues += 1;
            }
            c.malformed_header_lines += u64::from(msg.malformed_lines);
            SipEvent::from_message(
                PacketMeta::of(frame.ts_us, &datagram),
                &msg,
                &self.collation_headers,
            )
        });
        match result {
            Ok(event) => {
                c.sip_messages += 1;
                Some(event)
            }
            Err(e) => {
                c.parse_errors[e.index()] += 1;
                None
            }
        }
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
    fn on_event(&mut self, ev: &SipEvent) {
        let (sink, dispositions, error) =
            (&mut *self.sink, &mut self.dispositions, &mut self.error);
        self.tracker
            .on_event(ev, &mut |r| deliver(sink, dispositions, error, &r));
    }

    fn finish(mut self) -> Result<(TrackerCounters, [u64; Disposition::ALL.len()]), SinkError> {
        let (sink, dispositions, error) =
            (&mut *self.sink, &mut self.dispositions, &mut self.error);
        self.tracker
            .finish(&mut |r| deliver(sink, dispositions, error, &r));
        if let Some(e) = self.error {
            return Err(e);
        }
        self.sink.finish()?;
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
    let mut parse = ParseStage::new(config.ports.clone(), config.collation_headers.clone());
    let stage = RecordStage {
        tracker: CallTracker::new(config.tracker.clone()),
        sink,
        dispositions: [0; Disposition::ALL.len()],
        error: None,
    };
    let mut damage = None;
    let finished = if config.threads <= 1 {
        let mut stage = stage;
        damage = read_all(&mut sources, &mut parse, progress, &mut |ev| {
            stage.on_event(&ev)
        });
        stage.finish()
    } else {
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::sync_channel::<Vec<SipEvent>>(QUEUED_BATCHES);
            // Emptied batches go back to the reader, so batches are allocated only at start.
            let (recycle_tx, recycle_rx) = mpsc::sync_channel::<Vec<SipEvent>>(QUEUED_BATCHES + 2);
            let consumer = scope.spawn(move || {
                let mut stage = stage;
                for mut batch in rx {
                    for ev in batch.drain(..) {
                        stage.on_event(&ev);
                    }
                    let _ = recycle_tx.try_send(batch);
                }
                stage.finish()
            });
            let mut batch = Vec::with_capacity(BATCH);
            damage = read_all(&mut sources, &mut parse, progress, &mut |ev| {
                batch.push(ev);
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
        parse: parse.counters().clone(),
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
    out: &mut dyn FnMut(SipEvent),
) -> Option<CaptureError> {
    let mut damage = None;
    let mut done_bytes = 0;
    for source in sources.iter_mut() {
        loop {
            match source.next_frame() {
                Ok(Some(frame)) => {
                    if let Some(ev) = parse.on_frame(&frame) {
                        out(ev);
                    }
                    if parse.counters().frames % 4096 == 0 {
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
