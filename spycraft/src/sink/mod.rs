// SPDX-License-Identifier: AGPL-3.0-or-later
//! Where call records go: a terminal table, JSON lines, CSV, PostgreSQL (through a spool).
//! (RADIUS and HEP arrive with their own issues.)

pub mod aligned;
pub mod calls;
mod columns;
mod csv_sink;
mod jsonl;
pub mod postgres;
pub mod spool;
mod table;
mod tee;

use std::io::Write;

use crate::call::CallRecord;

pub use columns::COLUMNS;
pub use csv_sink::CsvSink;
pub use jsonl::JsonlSink;
pub use table::TableSink;
pub use tee::TeeSink;

/// Why a record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Csv(#[from] csv::Error),
    #[error(transparent)]
    Postgres(#[from] postgres::PostgresError),
}

/// A destination for call records.
pub trait RecordSink: Send {
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError>;
    /// A snapshot of the sensor's counters (`source` says which command took it); sinks that
    /// keep them (PostgreSQL's `sensor_stats`) do, the others ignore it.
    fn counters(&mut self, _source: &str, _counters: &serde_json::Value) {}
    /// Flushes whatever is buffered; called once at the end.
    fn finish(&mut self) -> Result<(), SinkError>;
}

/// Output formats of `analyze`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Jsonl,
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
