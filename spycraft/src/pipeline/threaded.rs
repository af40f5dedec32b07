// SPDX-License-Identifier: AGPL-3.0-or-later
//! The plan for two cores: two threads that share the parsing between them.
//!
//! The calling thread reads and decodes frames, frames TCP streams, and copies the SIP messages
//! it finds into [`Unparsed`] batches: everything that needs state from earlier frames. A
//! recorder thread parses the batches into events, tracks the calls and writes the records.
//!
//! Parsing has no state, so either thread can do it, and they share it by how busy they are:
//! when the recorder's queue is full, the reader parses the next batch itself and sends the
//! events instead; while the queue stays full it holds a few parsed batches and reads on,
//! rather than idling. The more the recorder lags, the more the reader takes on, until both
//! cores are equally busy, whatever the mix of work (long SIP messages, many records, a slow
//! sink). Two threads on two cores also leave the operating system nothing to juggle.
//!
//! Batches keep their order, so calls are tracked in capture order and every counter adds up
//! as on one thread. Spent batches go back to where their buffers came from, so nothing is
//! allocated per message once the run is warm; the bounded queue makes a slow sink hold the
//! reader back instead of growing memory.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use super::{
    read_all, ChangeSlot, Feed, LiveChanges, MessageTap, Progress, RecordStage, Recorded, Tapped,
};
use crate::capture::{CaptureError, Frame, FrameSource};
use crate::parse_stage::{Input, MessageStage, ParseCounters, ParseStage, Unparsed};

/// Messages (and other inputs) per batch: amortises the channel. Batches are kept small, and
/// few of them in flight, so that what one thread writes is still in the cache when the other
/// reads it: 256 messages and 4 queued ran a tenth faster than 512 and 16, in less CPU.
const BATCH: usize = 256;
/// A batch goes once its messages hold this many bytes, however few they are.
const BATCH_BYTES: usize = 512 * 1024;
/// Batches queued for the recorder: the bound that makes a slow recorder hold the reader back,
/// and the sign, when reached, that the reader should parse.
const QUEUED_BATCHES: usize = 4;
/// Batches the reader has parsed and holds while the queue is full. Holding a few rather than
/// waiting for room keeps the reader working (reading and parsing on) instead of idling a
/// batch's time at every full queue; past this many, it waits.
const HELD_PARSED: usize = 4;

/// What the reader sends the recorder, in capture order.
enum Work {
    /// Messages for the recorder to parse.
    Unparsed(Unparsed),
    /// Events the reader parsed itself while the recorder was behind.
    Parsed(Vec<Input>),
    /// The reader's counters for a periodic snapshot; the recorder adds its own.
    Snapshot(Box<ParseCounters>),
    /// A reload's changes, for the recorder's parsing and call tracking.
    Reconfigure(Box<LiveChanges>),
}

/// Runs the sources through the two threads. Returns the first damage met, the counts of the
/// messages the recorder parsed, and the recorder's results.
pub(super) fn run(
    sources: &mut [Box<dyn FrameSource>],
    parse: &mut ParseStage,
    stage: RecordStage<'_>,
    progress: &mut dyn FnMut(&Progress),
    interval: Option<std::time::Duration>,
    changes: Option<&ChangeSlot>,
    tap: Option<&dyn MessageTap>,
) -> (Option<CaptureError>, Option<ParseCounters>, Recorded) {
    let parsed = ParsedSoFar::default();
    let recorder = Recorder {
        stage,
        messages: parse.message_stage(),
        events: Vec::with_capacity(BATCH),
        parsed: &parsed,
        tap,
    };
    std::thread::scope(|scope| {
        let (work_tx, work_rx) = sync_channel::<Work>(QUEUED_BATCHES);
        let (unparsed_back_tx, unparsed_back_rx) = sync_channel::<Unparsed>(QUEUED_BATCHES + 2);
        let (spent_tx, spent_rx) = sync_channel::<Vec<Input>>(QUEUED_BATCHES + 2);
        // Named, so `top -H` and profiles tell the threads apart.
        let recorder = std::thread::Builder::new()
            .name("spycraft-record".into())
            .spawn_scoped(scope, move || {
                recorder.run(work_rx, unparsed_back_tx, spent_tx)
            })
            .expect("spawning the recorder thread");
        let mut feed = Sharing {
            batch: Unparsed::default(),
            to_recorder: work_tx,
            unparsed_back: unparsed_back_rx,
            spare: Vec::new(),
            spent: spent_rx,
            empties: Vec::new(),
            held: VecDeque::new(),
            parsed: &parsed,
            tap,
        };
        let damage = read_all(sources, parse, progress, &mut feed, interval, changes);
        feed.flush(parse);
        feed.send_all();
        // Closing the channel ends the recorder.
        drop(feed);
        let (counters, recorded) = recorder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (damage, Some(counters), recorded)
    })
}

/// Messages and parse errors the recorder has counted, for the reader's progress reports.
#[derive(Default)]
struct ParsedSoFar {
    messages: AtomicU64,
    errors: AtomicU64,
}

/// The reader's end: frames decoded here, their messages batched for the recorder, or parsed
/// here when it is behind.
struct Sharing<'p> {
    batch: Unparsed,
    to_recorder: SyncSender<Work>,
    /// Batches the recorder has parsed and emptied.
    unparsed_back: Receiver<Unparsed>,
    /// Batches emptied here.
    spare: Vec<Unparsed>,
    /// Event batches parsed here that the recorder has finished with: their text buffers
    /// are reused for the next events parsed here.
    spent: Receiver<Vec<Input>>,
    empties: Vec<Vec<Input>>,
    /// Batches parsed here that found the queue full, oldest first; they go before anything
    /// newer.
    held: VecDeque<Vec<Input>>,
    parsed: &'p ParsedSoFar,
    tap: Option<&'p dyn MessageTap>,
}

impl Sharing<'_> {
    /// Takes the batch held, leaving an emptied one (from here or back from the recorder) in
    /// its place.
    fn take_batch(&mut self) -> Unparsed {
        let empty = self
            .spare
            .pop()
            .or_else(|| self.unparsed_back.try_recv().ok())
            .unwrap_or_default();
        std::mem::replace(&mut self.batch, empty)
    }

    /// Sends what is held, if anything: unparsed while the recorder keeps up; parsed here
    /// with `parse` when its queue is full, in which case the events wait here (a few batches
    /// at most) rather than the reader waiting for room. A send fails only if the recorder
    /// stopped (it panicked, which the join reports).
    fn flush(&mut self, parse: &mut ParseStage) {
        if self.batch.is_empty() {
            return;
        }
        self.send_held_while_room();
        let mut full = self.take_batch();
        if self.held.is_empty() {
            full = match self.to_recorder.try_send(Work::Unparsed(full)) {
                Err(TrySendError::Full(Work::Unparsed(full))) => full,
                _ => return,
            };
        }
        while let Ok(mut spent) = self.spent.try_recv() {
            parse.recycle(&mut spent);
            self.empties.push(spent);
        }
        let mut events = self
            .empties
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BATCH));
        parse.parse_unparsed(&mut full, &mut events, &mut Tapped(self.tap));
        self.spare.push(full);
        self.held.push_back(events);
        self.send_held_while_room();
        while self.held.len() > HELD_PARSED {
            self.send_oldest_held();
        }
    }

    /// Sends held events, oldest first, while the queue has room.
    fn send_held_while_room(&mut self) {
        while let Some(events) = self.held.pop_front() {
            if let Err(TrySendError::Full(Work::Parsed(events))) =
                self.to_recorder.try_send(Work::Parsed(events))
            {
                self.held.push_front(events);
                return;
            }
        }
    }

    /// Sends the oldest held events, waiting for room.
    fn send_oldest_held(&mut self) {
        if let Some(events) = self.held.pop_front() {
            let _ = self.to_recorder.send(Work::Parsed(events));
        }
    }

    /// Sends everything held, in order, waiting for room if need be.
    fn send_all(&mut self) {
        while !self.held.is_empty() {
            self.send_oldest_held();
        }
        if !self.batch.is_empty() {
            let full = self.take_batch();
            let _ = self.to_recorder.send(Work::Unparsed(full));
        }
    }
}

impl Feed for Sharing<'_> {
    fn frame(&mut self, parse: &mut ParseStage, frame: &Frame<'_>) {
        parse.on_frame_deferred(frame, &mut self.batch);
        if self.batch.len() >= BATCH || self.batch.byte_len() >= BATCH_BYTES {
            self.flush(parse);
        }
    }

    fn input(&mut self, input: Input) {
        self.batch.push_input(input);
    }

    /// A live source gone quiet: what it captured goes on now, not when a batch fills.
    fn idle(&mut self) {
        self.send_all();
    }

    fn snapshot(&mut self, counters: ParseCounters) {
        // The messages before the snapshot go first, so it counts them.
        self.send_all();
        let _ = self.to_recorder.send(Work::Snapshot(Box::new(counters)));
    }

    fn reconfigure(&mut self, parse: &mut ParseStage, changes: LiveChanges) {
        // What was read before goes on first, to be parsed and tracked as it was.
        self.flush(parse);
        self.send_all();
        parse.reconfigure(changes.ports.clone(), &changes.collation_headers);
        let _ = self.to_recorder.send(Work::Reconfigure(Box::new(changes)));
    }

    fn parsed_elsewhere(&self) -> (u64, u64) {
        (
            self.parsed.messages.load(Ordering::Relaxed),
            self.parsed.errors.load(Ordering::Relaxed),
        )
    }
}

/// The recorder thread's state: parses what the reader left unparsed, tracks calls, writes
/// records.
struct Recorder<'s, 'p> {
    stage: RecordStage<'s>,
    messages: MessageStage,
    /// The events of the batch at hand; their buffers are reused for the next batch's.
    events: Vec<Input>,
    parsed: &'p ParsedSoFar,
    tap: Option<&'p dyn MessageTap>,
}

impl Recorder<'_, '_> {
    /// Takes work until the reader's channel closes; returns the counts of the messages
    /// parsed here, and the record stage's results.
    fn run(
        mut self,
        work: Receiver<Work>,
        unparsed_back: SyncSender<Unparsed>,
        spent: SyncSender<Vec<Input>>,
    ) -> (ParseCounters, Recorded) {
        for item in work {
            match item {
                Work::Unparsed(mut batch) => {
                    self.messages.parse_all_observed(
                        &mut batch,
                        &mut self.events,
                        &mut Tapped(self.tap),
                    );
                    // Back to the reader for reuse; dropped if it stopped taking them.
                    let _ = unparsed_back.try_send(batch);
                    let counters = self.messages.counters();
                    self.parsed
                        .messages
                        .store(counters.sip_messages, Ordering::Relaxed);
                    self.parsed
                        .errors
                        .store(counters.total_parse_errors(), Ordering::Relaxed);
                    self.stage.on_inputs(&self.events);
                    self.messages.recycle(&mut self.events);
                }
                Work::Parsed(events) => {
                    self.stage.on_inputs(&events);
                    // Back to the reader, whose buffers they are; dropped if its return
                    // queue is full.
                    let _ = spent.try_send(events);
                }
                Work::Reconfigure(changes) => {
                    self.messages
                        .set_collation_headers(&changes.collation_headers);
                    self.stage.reconfigure(&changes);
                }
                Work::Snapshot(mut counters) => {
                    counters.add_message_counts(self.messages.counters());
                    self.stage.snapshot(*counters);
                }
            }
        }
        (self.messages.counters().clone(), self.stage.finish())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use super::*;
    use crate::call::CallRecord;
    use crate::capture::OfflineSource;
    use crate::decode::LinkType;
    use crate::packet::Timestamp;
    use crate::pipeline::{run_sources, PipelineConfig, Summary};
    use crate::sink::{RecordSink, SinkError};

    /// Every bundled capture's frames, `times` over, each round later than the last by more
    /// than any call lasts, so each round's calls are new ones.
    struct Rounds {
        frames: Vec<(i64, LinkType, Vec<u8>)>,
        round_us: i64,
        times: usize,
        next: usize,
    }

    impl Rounds {
        fn of_bundled_captures(times: usize) -> Self {
            let cases = crate::bundled::bundled_cases();
            let cases: Vec<&str> = cases.iter().map(String::as_str).collect();
            Self::of(&cases, times)
        }

        /// The frames of these bundled cases.
        fn of(cases: &[&str], times: usize) -> Self {
            let mut frames = Vec::new();
            for case in cases {
                let file = crate::bundled::bundled(case);
                let source = OfflineSource::open(&file, None).expect("readable");
                let link = source.link_type();
                let read = source.remaining_frames().into_iter();
                frames.extend(read.map(|(time, _, data)| (time.micros(), link, data)));
            }
            let (first, last) = frames.iter().fold((i64::MAX, i64::MIN), |(lo, hi), f| {
                (lo.min(f.0), hi.max(f.0))
            });
            Self {
                frames,
                round_us: last - first + 24 * 3_600_000_000,
                times,
                next: 0,
            }
        }
    }

    impl FrameSource for Rounds {
        fn poll(&mut self) -> Result<crate::capture::Polled<'_>, CaptureError> {
            let (round, at) = (self.next / self.frames.len(), self.next % self.frames.len());
            if round == self.times {
                return Ok(crate::capture::Polled::End);
            }
            self.next += 1;
            let (ts_us, link, data) = &self.frames[at];
            let time = Timestamp(ts_us + round as i64 * self.round_us);
            Ok(crate::capture::Polled::Frame(Frame::whole(
                time, *link, data,
            )))
        }
    }

    /// Keeps the records; the first write stalls and every later one is slow, as with a
    /// sink writing to a busy database, so the reader finds the recorder's queue full, and
    /// still holds parsed batches of its own when the input ends.
    #[derive(Default)]
    struct Stalling(Vec<CallRecord>);

    impl RecordSink for Stalling {
        fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
            let pause = if self.0.is_empty() { 300_000 } else { 100 };
            std::thread::sleep(std::time::Duration::from_micros(pause));
            self.0.push(record.clone());
            Ok(())
        }

        fn finish(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
    }

    #[test]
    fn the_reader_parses_when_the_recorder_is_behind_and_nothing_changes() {
        const ROUNDS: usize = 100;
        let config = PipelineConfig::default();

        // The two-thread plan, run directly so that the recorder's share is seen.
        let mut sink = Stalling::default();
        let mut parse = ParseStage::new(config.ports.clone(), config.collation_headers.clone());
        let stage = RecordStage::new(&config, &mut sink);
        let mut sources: Vec<Box<dyn FrameSource>> =
            vec![Box::new(Rounds::of_bundled_captures(ROUNDS))];
        let (damage, by_recorder, recorded) = run(
            &mut sources,
            &mut parse,
            stage,
            &mut |_| {},
            None,
            None,
            None,
        );
        assert!(damage.is_none());
        let (tracker, dispositions) = recorded.expect("written");
        let by_recorder = by_recorder.expect("the recorder's counts");
        let mut shared = Summary {
            parse: parse.counters(),
            tracker,
            dispositions,
        };
        let by_reader = shared.parse.sip_messages;
        shared.parse.add_message_counts(&by_recorder);
        assert!(
            by_reader > 0 && by_recorder.sip_messages > 0,
            "parsed by the reader {by_reader}, by the recorder {}",
            by_recorder.sip_messages
        );

        // One thread: the same records, the same counters.
        let one_thread = PipelineConfig {
            threads: 1,
            ..PipelineConfig::default()
        };
        let mut alone = Stalling::default();
        let mut sources: Vec<Box<dyn FrameSource>> =
            vec![Box::new(Rounds::of_bundled_captures(ROUNDS))];
        let (summary, result) = run_sources(&mut sources, &one_thread, &mut alone, &mut |_| {});
        result.expect("analysed");
        assert!(
            summary.parse.sip_messages > 20_000,
            "{}",
            summary.parse.sip_messages
        );
        assert_eq!(shared, summary);
        assert_eq!(sink.0, alone.0);
    }

    /// A live source: one call's frames, then idle polls until its record is out, or until
    /// it gives up (after 5 s) and ends.
    struct QuietAfterOneCall {
        frames: Rounds,
        written: Arc<AtomicU64>,
        idle_polls: u32,
        gave_up: Arc<AtomicBool>,
    }

    impl FrameSource for QuietAfterOneCall {
        fn poll(&mut self) -> Result<crate::capture::Polled<'_>, CaptureError> {
            if self.frames.next < self.frames.frames.len() {
                return self.frames.poll();
            }
            if self.written.load(Ordering::Relaxed) > 0 {
                return Ok(crate::capture::Polled::End);
            }
            if self.idle_polls == 500 {
                self.gave_up.store(true, Ordering::Relaxed);
                return Ok(crate::capture::Polled::End);
            }
            self.idle_polls += 1;
            std::thread::sleep(std::time::Duration::from_millis(10));
            Ok(crate::capture::Polled::Idle)
        }
    }

    #[test]
    fn a_quiet_live_source_has_its_calls_written_while_it_idles() {
        let written = Arc::new(AtomicU64::new(0));
        let gave_up = Arc::new(AtomicBool::new(false));
        let config = PipelineConfig {
            records_written: Some(written.clone()),
            ..PipelineConfig::default()
        };
        let source = QuietAfterOneCall {
            frames: Rounds::of(&["busy-486"], 1),
            written,
            idle_polls: 0,
            gave_up: gave_up.clone(),
        };
        let mut sink = Stalling::default();
        let mut sources: Vec<Box<dyn FrameSource>> = vec![Box::new(source)];
        let (summary, result) = run_sources(&mut sources, &config, &mut sink, &mut |_| {});
        result.expect("ran");
        assert_eq!(summary.records(), 1);
        assert!(
            !gave_up.load(Ordering::Relaxed),
            "the record came only when the source ended"
        );
    }
}
