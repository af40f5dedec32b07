// SPDX-License-Identifier: AGPL-3.0-or-later
//! Several sinks at once (records to PostgreSQL and to a file, say).

use super::{RecordSink, SinkError};
use crate::call::CallRecord;

/// Hands every record to each of its sinks, in order.
pub struct TeeSink(pub Vec<Box<dyn RecordSink>>);

impl std::fmt::Debug for TeeSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TeeSink({} sinks)", self.0.len())
    }
}

impl RecordSink for TeeSink {
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
        self.0.iter_mut().try_for_each(|s| s.write(record))
    }

    fn counters(&mut self, source: &str, counters: &serde_json::Value) {
        for s in &mut self.0 {
            s.counters(source, counters);
        }
    }

    /// Finishes every sink, even after one fails; reports the first failure.
    fn finish(&mut self) -> Result<(), SinkError> {
        let mut first = Ok(());
        for s in &mut self.0 {
            let r = s.finish();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}
