// SPDX-License-Identifier: AGPL-3.0-or-later
//! A verdict as files CI servers and tools read: JUnit XML (one test case per call, what
//! Jenkins, GitLab and GitHub show) and JSON.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::{CallKey, Change, Verdict};

/// The formats of `--report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// JUnit XML.
    Junit,
    /// JSON.
    Json,
}

/// `--report FORMAT:FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportTarget {
    /// How to write it.
    pub format: ReportFormat,
    /// Where.
    pub path: PathBuf,
}

impl std::str::FromStr for ReportTarget {
    type Err = String;

    fn from_str(target: &str) -> Result<Self, String> {
        let (format, path) = match target.split_once(':') {
            Some(("junit", path)) => (ReportFormat::Junit, path),
            Some(("json", path)) => (ReportFormat::Json, path),
            _ => return Err("expected junit:FILE or json:FILE".into()),
        };
        if path.is_empty() {
            return Err("expected junit:FILE or json:FILE".into());
        }
        Ok(Self {
            format,
            path: path.into(),
        })
    }
}

impl ReportTarget {
    /// `verdict` in this target's format; `suite` names the comparison (the expected file).
    pub fn render(&self, verdict: &Verdict, suite: &str) -> String {
        match self.format {
            ReportFormat::Junit => junit(verdict, suite),
            ReportFormat::Json => {
                let mut text = json_report(verdict, suite).to_string();
                text.push('\n');
                text
            }
        }
    }
}

/// One call's outcome.
enum Outcome<'a> {
    AsExpected,
    Changed(&'a [Change]),
    Missing,
    Extra,
}

impl Outcome<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::AsExpected => "as_expected",
            Self::Changed(_) => "changed",
            Self::Missing => "missing",
            Self::Extra => "extra",
        }
    }
}

/// Every call of `verdict` with its outcome, in key order.
fn calls(verdict: &Verdict) -> Vec<(&CallKey, Outcome<'_>)> {
    let mut calls: Vec<(&CallKey, Outcome<'_>)> = verdict
        .matched
        .iter()
        .map(|k| (k, Outcome::AsExpected))
        .chain(
            verdict
                .changed
                .iter()
                .map(|(k, c)| (k, Outcome::Changed(c))),
        )
        .chain(verdict.missing.iter().map(|k| (k, Outcome::Missing)))
        .chain(verdict.extra.iter().map(|k| (k, Outcome::Extra)))
        .collect();
    calls.sort_by(|a, b| a.0.cmp(b.0));
    calls
}

/// JUnit XML: a suite named `suite`, a test case per call (the call's key its name), a
/// failure for each call that is changed, missing or extra.
pub fn junit(verdict: &Verdict, suite: &str) -> String {
    let calls = calls(verdict);
    let failures = calls
        .iter()
        .filter(|(_, o)| !matches!(o, Outcome::AsExpected))
        .count();
    let suite = escape(suite);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"spycraft\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">",
        calls.len()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">",
        calls.len()
    );
    for (key, outcome) in &calls {
        let name = escape(&key.to_string());
        let open = format!("    <testcase classname=\"{suite}\" name=\"{name}\"");
        let (message, text) = match outcome {
            Outcome::AsExpected => {
                let _ = writeln!(xml, "{open}/>");
                continue;
            }
            Outcome::Changed(changes) => (
                match changes.len() {
                    1 => "1 field differs".to_owned(),
                    n => format!("{n} fields differ"),
                },
                changes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            Outcome::Missing => (
                "expected, not in the run".to_owned(),
                "expected, not in the run".to_owned(),
            ),
            Outcome::Extra => (
                "in the run, not expected".to_owned(),
                "in the run, not expected".to_owned(),
            ),
        };
        let _ = writeln!(
            xml,
            "{open}>\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
            outcome.name(),
            escape(&message),
            escape(&text)
        );
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// JSON: the counts, and every call with its outcome and changes.
pub fn json_report(verdict: &Verdict, suite: &str) -> Value {
    let calls: Vec<Value> = calls(verdict)
        .into_iter()
        .map(|(key, outcome)| {
            let changes: Vec<Value> = match &outcome {
                Outcome::Changed(changes) => changes
                    .iter()
                    .map(|c| json!({"field": c.field, "expected": c.expected, "got": c.got}))
                    .collect(),
                _ => Vec::new(),
            };
            json!({"call": key.to_string(), "outcome": outcome.name(), "changes": changes})
        })
        .collect();
    json!({
        "expected": suite,
        "passed": verdict.passed(),
        "as_expected": verdict.matched.len(),
        "changed": verdict.changed.len(),
        "missing": verdict.missing.len(),
        "extra": verdict.extra.len(),
        "calls": calls,
    })
}

/// Text for XML attributes and content.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            // XML 1.0 cannot carry other control characters at all.
            c if c.is_control() && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_their_format() {
        let t: ReportTarget = "junit:out/r.xml".parse().expect("a target");
        assert_eq!(t.format, ReportFormat::Junit);
        assert_eq!(t.path, PathBuf::from("out/r.xml"));
        assert!("xml:r.xml".parse::<ReportTarget>().is_err());
        assert!("json:".parse::<ReportTarget>().is_err());
    }

    #[test]
    fn markup_in_keys_and_values_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'\n\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&#10;\u{fffd}"
        );
    }
}
