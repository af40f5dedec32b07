// SPDX-License-Identifier: AGPL-3.0-or-later
//! Episodes: what each rule has counted per offender, in a table of bounded size.
//!
//! An episode starts at an offender's first counted event and lasts while events keep coming
//! within the rule's window of each other. It fires once when its count in a window reaches
//! the threshold, then sums up what came since every window while it goes on: one alert, then
//! one a window, never one per packet.

use std::net::SocketAddr;

use hashbrown::HashMap;
use smallvec::SmallVec;

use super::rules::{Rule, RuleKind};
use crate::packet::Timestamp;

/// Whom an episode is about: a rule, an offender (an address or an account, as a number)
/// and, for rules counting per user, the user's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subject {
    /// The rule counting.
    pub rule: RuleKind,
    /// The source address (IPv4 mapped into IPv6) or the account's hash.
    pub who: u128,
    /// The user's hash, or 0.
    pub user: u64,
}

/// What one event adds to an episode.
#[derive(Clone, Copy, Debug)]
pub enum Measure {
    /// One more event.
    Count,
    /// One more event about this user; the count is of distinct users.
    Distinct(u64),
    /// The count is this level now (calls up at once; seconds of a call).
    Level(u64),
}

/// Where an event of an episode went: the offender and the party attacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parties {
    /// The offender's address.
    pub offender: SocketAddr,
    /// The address of the party it addressed.
    pub target: SocketAddr,
}

/// An alert an episode gives: the count it reports and the episode's span so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The count: in the window that fired, or since the last alert for a summary.
    pub count: u64,
    /// When the episode began.
    pub first_seen: Timestamp,
    /// Its latest event.
    pub last_seen: Timestamp,
    /// Whether this sums up an attack already reported.
    pub repeat: bool,
    /// The latest event's parties.
    pub parties: Parties,
}

/// One offender's episode under one rule, in 64 bytes: a table of them is walked per
/// message, so what only attacks need (the users seen, the parties to name in a summary)
/// is boxed, allocated once per episode that needs it.
#[derive(Debug)]
struct Episode {
    window_start: Timestamp,
    first_seen: Timestamp,
    last_seen: Timestamp,
    /// When the last alert was given; `Timestamp::MIN` before the first.
    alerted: Timestamp,
    window_secs: u32,
    threshold: u32,
    count: u32,
    since_alert: u32,
    /// The distinct users seen in this window, for rules that count users.
    users: Option<Box<SmallVec<[u64; 8]>>>,
    /// The latest event's parties, kept once the episode has fired.
    parties: Option<Box<Parties>>,
}

const _: () = assert!(size_of::<Episode>() == 64, "an episode fits a cache line");

impl Episode {
    fn new(rule: &Rule, now: Timestamp) -> Self {
        Self {
            window_start: now,
            first_seen: now,
            last_seen: now,
            alerted: Timestamp::MIN,
            window_secs: rule.window_secs,
            threshold: rule.threshold,
            count: 0,
            since_alert: 0,
            users: None,
            parties: None,
        }
    }

    fn window_us(&self) -> i64 {
        i64::from(self.window_secs) * 1_000_000
    }

    fn expired(&self, now: Timestamp) -> bool {
        now.micros_since(self.last_seen) > self.window_us()
    }

    fn add(&mut self, now: Timestamp, measure: Measure, parties: Parties) -> Option<Fired> {
        if now.micros_since(self.window_start) > self.window_us() {
            self.window_start = now;
            self.count = 0;
            if let Some(users) = &mut self.users {
                users.clear();
            }
        }
        self.count = match measure {
            Measure::Count => self.count.saturating_add(1),
            Measure::Distinct(user) => {
                let users = self.users.get_or_insert_with(Default::default);
                // Distinct users are remembered only up to the threshold: that many fire.
                if !users.contains(&user) && users.len() < self.threshold as usize {
                    users.push(user);
                }
                users.len() as u32
            }
            Measure::Level(level) => u32::try_from(level).unwrap_or(u32::MAX),
        };
        self.last_seen = self.last_seen.max(now);
        self.since_alert = self.since_alert.saturating_add(1);
        if let Some(kept) = &mut self.parties {
            **kept = parties;
        }
        let fired = |repeat, count, e: &Self| Fired {
            count: u64::from(count),
            first_seen: e.first_seen,
            last_seen: e.last_seen,
            repeat,
            parties,
        };
        if self.alerted == Timestamp::MIN {
            if self.count < self.threshold {
                return None;
            }
            self.alerted = now;
            self.since_alert = 0;
            self.parties = Some(Box::new(parties));
            return Some(fired(false, self.count, self));
        }
        if now.micros_since(self.alerted) < self.window_us() {
            return None;
        }
        let count = self.since_alert;
        self.alerted = now;
        self.since_alert = 0;
        Some(fired(true, count, self))
    }

    /// The summary still owed at the end of a run: events since the last alert.
    fn owed(&self) -> Option<Fired> {
        let parties = self.parties.as_deref()?;
        (self.since_alert > 0).then_some(Fired {
            count: u64::from(self.since_alert),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            repeat: true,
            parties: *parties,
        })
    }
}

/// Every episode going on, at most `capacity`; offenders beyond it are not followed (and
/// counted) until episodes that ended make room.
#[derive(Debug)]
pub struct Episodes {
    table: HashMap<Subject, Episode, foldhash::fast::FixedState>,
    capacity: usize,
    last_sweep: Timestamp,
    /// Offenders not followed because the table was full.
    pub overflow: u64,
}

impl Episodes {
    /// A table for at most `capacity` episodes.
    pub fn new(capacity: usize) -> Self {
        Self {
            table: HashMap::with_hasher(foldhash::fast::FixedState::default()),
            capacity,
            last_sweep: Timestamp::MIN,
            overflow: 0,
        }
    }

    /// Adds an event to `subject`'s episode (starting one if none goes on); what it fires.
    pub fn add(
        &mut self,
        rule: &Rule,
        subject: Subject,
        now: Timestamp,
        measure: Measure,
        parties: Parties,
    ) -> Option<Fired> {
        if !self.table.contains_key(&subject) && !self.make_room(now) {
            self.overflow += 1;
            return None;
        }
        let episode = self
            .table
            .entry(subject)
            .or_insert_with(|| Episode::new(rule, now));
        if episode.expired(now) {
            *episode = Episode::new(rule, now);
        }
        episode.add(now, measure, parties)
    }

    /// The count of `subject`'s episode in its current window (0 when none goes on).
    pub fn count(&self, subject: &Subject) -> u64 {
        self.table.get(subject).map_or(0, |e| u64::from(e.count))
    }

    /// Ends `subject`'s episode (the offender did something that clears it).
    pub fn end(&mut self, subject: &Subject) {
        self.table.remove(subject);
    }

    /// Episodes going on.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no episode goes on.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The summaries still owed at the end of a run, with their subjects.
    pub fn owed(&self) -> impl Iterator<Item = (Subject, Fired)> + '_ {
        self.table
            .iter()
            .filter_map(|(subject, e)| Some((*subject, e.owed()?)))
    }

    /// Whether a new episode fits: when full, ended episodes are dropped, at most once a
    /// second of capture time so a flood of new offenders does not sweep at every packet.
    fn make_room(&mut self, now: Timestamp) -> bool {
        if self.table.len() < self.capacity {
            return true;
        }
        if now.micros_since(self.last_sweep) >= 1_000_000 {
            self.last_sweep = now;
            self.table.retain(|_, e| !e.expired(now));
        }
        self.table.len() < self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rules::Rules;

    fn at(secs: f64) -> Timestamp {
        Timestamp((secs * 1e6) as i64)
    }

    fn parties() -> Parties {
        Parties {
            offender: "192.0.2.1:5060".parse().expect("address"),
            target: "198.51.100.1:5060".parse().expect("address"),
        }
    }

    fn subject(who: u128) -> Subject {
        Subject {
            rule: RuleKind::InviteFlood,
            who,
            user: 0,
        }
    }

    #[test]
    fn fires_once_at_the_threshold_then_sums_up_each_window() {
        let rules = Rules::default();
        let rule = rules.get(RuleKind::InviteFlood); // 500 in 10 s
        let mut episodes = Episodes::new(16);
        let mut fired = Vec::new();
        // 100 a second for 25 s.
        for n in 0..2500 {
            let now = at(f64::from(n) / 100.0);
            if let Some(f) = episodes.add(rule, subject(1), now, Measure::Count, parties()) {
                fired.push((now, f.count, f.repeat));
            }
        }
        assert_eq!(
            fired,
            [
                (at(4.99), 500, false),
                (at(14.99), 1000, true),
                (at(24.99), 1000, true)
            ]
        );
        // Nothing owed: the last summary came with the last event.
        assert_eq!(episodes.owed().count(), 0);
        // After a quiet window the episode is over and fires afresh.
        let later = episodes.add(rule, subject(1), at(40.0), Measure::Count, parties());
        assert!(later.is_none());
        assert_eq!(episodes.count(&subject(1)), 1);
    }

    #[test]
    fn distinct_users_count_once_and_a_full_table_counts_the_overflow() {
        let rules = Rules::default();
        let rule = rules.get(RuleKind::Enumeration); // 20 users in 60 s
        let mut episodes = Episodes::new(2);
        let enumeration = |who| Subject {
            rule: RuleKind::Enumeration,
            ..subject(who)
        };
        for n in 0..100u64 {
            let fired = episodes.add(
                rule,
                enumeration(1),
                at(n as f64 / 10.0),
                Measure::Distinct(n % 19),
                parties(),
            );
            assert!(fired.is_none(), "19 users are not 20");
        }
        let fired = episodes.add(
            rule,
            enumeration(1),
            at(10.0),
            Measure::Distinct(99),
            parties(),
        );
        assert_eq!(fired.map(|f| f.count), Some(20));

        // A million spoofed sources: the table stays at its bound and counts the rest.
        for who in 0..1_000_000u128 {
            episodes.add(
                rule,
                enumeration(who + 10),
                at(11.0),
                Measure::Count,
                parties(),
            );
        }
        assert_eq!(episodes.len(), 2);
        assert_eq!(episodes.overflow, 999_999);
    }
}
