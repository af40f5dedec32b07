// SPDX-License-Identifier: AGPL-3.0-or-later
//! The call tracker: finds the leg each SIP event belongs to, drives its state machine,
//! expires legs by capture time and hands finished legs out as records.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use std::net::SocketAddr;

use super::checks::{Check, CheckQueue};
use super::direction::MonitoredHosts;
use super::leg::{Finish, Leg, Phase};
use super::record::{CallRecord, CaptureIssue};
use super::timers::Timers;
use crate::packet::Timestamp;
use crate::sip::{uri_user, Method, SipEvent, SipKind};

/// Settings of a tracker.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// The sensor's name, written into each record.
    pub node: String,
    /// The monitored hosts, for the call direction.
    pub hosts: MonitoredHosts,
    /// When legs time out.
    pub timers: Timers,
    /// Most legs held at once; beyond it the oldest is written early and counted as evicted.
    pub max_live_legs: usize,
    /// Reports on legs in progress, for outputs that account for a call while it lasts.
    pub progress: ProgressReports,
}

/// Which reports on legs in progress the tracker gives ([`CallTracker::report_progress`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgressReports {
    /// One when a leg is answered.
    pub answers: bool,
    /// One every this often (capture time) while an answered leg lasts; needs `answers`.
    pub interim: Option<std::time::Duration>,
}

/// A report on a leg in progress, lent with the leg's record as it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallProgress {
    /// The leg was answered just now.
    Answered,
    /// The answered leg is still up at this capture time.
    Interim(Timestamp),
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            node: "spycraft".into(),
            hosts: MonitoredHosts::default(),
            timers: Timers::default(),
            max_live_legs: 250_000,
            progress: ProgressReports::default(),
        }
    }
}

/// What the tracker did, for the summary and for operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrackerCounters {
    /// SIP events handed to the tracker.
    pub events: u64,
    /// Requests and responses of methods that form no call (REGISTER, OPTIONS, …).
    pub non_call_messages: u64,
    /// In-dialog messages whose dialog the tracker never saw start.
    pub unmatched: u64,
    /// Legs begun by an INVITE.
    pub legs_started: u64,
    /// Records written.
    pub records: u64,
    /// Legs written early because too many were held.
    pub evicted: u64,
    /// The most legs held at once.
    pub peak_live_legs: u64,
}

/// Sweeps for expired legs at most once per this much capture time.
const SWEEP_INTERVAL_US: i64 = 1_000_000;

/// Tracks every call leg in one stream of SIP events.
#[derive(Debug)]
pub struct CallTracker {
    config: TrackerConfig,
    slots: Vec<Option<Leg>>,
    /// Generation of each slot, bumped on reuse, so stale `order` entries are recognisable.
    generations: Vec<u32>,
    free: Vec<u32>,
    /// Slots by Call-ID and From tag. The keys are the legs' own text, so the index holds
    /// four bytes a leg and no copy of either.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// `call_id \0 caller address` → (slot, generation) of legs last seen challenged, for
    /// retries that come with a new From tag.
    challenged: HashMap<Box<[u8]>, (u32, u32)>,
    /// Slots in creation order, for evicting the oldest leg when the cap is hit.
    order: VecDeque<(u32, u32)>,
    /// (check time, slot, generation): when each leg must next be looked at, soonest first,
    /// so a sweep visits only the legs that may be due rather than every leg held.
    checks: CheckQueue,
    /// The checks a sweep takes out (kept to reuse its allocation).
    due: Vec<Check>,
    /// Each slot's soonest check in `checks`; never later than the leg's deadline. Entries
    /// that no longer match are stale and skipped.
    check_at: Vec<Timestamp>,
    live: usize,
    key: Vec<u8>,
    now: Timestamp,
    next_sweep: Timestamp,
    counters: TrackerCounters,
    /// Slots of the legs ended and not yet written. A finished leg stays in its slot, out of
    /// the index and with its generation bumped (so nothing finds it), until `drain` writes it
    /// there and frees the slot: moving its hundreds of bytes out and back cost more.
    finished: Vec<(u32, Finish)>,
    /// The order `drain` writes `finished` in: (INVITE time, position in `finished`), kept
    /// to reuse its allocation.
    finished_order: Vec<(Timestamp, u32)>,
    /// Each record is written over this one in turn and lent to the sink, so its strings'
    /// allocations serve every record.
    record: CallRecord,
    /// Recent REFERs, newest last, so the call a blind transfer makes links to the call it
    /// came from.
    refers: VecDeque<RecentRefer>,
    /// (slot, generation) of legs answered since progress was last reported.
    answered: Vec<(u32, u32)>,
    /// (due, slot, generation) of the answered legs' next interim reports, soonest first;
    /// each leg's are due at its answer and every interval after.
    interims: BinaryHeap<Reverse<(Timestamp, u32, u32)>>,
}

/// A REFER seen lately.
#[derive(Debug)]
struct RecentRefer {
    /// Its Refer-To.
    to: String,
    /// The Call-ID of the call that carried it.
    call_id: String,
    at: Timestamp,
}

/// The hash a leg is filed under (its Call-ID and From tag), as worked out for an event by
/// [`CallTracker::prefetch`], so that applying the event need not work it out again; `None`
/// for a message that forms no call (an OPTIONS ping, a REGISTER), which is never hashed.
#[derive(Clone, Copy, Debug)]
pub struct LegKey(Option<u64>);

/// REFERs remembered for linking, and for how long (capture time).
const MAX_REFERS: usize = 1024;
const REFER_LINK_US: i64 = 300_000_000;

impl CallTracker {
    /// A tracker with no legs.
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            challenged: HashMap::new(),
            order: VecDeque::new(),
            checks: CheckQueue::default(),
            due: Vec::new(),
            check_at: Vec::new(),
            live: 0,
            key: Vec::with_capacity(256),
            now: Timestamp::MIN,
            next_sweep: Timestamp::MIN,
            counters: TrackerCounters::default(),
            finished: Vec::new(),
            finished_order: Vec::new(),
            record: CallRecord::blank(),
            refers: VecDeque::new(),
            answered: Vec::new(),
            interims: BinaryHeap::new(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> TrackerCounters {
        self.counters
    }

    /// Judges direction by `hosts` and times legs out by `timers` from now on (a reload); the
    /// legs held stay, each next looked at when its old timers said.
    pub fn reconfigure(&mut self, hosts: MonitoredHosts, timers: Timers) {
        self.config.hosts = hosts;
        self.config.timers = timers;
    }

    /// Legs currently held.
    pub fn live_legs(&self) -> usize {
        self.live
    }

    /// The legs in progress, oldest first, at most `limit` of them, into `out` (cleared
    /// first, its allocation kept).
    pub fn live_calls(&self, limit: usize, out: &mut Vec<crate::call::LiveCall>) {
        out.clear();
        let views = self
            .order
            .iter()
            .filter(|&&(slot, generation)| self.generations[slot as usize] == generation)
            .filter_map(|&(slot, _)| self.slots[slot as usize].as_ref()?.live_view());
        out.extend(views.take(limit));
    }

    /// Applies one event; records of legs that finished meanwhile go to `emit`.
    pub fn on_event(&mut self, ev: &SipEvent, emit: &mut impl FnMut(&CallRecord)) {
        let key = self.key_of(ev);
        self.on_event_keyed(ev, key, emit);
    }

    /// [`CallTracker::on_event`] for an event whose key [`CallTracker::prefetch`] gave.
    pub fn on_event_keyed(
        &mut self,
        ev: &SipEvent,
        key: LegKey,
        emit: &mut impl FnMut(&CallRecord),
    ) {
        self.counters.events += 1;
        let ts = ev.meta.time;
        if ts > self.now {
            self.now = ts;
        }
        match key.0 {
            Some(hash) => self.apply(ev, hash, emit),
            None => self.counters.non_call_messages += 1,
        }
        // The event is applied before expiry, so a late answer still reaches its leg.
        if self.now >= self.next_sweep {
            self.sweep(emit);
            self.next_sweep = self.now + SWEEP_INTERVAL_US;
        }
        self.drain(emit);
    }

    /// Time passes with no event (a quiet live capture): legs due to end by `time` end.
    pub fn on_clock(&mut self, time: Timestamp, emit: &mut impl FnMut(&CallRecord)) {
        if time > self.now {
            self.now = time;
        }
        if self.now >= self.next_sweep {
            self.sweep(emit);
            self.next_sweep = self.now + SWEEP_INTERVAL_US;
        }
        self.drain(emit);
    }

    /// Applies an event of a call; `hash` is its [`LegKey`]'s.
    fn apply(&mut self, ev: &SipEvent, hash: u64, emit: &mut impl FnMut(&CallRecord)) {
        match self.find(ev, hash) {
            Some(slot) => {
                let leg = self.slots[slot as usize]
                    .as_mut()
                    .expect("indexed slot holds a leg");
                if leg.is_new_call(ev) {
                    self.remove(slot, Finish::Expired);
                    self.start(ev, hash, emit);
                } else {
                    let was = leg.phase();
                    leg.on_event(ev);
                    if was != Phase::Answered
                        && leg.phase() == Phase::Answered
                        && self.config.progress.answers
                    {
                        self.answered.push((slot, self.generations[slot as usize]));
                    }
                    let check = leg.next_check(&self.config.timers);
                    self.check_sooner(slot, check);
                    let leg = self.slots[slot as usize]
                        .as_mut()
                        .expect("indexed slot holds a leg");
                    if ev.method() == Some(Method::Refer) {
                        if let Some(target) = leg.refer_target() {
                            if self.refers.len() == MAX_REFERS {
                                self.refers.pop_front();
                            }
                            self.refers.push_back(RecentRefer {
                                to: target.to_owned(),
                                call_id: ev.call_id().to_owned(),
                                at: ev.meta.time,
                            });
                        }
                    }
                    if leg.phase() == Phase::Challenged {
                        set_addr_key(&mut self.key, ev.call_id(), ev.meta.src);
                        let generation = self.generations[slot as usize];
                        self.challenged
                            .insert(self.key.clone().into_boxed_slice(), (slot, generation));
                    }
                }
            }
            None if ev.method() == Some(Method::Invite) && ev.to_tag().is_empty() => {
                if !self.retry_retagged(ev) {
                    self.start(ev, hash, emit)
                }
            }
            None => self.counters.unmatched += 1,
        }
    }

    /// Hands `report` each leg answered since the last call, then each answered leg's
    /// interim reports due by `until` (or by the tracker's clock, if later), as its record
    /// stands (see [`TrackerConfig::progress`]). Call it after every
    /// [`CallTracker::on_event`] and [`CallTracker::on_clock`], and before an event with
    /// the event's time, so a report due in a quiet spell goes out before the event that
    /// may end the call. It costs nothing when nothing is due.
    #[inline]
    pub fn report_progress(
        &mut self,
        until: Timestamp,
        report: &mut impl FnMut(&CallRecord, CallProgress),
    ) {
        let until = until.max(self.now);
        let due = |Reverse((due, _, _)): &Reverse<(Timestamp, u32, u32)>| *due <= until;
        if !self.answered.is_empty() || self.interims.peek().is_some_and(due) {
            self.report_due(until, report);
        }
    }

    fn report_due(&mut self, until: Timestamp, report: &mut impl FnMut(&CallRecord, CallProgress)) {
        let every = self
            .config
            .progress
            .interim
            .map(|every| i64::try_from(every.as_micros()).unwrap_or(i64::MAX).max(1));
        let mut answered = std::mem::take(&mut self.answered);
        for &(slot, generation) in &answered {
            if self.snapshot(slot, generation) {
                report(&self.record, CallProgress::Answered);
                if let (Some(every), Some(answer)) = (every, self.record.answer_at) {
                    self.interims
                        .push(Reverse((answer + every, slot, generation)));
                }
            }
        }
        answered.clear();
        self.answered = answered;
        let Some(every) = every else {
            return;
        };
        while let Some(&Reverse((due, slot, generation))) = self.interims.peek() {
            if due > until {
                break;
            }
            self.interims.pop();
            if self.snapshot(slot, generation) {
                report(&self.record, CallProgress::Interim(due));
                self.interims.push(Reverse((due + every, slot, generation)));
            }
        }
    }

    /// Writes the record of the answered leg in `slot` as it stands over `self.record`;
    /// false when the leg has ended (or its slot holds another leg by now).
    fn snapshot(&mut self, slot: u32, generation: u32) -> bool {
        if self.generations[slot as usize] != generation {
            return false;
        }
        let Some(leg) = self.slots[slot as usize].as_ref() else {
            return false;
        };
        if leg.phase() != Phase::Answered {
            return false;
        }
        let (caller, callee) = leg.endpoints();
        let direction = self.config.hosts.direction(caller.ip(), callee.ip());
        leg.snapshot(&self.config.node, direction, &mut self.record);
        true
    }

    /// Bytes were lost on the TCP connection between `a` and `b`: every live leg signalled
    /// over it may have missed a message.
    pub fn on_stream_gap(&mut self, a: SocketAddr, b: SocketAddr) {
        for leg in self.slots.iter_mut().flatten() {
            let (caller, callee) = leg.endpoints();
            if (caller == a && callee == b) || (caller == b && callee == a) {
                leg.note(CaptureIssue::ReassemblyGap);
            }
        }
    }

    /// The capture lost frames just now: every call up may miss a message.
    pub fn on_capture_loss(&mut self) {
        for leg in self.slots.iter_mut().flatten() {
            leg.note(CaptureIssue::CaptureLoss);
        }
    }

    /// Writes every leg still held (the input ended or the sensor is stopping).
    pub fn finish(&mut self, emit: &mut impl FnMut(&CallRecord)) {
        self.sweep(emit);
        for slot in 0..self.slots.len() {
            if self.slots[slot].is_some() {
                self.remove(slot as u32, Finish::InputEnded);
            }
        }
        self.drain(emit);
        self.order.clear();
        self.answered.clear();
        self.interims.clear();
    }

    /// Starts a leg for `ev`, filed under `hash`, the event's own.
    fn start(&mut self, ev: &SipEvent, hash: u64, emit: &mut impl FnMut(&CallRecord)) {
        if self.live >= self.config.max_live_legs {
            self.evict_oldest();
            self.drain(emit);
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.generations.push(0);
            self.check_at.push(Timestamp::MAX);
            (self.slots.len() - 1) as u32
        });
        // Made where it stays: a leg is hundreds of bytes, and building it aside and moving
        // it in copied them all once more.
        let leg = self.slots[slot as usize].insert(Leg::start(ev));
        if let Some(target) = leg.awaits_transfer_link() {
            let now = ev.meta.time;
            let same_user = |a: &str, b: &str| {
                a == b
                    || (uri_user(a.as_bytes()).is_some()
                        && uri_user(a.as_bytes()) == uri_user(b.as_bytes()))
            };
            if let Some(refer) = self
                .refers
                .iter()
                .rev()
                .find(|r| now - r.at <= REFER_LINK_US && same_user(&r.to, target))
            {
                leg.link_transfer(&refer.call_id);
            }
        }
        self.index_slot_under(slot, hash);
        self.check_at[slot as usize] = Timestamp::MAX;
        let check = self.slots[slot as usize]
            .as_ref()
            .map_or(Timestamp::MAX, |leg| leg.next_check(&self.config.timers));
        self.check_sooner(slot, check);
        self.order
            .push_back((slot, self.generations[slot as usize]));
        self.live += 1;
        self.counters.legs_started += 1;
        self.counters.peak_live_legs = self.counters.peak_live_legs.max(self.live as u64);
        if self.order.len() > 2 * self.live + 1024 {
            let (slots, generations) = (&self.slots, &self.generations);
            self.order
                .retain(|&(s, g)| slots[s as usize].is_some() && generations[s as usize] == g);
        }
    }

    /// A challenged leg retried under a new From tag (same Call-ID, same addresses) stays one
    /// leg: re-index it under the new tag.
    fn retry_retagged(&mut self, ev: &SipEvent) -> bool {
        set_addr_key(&mut self.key, ev.call_id(), ev.meta.src);
        let Some((slot, generation)) = self.challenged.remove(self.key.as_slice()) else {
            return false;
        };
        if self.generations[slot as usize] != generation {
            return false;
        }
        let Some(leg) = self.slots[slot as usize].as_mut() else {
            return false;
        };
        if !leg.is_retagged_retry(ev) {
            return false;
        }
        let old = key_hash(&self.hasher, leg);
        leg.retag(ev);
        let check = leg.next_check(&self.config.timers);
        self.unindex_slot(slot, old);
        self.index_slot(slot);
        self.check_sooner(slot, check);
        true
    }

    /// The leg of a message: requests and responses of the caller's transactions carry the
    /// caller's tag in From; the callee's requests (a BYE from the called party) carry it in To.
    fn find(&self, ev: &SipEvent, hash: u64) -> Option<u32> {
        if let Some(slot) = self.lookup_hashed(hash, ev.call_id(), ev.from_tag()) {
            return Some(slot);
        }
        if ev.to_tag().is_empty() {
            return None;
        }
        self.lookup(ev.call_id(), ev.to_tag())
    }

    /// Starts loading the leg `ev` will find into the cache, ahead of applying it with
    /// [`CallTracker::on_event_keyed`] and the key returned. Thousands of live legs outgrow
    /// the core's own cache, so finding one waits on memory; begun a few events early, the
    /// wait overlaps their work. Only a hint: nothing is changed, and a wrong guess costs a
    /// few loads.
    pub fn prefetch(&self, ev: &SipEvent) -> LegKey {
        let key = self.key_of(ev);
        if let Some(&slot) = key.0.and_then(|hash| self.index.iter_hash(hash).next()) {
            prefetch_slot(&self.slots, slot);
        }
        key
    }

    fn key_of(&self, ev: &SipEvent) -> LegKey {
        LegKey(belongs_to_call(ev).then(|| self.hasher.hash_one((ev.call_id(), ev.from_tag()))))
    }

    /// The slot of the leg with this Call-ID and From tag.
    fn lookup(&self, call_id: &str, from_tag: &str) -> Option<u32> {
        self.lookup_hashed(self.hasher.hash_one((call_id, from_tag)), call_id, from_tag)
    }

    /// [`CallTracker::lookup`] with the hash of the two already worked out.
    fn lookup_hashed(&self, hash: u64, call_id: &str, from_tag: &str) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |&slot| {
                slots[slot as usize]
                    .as_ref()
                    .is_some_and(|leg| leg.call_id() == call_id && leg.from_tag() == from_tag)
            })
            .copied()
    }

    /// Indexes the leg in `slot` under its Call-ID and From tag.
    fn index_slot(&mut self, slot: u32) {
        let leg = self.slots[slot as usize]
            .as_ref()
            .expect("indexed slot holds a leg");
        self.index_slot_under(slot, key_hash(&self.hasher, leg));
    }

    /// [`CallTracker::index_slot`] with the hash of the leg's Call-ID and From tag known.
    fn index_slot_under(&mut self, slot: u32, hash: u64) {
        let (slots, hasher) = (&self.slots, &self.hasher);
        debug_assert_eq!(
            slots[slot as usize]
                .as_ref()
                .map(|leg| key_hash(hasher, leg)),
            Some(hash),
            "a leg is filed under its own Call-ID and From tag"
        );
        self.index.insert_unique(hash, slot, |&other| {
            slots[other as usize]
                .as_ref()
                .map_or(0, |leg| key_hash(hasher, leg))
        });
    }

    /// Removes `slot` from the index, where it was filed under `hash`.
    fn unindex_slot(&mut self, slot: u32, hash: u64) {
        if let Ok(entry) = self.index.find_entry(hash, |&other| other == slot) {
            entry.remove();
        }
    }

    /// Ends the leg in `slot`. Each caller reaches the leg through the index or a check made
    /// for its current generation, and a removed leg has left both, so no leg is removed (and
    /// written) twice.
    fn remove(&mut self, slot: u32, why: Finish) {
        let Some(leg) = self.slots[slot as usize].as_ref() else {
            return;
        };
        self.unindex_slot(slot, key_hash(&self.hasher, leg));
        self.generations[slot as usize] = self.generations[slot as usize].wrapping_add(1);
        self.live -= 1;
        if why == Finish::Evicted {
            self.counters.evicted += 1;
        }
        self.finished.push((slot, why));
    }

    fn evict_oldest(&mut self) {
        while let Some((slot, generation)) = self.order.pop_front() {
            if self.slots[slot as usize].is_some() && self.generations[slot as usize] == generation
            {
                self.remove(slot, Finish::Evicted);
                return;
            }
        }
    }

    fn sweep(&mut self, emit: &mut impl FnMut(&CallRecord)) {
        let (slots, generations) = (&self.slots, &self.generations);
        self.challenged.retain(|_, &mut (slot, generation)| {
            generations[slot as usize] == generation
                && slots[slot as usize]
                    .as_ref()
                    .is_some_and(|l| l.phase() == Phase::Challenged)
        });
        let now = self.now;
        let timers = self.config.timers;
        let mut due = std::mem::take(&mut self.due);
        self.checks.take_due(now.micros(), &mut due);
        for (
            n,
            &Check {
                at,
                slot,
                generation,
            },
        ) in due.iter().enumerate()
        {
            // Due legs lie anywhere among thousands: ask for each a few checks ahead.
            if let Some(ahead) = due.get(n + crate::simd::prefetch::AHEAD) {
                prefetch_slot(&self.slots, ahead.slot);
            }
            let s = slot as usize;
            if self.generations[s] != generation || self.check_at[s].micros() != at {
                continue; // the leg is gone, or has a sooner check of its own
            }
            let Some(leg) = self.slots[s].as_mut() else {
                continue;
            };
            if leg.deadline(now, &timers) <= now {
                self.remove(slot, Finish::Expired);
            } else {
                let check = leg.next_check(&timers);
                self.check_at[s] = Timestamp::MAX;
                self.check_sooner(slot, check);
            }
        }
        self.due = due;
        self.drain(emit);
    }

    /// Makes sure the leg in `slot` is looked at by `at`: queues a check unless one as soon
    /// is queued already. Stale checks are dropped when they outnumber the legs.
    fn check_sooner(&mut self, slot: u32, at: Timestamp) {
        let s = slot as usize;
        if at >= self.check_at[s] {
            return;
        }
        self.check_at[s] = at;
        self.checks.push(Check {
            at: at.micros(),
            slot,
            generation: self.generations[s],
        });
        if self.checks.len() > 2 * self.live + 1024 {
            let (slots, generations, check_at) = (&self.slots, &self.generations, &self.check_at);
            self.checks.retain(|c| {
                let s = c.slot as usize;
                slots[s].is_some() && generations[s] == c.generation && check_at[s].micros() == c.at
            });
        }
    }

    /// Emits finished legs in a stable order: by INVITE time, then Call-ID, and frees their
    /// slots. Their positions are sorted rather than the legs, which are hundreds of bytes.
    fn drain(&mut self, emit: &mut impl FnMut(&CallRecord)) {
        if self.finished.is_empty() {
            return;
        }
        let (finished, slots) = (&self.finished, &self.slots);
        let leg_of = |at: u32| {
            let slot = finished[at as usize].0;
            slots[slot as usize]
                .as_ref()
                .expect("a finished leg stays in its slot")
        };
        // Each leg's INVITE time is read once (asked for a few legs ahead), and the sort
        // compares those; only a tie reads the legs' Call-IDs. The index last keeps the
        // order of legs alike in both, as a stable sort would.
        let order = &mut self.finished_order;
        order.clear();
        for at in 0..finished.len() as u32 {
            if let Some(&(ahead, _)) = finished.get(at as usize + crate::simd::prefetch::AHEAD) {
                prefetch_slot(slots, ahead);
            }
            order.push((leg_of(at).invite_at(), at));
        }
        order.sort_unstable_by(|&(a_at, a), &(b_at, b)| {
            a_at.cmp(&b_at)
                .then_with(|| leg_of(a).call_id().cmp(leg_of(b).call_id()))
                .then(a.cmp(&b))
        });
        for &(_, at) in order.iter() {
            let (slot, why) = self.finished[at as usize];
            let leg = self.slots[slot as usize]
                .as_mut()
                .expect("a finished leg stays in its slot");
            let (caller, callee) = leg.endpoints();
            let direction = self.config.hosts.direction(caller.ip(), callee.ip());
            self.counters.records += 1;
            leg.finish(why, &self.config.node, direction, &mut self.record);
            emit(&self.record);
        }
        for &(slot, _) in &self.finished {
            self.slots[slot as usize] = None;
            self.free.push(slot);
        }
        self.finished.clear();
    }
}

/// Messages that can create or change a call leg. OPTIONS, MESSAGE and NOTIFY belong to a
/// call only inside a dialog (a request with a To tag); their responses never matter.
fn belongs_to_call(ev: &SipEvent) -> bool {
    match ev.kind {
        SipKind::Request(method) => match method {
            Method::Invite | Method::Ack | Method::Bye | Method::Cancel => true,
            Method::Prack | Method::Update | Method::Info | Method::Refer => true,
            Method::Options | Method::Message | Method::Notify => !ev.to_tag().is_empty(),
            Method::Register | Method::Subscribe | Method::Publish | Method::Other => false,
        },
        SipKind::Response(_) => matches!(
            ev.cseq.method,
            Method::Invite
                | Method::Bye
                | Method::Cancel
                | Method::Prack
                | Method::Update
                | Method::Info
                | Method::Refer
        ),
    }
}

fn set_addr_key(key: &mut Vec<u8>, call_id: &str, addr: SocketAddr) {
    key.clear();
    key.extend_from_slice(call_id.as_bytes());
    key.push(0);
    match addr.ip() {
        std::net::IpAddr::V4(ip) => key.extend_from_slice(&ip.octets()),
        std::net::IpAddr::V6(ip) => key.extend_from_slice(&ip.octets()),
    }
    key.extend_from_slice(&addr.port().to_be_bytes());
}

/// Asks the cache for the leg in `slot`, a few steps before it is read.
fn prefetch_slot(slots: &[Option<Leg>], slot: u32) {
    if let Some(leg) = slots.get(slot as usize) {
        crate::simd::prefetch::value(leg);
    }
}

/// The hash a leg is indexed under.
fn key_hash(hasher: &DefaultHashBuilder, leg: &Leg) -> u64 {
    hasher.hash_one((leg.call_id(), leg.from_tag()))
}

#[cfg(test)]
impl CallTracker {
    pub(crate) fn phase_of(&mut self, call_id: &str, from_tag: &str) -> Option<Phase> {
        let slot = self.lookup(call_id, from_tag)?;
        self.slots[slot as usize].as_ref().map(Leg::phase)
    }
}
