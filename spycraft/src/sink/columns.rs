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

/// Hands each of the record's values, in [`COLUMNS`] order, to `f` with its column name:
/// the one place the row-oriented sinks and the JSON writer take a record apart.
pub fn visit<'r>(r: &'r CallRecord, f: &mut impl FnMut(&'static str, Value<'r>)) {
    let values: [Value<'r>; COLUMNS.len()] = [
        Value::Id(r.id),
        Value::Text(&r.node),
        Value::Text(&r.call_id),
        Value::Text(&r.from_tag),
        text(&r.to_tag),
        Value::Text(&r.collation_id),
        Value::Text(&r.from_uri),
        text(&r.from_user),
        Value::Text(&r.to_uri),
        text(&r.to_user),
        Value::Text(&r.request_uri),
        text(&r.p_asserted_identity),
        text(&r.diversion),
        Value::Ip(r.caller_ip),
        Value::Number(r.caller_port.into()),
        Value::Ip(r.callee_ip),
        Value::Number(r.callee_port.into()),
        Value::Text(r.transport.as_str()),
        number(r.vlan),
        Value::Text(r.direction.as_str()),
        text(&r.user_agent),
        text(&r.server),
        Value::Time(r.invite_at),
        time(r.ring_at),
        time(r.answer_at),
        time(r.end_at),
        number(r.duration_ms),
        number(r.billable_ms),
        number(r.pdd_ms),
        number(r.sdd_ms),
        number(r.setup_ms),
        number(r.hold_ms),
        Value::Number(r.forked_dialogs.into()),
        number(r.forked_last_status),
        time(r.transfer_at),
        r.transferred_by
            .map_or(Value::Null, |p| Value::Text(p.as_str())),
        text(&r.transfer_to),
        number(r.transfer_status),
        text(&r.referred_by),
        text(&r.transferred_from),
        Value::Text(r.disposition.as_str()),
        number(r.final_status),
        text(&r.final_reason),
        number(r.q850_cause),
        Value::Text(r.ended_by.as_str()),
        Value::Text(r.end_reason.as_str()),
        Value::Number(r.auth_challenges.into()),
        Value::Number(r.invite_retransmissions.into()),
        Value::Issues(&r.capture_issues),
    ];
    for (name, value) in COLUMNS.into_iter().zip(values) {
        f(name, value);
    }
}

/// The record's values in [`COLUMNS`] order; empty text for null. Capture issues are joined
/// with `;`.
pub fn values(r: &CallRecord) -> Vec<String> {
    let mut out = Vec::with_capacity(COLUMNS.len());
    visit(r, &mut |_, value| out.push(value.to_text()));
    out
}
