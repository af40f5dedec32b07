// SPDX-License-Identifier: AGPL-3.0-or-later
//! An aligned table for people at a terminal: the fields one reads first.

use std::io::Write;

use super::{RecordSink, SinkError};
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
    out: Box<dyn Write + Send>,
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
            out,
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
        self.out
            .write_all(super::aligned::aligned(&HEADINGS, &rows, usize::MAX).as_bytes())?;
        self.out.flush()?;
        Ok(())
    }
}
