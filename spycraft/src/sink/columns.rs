// SPDX-License-Identifier: AGPL-3.0-or-later
//! The CDR contract as flat text columns, for CSV (and any other row-oriented sink).

use crate::call::{CallRecord, Timestamp};

/// Column names, in contract order; identical to the JSON field names.
pub const COLUMNS: [&str; 49] = [
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

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn time(v: Option<Timestamp>) -> String {
    v.map(Timestamp::to_rfc3339).unwrap_or_default()
}

/// The record's values in [`COLUMNS`] order; empty text for null. Capture issues are joined
/// with `;`.
pub fn values(r: &CallRecord) -> Vec<String> {
    vec![
        r.id.to_string(),
        r.node.clone(),
        r.call_id.clone(),
        r.from_tag.clone(),
        opt(&r.to_tag),
        r.collation_id.clone(),
        r.from_uri.clone(),
        opt(&r.from_user),
        r.to_uri.clone(),
        opt(&r.to_user),
        r.request_uri.clone(),
        opt(&r.p_asserted_identity),
        opt(&r.diversion),
        r.caller_ip.to_string(),
        r.caller_port.to_string(),
        r.callee_ip.to_string(),
        r.callee_port.to_string(),
        r.transport.to_string(),
        opt(&r.vlan),
        r.direction.as_str().to_owned(),
        opt(&r.user_agent),
        opt(&r.server),
        r.invite_at.to_rfc3339(),
        time(r.ring_at),
        time(r.answer_at),
        time(r.end_at),
        opt(&r.duration_ms),
        opt(&r.billable_ms),
        opt(&r.pdd_ms),
        opt(&r.sdd_ms),
        opt(&r.setup_ms),
        opt(&r.hold_ms),
        r.forked_dialogs.to_string(),
        opt(&r.forked_last_status),
        time(r.transfer_at),
        r.transferred_by
            .map_or(String::new(), |p| p.as_str().to_owned()),
        opt(&r.transfer_to),
        opt(&r.transfer_status),
        opt(&r.referred_by),
        opt(&r.transferred_from),
        r.disposition.to_string(),
        opt(&r.final_status),
        opt(&r.final_reason),
        opt(&r.q850_cause),
        r.ended_by.as_str().to_owned(),
        r.end_reason.as_str().to_owned(),
        r.auth_challenges.to_string(),
        r.invite_retransmissions.to_string(),
        r.capture_issues
            .iter()
            .map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(";"),
    ]
}
