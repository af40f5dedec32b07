// SPDX-License-Identifier: AGPL-3.0-or-later
//! The outputs of one run, each on its own: a failing output is reported the moment it fails
//! and again while it stays failing, it does not stop the others, it recovers by itself when
//! its writes succeed again; buffered records are written within a second; and what each
//! output did with its records is kept for the run's summary and the counter snapshots.

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{DeliveryStatus, RecordSink, SinkError, Tally};
use crate::call::{CallProgress, CallRecord};

/// How long a written record may wait in a buffer before it is flushed.
const FLUSH_AFTER: Duration = Duration::from_millis(500);
/// How often a failing output's held records are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// While an output keeps failing, it is reported again this often.
const REPEAT_EVERY: Duration = Duration::from_secs(30);

/// Opens an output's destination again (after log rotation): a new sink writing there.
pub type Reopen = Box<dyn FnMut() -> Result<Box<dyn RecordSink>, SinkError> + Send>;

/// Several outputs, each given every record.
pub struct Outputs {
    outputs: Vec<Output>,
    /// Raised (SIGHUP) to reopen the outputs that can be; looked at on each flush.
    reopen: Option<&'static AtomicBool>,
    /// When the oldest record not yet flushed was written.
    unflushed_since: Option<Instant>,
    last_retry: Instant,
    /// Raised once every output's reader has gone (closed pipes): nothing is left to do.
    stop: Option<&'static AtomicBool>,
}

struct Output {
    name: String,
    sink: Box<dyn RecordSink>,
    /// How to open its destination again, for outputs that can be (files).
    reopen: Option<Reopen>,
    /// What the sinks it replaced on reopening did with their records.
    retired: Tally,
    /// Records handed to it.
    handed: u64,
    write_errors: u64,
    failing: Option<Failing>,
    /// Its reader has gone (a closed pipe, as `| head` leaves): nothing more is written.
    closed: bool,
    /// It started or stopped failing since the other outputs were last told.
    changed: bool,
}

/// An output whose writes are failing.
struct Failing {
    since: Instant,
    said_at: Instant,
    error: String,
}

impl Failing {
    fn new(error: String) -> Self {
        let now = Instant::now();
        Self {
            since: now,
            said_at: now,
            error,
        }
    }
}

/// What one output did with its records in a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OutputReport {
    /// `standard output`, a file's path, `PostgreSQL`.
    pub output: String,
    /// What became of its records.
    #[serde(flatten)]
    pub tally: Tally,
    /// Writes that failed (each reported on stderr as it happened).
    pub write_errors: u64,
    /// The error it is failing with now, if it is.
    pub failing: Option<String>,
    /// Its reader went away (a closed pipe); records after that were not written to it.
    pub closed: bool,
    /// How its own delivery stands, for outputs that deliver on their own (PostgreSQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryStatus>,
}

impl OutputReport {
    /// Why the output is not delivering now, if it is not: its writes fail, or the
    /// destination behind its spool cannot be reached.
    pub fn trouble(&self) -> Option<&str> {
        self.failing
            .as_deref()
            .or_else(|| self.delivery.as_ref()?.unreachable.as_deref())
    }
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.outputs.iter().map(|o| &o.name))
            .finish()
    }
}

impl Outputs {
    /// No outputs yet; `stop` is raised when every output's reader has gone.
    pub fn new(stop: Option<&'static AtomicBool>) -> Self {
        Self {
            outputs: Vec::new(),
            unflushed_since: None,
            last_retry: Instant::now(),
            stop,
            reopen: None,
        }
    }

    /// Reopens the outputs that can be (files) whenever `flag` is raised, at the next flush.
    pub fn reopen_on(&mut self, flag: &'static AtomicBool) {
        self.reopen = Some(flag);
    }

    /// Adds an output that can be opened again (a file, after log rotation).
    pub fn add_reopenable(
        &mut self,
        name: impl Into<String>,
        sink: Box<dyn RecordSink>,
        reopen: Reopen,
    ) {
        self.add(name, sink);
        if let Some(o) = self.outputs.last_mut() {
            o.reopen = Some(reopen);
        }
    }

    /// Finishes each reopenable output's sink and puts a new one, writing to its destination
    /// opened again, in its place. One that cannot be opened keeps its old sink, and says so.
    fn reopen_all(&mut self) {
        for o in self.outputs.iter_mut().filter(|o| !o.closed) {
            let Some(reopen) = o.reopen.as_mut() else {
                continue;
            };
            match reopen() {
                Ok(fresh) => {
                    let mut old = std::mem::replace(&mut o.sink, fresh);
                    let finished = old.finish();
                    o.retired = o.retired + old.tally().unwrap_or_default();
                    o.note(finished);
                    eprintln!("spycraft: {}: reopened", o.name);
                }
                Err(e) => {
                    eprintln!(
                        "spycraft: WARNING: {}: cannot reopen ({e}); writing on to the file \
                         as it was opened",
                        o.name
                    );
                }
            }
        }
    }

    /// Adds an output; `name` says which in messages and the summary.
    pub fn add(&mut self, name: impl Into<String>, sink: Box<dyn RecordSink>) {
        self.outputs.push(Output {
            name: name.into(),
            sink,
            reopen: None,
            retired: Tally::default(),
            handed: 0,
            write_errors: 0,
            failing: None,
            closed: false,
            changed: false,
        });
    }

    /// Whether no output was added.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    fn flush_all(&mut self) {
        for o in self.outputs.iter_mut().filter(|o| !o.closed) {
            let result = o.sink.flush();
            o.note(result);
        }
        self.unflushed_since = None;
        self.last_retry = Instant::now();
        self.announce_changes();
        self.stop_if_all_closed();
    }

    /// When an output starts or stops failing, the outputs that keep counters (PostgreSQL's
    /// `sensor_stats`, as source `outputs`) hear of it at once, not at the next snapshot.
    fn announce_changes(&mut self) {
        if !self.outputs.iter().any(|o| o.changed) {
            return;
        }
        let status = serde_json::json!({ "outputs": self.reports() });
        for o in &mut self.outputs {
            o.changed = false;
            if !o.closed {
                o.sink.counters("outputs", &status);
            }
        }
    }

    fn stop_if_all_closed(&self) {
        if let Some(stop) = self.stop {
            if !self.outputs.is_empty() && self.outputs.iter().all(|o| o.closed) {
                stop.store(true, Ordering::Release);
            }
        }
    }
}

impl RecordSink for Outputs {
    /// What each output has done with its records so far.
    fn reports(&self) -> Vec<OutputReport> {
        self.outputs.iter().map(Output::report).collect()
    }

    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
        for o in self.outputs.iter_mut().filter(|o| !o.closed) {
            o.handed += 1;
            let result = o.sink.write(record);
            o.note(result);
        }
        if self.unflushed_since.is_none() {
            self.unflushed_since = Some(Instant::now());
        }
        self.announce_changes();
        Ok(())
    }

    fn progress(&mut self, call: &CallRecord, progress: CallProgress) -> Result<(), SinkError> {
        for o in self.outputs.iter_mut().filter(|o| !o.closed) {
            if let Err(e) = o.sink.progress(call, progress) {
                o.note(Err(e));
            }
        }
        Ok(())
    }

    /// Each output's snapshot also says what every output has done so far.
    fn counters(&mut self, source: &str, counters: &serde_json::Value) {
        let mut counters = counters.clone();
        if let Some(map) = counters.as_object_mut() {
            let reports = serde_json::to_value(self.reports()).unwrap_or_default();
            map.insert("outputs".into(), reports);
        }
        for o in &mut self.outputs {
            o.sink.counters(source, &counters);
        }
    }

    /// Flushes once a record has waited half a second (`FLUSH_AFTER`); retries failing
    /// outputs every second (`RETRY_EVERY`).
    fn flush(&mut self) -> Result<(), SinkError> {
        if self
            .reopen
            .is_some_and(|flag| flag.swap(false, Ordering::AcqRel))
        {
            self.reopen_all();
        }
        let due = self
            .unflushed_since
            .is_some_and(|t| t.elapsed() >= FLUSH_AFTER);
        let retry = self.outputs.iter().any(|o| o.failing.is_some())
            && self.last_retry.elapsed() >= RETRY_EVERY;
        if due || retry {
            self.flush_all();
        }
        Ok(())
    }

    /// Finishes every output, each whatever the others do. What an output could not do is
    /// kept for its report (see [`Outputs::reports`]), which the caller shows.
    fn finish(&mut self) -> Result<(), SinkError> {
        for o in self.outputs.iter_mut().filter(|o| !o.closed) {
            match o.sink.finish() {
                Ok(()) => o.failing = None,
                Err(e) if error_kind(&e) == Some(ErrorKind::BrokenPipe) => o.closed = true,
                Err(e) => {
                    o.write_errors += 1;
                    o.failing = Some(Failing::new(e.to_string()));
                }
            }
        }
        Ok(())
    }
}

impl Output {
    fn tally(&self) -> Tally {
        match self.sink.tally() {
            Some(now) => self.retired + now,
            None => Tally {
                records: self.handed,
                delivered: self.handed,
                ..Tally::default()
            },
        }
    }

    fn report(&self) -> OutputReport {
        OutputReport {
            output: self.name.clone(),
            tally: self.tally(),
            write_errors: self.write_errors,
            failing: self.failing.as_ref().map(|f| f.error.clone()),
            closed: self.closed,
            delivery: self.sink.delivery(),
        }
    }

    /// Says on stderr when the output starts failing, while it goes on failing, and when it
    /// works again.
    fn note(&mut self, result: Result<(), SinkError>) {
        let error = match result {
            Ok(()) => {
                if self.failing.is_some() && self.tally().held == 0 {
                    let since = self
                        .failing
                        .take()
                        .map_or(0, |f| f.since.elapsed().as_secs());
                    let t = self.tally();
                    eprintln!(
                        "spycraft: {}: writing again after {since} s; {} records lost while it failed",
                        self.name, t.lost
                    );
                }
                return;
            }
            Err(e) => e,
        };
        if error_kind(&error) == Some(ErrorKind::BrokenPipe) {
            // The reader has gone (`| head`): as Unix tools do, stop writing without a word.
            self.closed = true;
            self.failing = None;
            return;
        }
        self.write_errors += 1;
        let now = Instant::now();
        let text = error.to_string();
        let t = self.tally();
        match &mut self.failing {
            None => {
                eprintln!(
                    "spycraft: ERROR: writing records to {}: {text}; {} held in memory and retried \
                     (up to {} MiB), {} lost so far",
                    self.name,
                    t.held,
                    super::MAX_HELD_BYTES >> 20,
                    t.lost
                );
                self.failing = Some(Failing::new(text));
                self.changed = true;
            }
            Some(f) => {
                if now.duration_since(f.said_at) >= REPEAT_EVERY || f.error != text {
                    eprintln!(
                        "spycraft: ERROR: writing records to {} still fails after {} s: {text}; \
                         {} held, {} lost so far",
                        self.name,
                        now.duration_since(f.since).as_secs(),
                        t.held,
                        t.lost
                    );
                    f.said_at = now;
                    f.error = text;
                }
            }
        }
    }
}

/// The I/O error kind behind a sink error, if an I/O error is behind it.
fn error_kind(error: &SinkError) -> Option<ErrorKind> {
    match error {
        SinkError::Io(e) => Some(e.kind()),
        SinkError::Csv(e) => match e.kind() {
            csv::ErrorKind::Io(e) => Some(e.kind()),
            _ => None,
        },
        _ => None,
    }
}
