// SPDX-License-Identifier: AGPL-3.0-or-later
//! `analyze --expect`: the run's records compared with expected ones; exit status 5 when they
//! differ.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use spycraft::regress::{self, Collector, Comparison, Keyed, MatchOn, ReportTarget};
use spycraft::sink::COLUMNS;

use crate::outcome::{Usage, EXIT_MISMATCH, EXIT_UNDELIVERED};

/// What `analyze` takes to compare its records with expected ones.
#[derive(clap::Args, Debug)]
pub struct ExpectArgs {
    /// Compare the records with those of FILE (JSON lines, as `--format jsonl` writes them)
    /// and exit with status 5 when they differ.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
    /// Pair calls on these record fields, comma-separated; `invite_order` numbers the calls
    /// alike in the others by INVITE time [default: call_id,from_tag].
    #[arg(long, value_name = "FIELDS", requires = "expect")]
    pub match_on: Option<MatchOn>,
    /// How far `*_ms` durations may differ, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 50, requires = "expect")]
    pub tolerance_ms: u64,
    /// Do not compare this field (repeatable).
    #[arg(long, value_name = "FIELD", requires = "expect")]
    pub ignore: Vec<String>,
    /// Also compare this field (repeatable; a `*_ms` field within the tolerance).
    #[arg(long, value_name = "FIELD", requires = "expect")]
    pub compare: Vec<String>,
    /// Also write the comparison as `junit:FILE` (JUnit XML, a test case per call) or
    /// `json:FILE` (repeatable).
    #[arg(long, value_name = "FORMAT:FILE", requires = "expect")]
    pub report: Vec<ReportTarget>,
}

/// The expected records, read before the run, and how to compare.
pub struct Expectation {
    path: PathBuf,
    match_on: MatchOn,
    comparison: Comparison,
    expected: Vec<Keyed>,
    reports: Vec<ReportTarget>,
    /// Sees the run's records.
    pub collector: Arc<Collector>,
}

impl ExpectArgs {
    /// Reads the expected records (a mistake in them fails before the run); `None` without
    /// `--expect`.
    pub fn prepare(&self) -> anyhow::Result<Option<Expectation>> {
        let Some(path) = &self.expect else {
            return Ok(None);
        };
        let mut comparison = Comparison {
            tolerance_ms: self.tolerance_ms,
            ..Comparison::default()
        };
        for (flag, fields) in [("--ignore", &self.ignore), ("--compare", &self.compare)] {
            if let Some(field) = fields.iter().find(|f| !COLUMNS.contains(&f.as_str())) {
                return Err(Usage(format!("{flag} {field}: not a record field")).into());
            }
        }
        self.ignore.iter().for_each(|f| comparison.ignore(f));
        self.compare.iter().for_each(|f| comparison.compare(f));
        let match_on = self.match_on.clone().unwrap_or_default();
        let expected = regress::read(path, &match_on).context("--expect")?;
        Ok(Some(Expectation {
            path: path.clone(),
            match_on,
            comparison,
            expected,
            reports: self.report.clone(),
            collector: Arc::new(Collector::default()),
        }))
    }
}

impl Expectation {
    /// Compares the run's records with the expected ones and says how they differ; a run
    /// that was otherwise clean (or only left records in a spool) ends with status 5 when
    /// they do. A run that failed or broke off keeps its own status.
    pub fn judge(&self, code: ExitCode, quiet: bool) -> anyhow::Result<ExitCode> {
        let got = regress::keyed(self.collector.take(), &self.match_on)
            .map_err(|(place, why)| anyhow::anyhow!("record {place} of this run: {why}"))?;
        let verdict = self.comparison.run(&self.expected, &got);
        let expected = self.path.display();
        for report in &self.reports {
            let text = report.render(&verdict, &expected.to_string());
            std::fs::write(&report.path, text)
                .with_context(|| format!("--report {}", report.path.display()))?;
        }
        if verdict.passed() {
            if !quiet {
                eprintln!("spycraft: as expected by {expected}: {verdict}");
            }
            return Ok(code);
        }
        for line in verdict.to_string().lines() {
            eprintln!("spycraft: {expected}: {line}");
        }
        let replaceable = [ExitCode::SUCCESS, ExitCode::from(EXIT_UNDELIVERED)];
        Ok(match replaceable.contains(&code) {
            true => ExitCode::from(EXIT_MISMATCH),
            false => code,
        })
    }
}
