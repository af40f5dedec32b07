// SPDX-License-Identifier: AGPL-3.0-or-later
//! CSV with a header row; columns as in [`COLUMNS`](super::COLUMNS).

use std::io::Write;

use super::columns::{values, COLUMNS};
use super::{RecordSink, SinkError};
use crate::call::CallRecord;

/// Writes records as CSV rows.
pub struct CsvSink {
    out: csv::Writer<Box<dyn Write + Send>>,
    header_written: bool,
}

impl std::fmt::Debug for CsvSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsvSink")
    }
}

impl CsvSink {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: csv::Writer::from_writer(out),
            header_written: false,
        }
    }

    fn header(&mut self) -> Result<(), SinkError> {
        if !self.header_written {
            self.out.write_record(COLUMNS)?;
            self.header_written = true;
        }
        Ok(())
    }
}

impl RecordSink for CsvSink {
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
        self.header()?;
        self.out.write_record(values(record))?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        // A run without calls still gets the header, so readers see the schema.
        self.header()?;
        self.out.flush()?;
        Ok(())
    }
}
