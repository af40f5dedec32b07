// SPDX-License-Identifier: AGPL-3.0-or-later
//! The stages wired together: frames → decode → SIP parse → [`Input`] → call tracker →
//! [`CallRecord`] → sink, with the counters every stage keeps.
//!
//! On one thread each frame goes all the way through at once. For two cores, a reading thread
//! and a recording thread share the parsing between them (`threaded.rs`).

mod threaded;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::call::{
    CallProgress, CallRecord, CallTracker, Disposition, LegKey, LiveCall, MonitoredHosts, Timers,
    TrackerConfig, TrackerCounters,
};
use crate::capture::{CaptureError, Frame, FrameSource, OfflineSource, Polled};
use crate::decode::DecodeLimits;
use crate::packet::{Timestamp, Transport};
use crate::sink::{OutputReport, RecordSink, SinkError};
use crate::sip::{Method, ParseError, SipEvent};

pub use crate::parse_stage::{
    Input, MessageStage, Observer, ParseCounters, ParseStage, SeenMessage, SipPorts, Unparsed,
};

/// The names of the response classes [`ParseCounters::responses`] counts.
pub const RESPONSE_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// The header linking B2BUA legs when none is configured.
pub const DEFAULT_COLLATION_HEADER: &str = "X-CollateID";

/// Everything the pipeline needs to know.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Which ports carry SIP.
    pub ports: SipPorts,
    /// Headers whose value links the legs of one call across a B2BUA, in order of preference.
    pub collation_headers: Vec<String>,
    /// How calls are tracked.
    pub tracker: TrackerConfig,
    /// 1: everything on the calling thread; 2: reading on one, tracking calls and writing
    /// records on another, parsing shared between them.
    pub threads: usize,
    /// Bounds of TCP and fragment reassembly.
    pub decode: DecodeLimits,
    /// Hand the sink a snapshot of the counters this often (wall clock) during a run, for
    /// sinks that keep them; none: only the caller's, at the end.
    pub stats_interval: Option<Duration>,
    /// What the snapshots say took them (`analyze`, `capture`).
    pub stats_source: &'static str,
    /// Records written so far, kept up to date for a live status line on another thread.
    pub records_written: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Hears of every record and, every [`OBSERVE_EVERY`], of the counters (`/metrics`).
    pub observer: Option<Arc<dyn RunObserver>>,
    /// Where a reload leaves changes for the running pipeline.
    pub changes: Option<Arc<ChangeSlot>>,
    /// Sees every SIP message parsed (`--keep-messages-mb`, `--store-messages`).
    pub tap: Option<Arc<dyn MessageTap>>,
    /// Sees every message and record in capture order (`--alerts`).
    pub watcher: Option<Arc<dyn EventWatcher>>,
}

/// What a reload changes in a running pipeline, its open calls, streams and fragments kept.
#[derive(Clone, Debug)]
pub struct LiveChanges {
    /// Which ports carry SIP.
    pub ports: SipPorts,
    /// Headers linking B2BUA legs.
    pub collation_headers: Vec<String>,
    /// The monitored hosts, for the direction of new legs.
    pub hosts: MonitoredHosts,
    /// Timeouts of legs looked at from now on.
    pub timers: Timers,
}

/// Where a reload leaves [`LiveChanges`], taken at the pipeline's next checkpoint (every
/// 4,096 frames and whenever a live source is idle), in order with the frames around it.
pub type ChangeSlot = crate::handoff::Handoff<LiveChanges>;

/// How often an observer hears the counters while a run goes on (checked at the checkpoints:
/// every 4,096 frames and whenever a live source idles).
pub const OBSERVE_EVERY: Duration = Duration::from_millis(500);

/// Watches a run from its recording end: each record as it is written, and the counters
/// now and then. Called on the recording thread, never per packet.
pub trait RunObserver: Send + Sync + std::fmt::Debug {
    /// A record has been handed to the outputs.
    fn record(&self, record: &CallRecord);
    /// The counters so far, the call legs open now and what each output has done.
    fn snapshot(&self, summary: &Summary, live_legs: usize, outputs: Vec<OutputReport>);
    /// How many calls in progress this observer wants listed at each snapshot (none unless
    /// it shows them).
    fn live_calls_wanted(&self) -> usize {
        0
    }
    /// The calls in progress, oldest first and at most as many as wanted, at each snapshot.
    fn live_calls(&self, _calls: &[LiveCall]) {}
}

/// Sees every SIP message a run parses, on whichever thread parsed it: messages parsed on
/// two threads may come a batch out of capture order. Called per message, so it must be
/// cheap and never wait long.
pub trait MessageTap: Send + Sync + std::fmt::Debug {
    /// A message has been parsed.
    fn message(&self, message: &SeenMessage<'_, '_, '_>);
}

/// Watches the messages and records of a run in capture order, on the recording thread,
/// before the tracker sees each message: what alerting needs to raise the same alerts live
/// and from a file. Called per message, so it must be cheap.
pub trait EventWatcher: Send + Sync + std::fmt::Debug {
    /// A message, as the tracker gets it.
    fn event(&self, event: &SipEvent);
    /// A finished record, as the outputs get it.
    fn record(&self, record: &CallRecord);
    /// A message from `from` to `to` at `time` was not SIP (a parse error).
    fn malformed(&self, from: SocketAddr, to: SocketAddr, time: Timestamp, transport: Transport);
    /// The run has ended: the last record has been handed over.
    fn finish(&self);
}

/// Several taps, each shown every message.
#[derive(Debug, Default)]
pub struct MessageTaps(pub Vec<Arc<dyn MessageTap>>);

impl MessageTap for MessageTaps {
    fn message(&self, message: &SeenMessage<'_, '_, '_>) {
        self.0.iter().for_each(|t| t.message(message));
    }
}

/// A run's tap, if it has one, as the parse stage's observer.
struct Tapped<'t>(Option<&'t dyn MessageTap>);

impl Observer for Tapped<'_> {
    fn message(&mut self, _frame: u64, message: &SeenMessage<'_, '_, '_>) {
        if let Some(tap) = self.0 {
            tap.message(message);
        }
    }
}

/// Several observers watching one run, each told everything.
#[derive(Debug, Default)]
pub struct Observers(pub Vec<Arc<dyn RunObserver>>);

impl RunObserver for Observers {
    fn record(&self, record: &CallRecord) {
        self.0.iter().for_each(|o| o.record(record));
    }

    fn snapshot(&self, summary: &Summary, live_legs: usize, outputs: Vec<OutputReport>) {
        for o in &self.0 {
            o.snapshot(summary, live_legs, outputs.clone());
        }
    }

    fn live_calls_wanted(&self) -> usize {
        self.0
            .iter()
            .map(|o| o.live_calls_wanted())
            .max()
            .unwrap_or(0)
    }

    fn live_calls(&self, calls: &[LiveCall]) {
        for o in &self.0 {
            let wanted = o.live_calls_wanted();
            // An empty listing is news too: the calls listed before have ended.
            if wanted > 0 {
                o.live_calls(&calls[..wanted.min(calls.len())]);
            }
        }
    }
}

/// How far a run has got, for a progress bar or a status line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes read from files so far (0 for live sources).
    pub bytes: u64,
    /// Frames read so far.
    pub frames: u64,
    /// SIP messages parsed so far.
    pub sip_messages: u64,
    /// Messages that did not parse so far.
    pub parse_errors: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            ports: SipPorts::default(),
            collation_headers: vec![DEFAULT_COLLATION_HEADER.into()],
            tracker: TrackerConfig::default(),
            threads: 2,
            decode: DecodeLimits::default(),
            stats_interval: None,
            stats_source: "analyze",
            records_written: None,
            observer: None,
            changes: None,
            tap: None,
            watcher: None,
        }
    }
}

/// Everything counted in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// What the reading and parsing counted.
    pub parse: ParseCounters,
    /// What the tracker counted.
    pub tracker: TrackerCounters,
    /// Records by disposition.
    pub dispositions: [u64; Disposition::ALL.len()],
}

impl Summary {
    /// Records written.
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
        parse["requests"] = named(&Method::ALL, &self.parse.requests, Method::as_str);
        parse["responses"] = named(&RESPONSE_CLASSES, &self.parse.responses, |class| class);
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
        if d.snapped_frames > 0 {
            line.push_str(&format!(
                "; {} frames cut by the snap length",
                d.snapped_frames
            ));
        }
        if d.duplicates > 0 {
            line.push_str(&format!("; {} duplicate frames dropped", d.duplicates));
        }
        let hep = &d.hep;
        if hep.sip + hep.other + hep.malformed > 0 {
            line.push_str(&format!("; HEP: {} SIP messages", hep.sip));
            if hep.other > 0 {
                line.push_str(&format!(", {} other packets skipped", hep.other));
            }
            if hep.malformed > 0 {
                line.push_str(&format!(", {} malformed packets dropped", hep.malformed));
            }
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
    /// A capture could not be read.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// A sink failed.
    #[error("writing records: {0}")]
    Sink(#[from] SinkError),
}

/// Tracks calls and writes their records, on one thread.
struct RecordStage<'s> {
    tracker: CallTracker,
    delivery: Delivery<'s>,
    /// How often the sink keeps the counters (PostgreSQL's `sensor_stats`).
    stats_interval: Option<Duration>,
    last_stats: Instant,
    /// The calls in progress, listed for the observer (kept to reuse its allocation).
    live: Vec<LiveCall>,
}

impl<'s> RecordStage<'s> {
    fn new(config: &PipelineConfig, sink: &'s mut dyn RecordSink) -> Self {
        Self {
            tracker: CallTracker::new(config.tracker.clone()),
            delivery: Delivery {
                sink,
                dispositions: [0; Disposition::ALL.len()],
                error: None,
                stats_source: config.stats_source,
                written: config.records_written.clone(),
                observer: config.observer.clone(),
                watcher: config.watcher.clone(),
            },
            stats_interval: config.stats_interval,
            last_stats: Instant::now(),
            live: Vec::new(),
        }
    }

    fn on_input(&mut self, input: &Input) {
        if let Input::Event(ev) = input {
            self.report_progress(ev.meta.time);
            if let Some(watcher) = &self.delivery.watcher {
                watcher.event(ev);
            }
        }
        let delivery = &mut self.delivery;
        let emit = &mut |record: &CallRecord| delivery.deliver(record);
        match input {
            Input::Event(ev) => self.tracker.on_event(ev, emit),
            Input::StreamGap { a, b, .. } => self.tracker.on_stream_gap(*a, *b),
            Input::CaptureLoss => self.tracker.on_capture_loss(),
            Input::Malformed {
                from,
                to,
                time,
                transport,
            } => {
                if let Some(watcher) = &self.delivery.watcher {
                    watcher.malformed(*from, *to, *time, *transport);
                }
            }
            Input::Clock { time } => self.tracker.on_clock(*time, emit),
            Input::Flush => self.delivery.flush(),
        }
        self.report_progress(Timestamp::MIN);
    }

    /// Hands the sink the legs answered just now and those due an interim report by
    /// `until` (or by the tracker's clock).
    fn report_progress(&mut self, until: Timestamp) {
        let delivery = &mut self.delivery;
        self.tracker.report_progress(until, &mut |call, progress| {
            delivery.progress(call, progress)
        });
    }

    /// Applies a batch of inputs in order, each event's leg asked for a few events ahead
    /// (the key that finds it kept for when the event's turn comes).
    fn on_inputs(&mut self, inputs: &[Input]) {
        use crate::simd::prefetch::AHEAD;
        let key_ahead = |tracker: &CallTracker, at: usize| match inputs.get(at) {
            Some(Input::Event(ev)) => Some(tracker.prefetch(ev)),
            _ => None,
        };
        // The key of `inputs[at]` is at `at % AHEAD`.
        let mut keys: [Option<LegKey>; AHEAD] =
            std::array::from_fn(|at| key_ahead(&self.tracker, at));
        for (at, input) in inputs.iter().enumerate() {
            // Its text first, which working out its key reads; a batch parsed on the other
            // core has it in that core's cache.
            if let Some(Input::Event(ahead)) = inputs.get(at + 2 * AHEAD) {
                ahead.prefetch_text();
            }
            let key =
                std::mem::replace(&mut keys[at % AHEAD], key_ahead(&self.tracker, at + AHEAD));
            match (input, key) {
                (Input::Event(ev), Some(key)) => {
                    self.report_progress(ev.meta.time);
                    if let Some(watcher) = &self.delivery.watcher {
                        watcher.event(ev);
                    }
                    let delivery = &mut self.delivery;
                    self.tracker
                        .on_event_keyed(ev, key, &mut |record| delivery.deliver(record));
                    self.report_progress(Timestamp::MIN);
                }
                _ => self.on_input(input),
            }
        }
    }

    fn reconfigure(&mut self, changes: &LiveChanges) {
        self.tracker
            .reconfigure(changes.hosts.clone(), changes.timers);
    }

    /// Hands the observer, and the sink when its interval is up, the counters so far: the
    /// parse stage's as sent, the rest as here.
    fn snapshot(&mut self, parse: ParseCounters) {
        let summary = Summary {
            parse,
            tracker: self.tracker.counters(),
            dispositions: self.delivery.dispositions,
        };
        let delivery = &mut self.delivery;
        if let Some(observer) = &delivery.observer {
            observer.snapshot(&summary, self.tracker.live_legs(), delivery.sink.reports());
            let wanted = observer.live_calls_wanted();
            if wanted > 0 {
                self.tracker.live_calls(wanted, &mut self.live);
                observer.live_calls(&self.live);
            }
        }
        if self
            .stats_interval
            .is_some_and(|every| self.last_stats.elapsed() >= every)
        {
            delivery
                .sink
                .counters(delivery.stats_source, &summary.counters_json());
            self.last_stats = Instant::now();
        }
    }

    fn finish(mut self) -> Recorded {
        let delivery = &mut self.delivery;
        self.tracker.finish(&mut |record| delivery.deliver(record));
        if let Some(watcher) = &self.delivery.watcher {
            watcher.finish();
        }
        let dispositions = self.delivery.finish()?;
        Ok((self.tracker.counters(), dispositions))
    }
}

/// What the recording end gives back: the tracker's counters and the dispositions written.
type Recorded = Result<(TrackerCounters, [u64; Disposition::ALL.len()]), SinkError>;

/// Counts finished records and writes them: the pipeline's last stage.
struct Delivery<'s> {
    sink: &'s mut dyn RecordSink,
    dispositions: [u64; Disposition::ALL.len()],
    /// The sink's first failure. Later records are still written: the sink holds or counts
    /// what it cannot write, and may recover.
    error: Option<SinkError>,
    stats_source: &'static str,
    /// Records written so far, for a status line on another thread.
    written: Option<Arc<std::sync::atomic::AtomicU64>>,
    observer: Option<Arc<dyn RunObserver>>,
    watcher: Option<Arc<dyn EventWatcher>>,
}

impl Delivery<'_> {
    /// Counts a finished record and writes it.
    fn deliver(&mut self, record: &CallRecord) {
        self.dispositions[record.disposition as usize] += 1;
        if let Err(e) = self.sink.write(record) {
            self.error.get_or_insert(e);
        }
        if let Some(observer) = &self.observer {
            observer.record(record);
        }
        if let Some(watcher) = &self.watcher {
            watcher.record(record);
        }
        if let Some(written) = &self.written {
            let n = self.dispositions.iter().sum();
            written.store(n, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Hands the sink a call in progress.
    fn progress(&mut self, call: &CallRecord, progress: CallProgress) {
        if let Err(e) = self.sink.progress(call, progress) {
            self.error.get_or_insert(e);
        }
    }

    /// Lets the sink write what it buffers and retry what it holds.
    fn flush(&mut self) {
        if let Err(e) = self.sink.flush() {
            self.error.get_or_insert(e);
        }
    }

    fn finish(self) -> Result<[u64; Disposition::ALL.len()], SinkError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.dispositions),
        }
    }
}

/// Analyses capture files in order as one stream: a call may start in one file and end in the
/// next. Records of a file that breaks off are still written; the damage is reported after.
/// The caller finishes the sink, so it can add the run's counters first.
pub fn analyze_files(
    inputs: &[PathBuf],
    filter: Option<&str>,
    config: &PipelineConfig,
    sink: &mut dyn RecordSink,
    progress: &mut dyn FnMut(&Progress),
) -> (Summary, Result<(), AnalyzeError>) {
    // Open everything first, so a typo in the last name fails before a long run.
    let mut sources: Vec<Box<dyn FrameSource>> = Vec::with_capacity(inputs.len());
    for path in inputs {
        match OfflineSource::open(path, filter) {
            Ok(s) => sources.push(Box::new(s)),
            Err(e) => return (Summary::default(), Err(e.into())),
        }
    }
    run_sources(&mut sources, config, sink, progress)
}

/// Runs the pipeline over `sources` in order as one stream, until each has ended (a live
/// source ends when it is stopped). `progress` hears how far it got (bytes read from files,
/// frames, SIP messages, parse errors) after every 4,096 frames and whenever a live source is
/// idle. Open calls are finished at the end.
pub fn run_sources(
    sources: &mut [Box<dyn FrameSource>],
    config: &PipelineConfig,
    sink: &mut dyn RecordSink,
    progress: &mut dyn FnMut(&Progress),
) -> (Summary, Result<(), AnalyzeError>) {
    let mut parse = ParseStage::with_limits(
        config.ports.clone(),
        config.collation_headers.clone(),
        config.decode,
    );
    let stage = RecordStage::new(config, sink);
    // Snapshots are taken as often as the sink's interval or the observer asks.
    let snapshot_every = match (config.stats_interval, &config.observer) {
        (Some(stats), Some(_)) => Some(stats.min(OBSERVE_EVERY)),
        (None, Some(_)) => Some(OBSERVE_EVERY),
        (stats, None) => stats,
    };
    let (damage, parsed_elsewhere, finished) = if config.threads <= 1 {
        let mut feed = Inline {
            stage,
            spent: Vec::new(),
            tap: config.tap.as_deref(),
        };
        let damage = read_all(
            sources,
            &mut parse,
            progress,
            &mut feed,
            snapshot_every,
            config.changes.as_deref(),
        );
        (damage, None, feed.stage.finish())
    } else {
        threaded::run(
            sources,
            &mut parse,
            stage,
            progress,
            snapshot_every,
            config.changes.as_deref(),
            config.tap.as_deref(),
        )
    };
    let mut summary = Summary {
        parse: parse.counters(),
        ..Summary::default()
    };
    if let Some(parsed) = parsed_elsewhere {
        summary.parse.add_message_counts(&parsed);
    }
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

/// What the reading loop hands its frames and other inputs to: one of the thread plans.
trait Feed {
    /// Takes one frame through `parse`.
    fn frame(&mut self, parse: &mut ParseStage, frame: &Frame<'_>);
    /// Takes an input that no frame carried (a clock tick, a capture loss).
    fn input(&mut self, input: Input);
    /// The source is idle: pass on whatever is held back.
    fn idle(&mut self) {}
    /// Passes on the parse stage's counters, after everything fed before them.
    fn snapshot(&mut self, counters: ParseCounters);
    /// Applies a reload's changes to `parse` and the stages after it, after everything fed
    /// before them.
    fn reconfigure(&mut self, parse: &mut ParseStage, changes: LiveChanges);
    /// Messages and parse errors counted on other threads so far, for progress reports.
    fn parsed_elsewhere(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// The single-thread plan: each frame parsed and tracked at once.
struct Inline<'s> {
    stage: RecordStage<'s>,
    /// Inputs of the current frame, handed back to the parse stage once it is done.
    spent: Vec<Input>,
    tap: Option<&'s dyn MessageTap>,
}

impl Feed for Inline<'_> {
    fn frame(&mut self, parse: &mut ParseStage, frame: &Frame<'_>) {
        let (stage, spent) = (&mut self.stage, &mut self.spent);
        let mut out = |input: Input| {
            stage.on_input(&input);
            spent.push(input);
        };
        parse.on_frame_traced(frame, &mut out, &mut Tapped(self.tap));
        parse.recycle(spent);
    }

    fn input(&mut self, input: Input) {
        self.stage.on_input(&input);
    }

    fn snapshot(&mut self, counters: ParseCounters) {
        self.stage.snapshot(counters);
    }

    fn reconfigure(&mut self, parse: &mut ParseStage, changes: LiveChanges) {
        parse.reconfigure(changes.ports.clone(), &changes.collation_headers);
        self.stage.reconfigure(&changes);
    }
}

/// Reads every source to its end; returns the first damage met (later files are still read).
/// Every `interval` (checked every 4096 frames and between files) the feed gets the parse
/// stage's counters.
fn read_all(
    sources: &mut [Box<dyn FrameSource>],
    parse: &mut ParseStage,
    progress: &mut dyn FnMut(&Progress),
    feed: &mut dyn Feed,
    interval: Option<Duration>,
    changes: Option<&ChangeSlot>,
) -> Option<CaptureError> {
    let mut damage = None;
    let mut done_bytes = 0;
    let mut frames = 0u64;
    let mut last_snapshot = Instant::now();
    let mut maybe_snapshot = |parse: &ParseStage, feed: &mut dyn Feed| {
        if interval.is_some_and(|every| last_snapshot.elapsed() >= every) {
            feed.snapshot(parse.counters());
            last_snapshot = Instant::now();
        }
    };
    let report = |bytes: u64, frames: u64, parse: &ParseStage, feed: &dyn Feed| {
        let counters = parse.counters();
        let (messages, errors) = feed.parsed_elsewhere();
        Progress {
            bytes,
            frames,
            sip_messages: counters.sip_messages + messages,
            parse_errors: counters.total_parse_errors() + errors,
        }
    };
    let files = sources.len();
    // Frames the live source said it lost, when last asked.
    let mut lost = 0;
    // Now and then: losses noted, a reload applied, progress reported, a snapshot taken if
    // one is due.
    let mut checkpoint = |source: &dyn FrameSource,
                          done: u64,
                          frames,
                          parse: &mut ParseStage,
                          feed: &mut dyn Feed| {
        note_loss(source, &mut lost, feed);
        if let Some(changes) = changes.and_then(ChangeSlot::take) {
            feed.reconfigure(parse, changes);
        }
        feed.input(Input::Flush);
        progress(&report(done + source.bytes_read(), frames, parse, feed));
        maybe_snapshot(parse, feed);
    };
    for (n, source) in sources.iter_mut().enumerate() {
        if n > 0 && n < files {
            checkpoint(source.as_ref(), done_bytes, frames, parse, feed);
        }
        loop {
            match source.poll() {
                Ok(Polled::Frame(frame)) => {
                    feed.frame(parse, &frame);
                    frames += 1;
                    if frames % 4096 == 0 {
                        checkpoint(source.as_ref(), done_bytes, frames, parse, feed);
                    }
                }
                Ok(Polled::Idle) => {
                    // A live source's frames carry wall-clock times: so does the clock.
                    feed.input(Input::Clock {
                        time: Timestamp::now(),
                    });
                    checkpoint(source.as_ref(), done_bytes, frames, parse, feed);
                    feed.idle();
                }
                Ok(Polled::End) => break,
                Err(e) => {
                    damage.get_or_insert(e);
                    break;
                }
            }
        }
        done_bytes += source.bytes_read();
    }
    progress(&report(done_bytes, frames, parse, feed));
    damage
}

/// Tells the call stage when the source has lost frames since `lost` was last updated.
fn note_loss(source: &dyn FrameSource, lost: &mut u64, feed: &mut dyn Feed) {
    let now = source.lost();
    if now > *lost {
        *lost = now;
        feed.input(Input::CaptureLoss);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps the SIP messages and dispositions counted in each snapshot.
    #[derive(Default)]
    struct Snapshots(Vec<(u64, serde_json::Value)>);

    impl RecordSink for Snapshots {
        fn write(&mut self, _: &CallRecord) -> Result<(), SinkError> {
            Ok(())
        }

        fn counters(&mut self, source: &str, counters: &serde_json::Value) {
            assert_eq!(source, "analyze");
            let messages = counters["parse"]["sip_messages"].as_u64().unwrap_or(0);
            self.0.push((messages, counters["dispositions"].clone()));
        }

        fn finish(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
    }

    #[test]
    fn snapshots_the_counters_during_a_run_on_either_thread_plan() {
        // Recorded two hours apart, so the busy call is written (its retransmission linger
        // over) by the time the second file has been read.
        let files: Vec<PathBuf> = ["busy-486", "b2bua-a-leg", "b2bua-b-leg"]
            .iter()
            .map(|case| crate::bundled::bundled(case))
            .collect();
        for threads in [1, 2] {
            let config = PipelineConfig {
                threads,
                stats_interval: Some(Duration::ZERO),
                ..PipelineConfig::default()
            };
            let mut sink = Snapshots::default();
            let (summary, result) = analyze_files(&files, None, &config, &mut sink, &mut |_| {});
            result.expect("analysed");
            assert_eq!(summary.records(), 5);
            // Between the files: the records so far (each call ends within its own file, but
            // lingers for retransmissions until later traffic or the end).
            assert_eq!(sink.0.len(), 2, "one snapshot between each pair of files");
            let total = |d: &serde_json::Value| {
                d.as_object().map_or(0, |m| {
                    m.values()
                        .filter_map(serde_json::Value::as_u64)
                        .sum::<u64>()
                })
            };
            let totals: Vec<u64> = sink.0.iter().map(|(_, d)| total(d)).collect();
            assert_eq!(totals, [0, 1], "threads {threads}: {:?}", sink.0);
            assert_eq!(sink.0[1].1["busy"], 1);
            let messages: Vec<u64> = sink.0.iter().map(|(m, _)| *m).collect();
            assert_eq!(messages, [5, 19], "SIP messages read by each snapshot");
        }
    }

    /// Counts the messages it is shown.
    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicU64);

    impl MessageTap for Counting {
        fn message(&self, _: &SeenMessage<'_, '_, '_>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn a_tap_sees_every_message_on_either_thread_plan() {
        let files: Vec<PathBuf> = ["busy-486", "b2bua-a-leg", "b2bua-b-leg"]
            .iter()
            .map(|case| crate::bundled::bundled(case))
            .collect();
        for threads in [1, 2] {
            let tap = Arc::new(Counting::default());
            let config = PipelineConfig {
                threads,
                tap: Some(tap.clone()),
                ..PipelineConfig::default()
            };
            let mut sink = Snapshots::default();
            let (summary, result) = analyze_files(&files, None, &config, &mut sink, &mut |_| {});
            result.expect("analysed");
            let seen = tap.0.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(seen, summary.parse.sip_messages, "threads {threads}");
            assert_eq!(seen, 33);
        }
    }

    #[test]
    fn takes_no_snapshot_unless_asked() {
        let files = vec![
            crate::bundled::bundled("busy-486"),
            crate::bundled::bundled("congestion-503"),
        ];
        let mut sink = Snapshots::default();
        let (_, result) = analyze_files(
            &files,
            None,
            &PipelineConfig::default(),
            &mut sink,
            &mut |_| {},
        );
        result.expect("analysed");
        assert!(sink.0.is_empty());
    }
}
