// SPDX-License-Identifier: AGPL-3.0-or-later
//! The records and live calls a sensor keeps in memory for its web API and pages: the most
//! recent records (a bound, oldest dropped first and counted), the calls in progress as the
//! pipeline last listed them, and the events between two listings.
//!
//! The pipeline writes here once per record and twice a second for the live calls; the HTTP
//! server reads. A search holds the read lock only while it filters, then selects, sorts and
//! pages what it took outside it, so a record waits at most one filtering pass.

pub mod history;
pub mod kept;
pub mod messages;
pub mod query;
pub mod recent;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::call::{CallRecord, LiveCall, LiveState};
use crate::pipeline::{RunObserver, Summary};
use crate::sink::OutputReport;

pub use query::{CallQuery, Cursor, QueryError, SearchParams, Sort, SortKey};

/// Records a sensor keeps when not told (`--keep-records`).
pub const DEFAULT_KEEP_RECORDS: usize = 100_000;
/// MiB of SIP messages a live sensor keeps for its call pages unless told otherwise.
pub const DEFAULT_KEEP_MESSAGES_MB: usize = 64;
/// Calls in progress listed at most.
pub const MAX_LIVE_LISTED: usize = 10_000;
/// Events held for a slow reader before it misses some (and is told).
const EVENT_BACKLOG: usize = 4096;
/// Records a search checks between looks at the clock.
const CLOCK_EVERY: usize = 4096;

/// Something that happened to a call, as `/api/v1/live/events` sends it. Calls starting,
/// answered and ending are noticed when the pipeline lists the calls in progress (twice a
/// second); a call that starts and ends between two listings shows only as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A call was seen for the first time in progress.
    Started {
        /// The call.
        call: LiveCall,
    },
    /// A call in progress was answered.
    Answered {
        /// The call.
        call: LiveCall,
    },
    /// A call in progress ended (it left the listing).
    Ended {
        /// Its Call-ID.
        call_id: String,
        /// Its From tag.
        from_tag: String,
    },
    /// A call's record was written (once the tracker stops waiting for retransmissions:
    /// 32 s after a BYE).
    Recorded {
        /// Its record id.
        #[schema(value_type = String)]
        id: Uuid,
        /// Its Call-ID.
        call_id: String,
        /// Its From tag.
        from_tag: String,
        /// How it ended.
        disposition: &'static str,
    },
}

/// The calls in progress.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct LiveBoard {
    /// Call legs open in the tracker (also those past the listing's bound).
    pub open_legs: u64,
    /// The calls, oldest first (at most 10,000).
    pub calls: Vec<LiveCall>,
}

/// The records and live calls kept for the web API.
#[derive(Debug)]
pub struct RecordStore {
    keep: usize,
    records: RwLock<Records>,
    live: RwLock<LiveBoard>,
    events: broadcast::Sender<LiveEvent>,
}

#[derive(Debug, Default)]
struct Records {
    ring: VecDeque<Arc<CallRecord>>,
    /// The leading bytes of each record's users, in the ring's order: a number search
    /// scans these, in contiguous memory, and looks at a record only when they match.
    users: VecDeque<UserLeads>,
    /// Records dropped to keep the bound.
    dropped: u64,
}

/// Bytes of each user kept beside the ring for number searches.
const LEAD: usize = 22;

/// The first bytes of a user, ASCII lower-cased, and its whole length.
#[derive(Clone, Copy, Debug)]
struct Lead {
    bytes: [u8; LEAD],
    len: u16,
}

impl Lead {
    fn of(user: Option<&str>) -> Self {
        let mut bytes = [0; LEAD];
        let user = user.unwrap_or_default().as_bytes();
        let kept = user.len().min(LEAD);
        bytes[..kept].copy_from_slice(&user[..kept]);
        bytes.make_ascii_lowercase();
        Self {
            bytes,
            len: u16::try_from(user.len()).unwrap_or(u16::MAX),
        }
    }

    /// Whether the user starts with `prefix` (lower-case, at most [`LEAD`] bytes).
    fn starts_with(&self, prefix: &[u8]) -> bool {
        usize::from(self.len) >= prefix.len() && self.bytes[..prefix.len()] == *prefix
    }
}

/// The leads of a record's From and To users.
#[derive(Clone, Copy, Debug)]
struct UserLeads {
    from: Lead,
    to: Lead,
}

impl UserLeads {
    fn of(r: &CallRecord) -> Self {
        Self {
            from: Lead::of(r.from_user.as_deref()),
            to: Lead::of(r.to_user.as_deref()),
        }
    }

    /// Whether either user may start with `prefix`: exact for prefixes of at most
    /// [`LEAD`] bytes, which are all that ask.
    fn may_start_with(&self, prefix: &[u8]) -> bool {
        self.from.starts_with(prefix) || self.to.starts_with(prefix)
    }
}

/// A page of a search.
#[derive(Debug)]
pub struct Page {
    /// The rows, in the query's order.
    pub rows: Vec<Arc<CallRecord>>,
    /// Every record matching the filters (all pages).
    pub total: u64,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// How much the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoreFigures {
    /// Records held now.
    pub records: u64,
    /// Records kept at most.
    pub keep: u64,
    /// Records dropped to keep the bound (the oldest first).
    pub dropped: u64,
}

impl RecordStore {
    /// A store keeping at most `keep` records.
    pub fn new(keep: usize) -> Self {
        Self {
            keep: keep.max(1),
            records: RwLock::new(Records::default()),
            live: RwLock::new(LiveBoard::default()),
            events: broadcast::channel(EVENT_BACKLOG).0,
        }
    }

    /// Adds a record, dropping the oldest beyond the bound.
    pub fn push(&self, record: CallRecord) {
        let event = LiveEvent::Recorded {
            id: record.id,
            call_id: record.call_id.clone(),
            from_tag: record.from_tag.clone(),
            disposition: record.disposition.as_str(),
        };
        {
            let mut records = write(&self.records);
            if records.ring.len() >= self.keep {
                records.ring.pop_front();
                records.users.pop_front();
                records.dropped += 1;
            }
            records.users.push_back(UserLeads::of(&record));
            records.ring.push_back(Arc::new(record));
        }
        // No receiver is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    /// How much it holds.
    pub fn figures(&self) -> StoreFigures {
        let records = read(&self.records);
        StoreFigures {
            records: records.ring.len() as u64,
            keep: self.keep as u64,
            dropped: records.dropped,
        }
    }

    /// The page of records `query` asks for; gives up with [`QueryError::Timeout`] past
    /// `budget`.
    pub fn search(&self, query: &CallQuery, budget: Duration) -> Result<Page, QueryError> {
        let started = Instant::now();
        let mut total = 0u64;
        let mut rows: Vec<Arc<CallRecord>> = Vec::new();
        {
            let records = read(&self.records);
            let user_prefix = query.user_prefix().filter(|p| p.len() <= LEAD);
            for (n, (r, users)) in records.ring.iter().zip(&records.users).enumerate() {
                if n % CLOCK_EVERY == CLOCK_EVERY - 1 && started.elapsed() > budget {
                    return Err(QueryError::Timeout(budget.as_millis() as u64));
                }
                if user_prefix.is_some_and(|p| !users.may_start_with(p)) {
                    continue;
                }
                if !query.matches(r) {
                    continue;
                }
                total += 1;
                if query.after_cursor(r) {
                    rows.push(r.clone());
                }
            }
        }
        // At least once, even for the smallest store: a zero budget refuses every search.
        if started.elapsed() >= budget {
            return Err(QueryError::Timeout(budget.as_millis() as u64));
        }
        let sort = query.sort;
        let key = |r: &CallRecord| (sort.value_of(r), r.id);
        // Only the page's rows need their order: select them, then sort those.
        if rows.len() > query.limit {
            rows.select_nth_unstable_by(query.limit, |a, b| sort.compare(key(a), key(b)));
            rows.truncate(query.limit + 1);
        }
        rows.sort_unstable_by(|a, b| sort.compare(key(a), key(b)));
        let next = if rows.len() > query.limit {
            rows.truncate(query.limit);
            rows.last().map(|r| Cursor {
                value: sort.value_of(r),
                id: r.id,
            })
        } else {
            None
        };
        Ok(Page { rows, total, next })
    }

    /// Every record held, oldest first, that `keep` says yes to.
    pub fn select(&self, keep: impl Fn(&CallRecord) -> bool) -> Vec<Arc<CallRecord>> {
        read(&self.records)
            .ring
            .iter()
            .filter(|r| keep(r))
            .cloned()
            .collect()
    }

    /// The latest INVITE time of the records held.
    pub fn newest_invite(&self) -> Option<crate::call::Timestamp> {
        read(&self.records).ring.iter().map(|r| r.invite_at).max()
    }

    /// The record with this id.
    pub fn get(&self, id: Uuid) -> Option<Arc<CallRecord>> {
        read(&self.records)
            .ring
            .iter()
            .rev()
            .find(|r| r.id == id)
            .cloned()
    }

    /// The legs of one call: every record sharing `collation_id`, in INVITE order.
    pub fn legs(&self, collation_id: &str) -> Vec<Arc<CallRecord>> {
        let mut legs = self.select(|r| r.collation_id == collation_id);
        legs.sort_by_key(|r| (r.invite_at, r.id));
        legs
    }

    /// The calls in progress as last listed.
    pub fn live(&self) -> LiveBoard {
        read(&self.live).clone()
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.events.subscribe()
    }

    /// Replaces the live listing with `calls`, sending an event for each call new since the
    /// last listing and each one answered since.
    fn relist(&self, calls: &[LiveCall], open_legs: u64) {
        let mut live = write(&self.live);
        let before: HashMap<(&str, &str), LiveState> = live
            .calls
            .iter()
            .map(|c| ((c.call_id.as_str(), c.from_tag.as_str()), c.state))
            .collect();
        let up = |state: LiveState| matches!(state, LiveState::Answered | LiveState::Held);
        for call in calls {
            let was = before.get(&(call.call_id.as_str(), call.from_tag.as_str()));
            if was.is_none() {
                let _ = self.events.send(LiveEvent::Started { call: call.clone() });
            }
            // Answered since the last listing (or before it was first listed).
            if up(call.state) && !was.is_some_and(|&s| up(s)) {
                let _ = self.events.send(LiveEvent::Answered { call: call.clone() });
            }
        }
        let now: HashSet<(&str, &str)> = calls
            .iter()
            .map(|c| (c.call_id.as_str(), c.from_tag.as_str()))
            .collect();
        for gone in live
            .calls
            .iter()
            .filter(|c| !now.contains(&(c.call_id.as_str(), c.from_tag.as_str())))
        {
            let _ = self.events.send(LiveEvent::Ended {
                call_id: gone.call_id.clone(),
                from_tag: gone.from_tag.clone(),
            });
        }
        live.calls.clear();
        live.calls.extend_from_slice(calls);
        live.open_legs = open_legs;
    }
}

/// The pipeline hands the store each record and, at its checkpoints, the calls in progress.
#[derive(Debug)]
pub struct StoreObserver {
    store: Arc<RecordStore>,
    open_legs: std::sync::atomic::AtomicU64,
}

impl StoreObserver {
    /// An observer filling `store`.
    pub fn new(store: Arc<RecordStore>) -> Self {
        Self {
            store,
            open_legs: Default::default(),
        }
    }
}

impl RunObserver for StoreObserver {
    fn record(&self, record: &CallRecord) {
        self.store.push(record.clone());
    }

    fn snapshot(&self, _summary: &Summary, live_legs: usize, _outputs: Vec<OutputReport>) {
        self.open_legs
            .store(live_legs as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn live_calls_wanted(&self) -> usize {
        MAX_LIVE_LISTED
    }

    fn live_calls(&self, calls: &[LiveCall]) {
        let open = self.open_legs.load(std::sync::atomic::Ordering::Relaxed);
        self.store.relist(calls, open);
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Timestamp;

    fn record(n: u128) -> CallRecord {
        let line = include_str!("../../../pcaps/answered-caller-bye/expected.jsonl");
        let mut r: CallRecord = serde_json::from_str(line.trim()).expect("a record");
        r.id = Uuid::from_u128(n);
        // Pairs of calls share an INVITE time: the id decides their order.
        r.invite_at = Timestamp(1_000_000 * (n as i64 / 2));
        r
    }

    fn query(cursor: Option<String>) -> CallQuery {
        let params = SearchParams {
            limit: Some(3),
            cursor,
            ..SearchParams::default()
        };
        CallQuery::parse(&params, &Default::default()).expect("a query")
    }

    #[test]
    fn pages_neither_repeat_nor_skip_while_records_arrive() {
        let store = RecordStore::new(1000);
        (0..10).for_each(|n| store.push(record(n)));
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut arriving = 100..;
        loop {
            let q = query(cursor);
            let page = store.search(&q, Duration::from_secs(10)).expect("a page");
            seen.extend(page.rows.iter().map(|r| r.id.as_u128()));
            // Newer calls arrive between pages: they sort before the cursor (newest
            // first) and do not disturb the pages still to come.
            store.push(record(arriving.next().expect("more")));
            match page.next {
                Some(next) => cursor = Some(next.encode(q.sort)),
                None => break,
            }
        }
        assert_eq!(seen, (0..10).rev().collect::<Vec<_>>());
    }

    #[test]
    fn the_bound_drops_the_oldest_and_counts_them() {
        let store = RecordStore::new(4);
        (0..6).for_each(|n| store.push(record(n)));
        assert_eq!(
            store.figures(),
            StoreFigures {
                records: 4,
                keep: 4,
                dropped: 2
            }
        );
        assert!(store.get(Uuid::from_u128(1)).is_none());
        assert!(store.get(Uuid::from_u128(5)).is_some());
    }

    #[test]
    fn the_user_leads_find_what_matching_the_records_finds() {
        let store = RecordStore::new(1000);
        let users = [
            Some("4930123456"),
            Some("+4930123"),
            Some("Alice"),
            Some("a-very-long-user-name-beyond-the-lead-bytes"),
            None,
            Some(""),
        ];
        let mut all = Vec::new();
        for (n, from) in users.iter().enumerate() {
            for (m, to) in users.iter().enumerate() {
                let mut r = record((n * 10 + m) as u128);
                r.from_user = from.map(str::to_owned);
                r.to_user = to.map(str::to_owned);
                all.push(r.clone());
                store.push(r);
            }
        }
        for q in [
            "4930",
            "+49",
            "alice",
            "ALI",
            "a-very-long-user-name-beyond",
            "a-very-long-user-name-beyond-the-lead-bytes",
            "a-very-long-user-name-beyond-the-lead-bytesX",
            "x",
        ] {
            let params = SearchParams {
                q: Some(q.into()),
                ..SearchParams::default()
            };
            let query = CallQuery::parse(&params, &Default::default()).expect("a query");
            let page = store
                .search(&query, Duration::from_secs(10))
                .expect("a page");
            let expected = all.iter().filter(|r| query.matches(r)).count();
            assert_eq!(page.total, expected as u64, "{q}");
        }
    }

    #[test]
    fn a_zero_budget_refuses_the_search() {
        let store = RecordStore::new(4);
        store.push(record(1));
        let refused = store.search(&query(None), Duration::ZERO);
        assert!(matches!(refused, Err(QueryError::Timeout(0))));
    }
}
