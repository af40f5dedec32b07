// SPDX-License-Identifier: AGPL-3.0-or-later
//! Regression runs: the records of a run compared with expected ones, call by call, on what a
//! SIP platform decides (outcome, final status, who ended the call, parties, transport) and on
//! its timing within a tolerance, never on what changes every run (record ids, wall-clock
//! times, ports).

mod key;
mod records;
mod report;

use std::fmt;
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::call::{CallRecord, LiveCall};
use crate::pipeline::{RunObserver, Summary};
use crate::sink::{OutputReport, RecordSink, SinkError};

pub use key::{CallKey, MatchOn};
pub use records::{keyed, read, Keyed, RecordsError};
pub use report::{json_report, junit, ReportFormat, ReportTarget};

/// Fields compared exactly by default.
pub const DEFAULT_FIELDS: [&str; 9] = [
    "disposition",
    "final_status",
    "ended_by",
    "end_reason",
    "from_user",
    "to_user",
    "transport",
    "capture_issues",
    "direction",
];

/// Durations compared within the tolerance by default.
pub const DEFAULT_DURATIONS: [&str; 4] = ["pdd_ms", "setup_ms", "billable_ms", "duration_ms"];

/// What is compared, and how closely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    /// Fields that must be equal.
    pub fields: Vec<String>,
    /// Millisecond fields that may differ by `tolerance_ms`.
    pub durations: Vec<String>,
    /// How far durations may differ.
    pub tolerance_ms: u64,
}

impl Default for Comparison {
    fn default() -> Self {
        Self {
            fields: DEFAULT_FIELDS.map(str::to_owned).to_vec(),
            durations: DEFAULT_DURATIONS.map(str::to_owned).to_vec(),
            tolerance_ms: 50,
        }
    }
}

impl Comparison {
    /// Also compares `field` (a `*_ms` field within the tolerance, any other exactly).
    pub fn compare(&mut self, field: &str) {
        self.ignore(field);
        match field.ends_with("_ms") {
            true => self.durations.push(field.to_owned()),
            false => self.fields.push(field.to_owned()),
        }
    }

    /// No longer compares `field`.
    pub fn ignore(&mut self, field: &str) {
        self.fields.retain(|f| f != field);
        self.durations.retain(|f| f != field);
    }

    /// Pairs `expected` with `got` (both sorted by key, as [`keyed`] gives them) and lists
    /// what differs.
    pub fn run(&self, expected: &[Keyed], got: &[Keyed]) -> Verdict {
        let mut verdict = Verdict::default();
        let (mut e, mut g) = (expected.iter().peekable(), got.iter().peekable());
        loop {
            match (e.peek(), g.peek()) {
                (Some(want), Some(have)) if want.key == have.key => {
                    let changes = self.changes(&want.record, &have.record);
                    if changes.is_empty() {
                        verdict.matched.push(want.key.clone());
                    } else {
                        verdict.changed.push((want.key.clone(), changes));
                    }
                    e.next();
                    g.next();
                }
                (Some(want), Some(have)) if want.key < have.key => {
                    verdict.missing.push(want.key.clone());
                    e.next();
                }
                (Some(want), None) => {
                    verdict.missing.push(want.key.clone());
                    e.next();
                }
                (_, Some(have)) => {
                    verdict.extra.push(have.key.clone());
                    g.next();
                }
                (None, None) => return verdict,
            }
        }
    }

    /// The compared fields in which `got` differs from `want`.
    fn changes(&self, want: &Map<String, Value>, got: &Map<String, Value>) -> Vec<Change> {
        let value = |r: &Map<String, Value>, f: &str| r.get(f).cloned().unwrap_or(Value::Null);
        let exact = self.fields.iter().filter_map(|field| {
            let (w, g) = (value(want, field), value(got, field));
            (w != g).then(|| Change::new(field, w, g))
        });
        let timed = self.durations.iter().filter_map(|field| {
            let (w, g) = (value(want, field), value(got, field));
            let close = match (w.as_u64(), g.as_u64()) {
                (Some(a), Some(b)) => a.abs_diff(b) <= self.tolerance_ms,
                _ => w == g,
            };
            (!close).then(|| Change::new(field, w, g))
        });
        exact.chain(timed).collect()
    }
}

/// A field that differs: what was expected, what the run gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The record field.
    pub field: String,
    /// Expected.
    pub expected: Value,
    /// Got.
    pub got: Value,
}

impl Change {
    fn new(field: &str, expected: Value, got: Value) -> Self {
        Self {
            field: field.to_owned(),
            expected,
            got,
        }
    }
}

impl fmt::Display for Change {
    /// `final_status: 486 → 603`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} → {}", self.field, self.expected, self.got)
    }
}

/// What a comparison found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Calls alike in every compared field.
    pub matched: Vec<CallKey>,
    /// Expected calls the run did not have.
    pub missing: Vec<CallKey>,
    /// Calls of the run nobody expected.
    pub extra: Vec<CallKey>,
    /// Calls in both that differ, with how.
    pub changed: Vec<(CallKey, Vec<Change>)>,
}

impl Verdict {
    /// Whether the run gave what was expected.
    pub fn passed(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }
}

impl fmt::Display for Verdict {
    /// A line per call that is missing, extra or changed, then the counts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for key in &self.missing {
            writeln!(f, "missing: {key}")?;
        }
        for key in &self.extra {
            writeln!(f, "extra: {key}")?;
        }
        for (key, changes) in &self.changed {
            let changes: Vec<String> = changes.iter().map(ToString::to_string).collect();
            writeln!(f, "changed: {key}: {}", changes.join(", "))?;
        }
        write!(
            f,
            "{} calls as expected, {} changed, {} missing, {} extra",
            self.matched.len(),
            self.changed.len(),
            self.missing.len(),
            self.extra.len()
        )
    }
}

/// Keeps the records of a run for the comparison, as JSON objects in the order they were
/// written (about a kilobyte a call: runs compared with expected records are test runs).
#[derive(Debug, Default)]
pub struct Collector(Mutex<Vec<(usize, Map<String, Value>)>>);

impl Collector {
    /// The records so far, each with its place in the run (1-based).
    pub fn take(&self) -> Vec<(usize, Map<String, Value>)> {
        self.0
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

/// As the sink of a run of its own (`diff` analysing a capture).
impl RecordSink for Collector {
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
        RunObserver::record(self, record);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl RunObserver for Collector {
    fn record(&self, record: &CallRecord) {
        if let (Ok(Value::Object(record)), Ok(mut kept)) =
            (serde_json::to_value(record), self.0.lock())
        {
            let place = kept.len() + 1;
            kept.push((place, record));
        }
    }

    fn snapshot(&self, _summary: &Summary, _live_legs: usize, _outputs: Vec<OutputReport>) {}

    fn live_calls(&self, _calls: &[LiveCall]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed_records(lines: &[Value]) -> Vec<Keyed> {
        let records = lines
            .iter()
            .enumerate()
            .map(|(at, r)| (at + 1, r.as_object().expect("an object").clone()))
            .collect();
        keyed(records, &MatchOn::default()).expect("keyed")
    }

    fn call(id: &str, status: u16, pdd: u64, node: &str) -> Value {
        serde_json::json!({"call_id": id, "from_tag": "t", "final_status": status,
            "disposition": "busy", "pdd_ms": pdd, "node": node, "id": format!("{id}{node}")})
    }

    #[test]
    fn calls_are_paired_and_only_compared_fields_count() {
        let expected = keyed_records(&[
            call("a", 486, 100, "x"),
            call("b", 486, 100, "x"),
            call("c", 486, 100, "x"),
        ]);
        // b changed status and is late beyond the tolerance; c is gone; d is new; a differs
        // only in what is not compared (node, id) and within the tolerance.
        let got = keyed_records(&[
            call("d", 486, 100, "y"),
            call("b", 603, 151, "y"),
            call("a", 486, 150, "y"),
        ]);
        let verdict = Comparison::default().run(&expected, &got);
        assert!(!verdict.passed());
        assert_eq!(
            verdict.to_string(),
            "missing: c / t\nextra: d / t\n\
             changed: b / t: final_status: 486 → 603, pdd_ms: 100 → 151\n\
             1 calls as expected, 1 changed, 1 missing, 1 extra"
        );
        let mut lenient = Comparison::default();
        lenient.ignore("final_status");
        lenient.tolerance_ms = 60;
        let verdict = lenient.run(&expected[..2], &got[..2]);
        assert!(verdict.passed(), "{verdict}");
        lenient.compare("node");
        assert_eq!(lenient.run(&expected[..2], &got[..2]).changed.len(), 2);
    }

    #[test]
    fn a_call_twice_is_refused_with_its_line() {
        let records = [call("a", 486, 1, "x"), call("a", 486, 1, "x")]
            .iter()
            .enumerate()
            .map(|(at, r)| (at + 1, r.as_object().expect("an object").clone()))
            .collect();
        let e = keyed(records, &MatchOn::default()).expect_err("a duplicate");
        assert_eq!(e, (2, "the call a / t is already on line 1".into()));
    }

    #[test]
    fn record_files_with_mistakes_are_refused_with_the_line_named() {
        let dir = std::env::temp_dir().join(format!("spycraft-regress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let file = dir.join("expected.jsonl");
        let cases = [
            (
                "{\"call_id\":\"a\",\"from_tag\":\"t\"}\n{broken\n",
                ":2: not JSON",
            ),
            ("\n[1]\n", ":2: not a JSON object"),
            (
                "{\"call_id\":\"a\",\"from_tag\":\"t\",\"colour\":1}\n",
                ":1: \"colour\" is not a record field",
            ),
            ("{\"call_id\":\"a\"}\n", ":1: no from_tag to match calls on"),
        ];
        for (text, want) in cases {
            std::fs::write(&file, text).expect("a file");
            let e = read(&file, &MatchOn::default()).expect_err("refused");
            assert!(e.to_string().contains(want), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
