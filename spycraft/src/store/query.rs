// SPDX-License-Identifier: AGPL-3.0-or-later
//! A search over call records: what `/api/v1/calls` takes, checked once, then matched against
//! each record and paged by key.
//!
//! Paging is by keyset, not offset: a cursor names the last row's sort key and record id, so
//! records arriving between two pages neither repeat a row nor skip one.

use std::cmp::Ordering;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use uuid::Uuid;

use crate::call::{CallRecord, Direction, Disposition, Timestamp};
use crate::monitor::PeerGroups;

/// Most rows one page may ask for.
pub const MAX_LIMIT: usize = 10_000;
/// Rows a page has when it does not say.
pub const DEFAULT_LIMIT: usize = 100;
/// Longest `q` pattern taken.
const MAX_PATTERN: usize = 256;

/// Why a search was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// A parameter's value is not one it takes.
    #[error("{name}: {why}")]
    Bad {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The search ran past its time.
    #[error("the search took longer than {0} ms; narrow it (a shorter time range, a longer number prefix)")]
    Timeout(u64),
}

fn bad(name: &'static str, why: impl Into<String>) -> QueryError {
    QueryError::Bad {
        name,
        why: why.into(),
    }
}

/// The parameters of a search as they arrive (all text, all optional).
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Calls whose INVITE came at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Calls whose INVITE came before this time (RFC 3339).
    pub to: Option<String>,
    /// A number or user (a prefix of the From or To user), or with a `:` or `@` a URI (a
    /// prefix of the From, To or Request-URI); with `*` wildcards, a pattern matched against
    /// the whole of one.
    pub q: Option<String>,
    /// Exactly this Call-ID.
    pub call_id: Option<String>,
    /// One disposition, or several separated by commas (answered, busy, no_answer,
    /// cancelled, congestion, failed).
    #[param(
        pattern = "^((answered|busy|no_answer|cancelled|congestion|failed)(,(answered|busy|no_answer|cancelled|congestion|failed))*)?$"
    )]
    pub disposition: Option<String>,
    /// Records of this sensor node.
    pub node: Option<String>,
    /// inbound, outbound, internal, transit or unknown.
    #[param(pattern = "^(inbound|outbound|internal|transit|unknown)?$")]
    pub direction: Option<String>,
    /// A peer: an address, a network (CIDR) or a peer group's name; a call matches when
    /// its caller or callee is in it.
    pub peer: Option<String>,
    /// Calls billed at least this long (ms).
    pub min_billable_ms: Option<u64>,
    /// `-invite_at` (newest first, the default), `invite_at`, `-billable_ms` or
    /// `billable_ms`.
    #[param(pattern = "^(-?(invite_at|billable_ms))?$")]
    pub sort: Option<String>,
    /// Rows per page (at most 10,000; 100 when not said).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
    /// `json` (the default) or `csv`.
    #[param(pattern = "^(json|csv)?$")]
    pub format: Option<String>,
}

/// What rows are ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// When the INVITE was seen.
    InviteAt,
    /// Billable time.
    BillableMs,
}

/// An order of rows: a key, and which way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    /// The key.
    pub key: SortKey,
    /// Largest first.
    pub descending: bool,
}

impl Sort {
    fn parse(text: &str) -> Result<Self, QueryError> {
        let (descending, name) = match text.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, text),
        };
        let key = match name {
            "invite_at" => SortKey::InviteAt,
            "billable_ms" => SortKey::BillableMs,
            _ => {
                return Err(bad(
                    "sort",
                    "takes invite_at or billable_ms, with - for largest first",
                ))
            }
        };
        Ok(Self { key, descending })
    }

    fn name(self) -> &'static str {
        match (self.key, self.descending) {
            (SortKey::InviteAt, true) => "-invite_at",
            (SortKey::InviteAt, false) => "invite_at",
            (SortKey::BillableMs, true) => "-billable_ms",
            (SortKey::BillableMs, false) => "billable_ms",
        }
    }

    /// The record's value of the key.
    pub fn value_of(self, r: &CallRecord) -> i64 {
        match self.key {
            SortKey::InviteAt => r.invite_at.micros(),
            SortKey::BillableMs => r.billable_ms.map_or(0, |ms| ms as i64),
        }
    }

    /// The order of two rows: by the key, then by record id, so every row has its place.
    pub fn compare(self, a: (i64, Uuid), b: (i64, Uuid)) -> Ordering {
        let order = a.cmp(&b);
        if self.descending {
            order.reverse()
        } else {
            order
        }
    }
}

/// Where the page before ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The last row's key.
    pub value: i64,
    /// And its record id.
    pub id: Uuid,
}

impl Cursor {
    /// The cursor's text: the sort, the key and the id, so a cursor taken under one sort
    /// cannot be used under another.
    pub fn encode(self, sort: Sort) -> String {
        format!("{}~{}~{}", sort.name(), self.value, self.id.simple())
    }

    fn decode(text: &str, sort: Sort) -> Result<Self, QueryError> {
        let wrong = || bad("cursor", "is not a cursor this search gave");
        let mut parts = text.splitn(3, '~');
        let (Some(name), Some(value), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(wrong());
        };
        if name != sort.name() {
            return Err(bad("cursor", "was given under another sort"));
        }
        Ok(Self {
            value: value.parse().map_err(|_| wrong())?,
            id: Uuid::try_parse(id).map_err(|_| wrong())?,
        })
    }
}

/// An RFC 3339 time parameter (absent or empty: none).
pub fn parse_time(name: &'static str, text: Option<&str>) -> Result<Option<Timestamp>, QueryError> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            Timestamp::parse_rfc3339(t)
                .ok_or_else(|| bad(name, "is not an RFC 3339 time (2026-12-03T10:00:00Z)"))
        })
        .transpose()
}

/// A `q` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Text a field starts with (ASCII case ignored).
    Prefix(String),
    /// Pieces between `*`s, matched against the whole field (ASCII case ignored).
    Wildcard(Vec<String>),
}

impl Pattern {
    fn parse(text: &str) -> Result<Self, QueryError> {
        if text.is_empty() {
            return Err(bad("q", "is empty"));
        }
        if text.len() > MAX_PATTERN {
            return Err(bad("q", format!("is longer than {MAX_PATTERN} bytes")));
        }
        let lower = text.to_ascii_lowercase();
        if lower.contains('*') {
            Ok(Self::Wildcard(
                lower.split('*').map(str::to_owned).collect(),
            ))
        } else {
            Ok(Self::Prefix(lower))
        }
    }

    /// Whether `field` matches.
    pub fn matches(&self, field: &str) -> bool {
        match self {
            Self::Prefix(p) => {
                field.len() >= p.len()
                    && field.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            }
            Self::Wildcard(pieces) => wildcard(pieces, field),
        }
    }

    /// Whether it names a URI (has a `:` or an `@`): matched against the From, To and
    /// Request-URIs; otherwise a number or user, matched against the From and To users.
    pub fn is_uri(&self) -> bool {
        let uri_like = |s: &str| s.contains([':', '@']);
        match self {
            Self::Prefix(p) => uri_like(p),
            Self::Wildcard(pieces) => pieces.iter().any(|p| uri_like(p)),
        }
    }
}

/// Whether `field` is `pieces` joined by runs of any characters (the first piece at the
/// start, the last at the end). Greedy from the left, which is exact for `*` patterns.
fn wildcard(pieces: &[String], field: &str) -> bool {
    let field = field.to_ascii_lowercase();
    let Some((first, rest)) = pieces.split_first() else {
        return true;
    };
    let Some(mut tail) = field.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return tail.is_empty();
    };
    for piece in middle {
        match tail.find(piece.as_str()) {
            Some(at) => tail = &tail[at + piece.len()..],
            None => return false,
        }
    }
    tail.len() >= last.len() && tail.ends_with(last.as_str())
}

/// A peer a search names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerFilter {
    /// Addresses of a network (one address is a /32 or /128).
    Net(IpNet),
    /// The networks of a named peer group.
    Group(Vec<IpNet>),
}

impl PeerFilter {
    fn contains(&self, ip: IpAddr) -> bool {
        match self {
            Self::Net(net) => net.contains(&ip),
            Self::Group(nets) => nets.iter().any(|n| n.contains(&ip)),
        }
    }
}

/// A checked search.
#[derive(Clone, Debug)]
pub struct CallQuery {
    /// INVITE at or after.
    pub from: Option<Timestamp>,
    /// INVITE before.
    pub to: Option<Timestamp>,
    /// Number, user or URI.
    pub q: Option<Pattern>,
    /// Exactly this Call-ID.
    pub call_id: Option<String>,
    /// Any of these dispositions (empty: any).
    pub dispositions: Vec<Disposition>,
    /// This node.
    pub node: Option<String>,
    /// This direction.
    pub direction: Option<Direction>,
    /// This peer.
    pub peer: Option<PeerFilter>,
    /// Billed at least this long.
    pub min_billable_ms: Option<u64>,
    /// The order of the rows.
    pub sort: Sort,
    /// Rows per page.
    pub limit: usize,
    /// Where the page before ended.
    pub after: Option<Cursor>,
}

impl CallQuery {
    /// Checks `params`; peer group names are looked up in `groups`.
    pub fn parse(params: &SearchParams, groups: &PeerGroups) -> Result<Self, QueryError> {
        let sort = match params.sort.as_deref() {
            None | Some("") => Sort {
                key: SortKey::InviteAt,
                descending: true,
            },
            Some(text) => Sort::parse(text)?,
        };
        let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(bad("limit", format!("must be 1 to {MAX_LIMIT}")));
        }
        let dispositions = match params.disposition.as_deref() {
            None | Some("") => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|name| {
                    Disposition::ALL
                        .into_iter()
                        .find(|d| d.as_str() == name.trim())
                        .ok_or_else(|| bad("disposition", format!("{name:?} is not one")))
                })
                .collect::<Result<_, _>>()?,
        };
        let direction = params
            .direction
            .as_deref()
            .filter(|name| !name.is_empty())
            .map(|name| {
                Direction::ALL
                    .into_iter()
                    .find(|d| d.as_str() == name)
                    .ok_or_else(|| bad("direction", format!("{name:?} is not one")))
            })
            .transpose()?;
        let peer = params
            .peer
            .as_deref()
            .map(|text| peer_filter(text, groups))
            .transpose()?;
        Ok(Self {
            from: parse_time("from", params.from.as_deref())?,
            to: parse_time("to", params.to.as_deref())?,
            q: params.q.as_deref().map(Pattern::parse).transpose()?,
            call_id: params.call_id.clone().filter(|c| !c.is_empty()),
            dispositions,
            node: params.node.clone().filter(|n| !n.is_empty()),
            direction,
            peer,
            min_billable_ms: match params.min_billable_ms {
                Some(ms) if ms > i64::MAX as u64 => {
                    return Err(bad("min_billable_ms", "is past any duration".to_owned()))
                }
                ms => ms,
            },
            sort,
            limit,
            after: params
                .cursor
                .as_deref()
                .filter(|c| !c.is_empty())
                .map(|c| Cursor::decode(c, sort))
                .transpose()?,
        })
    }

    /// Whether `r` is one of the calls asked for (paging aside).
    pub fn matches(&self, r: &CallRecord) -> bool {
        self.from.is_none_or(|t| r.invite_at >= t)
            && self.to.is_none_or(|t| r.invite_at < t)
            && self.call_id.as_deref().is_none_or(|c| r.call_id == c)
            && (self.dispositions.is_empty() || self.dispositions.contains(&r.disposition))
            && self.node.as_deref().is_none_or(|n| r.node == n)
            && self.direction.is_none_or(|d| r.direction == d)
            && self
                .min_billable_ms
                .is_none_or(|ms| r.billable_ms.unwrap_or(0) >= ms)
            && self
                .peer
                .as_ref()
                .is_none_or(|p| p.contains(r.caller_ip) || p.contains(r.callee_ip))
            && self.q.as_ref().is_none_or(|q| matches_parties(q, r))
    }

    /// The number or user prefix asked for, lower-case, when `q` is one (no `*`, no URI).
    pub fn user_prefix(&self) -> Option<&[u8]> {
        match &self.q {
            Some(p @ Pattern::Prefix(text)) if !p.is_uri() => Some(text.as_bytes()),
            _ => None,
        }
    }

    /// Whether `r` comes after the cursor, in this query's order.
    pub fn after_cursor(&self, r: &CallRecord) -> bool {
        self.after.is_none_or(|c| {
            self.sort
                .compare((self.sort.value_of(r), r.id), (c.value, c.id))
                == Ordering::Greater
        })
    }
}

/// Whether a party of `r` matches `q`: its URIs for a URI, else its users.
fn matches_parties(q: &Pattern, r: &CallRecord) -> bool {
    if q.is_uri() {
        [
            r.from_uri.as_str(),
            r.to_uri.as_str(),
            r.request_uri.as_str(),
        ]
        .into_iter()
        .any(|field| q.matches(field))
    } else {
        [r.from_user.as_deref(), r.to_user.as_deref()]
            .into_iter()
            .flatten()
            .any(|field| q.matches(field))
    }
}

fn peer_filter(text: &str, groups: &PeerGroups) -> Result<PeerFilter, QueryError> {
    if let Some(group) = groups.get(text) {
        return Ok(PeerFilter::Group(group.cidrs.clone()));
    }
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(PeerFilter::Net(net));
    }
    text.parse::<IpAddr>()
        .map(|ip| PeerFilter::Net(IpNet::from(ip)))
        .map_err(|_| {
            bad(
                "peer",
                "is not an address, a network or a peer group's name",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_the_whole_field_and_prefixes_its_start() {
        let p = |t: &str| Pattern::parse(t).expect("a pattern");
        assert!(p("4930").matches("493012345"));
        assert!(!p("4930").matches("14930"));
        assert!(p("*123*").matches("sip:0123@x"));
        assert!(p("49*5").matches("49305"));
        assert!(!p("49*5").matches("493056"));
        assert!(p("a*b*c").matches("AxxBxxC"));
        assert!(!p("a*b*c").matches("acb"));
        assert!(p("*").matches(""));
        assert!(p("ab*").matches("ab"));
        assert!(!p("ab*ab").matches("ab"), "pieces may not overlap");
        assert!(p("sip:*@pbx").is_uri() && p("@pbx").is_uri() && !p("4930*").is_uri());
    }

    #[test]
    fn cursors_round_trip_and_are_tied_to_their_sort() {
        let sort = Sort::parse("-billable_ms").expect("sort");
        let c = Cursor {
            value: -5,
            id: Uuid::from_u128(7),
        };
        assert_eq!(Cursor::decode(&c.encode(sort), sort), Ok(c));
        let other = Sort::parse("invite_at").expect("sort");
        assert!(Cursor::decode(&c.encode(sort), other).is_err());
        assert!(Cursor::decode("x~y", sort).is_err());
    }

    #[test]
    fn bad_parameters_are_named() {
        let groups = PeerGroups::default();
        let params = |f: &dyn Fn(&mut SearchParams)| {
            let mut p = SearchParams::default();
            f(&mut p);
            CallQuery::parse(&p, &groups)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(params(&|p| p.limit = Some(10_001))
            .unwrap_err()
            .starts_with("limit"));
        assert!(params(&|p| p.from = Some("yesterday".into()))
            .unwrap_err()
            .starts_with("from"));
        assert!(params(&|p| p.disposition = Some("answered,maybe".into()))
            .unwrap_err()
            .starts_with("disposition"));
        assert!(params(&|p| p.peer = Some("nowhere".into()))
            .unwrap_err()
            .starts_with("peer"));
        assert_eq!(params(&|p| p.peer = Some("10.0.0.0/8".into())), Ok(()));
    }
}
