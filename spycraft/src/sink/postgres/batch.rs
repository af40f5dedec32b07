// SPDX-License-Identifier: AGPL-3.0-or-later
//! Writing a batch of records in one transaction: binary COPY into a session-local staging
//! table, then one INSERT … ON CONFLICT DO NOTHING into `cdr`, so a replayed record (same
//! deterministic id) is skipped rather than written twice.

use std::borrow::Cow;
use std::collections::BTreeSet;

use time::OffsetDateTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, ToSql, Type};
use tokio_postgres::Client;

use crate::accounting::rates::RateDeck;
use crate::call::{CallRecord, CaptureIssue, Timestamp};
use crate::sink::COLUMNS;

use super::PostgresError;

/// Column types in [`COLUMNS`] order, then the staging table's `rated_prefix` and
/// `cost_micros`.
const TYPES: [Type; 53] = [
    Type::UUID,        // id
    Type::TEXT,        // node
    Type::TEXT,        // call_id
    Type::TEXT,        // from_tag
    Type::TEXT,        // to_tag
    Type::TEXT,        // collation_id
    Type::TEXT,        // from_uri
    Type::TEXT,        // from_user
    Type::TEXT,        // to_uri
    Type::TEXT,        // to_user
    Type::TEXT,        // request_uri
    Type::TEXT,        // p_asserted_identity
    Type::TEXT,        // diversion
    Type::INET,        // caller_ip
    Type::INT4,        // caller_port
    Type::INET,        // callee_ip
    Type::INT4,        // callee_port
    Type::TEXT,        // transport
    Type::INT4,        // vlan
    Type::TEXT,        // direction
    Type::TEXT,        // user_agent
    Type::TEXT,        // server
    Type::TIMESTAMPTZ, // invite_at
    Type::TIMESTAMPTZ, // ring_at
    Type::TIMESTAMPTZ, // answer_at
    Type::TIMESTAMPTZ, // end_at
    Type::INT8,        // duration_ms
    Type::INT8,        // billable_ms
    Type::INT8,        // pdd_ms
    Type::INT8,        // sdd_ms
    Type::INT8,        // setup_ms
    Type::INT8,        // hold_ms
    Type::INT4,        // forked_dialogs
    Type::INT2,        // forked_last_status
    Type::TIMESTAMPTZ, // transfer_at
    Type::TEXT,        // transferred_by
    Type::TEXT,        // transfer_to
    Type::INT2,        // transfer_status
    Type::TEXT,        // referred_by
    Type::TEXT,        // transferred_from
    Type::TEXT,        // disposition
    Type::INT2,        // final_status
    Type::TEXT,        // final_reason
    Type::INT2,        // q850_cause
    Type::TEXT,        // ended_by
    Type::TEXT,        // end_reason
    Type::INT4,        // auth_challenges
    Type::INT4,        // invite_retransmissions
    Type::JSONB,       // capture_issues
    Type::INT8,        // agent_id
    Type::TEXT,        // agent_name
    Type::TEXT,        // rated_prefix
    Type::INT8,        // cost_micros
];

/// Writes `records`, priced by `deck` when there is one, and commits; returns how many were
/// new (the rest were already there).
pub async fn write_batch(
    client: &mut Client,
    records: &[CallRecord],
    deck: Option<&RateDeck>,
) -> Result<u64, PostgresError> {
    let columns = COLUMNS.join(", ");
    let days: BTreeSet<time::Date> = records.iter().map(|r| day_of(r.invite_at)).collect();
    let days: Vec<time::Date> = days.into_iter().collect();

    let tx = client.transaction().await?;
    tx.execute(
        "SELECT spycraft_ensure_cdr_partition(d) FROM unnest($1::date[]) AS d",
        &[&days],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS cdr_incoming ON COMMIT DELETE ROWS AS \
         SELECT {columns}, rated_prefix, 0::bigint AS cost_micros FROM cdr WITH NO DATA"
    ))
    .await?;
    let sink = tx
        .copy_in(&format!(
            "COPY cdr_incoming ({columns}, rated_prefix, cost_micros) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &TYPES);
    let mut writer = std::pin::pin!(writer);
    for record in records {
        let row = Row::of(record);
        let rated = deck.and_then(|d| d.rate(record));
        let prefix = rated.as_ref().map(|r| r.rate.prefix.as_str());
        let cost = rated.map(|r| r.cost);
        let mut values = [&None::<&str> as &(dyn ToSql + Sync); TYPES.len()];
        values[..COLUMNS.len()].copy_from_slice(&row.values());
        values[COLUMNS.len()] = &prefix;
        values[COLUMNS.len() + 1] = &cost;
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await?;
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO cdr ({columns}, rated_prefix, cost) \
                 SELECT {columns}, rated_prefix, cost_micros / 1000000.0 FROM cdr_incoming \
                 ON CONFLICT DO NOTHING"
            ),
            &[],
        )
        .await?;
    tx.commit().await?;
    Ok(inserted)
}

pub(super) fn day_of(t: Timestamp) -> time::Date {
    instant(t).date()
}

pub(super) fn instant(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// PostgreSQL text cannot hold NUL; a record never loses a row over one.
pub(super) fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn opt_text(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(text)
}

fn int8(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn int4(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// SIP codes and Q.850 causes fit a smallint; anything else is not a code.
fn int2(v: Option<u16>) -> Option<i16> {
    v.and_then(|v| i16::try_from(v).ok())
}

/// One record converted to the column types.
struct Row<'a> {
    r: &'a CallRecord,
    texts: [Cow<'a, str>; 6],
    opt_texts: [Option<Cow<'a, str>>; 9],
    caller_port: i32,
    callee_port: i32,
    vlan: Option<i32>,
    times: [Option<OffsetDateTime>; 4],
    durations: [Option<i64>; 6],
    final_status: Option<i16>,
    q850_cause: Option<i16>,
    forked_last_status: Option<i16>,
    transfer_at: Option<OffsetDateTime>,
    transferred_by: Option<&'static str>,
    /// transfer_to, referred_by, transferred_from.
    transfer_texts: [Option<Cow<'a, str>>; 3],
    transfer_status: Option<i16>,
    counts: [i32; 3],
    /// transport, direction, disposition, ended_by, end_reason.
    labels: [&'static str; 5],
    issues: Json<&'a [CaptureIssue]>,
    agent_id: Option<i64>,
    agent_name: Option<Cow<'a, str>>,
}

impl<'a> Row<'a> {
    fn of(r: &'a CallRecord) -> Self {
        Self {
            r,
            texts: [
                text(&r.node),
                text(&r.call_id),
                text(&r.from_tag),
                text(&r.collation_id),
                text(&r.from_uri),
                text(&r.to_uri),
            ],
            opt_texts: [
                opt_text(&r.to_tag),
                opt_text(&r.from_user),
                opt_text(&r.to_user),
                opt_text(&r.p_asserted_identity),
                opt_text(&r.diversion),
                opt_text(&r.user_agent),
                opt_text(&r.server),
                opt_text(&r.final_reason),
                Some(text(&r.request_uri)),
            ],
            caller_port: i32::from(r.caller_port),
            callee_port: i32::from(r.callee_port),
            vlan: r.vlan.map(i32::from),
            times: [
                Some(instant(r.invite_at)),
                r.ring_at.map(instant),
                r.answer_at.map(instant),
                r.end_at.map(instant),
            ],
            durations: [
                int8(r.duration_ms),
                int8(r.billable_ms),
                int8(r.pdd_ms),
                int8(r.sdd_ms),
                int8(r.setup_ms),
                int8(r.hold_ms),
            ],
            final_status: int2(r.final_status),
            q850_cause: int2(r.q850_cause),
            forked_last_status: int2(r.forked_last_status),
            transfer_at: r.transfer_at.map(instant),
            transferred_by: r.transferred_by.map(|p| p.as_str()),
            transfer_texts: [
                opt_text(&r.transfer_to),
                opt_text(&r.referred_by),
                opt_text(&r.transferred_from),
            ],
            transfer_status: int2(r.transfer_status),
            counts: [
                int4(r.auth_challenges),
                int4(r.invite_retransmissions),
                int4(r.forked_dialogs),
            ],
            labels: [
                r.transport.as_str(),
                r.direction.as_str(),
                r.disposition.as_str(),
                r.ended_by.as_str(),
                r.end_reason.as_str(),
            ],
            issues: Json(&r.capture_issues),
            agent_id: r.agent_id.map(i64::from),
            agent_name: opt_text(&r.agent_name),
        }
    }

    /// The values in [`COLUMNS`] order.
    fn values(&self) -> [&(dyn ToSql + Sync); COLUMNS.len()] {
        let [node, call_id, from_tag, collation_id, from_uri, to_uri] = &self.texts;
        let [to_tag, from_user, to_user, pai, diversion, user_agent, server, final_reason, request_uri] =
            &self.opt_texts;
        let [invite_at, ring_at, answer_at, end_at] = &self.times;
        let [duration, billable, pdd, sdd, setup, hold] = &self.durations;
        let [challenges, retransmissions, forked] = &self.counts;
        let [transfer_to, referred_by, transferred_from] = &self.transfer_texts;
        let [transport, direction, disposition, ended_by, end_reason] = &self.labels;
        [
            &self.r.id,
            node,
            call_id,
            from_tag,
            to_tag,
            collation_id,
            from_uri,
            from_user,
            to_uri,
            to_user,
            request_uri,
            pai,
            diversion,
            &self.r.caller_ip,
            &self.caller_port,
            &self.r.callee_ip,
            &self.callee_port,
            transport,
            &self.vlan,
            direction,
            user_agent,
            server,
            invite_at,
            ring_at,
            answer_at,
            end_at,
            duration,
            billable,
            pdd,
            sdd,
            setup,
            hold,
            forked,
            &self.forked_last_status,
            &self.transfer_at,
            &self.transferred_by,
            transfer_to,
            &self.transfer_status,
            referred_by,
            transferred_from,
            disposition,
            &self.final_status,
            final_reason,
            &self.q850_cause,
            ended_by,
            end_reason,
            challenges,
            retransmissions,
            &self.issues,
            &self.agent_id,
            &self.agent_name,
        ]
    }
}
