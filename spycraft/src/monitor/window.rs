// SPDX-License-Identifier: AGPL-3.0-or-later
//! Attempts counted per minute of capture time, summed over the last minutes on demand: the
//! ratios over a 5-minute and a 1-hour window without keeping any call.

use crate::stats::Attempts;

/// Minutes kept: the longest window.
const MINUTES: usize = 60;

/// The attempts of each of the last [`MINUTES`] minutes.
#[derive(Clone, Debug)]
pub struct MinuteWindow {
    /// (minute since the epoch, its attempts), at `minute % MINUTES`.
    slots: [(i64, Attempts); MINUTES],
}

impl Default for MinuteWindow {
    fn default() -> Self {
        Self {
            slots: [(i64::MIN, Attempts::default()); MINUTES],
        }
    }
}

impl MinuteWindow {
    /// Counts `attempts` in `minute`. A minute older than the window is not counted.
    pub fn add(&mut self, minute: i64, attempts: &Attempts) {
        let slot = &mut self.slots[minute.rem_euclid(MINUTES as i64) as usize];
        if slot.0 != minute {
            if slot.0 > minute {
                return;
            }
            *slot = (minute, Attempts::default());
        }
        slot.1.add(attempts);
    }

    /// The attempts of the `span` minutes up to and including `now`.
    pub fn sum(&self, now: i64, span: usize) -> Attempts {
        let span = span.min(MINUTES) as i64;
        let mut total = Attempts::default();
        for (minute, attempts) in &self.slots {
            if *minute <= now && *minute > now - span {
                total.add(attempts);
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(n: u64) -> Attempts {
        Attempts {
            attempts: n,
            answered: n,
            ..Attempts::default()
        }
    }

    #[test]
    fn sums_only_the_minutes_inside_the_span() {
        let mut w = MinuteWindow::default();
        w.add(100, &answered(1));
        w.add(104, &answered(2));
        w.add(105, &answered(4));
        assert_eq!(w.sum(105, 5).attempts, 6, "minutes 101..=105");
        assert_eq!(w.sum(105, 60).attempts, 7);
        assert_eq!(w.sum(200, 60).attempts, 0, "all of it has aged out");
    }

    #[test]
    fn a_slot_reused_an_hour_later_starts_afresh_and_late_minutes_are_not_counted() {
        let mut w = MinuteWindow::default();
        w.add(10, &answered(3));
        w.add(70, &answered(1));
        assert_eq!(w.sum(70, 60).attempts, 1);
        w.add(10, &answered(5));
        assert_eq!(w.sum(70, 60).attempts, 1, "minute 10 is past the window");
    }
}
