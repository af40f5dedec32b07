// SPDX-License-Identifier: AGPL-3.0-or-later
//! The records of every sensor writing to one PostgreSQL database (`spycraft serve
//! --postgres`), searched with the same [`CallQuery`] as the records in memory and giving the
//! same answers: the filters become one `WHERE`, the order and the cursor a keyset over
//! `(key, id)`, and each row comes back as the record it was written from.
//!
//! Every statement runs under the query timeout (`statement_timeout`); a statement the server
//! cancels for it is [`HistoryError::Timeout`], never an empty answer.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;
use uuid::Uuid;

use super::kept::{transport_named, KeptMessage};
use super::query::{CallQuery, Cursor, Pattern, PeerFilter, SortKey};
use crate::call::{CallRecord, Timestamp};
use crate::sink::postgres::{PgError, PostgresError, Target};

/// Why the history could not answer.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database could not be reached, or a statement failed.
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    /// A statement ran past the query timeout.
    #[error("the search took longer than {0} ms; narrow it (a shorter time range, a longer number prefix)")]
    Timeout(u64),
    /// A row could not be read back as a record.
    #[error("a cdr row does not read as a record: {0}")]
    Row(serde_json::Error),
    /// A `sip_message` row holds what no sensor writes.
    #[error("a sip_message row does not read as a message: {0}")]
    Message(String),
}

/// A page of records from the database.
#[derive(Debug)]
pub struct HistoryPage {
    /// The rows, in the query's order.
    pub rows: Vec<CallRecord>,
    /// Every record matching the filters (all pages).
    pub total: u64,
    /// Where the next page starts.
    pub next: Option<Cursor>,
}

/// The `cdr` table of one database.
#[derive(Debug)]
pub struct History {
    target: Target,
    budget: Duration,
    client: Mutex<Option<Client>>,
}

/// A statement's text and its parameters, built together so their numbers agree.
#[derive(Default)]
struct Statement {
    conditions: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Statement {
    /// Adds a parameter; returns its placeholder (`$3`).
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    fn condition(&mut self, sql: String) {
        self.conditions.push(sql);
    }

    fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// A capture time as PostgreSQL takes it.
fn time_of(t: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.micros()) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// `text` with LIKE's own characters taken literally.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The LIKE pattern of a `q` (already lower-case).
fn like_pattern(q: &Pattern) -> String {
    match q {
        Pattern::Prefix(p) => format!("{}%", like_literal(p)),
        Pattern::Wildcard(pieces) => pieces
            .iter()
            .map(|p| like_literal(p))
            .collect::<Vec<_>>()
            .join("%"),
    }
}

/// The SQL of a sort key.
fn key_sql(key: SortKey) -> &'static str {
    match key {
        SortKey::InviteAt => "invite_at",
        SortKey::BillableMs => "coalesce(billable_ms, 0)",
    }
}

impl History {
    /// The history in `target`, each statement allowed `budget`.
    pub fn new(target: Target, budget: Duration) -> Self {
        Self {
            target,
            budget,
            client: Mutex::new(None),
        }
    }

    /// Where it reads from, for messages.
    pub fn describe(&self) -> String {
        self.target.describe()
    }

    /// Runs `sql` with `params` on the connection (made, or made again, as needed).
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, HistoryError> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(Client::is_closed) {
            let client = self.target.connect().await?;
            // At least a millisecond: 0 would turn the timeout off.
            let ms = self.budget.as_millis().max(1);
            client
                .batch_execute(&format!("SET statement_timeout = {ms}"))
                .await
                .map_err(|e| PostgresError::Db(PgError(e)))?;
            *slot = Some(client);
        }
        let Some(client) = slot.as_ref() else {
            unreachable!("connected above");
        };
        client.query(sql, params).await.map_err(|e| {
            if e.code() == Some(&SqlState::QUERY_CANCELED) {
                HistoryError::Timeout(self.budget.as_millis() as u64)
            } else {
                HistoryError::Postgres(PostgresError::Db(PgError(e)))
            }
        })
    }

    /// Reads rows of `to_jsonb(cdr)` back as records.
    fn records(rows: &[tokio_postgres::Row]) -> Result<Vec<CallRecord>, HistoryError> {
        rows.iter()
            .map(|row| serde_json::from_value(row.get::<_, serde_json::Value>(0)))
            .collect::<Result<_, _>>()
            .map_err(HistoryError::Row)
    }

    /// The filters of `q` (paging aside).
    fn filters(q: &CallQuery) -> Statement {
        let mut s = Statement::default();
        if let Some(from) = q.from {
            let p = s.bind(time_of(from));
            s.condition(format!("invite_at >= {p}"));
        }
        if let Some(to) = q.to {
            let p = s.bind(time_of(to));
            s.condition(format!("invite_at < {p}"));
        }
        if let Some(pattern) = &q.q {
            let p = s.bind(like_pattern(pattern));
            // Numbers and users seek the lower(user) text_pattern_ops indexes.
            let fields: &[&str] = if pattern.is_uri() {
                &["from_uri", "to_uri", "request_uri"]
            } else {
                &["from_user", "to_user"]
            };
            let any: Vec<String> = fields
                .iter()
                .map(|f| format!("lower({f}) LIKE {p}"))
                .collect();
            s.condition(format!("({})", any.join(" OR ")));
        }
        if let Some(call_id) = &q.call_id {
            let p = s.bind(call_id.clone());
            s.condition(format!("call_id = {p}"));
        }
        if !q.dispositions.is_empty() {
            let names: Vec<String> = q.dispositions.iter().map(|d| d.as_str().into()).collect();
            let p = s.bind(names);
            s.condition(format!("disposition = ANY({p})"));
        }
        if let Some(node) = &q.node {
            let p = s.bind(node.clone());
            s.condition(format!("node = {p}"));
        }
        if let Some(direction) = q.direction {
            let p = s.bind(direction.as_str().to_owned());
            s.condition(format!("direction = {p}"));
        }
        if let Some(peer) = &q.peer {
            let nets: Vec<String> = match peer {
                PeerFilter::Net(n) => vec![n.to_string()],
                PeerFilter::Group(ns) => ns.iter().map(ToString::to_string).collect(),
            };
            let p = s.bind(nets);
            s.condition(format!(
                "(caller_ip <<= ANY({p}::text[]::inet[]) OR callee_ip <<= ANY({p}::text[]::inet[]))"
            ));
        }
        if let Some(ms) = q.min_billable_ms {
            let p = s.bind(i64::try_from(ms).unwrap_or(i64::MAX));
            s.condition(format!("coalesce(billable_ms, 0) >= {p}"));
        }
        s
    }

    /// The page of records `q` asks for.
    pub async fn search(&self, q: &CallQuery) -> Result<HistoryPage, HistoryError> {
        let counting = Self::filters(q);
        let count_sql = format!("SELECT count(*) FROM cdr {}", counting.where_clause());
        let total: i64 = self.query(&count_sql, &counting.params()).await?[0].get(0);

        let mut s = Self::filters(q);
        let key = key_sql(q.sort.key);
        let order = if q.sort.descending { "DESC" } else { "ASC" };
        if let Some(after) = q.after {
            let value = match q.sort.key {
                SortKey::InviteAt => {
                    let p = s.bind(time_of(Timestamp(after.value)));
                    format!("{p}::timestamptz")
                }
                SortKey::BillableMs => format!("{}::bigint", s.bind(after.value)),
            };
            let id = s.bind(after.id);
            let beyond = if q.sort.descending { "<" } else { ">" };
            s.condition(format!("({key}, id) {beyond} ({value}, {id})"));
        }
        let limit = s.bind(q.limit as i64 + 1);
        let sql = format!(
            "SELECT to_jsonb(c) FROM cdr c {} ORDER BY {key} {order}, id {order} LIMIT {limit}",
            s.where_clause()
        );
        let mut rows = Self::records(&self.query(&sql, &s.params()).await?)?;
        let next = if rows.len() > q.limit {
            rows.truncate(q.limit);
            rows.last().map(|r| Cursor {
                value: q.sort.value_of(r),
                id: r.id,
            })
        } else {
            None
        };
        Ok(HistoryPage {
            rows,
            total: total as u64,
            next,
        })
    }

    /// The record with this id.
    pub async fn get(&self, id: Uuid) -> Result<Option<CallRecord>, HistoryError> {
        let rows = self
            .query(
                "SELECT to_jsonb(c) FROM cdr c WHERE id = $1 LIMIT 1",
                &[&id],
            )
            .await?;
        Ok(Self::records(&rows)?.into_iter().next())
    }

    /// Every leg sharing `collation_id`, from every node, in INVITE order.
    pub async fn legs(&self, collation_id: &str) -> Result<Vec<CallRecord>, HistoryError> {
        let rows = self
            .query(
                "SELECT to_jsonb(c) FROM cdr c WHERE collation_id = $1 ORDER BY invite_at, id",
                &[&collation_id],
            )
            .await?;
        Self::records(&rows)
    }

    /// The stored SIP messages of these calls captured in `[from, to)`, in capture order
    /// (`sip_message`, written by sensors run with `--store-messages`).
    pub async fn messages(
        &self,
        call_ids: &[String],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<KeptMessage>, HistoryError> {
        let rows = self
            .query(
                "SELECT captured_at, call_id, src_ip, src_port, dst_ip, dst_port, transport, raw \
                 FROM sip_message \
                 WHERE call_id = ANY($1) AND captured_at >= $2 AND captured_at < $3 \
                 ORDER BY captured_at, digest",
                &[&call_ids, &time_of(from), &time_of(to)],
            )
            .await?;
        rows.iter().map(Self::message).collect()
    }

    /// A `sip_message` row read back.
    fn message(row: &tokio_postgres::Row) -> Result<KeptMessage, HistoryError> {
        let port = |i| u16::try_from(row.get::<_, i32>(i)).unwrap_or(0);
        let at: time::OffsetDateTime = row.get(0);
        let transport: &str = row.get(6);
        Ok(KeptMessage {
            time: Timestamp((at.unix_timestamp_nanos() / 1000) as i64),
            call_id: row.get(1),
            src: SocketAddr::new(row.get(2), port(3)),
            dst: SocketAddr::new(row.get(4), port(5)),
            transport: transport_named(transport)
                .ok_or_else(|| HistoryError::Message(format!("transport {transport:?}")))?,
            raw: row.get(7),
        })
    }

    /// Every record whose INVITE falls in the window, for figures and reports.
    pub async fn window(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Vec<CallRecord>, HistoryError> {
        let mut s = Statement::default();
        if let Some(from) = from {
            let p = s.bind(time_of(from));
            s.condition(format!("invite_at >= {p}"));
        }
        if let Some(to) = to {
            let p = s.bind(time_of(to));
            s.condition(format!("invite_at < {p}"));
        }
        let sql = format!(
            "SELECT to_jsonb(c) FROM cdr c {} ORDER BY invite_at, id",
            s.where_clause()
        );
        Self::records(&self.query(&sql, &s.params()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_become_like_patterns_with_their_own_characters_literal() {
        let prefix = Pattern::Prefix("49_30%".into());
        assert_eq!(like_pattern(&prefix), "49\\_30\\%%");
        let wild = Pattern::Wildcard(vec!["sip:".into(), "@pbx".into(), String::new()]);
        assert_eq!(like_pattern(&wild), "sip:%@pbx%");
    }
}
