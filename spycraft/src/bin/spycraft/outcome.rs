// SPDX-License-Identifier: AGPL-3.0-or-later
//! How a run ended, and the exit status and summary lines that say so.

use std::process::ExitCode;

use spycraft::capture::CaptureError;
use spycraft::sink::OutputReport;

/// Exit status when the input broke off mid-way: records from the readable part were written.
pub const EXIT_DAMAGED: u8 = 3;
/// Exit status when nothing could be analysed (missing file, not a capture, bad option value).
pub const EXIT_FAILED: u8 = 1;
/// Exit status of a command line that cannot work as given (as clap's own usage errors).
pub const EXIT_USAGE: u8 = 2;
/// Exit status when the records are safe in the spool but the database has not taken them yet.
pub const EXIT_UNDELIVERED: u8 = 4;
/// Exit status when the records differ from the expected ones (`analyze --expect`).
pub const EXIT_MISMATCH: u8 = 5;

/// A command line that cannot work as given.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// How a run ended, in rising order of severity: the most severe one met is the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Clean,
    /// Records are safe in the spool but the database has not taken them yet.
    Undelivered,
    /// The input broke off: the records cover the readable part.
    Damaged,
    /// Records were lost, or the run could not go on.
    Failed,
}

impl Outcome {
    /// What an output's report means for the run.
    pub fn of(report: &OutputReport) -> Self {
        let t = &report.tally;
        if report.closed {
            // Its reader stopped reading (`| head`): what it did not take, it did not want.
            Self::Clean
        } else if t.lost > 0 || t.held > 0 {
            Self::Failed
        } else if t.kept > 0 {
            Self::Undelivered
        } else {
            Self::Clean
        }
    }

    pub fn exit_code(self) -> ExitCode {
        match self {
            Self::Clean => ExitCode::SUCCESS,
            Self::Undelivered => ExitCode::from(EXIT_UNDELIVERED),
            Self::Damaged => ExitCode::from(EXIT_DAMAGED),
            Self::Failed => ExitCode::from(EXIT_FAILED),
        }
    }
}

/// One line on what an output did with its records.
pub fn describe_output(report: &OutputReport) -> String {
    let t = &report.tally;
    let mut line = format!("{}: {} records", report.output, t.records);
    let mut parts = vec![format!("{} written", t.delivered)];
    if t.kept > 0 {
        parts.push(format!(
            "{} kept in the spool for the next start or `spycraft db flush`",
            t.kept
        ));
    }
    if t.held > 0 {
        parts.push(format!("{} never written", t.held));
    }
    if t.lost > 0 {
        parts.push(format!("{} LOST", t.lost));
    }
    if report.closed {
        parts.push("its reader closed it".to_owned());
    }
    line.push_str(": ");
    line.push_str(&parts.join(", "));
    if let Some(error) = &report.failing {
        line.push_str(&format!(" ({error})"));
    } else if report.write_errors > 0 {
        line.push_str(&format!(
            " ({} write errors, reported as they happened)",
            report.write_errors
        ));
    }
    line
}

/// Says on stderr that a capture broke off, and picks the exit status for it.
pub fn damage_status(damage: Option<CaptureError>) -> ExitCode {
    match damage {
        Some(e) => {
            eprintln!("spycraft: {e}; the output covers the readable part");
            ExitCode::from(EXIT_DAMAGED)
        }
        None => ExitCode::SUCCESS,
    }
}
