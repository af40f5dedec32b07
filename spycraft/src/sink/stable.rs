// SPDX-License-Identifier: AGPL-3.0-or-later
//! Records as an expected file for regression runs: all of them, in a stable order and
//! without what changes every run, written at the end.

use std::io::Write;

use super::{RecordSink, SinkError};
use crate::call::{CallRecord, Timestamp};

/// Fields that differ between two runs of the same calls: the record id (it hashes the
/// INVITE's time), the sensor's name and the times of day. Durations stay.
pub const RUN_DEPENDENT: [&str; 7] = [
    "id",
    "node",
    "invite_at",
    "ring_at",
    "answer_at",
    "end_at",
    "transfer_at",
];

/// Keeps every record, then writes them as JSON lines ordered by INVITE time, Call-ID and
/// From tag, without [`RUN_DEPENDENT`] fields. The order stands for the times: a comparison
/// pairing by `invite_order` takes records without `invite_at` in the order listed.
pub struct StableSink {
    out: Box<dyn Write + Send>,
    kept: Vec<(Timestamp, serde_json::Map<String, serde_json::Value>)>,
    written: u64,
}

impl std::fmt::Debug for StableSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StableSink")
            .field("kept", &self.kept.len())
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl StableSink {
    /// A sink writing to `out` when it finishes.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out,
            kept: Vec::new(),
            written: 0,
        }
    }
}

impl RecordSink for StableSink {
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
        if let serde_json::Value::Object(mut fields) = serde_json::to_value(record)? {
            for field in RUN_DEPENDENT {
                fields.remove(field);
            }
            self.kept.push((record.invite_at, fields));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let text = |fields: &serde_json::Map<String, serde_json::Value>, key: &str| {
            fields
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        self.kept.sort_by_cached_key(|(at, fields)| {
            (*at, text(fields, "call_id"), text(fields, "from_tag"))
        });
        for (_, fields) in &self.kept[self.written as usize..] {
            serde_json::to_writer(&mut self.out, fields)?;
            self.out.write_all(b"\n")?;
            self.written += 1;
        }
        self.out.flush()?;
        Ok(())
    }
}
