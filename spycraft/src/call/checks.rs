// SPDX-License-Identifier: AGPL-3.0-or-later
//! When each leg must next be looked at: a timing wheel of capture-time checks.
//!
//! The tracker sweeps once a second of capture time and wants every check due by then. A
//! binary heap gives that in order, but each pop walks a dozen levels of a heap too large for
//! the nearest cache, with a guess at every level. Here a check goes into the bucket of its
//! second, and a sweep empties the buckets of the seconds since the last one: a push is an
//! append, and a check costs one look when it is due (and one per lap of the wheel while it
//! waits, for the few set hours ahead).

/// A leg to look at: ordered by time, then slot, as the tracker hands them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Check {
    /// Capture time, µs.
    pub(super) at: i64,
    /// The slot of the leg.
    pub(super) slot: u32,
    /// The generation of the slot's leg when the check was queued: a later leg in the same
    /// slot makes the check stale.
    pub(super) generation: u32,
}

/// Width of a bucket, µs: the tracker's sweep interval, so a sweep empties about one.
const TICK_US: i64 = 1_000_000;
/// Buckets on the wheel: a lap is over an hour, longer than every timer but the idle one.
const BUCKETS: usize = 4096;

#[derive(Debug)]
pub(super) struct CheckQueue {
    buckets: Vec<Vec<Check>>,
    /// Every check due before this tick has been handed out.
    next_tick: i64,
    len: usize,
}

impl Default for CheckQueue {
    fn default() -> Self {
        Self {
            buckets: vec![Vec::new(); BUCKETS],
            next_tick: i64::MIN,
            len: 0,
        }
    }
}

impl CheckQueue {
    /// Checks held, including stale ones the tracker has not yet dropped.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn push(&mut self, check: Check) {
        // A check already overdue goes where the next sweep starts.
        let tick = check.at.div_euclid(TICK_US).max(self.next_tick);
        self.buckets[bucket_of(tick)].push(check);
        self.len += 1;
    }

    /// Moves every check due by `now` into `due`, soonest first (then by slot), as a heap
    /// would hand them out.
    pub(super) fn take_due(&mut self, now: i64, due: &mut Vec<Check>) {
        due.clear();
        let now_tick = now.div_euclid(TICK_US);
        let from = self.next_tick;
        if from > now_tick {
            return;
        }
        // Past a whole lap (or at the first sweep), every bucket is looked at once.
        let ticks = now_tick.saturating_sub(from).min(BUCKETS as i64 - 1);
        for tick in from..=from + ticks {
            let bucket = &mut self.buckets[bucket_of(tick)];
            bucket.retain(|&check| {
                let is_due = check.at <= now;
                if is_due {
                    due.push(check);
                }
                !is_due
            });
        }
        // The bucket of `now` may still hold checks later in its second.
        self.next_tick = now_tick;
        self.len -= due.len();
        due.sort_unstable();
    }

    /// Keeps only the checks `keep` approves.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Check) -> bool) {
        for bucket in &mut self.buckets {
            bucket.retain(&mut keep);
        }
        self.len = self.buckets.iter().map(Vec::len).sum();
    }
}

fn bucket_of(tick: i64) -> usize {
    tick.rem_euclid(BUCKETS as i64) as usize
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use super::*;

    fn check(at: i64, slot: u32, generation: u32) -> Check {
        Check {
            at,
            slot,
            generation,
        }
    }

    /// The same checks, and sweeps, given to the wheel and to a heap.
    #[test]
    fn hands_out_what_a_heap_would_in_the_same_order() {
        let mut wheel = CheckQueue::default();
        let mut heap = BinaryHeap::new();
        let mut x: u64 = 7;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let mut now: i64 = 1_700_000_000_000_000;
        let (mut due, mut handed) = (Vec::new(), 0);
        for round in 0..3_000u32 {
            for n in 0..20u32 {
                // Mostly seconds to minutes ahead, some hours ahead (past a lap), some
                // already overdue, some in the second being swept.
                let ahead = match next() % 10 {
                    0 => (next() % 10_000) as i64 * TICK_US,
                    1 => -((next() % 5_000_000) as i64),
                    2 => (next() % 1_000) as i64,
                    _ => (next() % 300_000_000) as i64,
                };
                let check = check(now + ahead, round * 20 + n, round);
                wheel.push(check);
                heap.push(Reverse(check));
            }
            // Sweeps a second or so apart, now and then after a long quiet spell.
            now += match next() % 50 {
                0 => (next() % 20_000) as i64 * TICK_US,
                _ => TICK_US + (next() % 1_000) as i64 - 500,
            };
            wheel.take_due(now, &mut due);
            let mut from_heap = Vec::new();
            while heap.peek().is_some_and(|Reverse(c)| c.at <= now) {
                from_heap.push(heap.pop().expect("peeked").0);
            }
            assert_eq!(due, from_heap, "sweep at {now}");
            handed += due.len();
            assert_eq!(wheel.len(), heap.len());
        }
        assert!(handed > 40_000, "{handed}");
    }

    #[test]
    fn a_check_pushed_overdue_is_handed_out_at_the_next_sweep() {
        let mut wheel = CheckQueue::default();
        let mut due = Vec::new();
        wheel.push(check(100 * TICK_US, 1, 0));
        wheel.take_due(100 * TICK_US + 5, &mut due);
        assert_eq!(due, vec![check(100 * TICK_US, 1, 0)]);
        wheel.push(check(3 * TICK_US, 2, 0));
        wheel.push(check(100 * TICK_US + 6, 3, 0));
        wheel.take_due(100 * TICK_US + 6, &mut due);
        assert_eq!(
            due,
            vec![check(3 * TICK_US, 2, 0), check(100 * TICK_US + 6, 3, 0)]
        );
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn a_sweep_after_a_long_quiet_spell_empties_every_bucket() {
        let mut wheel = CheckQueue::default();
        let mut due = Vec::new();
        wheel.take_due(0, &mut due);
        // A check in every second of two laps, then a sweep three laps later.
        let checks: Vec<Check> = (0..2 * BUCKETS as u32)
            .map(|n| check(i64::from(n) * TICK_US + 1, n, 0))
            .collect();
        for &check in &checks {
            wheel.push(check);
        }
        wheel.take_due(3 * BUCKETS as i64 * TICK_US, &mut due);
        assert_eq!(due, checks);
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn retain_drops_checks_and_counts_what_is_left() {
        let mut wheel = CheckQueue::default();
        for slot in 0..10 {
            wheel.push(check(i64::from(slot) * TICK_US, slot, 0));
        }
        wheel.retain(|c| c.slot % 2 == 0);
        assert_eq!(wheel.len(), 5);
        let mut due = Vec::new();
        wheel.take_due(100 * TICK_US, &mut due);
        let slots: Vec<u32> = due.iter().map(|c| c.slot).collect();
        assert_eq!(slots, vec![0, 2, 4, 6, 8]);
    }
}
