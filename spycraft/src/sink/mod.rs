// SPDX-License-Identifier: AGPL-3.0-or-later
//! Where call records go: a terminal table, JSON lines, CSV, PostgreSQL and RADIUS (each
//! through a spool).
//!
//! Every output keeps the same contract: a write that fails is reported when it happens,
//! what could not be written is held (in memory up to a bound, or in the spool) and retried,
//! and whatever is finally given up on is counted, never dropped in silence ([`Tally`]).

pub mod aligned;
pub mod calls;
mod columns;
mod csv_sink;
pub mod delivery;
mod jsonl;
mod outbox;
mod outputs;
pub mod postgres;
pub mod radius;
pub mod spool;
mod stable;
mod table;

use std::io::Write;

use crate::call::{CallProgress, CallRecord};

pub use columns::{values as csv_values, COLUMNS};
pub use csv_sink::CsvSink;
pub use jsonl::JsonlSink;
pub use outbox::{Outbox, MAX_HELD_BYTES};
pub use outputs::{OutputReport, Outputs, Reopen};
pub use stable::{StableSink, RUN_DEPENDENT};
pub use table::TableSink;

/// Why a record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A record could not be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A record could not be written as CSV.
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// The database failed.
    #[error(transparent)]
    Postgres(#[from] postgres::PostgresError),
    /// RADIUS accounting failed.
    #[error(transparent)]
    Radius(#[from] radius::RadiusError),
}

/// A destination for call records.
///
/// An error from `write` or `flush` says that a write failed just now; it does not end the
/// sink. What it could not write it holds and retries at the next `flush`, or counts as lost,
/// and [`RecordSink::tally`] says which.
pub trait RecordSink: Send {
    /// Takes one record.
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError>;
    /// A call leg in progress, as its record stands: answered just now, or still up. Only
    /// outputs that account for a call while it lasts (RADIUS) take it; the tracker reports
    /// progress only when such an output is configured.
    fn progress(&mut self, _call: &CallRecord, _progress: CallProgress) -> Result<(), SinkError> {
        Ok(())
    }
    /// A snapshot of the sensor's counters (`source` says which command took it); sinks that
    /// keep them (PostgreSQL's `sensor_stats`) do, the others ignore it.
    fn counters(&mut self, _source: &str, _counters: &serde_json::Value) {}
    /// Writes out what is buffered and retries what an earlier failure holds. Called often
    /// (at least every 4,096 frames and whenever a live source idles).
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Writes everything still held; called once at the end. What cannot be written then is
    /// lost (or, for a database, left in its spool) and counted in the tally.
    fn finish(&mut self) -> Result<(), SinkError>;
    /// What became of the records handed to this sink so far; `None` for sinks that keep
    /// every record in memory and cannot fail (statistics, tests).
    fn tally(&self) -> Option<Tally> {
        None
    }
    /// How delivery stands now, for sinks that deliver on their own (a database behind its
    /// spool); `None` for sinks whose writes are their delivery.
    fn delivery(&self) -> Option<DeliveryStatus> {
        None
    }
    /// What each output behind this sink has done so far (a set of outputs says it of each;
    /// a single sink has nothing to add to its tally).
    fn reports(&self) -> Vec<OutputReport> {
        Vec::new()
    }
}

/// How an output that delivers on its own (PostgreSQL, through its spool) stands now.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DeliveryStatus {
    /// Records waiting to be delivered.
    pub backlog_records: u64,
    /// Their bytes in the spool.
    pub backlog_bytes: u64,
    /// While records wait: seconds since the output last delivered (or since it started).
    pub lag_seconds: f64,
    /// Why the destination cannot be reached now, if it cannot.
    pub unreachable: Option<String>,
    /// Requests and their answers, for outputs that ask a server per record (RADIUS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestCounts>,
}

/// What an output that asks a server per record (RADIUS) sent and got back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    /// Requests sent (each once, retransmissions apart).
    pub sent: u64,
    /// Requests a server acknowledged.
    pub acknowledged: u64,
    /// Retransmissions.
    pub retried: u64,
    /// Times a server did not answer a request after its retransmissions (the next server
    /// was tried, or the round began again).
    pub failed: u64,
    /// Answers refused for their authenticator.
    pub bad_authenticator: u64,
    /// Answers that were no answer to an outstanding request (another code, truncated,
    /// stale).
    pub bad_responses: u64,
    /// Requests about calls in progress not sent (RADIUS Starts and Interim-Updates that
    /// found the queue full in a live capture; a Start then goes with the record's Stop).
    pub skipped: u64,
}

/// What became of the records handed to an output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Records handed to the output in this run.
    pub records: u64,
    /// Records written: to the kernel for a file or pipe, committed by the database for
    /// PostgreSQL (whose count includes records an earlier run left in the spool).
    pub delivered: u64,
    /// Records waiting on disk (the spool) for later delivery; a crash does not lose them.
    pub kept: u64,
    /// Records waiting in memory for a failed write to succeed.
    pub held: u64,
    /// Records given up on: not written, and never will be.
    pub lost: u64,
}

impl std::ops::Add for Tally {
    type Output = Tally;

    fn add(self, other: Tally) -> Tally {
        Tally {
            records: self.records + other.records,
            delivered: self.delivered + other.delivered,
            kept: self.kept + other.kept,
            held: self.held + other.held,
            lost: self.lost + other.lost,
        }
    }
}

/// Output formats of the records.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// A sink of `format` writing to `out`.
pub fn sink_for(format: Format, out: Box<dyn Write + Send>) -> Box<dyn RecordSink> {
    match format {
        Format::Table => Box::new(TableSink::new(out)),
        Format::Jsonl => Box::new(JsonlSink::new(out)),
        Format::Csv => Box::new(CsvSink::new(out)),
    }
}
