// SPDX-License-Identifier: AGPL-3.0-or-later
//! Records compared call by call: `analyze --expect` against expected ones, `diff` between
//! two runs; exit status 5 when they differ.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use spycraft::call::Disposition;
use spycraft::capture::CaptureError;
use spycraft::pipeline::{analyze_files, AnalyzeError, PipelineConfig};
use spycraft::regress::{self, Collector, Comparison, Keyed, MatchOn, ReportTarget, Verdict};
use spycraft::settings::Settings;
use spycraft::sink::COLUMNS;
use spycraft_common::PortRange;

use crate::outcome::{damage_status, Usage, EXIT_MISMATCH, EXIT_UNDELIVERED};

/// How calls are paired and compared, and where the verdict is also written.
#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Pair calls on these record fields, comma-separated; `invite_order` numbers the calls
    /// alike in the others by INVITE time [default: call_id,from_tag].
    #[arg(long, value_name = "FIELDS")]
    pub match_on: Option<MatchOn>,
    /// How far `*_ms` durations may differ, in milliseconds [default: 50].
    #[arg(long, value_name = "MS")]
    pub tolerance_ms: Option<u64>,
    /// Do not compare this field (repeatable).
    #[arg(long, value_name = "FIELD")]
    pub ignore: Vec<String>,
    /// Also compare this field (repeatable; a `*_ms` field within the tolerance).
    #[arg(long, value_name = "FIELD")]
    pub compare: Vec<String>,
    /// Also write the comparison as `junit:FILE` (JUnit XML, a test case per call) or
    /// `json:FILE` (repeatable).
    #[arg(long, value_name = "FORMAT:FILE")]
    pub report: Vec<ReportTarget>,
}

impl CompareArgs {
    fn given(&self) -> bool {
        self.match_on.is_some()
            || self.tolerance_ms.is_some()
            || !self.ignore.is_empty()
            || !self.compare.is_empty()
            || !self.report.is_empty()
    }

    /// The comparison asked for; an unknown field is a usage error.
    fn comparison(&self) -> anyhow::Result<Comparison> {
        let mut comparison = Comparison::default();
        if let Some(ms) = self.tolerance_ms {
            comparison.tolerance_ms = ms;
        }
        for (flag, fields) in [("--ignore", &self.ignore), ("--compare", &self.compare)] {
            if let Some(field) = fields.iter().find(|f| !COLUMNS.contains(&f.as_str())) {
                return Err(Usage(format!("{flag} {field}: not a record field")).into());
            }
        }
        self.ignore.iter().for_each(|f| comparison.ignore(f));
        self.compare.iter().for_each(|f| comparison.compare(f));
        Ok(comparison)
    }

    fn match_on(&self) -> MatchOn {
        self.match_on.clone().unwrap_or_default()
    }

    /// Says how `verdict` (of `name` against the run) came out on stderr and in the
    /// reports.
    fn tell(&self, verdict: &Verdict, name: &str, quiet: bool) -> anyhow::Result<()> {
        for report in &self.report {
            std::fs::write(&report.path, report.render(verdict, name))
                .with_context(|| format!("--report {}", report.path.display()))?;
        }
        if !verdict.passed() || !quiet {
            for line in verdict.to_string().lines() {
                eprintln!("spycraft: {name}: {line}");
            }
        }
        Ok(())
    }
}

/// What `analyze` takes to compare its records with expected ones.
#[derive(clap::Args, Debug)]
pub struct ExpectArgs {
    /// Compare the records with those of FILE (JSON lines, as `--format jsonl` writes them)
    /// and exit with status 5 when they differ.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
    #[command(flatten)]
    pub compare: CompareArgs,
}

/// The expected records, read before the run, and how to compare.
pub struct Expectation<'a> {
    path: &'a Path,
    args: &'a CompareArgs,
    comparison: Comparison,
    expected: Vec<Keyed>,
    /// Sees the run's records.
    pub collector: Arc<Collector>,
}

impl ExpectArgs {
    /// Reads the expected records (a mistake in them fails before the run); `None` without
    /// `--expect`.
    pub fn prepare(&self) -> anyhow::Result<Option<Expectation<'_>>> {
        let Some(path) = &self.expect else {
            if self.compare.given() {
                return Err(Usage(
                    "--match-on, --tolerance-ms, --ignore, --compare and --report compare the records: give --expect".into(),
                )
                .into());
            }
            return Ok(None);
        };
        let comparison = self.compare.comparison()?;
        let expected = regress::read(path, &self.compare.match_on()).context("--expect")?;
        Ok(Some(Expectation {
            path,
            args: &self.compare,
            comparison,
            expected,
            collector: Arc::new(Collector::default()),
        }))
    }
}

impl Expectation<'_> {
    /// Compares the run's records with the expected ones and says how they differ; a run
    /// that was otherwise clean (or only left records in a spool) ends with status 5 when
    /// they do. A run that failed or broke off keeps its own status.
    pub fn judge(&self, code: ExitCode, quiet: bool) -> anyhow::Result<ExitCode> {
        let got = regress::keyed(self.collector.take(), &self.args.match_on())
            .map_err(|(place, why)| anyhow::anyhow!("record {place} of this run: {why}"))?;
        let verdict = self.comparison.run(&self.expected, &got);
        self.args
            .tell(&verdict, &self.path.display().to_string(), quiet)?;
        Ok(mismatch_over(code, &verdict))
    }
}

/// Status 5 for records that differ, over a clean run or one that left records in a spool.
fn mismatch_over(code: ExitCode, verdict: &Verdict) -> ExitCode {
    let replaceable = [ExitCode::SUCCESS, ExitCode::from(EXIT_UNDELIVERED)];
    match verdict.passed() || !replaceable.contains(&code) {
        true => code,
        false => ExitCode::from(EXIT_MISMATCH),
    }
}

/// `spycraft diff A B`: the calls of two runs compared.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The run before: a capture, or its records as JSON lines.
    #[arg(value_name = "A")]
    pub before: PathBuf,
    /// The run after, the same way.
    #[arg(value_name = "B")]
    pub after: PathBuf,
    /// SIP ports and ranges of the captures, comma-separated; by default 5060, 5061 and
    /// 5080 plus any port whose traffic starts with a SIP start line.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    pub ports: Option<Vec<PortRange>>,
    #[command(flatten)]
    pub compare: CompareArgs,
}

/// Compares the runs `A` and `B` (each analysed first if it is a capture): the outcomes of
/// each, then every call that differs; status 5 when any does.
pub fn diff(args: &DiffArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let comparison = args.compare.comparison()?;
    let match_on = args.compare.match_on();
    let (before, damaged_a) = run_records(&args.before, settings, &match_on)?;
    let (after, damaged_b) = run_records(&args.after, settings, &match_on)?;
    let dispositions: Vec<String> = Disposition::ALL
        .iter()
        .filter_map(|d| {
            let count = |records: &[Keyed]| {
                records
                    .iter()
                    .filter(|r| {
                        r.record.get("disposition").and_then(|v| v.as_str()) == Some(d.as_str())
                    })
                    .count()
            };
            let (a, b) = (count(&before), count(&after));
            (a + b > 0).then(|| format!("{} {a} → {b}", d.as_str()))
        })
        .collect();
    eprintln!("spycraft: dispositions: {}", dispositions.join(", "));
    let verdict = comparison.run(&before, &after);
    let name = format!("{} vs {}", args.before.display(), args.after.display());
    args.compare.tell(&verdict, &name, settings.records.quiet)?;
    let code = damage_status(damaged_a.or(damaged_b));
    Ok(mismatch_over(code, &verdict))
}

/// The records of one side of a diff: read from JSON lines, or analysed from a capture (with
/// the damage, if it broke off).
fn run_records(
    path: &Path,
    settings: &Settings,
    match_on: &MatchOn,
) -> anyhow::Result<(Vec<Keyed>, Option<CaptureError>)> {
    if is_json_lines(path)? {
        return Ok((regress::read(path, match_on)?, None));
    }
    let config = PipelineConfig {
        ports: settings.sip_ports(),
        collation_headers: settings.sensor.collate_headers.clone(),
        tracker: settings.tracker(),
        ..Default::default()
    };
    let mut collector = Collector::default();
    let (_, result) = analyze_files(
        &[path.to_owned()],
        None,
        &config,
        &mut collector,
        &mut |_| {},
    );
    let damage = match result {
        Ok(()) => None,
        Err(AnalyzeError::Capture(e @ CaptureError::Damaged { .. })) => Some(e),
        Err(e) => return Err(e.into()),
    };
    let records = regress::keyed(collector.take(), match_on)
        .map_err(|(place, why)| anyhow::anyhow!("{}: record {place}: {why}", path.display()))?;
    Ok((records, damage))
}

/// Whether `path` holds JSON lines rather than a capture: no capture format starts with `{`.
fn is_json_lines(path: &Path) -> anyhow::Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .with_context(|| path.display().to_string())?;
    Ok(head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{'))
}
