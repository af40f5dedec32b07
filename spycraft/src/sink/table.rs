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

/// Room for each column of a live table: a timestamp, addresses with ports, the rest short.
const LIVE_WIDTHS: [usize; 10] = [23, 16, 16, 21, 21, 11, 6, 9, 9, 10];

/// Collects rows and prints them aligned at the end; or, live, prints each row as it comes, in
/// columns of a fixed width (wider cells push the rest of their row along).
pub struct TableSink {
    out: Outbox,
    rows: Vec<[String; 10]>,
    live: bool,
}

impl std::fmt::Debug for TableSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableSink")
            .field("rows", &self.rows.len())
            .finish()
    }
}

impl TableSink {
    /// A table written at the end of the run.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Outbox::new(out),
            rows: Vec::new(),
            live: false,
        }
    }

    /// A table for a live capture: the heading now, each row when its record is written (and
    /// flushed within a second), rather than all of them when the capture stops.
    pub fn live(out: Box<dyn Write + Send>) -> Self {
        let mut sink = Self {
            live: true,
            ..Self::new(out)
        };
        sink.out
            .push_preamble(fixed_line(HEADINGS.iter().copied()).as_bytes());
        sink
    }
}

/// One line of a live table: each cell padded to its column's width, two spaces apart.
fn fixed_line<'c>(cells: impl Iterator<Item = &'c str>) -> String {
    let mut line = String::with_capacity(160);
    for (cell, width) in cells.zip(LIVE_WIDTHS) {
        line.push_str(&format!("{cell:<width$}  "));
    }
    let end = line.trim_end().len();
    line.truncate(end);
    line.push('\n');
    line
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
        let row = [
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
        ];
        if self.live {
            let line = fixed_line(row.iter().map(String::as_str));
            self.out
                .push(1, |buf| buf.extend_from_slice(line.as_bytes()));
        } else {
            self.rows.push(row);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(self.out.flush()?)
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Screen(Arc<Mutex<Vec<u8>>>);

    impl Write for Screen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_live_table_shows_each_row_at_the_next_flush_in_fixed_columns() {
        let line = include_str!("../../../pcaps/answered-caller-bye/expected.jsonl");
        let record: CallRecord = serde_json::from_str(line.trim()).expect("a record");
        let screen = Screen::default();
        let mut sink = TableSink::live(Box::new(screen.clone()));
        sink.write(&record).expect("write");
        sink.flush().expect("flush");
        let shown = String::from_utf8(screen.0.lock().expect("lock").clone()).expect("text");
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 2, "{shown}");
        assert!(
            lines[0].starts_with("INVITE (UTC)             FROM"),
            "{shown}"
        );
        assert!(
            lines[1].contains("answered") && lines[1].ends_with("bye"),
            "{shown}"
        );
        // Every column starts where its heading does.
        for heading in ["FROM", "CALLER", "DISPOSITION", "END"] {
            let at = lines[0].find(heading).expect("heading");
            assert_ne!(&lines[1][at..at + 1], " ", "{heading}: {shown}");
        }
        let t = sink.tally().expect("tally");
        assert_eq!((t.records, t.delivered, t.held), (1, 1, 0));
    }
}
