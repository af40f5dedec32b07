// SPDX-License-Identifier: AGPL-3.0-or-later
//! The CDR contract as flat text columns, for CSV (and any other row-oriented sink).

use std::net::IpAddr;

use uuid::Uuid;

use crate::call::{CallRecord, CaptureIssue, Timestamp};

/// Declares the column names once, and from the same list each name as JSON writes it.
macro_rules! columns {
    ($($name:literal),* $(,)?) => {
        /// Column names, in contract order; identical to the JSON field names.
        pub const COLUMNS: [&str; [$($name),*].len()] = [$($name),*];
        /// Each column's JSON key with the comma before it: `,"name":`. The first column's
        /// is written without its comma.
        pub(crate) const JSON_KEYS: [&str; COLUMNS.len()] = [$(concat!(",\"", $name, "\":")),*];
    };
}

columns![
    "id",
    "node",
    "call_id",
    "from_tag",
    "to_tag",
    "collation_id",
    "from_uri",
    "from_user",
    "to_uri",
    "to_user",
    "request_uri",
    "p_asserted_identity",
    "diversion",
    "caller_ip",
    "caller_port",
    "callee_ip",
    "callee_port",
    "transport",
    "vlan",
    "direction",
    "user_agent",
    "server",
    "invite_at",
    "ring_at",
    "answer_at",
    "end_at",
    "duration_ms",
    "billable_ms",
    "pdd_ms",
    "sdd_ms",
    "setup_ms",
    "hold_ms",
    "forked_dialogs",
    "forked_last_status",
    "transfer_at",
    "transferred_by",
    "transfer_to",
    "transfer_status",
    "referred_by",
    "transferred_from",
    "disposition",
    "final_status",
    "final_reason",
    "q850_cause",
    "ended_by",
    "end_reason",
    "auth_challenges",
    "invite_retransmissions",
    "capture_issues",
    "agent_id",
    "agent_name",
];

/// One value of a record, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Text(&'a str),
    Number(u64),
    Ip(IpAddr),
    Time(Timestamp),
    Id(Uuid),
    Issues(&'a [CaptureIssue]),
}

impl Value<'_> {
    /// Flat text, as CSV writes it: empty for null, capture issues joined with `;`.
    pub fn to_text(self) -> String {
        match self {
            Self::Null => String::new(),
            Self::Text(s) => s.to_owned(),
            Self::Number(n) => n.to_string(),
            Self::Ip(ip) => ip.to_string(),
            Self::Time(t) => t.to_rfc3339(),
            Self::Id(id) => id.to_string(),
            Self::Issues(issues) => issues
                .iter()
                .map(|i| i.as_str())
                .collect::<Vec<_>>()
                .join(";"),
        }
    }
}

fn text(v: &Option<String>) -> Value<'_> {
    v.as_deref().map_or(Value::Null, Value::Text)
}

fn number(v: Option<impl Into<u64>>) -> Value<'static> {
    v.map_or(Value::Null, |n| Value::Number(n.into()))
}

fn time(v: Option<Timestamp>) -> Value<'static> {
    v.map_or(Value::Null, Value::Time)
}

/// Takes a record's values one by one, from [`visit`], each with its place in [`COLUMNS`].
/// Any `FnMut(column, value)` will do; a writer of its own type can mark its method
/// `#[inline(always)]`, which a closure cannot.
pub trait Columns<'r> {
    fn column(&mut self, column: usize, value: Value<'r>);
}

impl<'r, F: FnMut(usize, Value<'r>)> Columns<'r> for F {
    #[inline(always)]
    fn column(&mut self, column: usize, value: Value<'r>) {
        self(column, value)
    }
}

/// Hands each of the record's values, in [`COLUMNS`] order, to `f` with its column number:
/// the one place the row-oriented sinks and the JSON writer take a record apart. One call
/// per column rather than a loop over an array of values, so that once inlined each call
/// knows its value's kind and the writer's choice between kinds disappears.
#[inline(always)]
pub fn visit<'r>(r: &'r CallRecord, f: &mut impl Columns<'r>) {
    f.column(0, Value::Id(r.id));
    f.column(1, Value::Text(&r.node));
    f.column(2, Value::Text(&r.call_id));
    f.column(3, Value::Text(&r.from_tag));
    f.column(4, text(&r.to_tag));
    f.column(5, Value::Text(&r.collation_id));
    f.column(6, Value::Text(&r.from_uri));
    f.column(7, text(&r.from_user));
    f.column(8, Value::Text(&r.to_uri));
    f.column(9, text(&r.to_user));
    f.column(10, Value::Text(&r.request_uri));
    f.column(11, text(&r.p_asserted_identity));
    f.column(12, text(&r.diversion));
    f.column(13, Value::Ip(r.caller_ip));
    f.column(14, Value::Number(r.caller_port.into()));
    f.column(15, Value::Ip(r.callee_ip));
    f.column(16, Value::Number(r.callee_port.into()));
    f.column(17, Value::Text(r.transport.as_str()));
    f.column(18, number(r.vlan));
    f.column(19, Value::Text(r.direction.as_str()));
    f.column(20, text(&r.user_agent));
    f.column(21, text(&r.server));
    f.column(22, Value::Time(r.invite_at));
    f.column(23, time(r.ring_at));
    f.column(24, time(r.answer_at));
    f.column(25, time(r.end_at));
    f.column(26, number(r.duration_ms));
    f.column(27, number(r.billable_ms));
    f.column(28, number(r.pdd_ms));
    f.column(29, number(r.sdd_ms));
    f.column(30, number(r.setup_ms));
    f.column(31, number(r.hold_ms));
    f.column(32, Value::Number(r.forked_dialogs.into()));
    f.column(33, number(r.forked_last_status));
    f.column(34, time(r.transfer_at));
    f.column(
        35,
        r.transferred_by
            .map_or(Value::Null, |p| Value::Text(p.as_str())),
    );
    f.column(36, text(&r.transfer_to));
    f.column(37, number(r.transfer_status));
    f.column(38, text(&r.referred_by));
    f.column(39, text(&r.transferred_from));
    f.column(40, Value::Text(r.disposition.as_str()));
    f.column(41, number(r.final_status));
    f.column(42, text(&r.final_reason));
    f.column(43, number(r.q850_cause));
    f.column(44, Value::Text(r.ended_by.as_str()));
    f.column(45, Value::Text(r.end_reason.as_str()));
    f.column(46, Value::Number(r.auth_challenges.into()));
    f.column(47, Value::Number(r.invite_retransmissions.into()));
    f.column(48, Value::Issues(&r.capture_issues));
    f.column(49, number(r.agent_id));
    f.column(50, text(&r.agent_name));
}

/// The record's values in [`COLUMNS`] order; empty text for null. Capture issues are joined
/// with `;`.
pub fn values(r: &CallRecord) -> Vec<String> {
    let mut out = Vec::with_capacity(COLUMNS.len());
    visit(r, &mut |_, value: Value<'_>| out.push(value.to_text()));
    out
}
