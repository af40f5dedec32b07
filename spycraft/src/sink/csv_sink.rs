// SPDX-License-Identifier: AGPL-3.0-or-later
//! CSV with a header row; columns as in [`COLUMNS`](super::COLUMNS).

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::columns::{values, COLUMNS};
use super::{Outbox, RecordSink, SinkError, Tally};
use crate::call::CallRecord;

/// Bytes gathered before a write.
const FLUSH_AT: usize = 64 * 1024;

/// Writes records as CSV rows.
pub struct CsvSink {
    /// Formats one row at a time (the csv crate's quoting rules) into `row`.
    rows: csv::Writer<RowBuffer>,
    row: RowBuffer,
    out: Outbox,
    header_written: bool,
}

/// Where the csv writer leaves a row, for the sink to take it into its outbox. (The writer
/// owns what it writes to and gives no mutable access back.)
#[derive(Clone, Default)]
struct RowBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for RowBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl RowBuffer {
    fn bytes(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // Only this sink's thread touches it, so it is never poisoned by another.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for CsvSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsvSink")
    }
}

impl CsvSink {
    /// A sink writing to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        let row = RowBuffer::default();
        Self {
            rows: csv::Writer::from_writer(row.clone()),
            row,
            out: Outbox::new(out),
            header_written: false,
        }
    }

    /// A sink adding rows to a file that has its header row already (reopened after a
    /// reload that did not rotate it).
    pub fn continuing(out: Box<dyn Write + Send>) -> Self {
        Self {
            header_written: true,
            ..Self::new(out)
        }
    }

    fn header(&mut self) -> Result<(), SinkError> {
        if !self.header_written {
            self.rows.write_record(COLUMNS)?;
            self.rows.flush()?;
            let mut header = self.row.bytes();
            self.out.push_preamble(&header);
            header.clear();
            self.header_written = true;
        }
        Ok(())
    }
}

impl RecordSink for CsvSink {
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
        self.header()?;
        self.rows.write_record(values(record))?;
        self.rows.flush()?;
        let mut row = self.row.bytes();
        self.out.push(1, |buf| buf.extend_from_slice(&row));
        row.clear();
        drop(row);
        if self.out.pending_bytes() >= FLUSH_AT {
            self.out.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(self.out.flush()?)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.header()?;
        Ok(self.out.finish()?)
    }

    fn tally(&self) -> Option<Tally> {
        Some(self.out.tally())
    }
}
