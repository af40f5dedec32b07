// SPDX-License-Identifier: AGPL-3.0-or-later
//! JSON lines: one record per line, fields named as in the CDR contract.

use std::io::{BufWriter, Write};

use super::{RecordSink, SinkError};
use crate::call::CallRecord;

/// Writes each record as one line of JSON.
pub struct JsonlSink {
    out: BufWriter<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonlSink")
    }
}

impl JsonlSink {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: BufWriter::with_capacity(64 * 1024, out),
        }
    }
}

impl RecordSink for JsonlSink {
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.out.flush()?;
        Ok(())
    }
}
