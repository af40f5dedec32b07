// SPDX-License-Identifier: AGPL-3.0-or-later
//! An aligned table for people at a terminal: the fields one reads first.

use std::io::Write;

use super::{Outbox, RecordSink, SinkError, Tally};
use crate::call::CallRecord;

const HEADINGS: [&str; 10] = [
    "INVITE (UTC)",
    "FROM",
    "TO",
    "CALLER",
    "CALLEE",
    "DISPOSITION",
    "STATUS",
    "DURATION",
    "BILLABLE",
    "END",
];

/// Collects rows and prints them aligned at the end.
pub struct TableSink {
    out: Outbox,
    rows: Vec<[String; 10]>,
}

impl std::fmt::Debug for TableSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableSink")
            .field("rows", &self.rows.len())
            .finish()
    }
}

impl TableSink {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Outbox::new(out),
            rows: Vec::new(),
        }
    }
}

fn seconds(ms: Option<u64>) -> String {
    ms.map(|ms| format!("{}.{:03}s", ms / 1000, ms % 1000))
        .unwrap_or_else(|| "-".into())
}

fn party(user: &Option<String>, uri: &str) -> String {
    user.clone().unwrap_or_else(|| uri.to_owned())
}

impl RecordSink for TableSink {
    fn write(&mut self, r: &CallRecord) -> Result<(), SinkError> {
        self.rows.push([
            r.invite_at.to_clock(),
            party(&r.from_user, &r.from_uri),
            party(&r.to_user, &r.to_uri),
            format!("{}:{}", r.caller_ip, r.caller_port),
            format!("{}:{}", r.callee_ip, r.callee_port),
            r.disposition.to_string(),
            r.final_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            seconds(r.duration_ms),
            seconds(r.billable_ms),
            r.end_reason.as_str().to_owned(),
        ]);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let rows: Vec<Vec<String>> = std::mem::take(&mut self.rows)
            .into_iter()
            .map(Vec::from)
            .collect();
        let table = super::aligned::aligned(&HEADINGS, &rows, usize::MAX);
        // The heading line, then a line per record.
        let mut lines = table.split_inclusive('\n');
        if let Some(heading) = lines.next() {
            self.out.push_preamble(heading.as_bytes());
        }
        for line in lines {
            self.out
                .push(1, |buf| buf.extend_from_slice(line.as_bytes()));
        }
        Ok(self.out.finish()?)
    }

    /// Rows wait for the end, where the columns are aligned: until then they are held.
    fn tally(&self) -> Option<Tally> {
        let mut t = self.out.tally();
        t.records += self.rows.len() as u64;
        t.held += self.rows.len() as u64;
        Some(t)
    }
}
