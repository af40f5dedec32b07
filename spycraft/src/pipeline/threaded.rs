// SPDX-License-Identifier: AGPL-3.0-or-later
//! The plan for two cores: four threads in a row, each handing batches to the next through
//! a bounded channel.
//!
//! 1. The calling thread reads and decodes frames, frames TCP streams, and copies the SIP
//!    messages it finds into [`Unparsed`] batches: everything that needs state from earlier
//!    frames.
//! 2. A parser thread turns each batch into events, in order: the stateless, costly part.
//! 3. A tracker thread follows the calls.
//! 4. A writer thread makes, counts and writes the records of the calls that ended (sinks
//!    format, and may wait on I/O).
//!
//! No stage needs more than a third of the work, so the operating system can keep both cores
//! busy: a stage that needed more than half would leave one core idle whenever the others
//! waited on it. Batches go back up the line once emptied, with the events' text buffers, so
//! nothing is allocated per message once the run is warm. A bounded queue makes a slow sink
//! hold the reader back instead of growing memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::{read_all, track_legs, Delivery, Feed, Progress, RecordStage, Recorded, Summary};
use crate::call::{CallTracker, Disposition, FinishedLeg, TrackerCounters};
use crate::capture::{CaptureError, Frame, FrameSource};
use crate::parse_stage::{Input, MessageStage, ParseCounters, ParseStage, Unparsed};
use crate::sink::SinkError;

/// Messages (and other inputs) per batch: amortises the channels.
const BATCH: usize = 512;
/// A batch goes once its messages hold this many bytes, however few they are.
const BATCH_BYTES: usize = 512 * 1024;
/// Batches in flight between two threads: the bound that makes a slow consumer hold the
/// producer back.
const QUEUED_BATCHES: usize = 16;

/// What goes down the line besides data: the counters for a periodic snapshot, which each
/// thread completes with its own before passing them on.
enum Work<T> {
    Batch(T),
    Snapshot(Box<Summary>),
}

/// Runs the sources through the four threads. Returns the first damage met, the message
/// stage's counters, and the tracker's and writer's results.
pub(super) fn run(
    sources: &mut [Box<dyn FrameSource>],
    parse: &mut ParseStage,
    stage: RecordStage<'_>,
    progress: &mut dyn FnMut(&Progress),
    interval: Option<std::time::Duration>,
) -> (Option<CaptureError>, Option<ParseCounters>, Recorded) {
    let messages = parse.message_stage();
    let parsed = ParsedSoFar::default();
    let RecordStage {
        tracker,
        delivery,
        node,
    } = stage;
    std::thread::scope(|scope| {
        let (raw_tx, raw_rx) = sync_channel::<Work<Unparsed>>(QUEUED_BATCHES);
        let (raw_back_tx, raw_back_rx) = sync_channel::<Unparsed>(QUEUED_BATCHES + 2);
        let (events_tx, events_rx) = sync_channel::<Work<Vec<Input>>>(QUEUED_BATCHES);
        let (events_back_tx, events_back_rx) = sync_channel::<Vec<Input>>(QUEUED_BATCHES + 2);
        let (finished_tx, finished_rx) = sync_channel::<Work<Vec<FinishedLeg>>>(QUEUED_BATCHES);

        // Named, so `top -H` and profiles tell the threads apart.
        let spawn = |name: &str| std::thread::Builder::new().name(format!("spycraft-{name}"));
        let writer = spawn("write")
            .spawn_scoped(scope, move || write(delivery, &node, finished_rx))
            .expect("spawning the writer thread");
        let tracker = spawn("track")
            .spawn_scoped(scope, move || {
                track_calls(tracker, events_rx, events_back_tx, finished_tx)
            })
            .expect("spawning the tracker thread");
        let parser = Parser {
            messages,
            events: events_tx,
            spent: events_back_rx,
            empties: Vec::new(),
            parsed: &parsed,
        };
        let parser = spawn("parse")
            .spawn_scoped(scope, move || parser.run(raw_rx, raw_back_tx))
            .expect("spawning the parser thread");

        let mut feed = Deferring {
            batch: Unparsed::default(),
            to_parser: raw_tx,
            returned: raw_back_rx,
            parsed: &parsed,
        };
        let damage = read_all(sources, parse, progress, &mut feed, interval);
        feed.flush();
        // Closing the first channel ends each thread in turn.
        drop(feed);
        let counters = parser
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let tracked = tracker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let written = writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let recorded = written.map(|dispositions| (tracked, dispositions));
        (damage, Some(counters), recorded)
    })
}

/// Messages and parse errors the parser thread has counted, for the reader's progress reports.
#[derive(Default)]
struct ParsedSoFar {
    messages: AtomicU64,
    errors: AtomicU64,
}

/// The reader's end: frames decoded here, their messages batched for the parser.
struct Deferring<'p> {
    batch: Unparsed,
    to_parser: SyncSender<Work<Unparsed>>,
    /// Batches the parser has emptied.
    returned: Receiver<Unparsed>,
    parsed: &'p ParsedSoFar,
}

impl Deferring<'_> {
    /// Sends what is held, if anything. A send fails only if the parser stopped (it panicked,
    /// which the join reports).
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let empty = self.returned.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.batch, empty);
        let _ = self.to_parser.send(Work::Batch(full));
    }
}

impl Feed for Deferring<'_> {
    fn frame(&mut self, parse: &mut ParseStage, frame: &Frame<'_>) {
        parse.on_frame_deferred(frame, &mut self.batch);
        if self.batch.len() >= BATCH || self.batch.byte_len() >= BATCH_BYTES {
            self.flush();
        }
    }

    fn input(&mut self, input: Input) {
        self.batch.push_input(input);
    }

    /// A live source gone quiet: what it captured goes on now, not when a batch fills.
    fn idle(&mut self) {
        self.flush();
    }

    fn snapshot(&mut self, counters: ParseCounters) {
        // The messages before the snapshot go first, so it counts them.
        self.flush();
        let summary = Summary {
            parse: counters,
            ..Summary::default()
        };
        let _ = self.to_parser.send(Work::Snapshot(Box::new(summary)));
    }

    fn parsed_elsewhere(&self) -> (u64, u64) {
        (
            self.parsed.messages.load(Ordering::Relaxed),
            self.parsed.errors.load(Ordering::Relaxed),
        )
    }
}

/// The parser thread's state.
struct Parser<'p> {
    messages: MessageStage,
    events: SyncSender<Work<Vec<Input>>>,
    /// Batches the recorder has finished with, their events' buffers to reuse.
    spent: Receiver<Vec<Input>>,
    empties: Vec<Vec<Input>>,
    parsed: &'p ParsedSoFar,
}

impl Parser<'_> {
    /// Parses batches until the reader's channel closes, handing each back emptied; returns
    /// what the message stage counted.
    fn run(
        mut self,
        unparsed: Receiver<Work<Unparsed>>,
        back: SyncSender<Unparsed>,
    ) -> ParseCounters {
        for work in unparsed {
            match work {
                Work::Batch(mut batch) => {
                    self.parse(&mut batch);
                    // Back to the reader for reuse; dropped if it stopped taking them.
                    let _ = back.try_send(batch);
                }
                Work::Snapshot(mut summary) => {
                    summary.parse.add_message_counts(self.messages.counters());
                    let _ = self.events.send(Work::Snapshot(summary));
                }
            }
        }
        self.messages.counters().clone()
    }

    /// Parses one batch and sends its events on as one batch, so nothing waits for the next.
    fn parse(&mut self, unparsed: &mut Unparsed) {
        while let Ok(mut spent) = self.spent.try_recv() {
            self.messages.recycle(&mut spent);
            self.empties.push(spent);
        }
        let mut events = self
            .empties
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BATCH));
        self.messages
            .parse_all(unparsed, &mut |input| events.push(input));
        let counters = self.messages.counters();
        self.parsed
            .messages
            .store(counters.sip_messages, Ordering::Relaxed);
        self.parsed
            .errors
            .store(counters.total_parse_errors(), Ordering::Relaxed);
        if events.is_empty() {
            self.empties.push(events);
        } else {
            let _ = self.events.send(Work::Batch(events));
        }
    }
}

/// The tracker thread: follows the calls until the parser's channel closes, and sends the
/// legs that finished in each batch on together.
fn track_calls(
    mut tracker: CallTracker,
    events: Receiver<Work<Vec<Input>>>,
    spent: SyncSender<Vec<Input>>,
    finished_tx: SyncSender<Work<Vec<FinishedLeg>>>,
) -> TrackerCounters {
    let mut finished = Vec::new();
    let send = |finished: &mut Vec<FinishedLeg>| {
        if !finished.is_empty() {
            let _ = finished_tx.send(Work::Batch(std::mem::take(finished)));
        }
    };
    for work in events {
        match work {
            Work::Batch(batch) => {
                for input in &batch {
                    track_legs(&mut tracker, input, &mut |leg| finished.push(leg));
                }
                // Back with its events, whose buffers the parser reuses. A full return queue
                // (the parser is behind taking them) just drops this one.
                let _ = spent.try_send(batch);
                send(&mut finished);
            }
            Work::Snapshot(mut summary) => {
                send(&mut finished);
                summary.tracker = tracker.counters();
                let _ = finished_tx.send(Work::Snapshot(summary));
            }
        }
    }
    tracker.finish_legs(&mut |leg| finished.push(leg));
    send(&mut finished);
    tracker.counters()
}

/// The writer thread: turns finished legs into records, counts and writes them, until the
/// tracker's channel closes. A record is made, written and freed here in turn, so the
/// allocator's per-thread cache serves the next one.
fn write(
    mut delivery: Delivery<'_>,
    node: &str,
    finished: Receiver<Work<Vec<FinishedLeg>>>,
) -> Result<[u64; Disposition::ALL.len()], SinkError> {
    for work in finished {
        match work {
            Work::Batch(legs) => {
                for leg in legs {
                    delivery.deliver(&leg.into_record(node));
                }
            }
            Work::Snapshot(summary) => delivery.snapshot(*summary),
        }
    }
    delivery.finish()
}
