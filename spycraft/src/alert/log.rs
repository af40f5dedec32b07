// SPDX-License-Identifier: AGPL-3.0-or-later
//! Where alerts go: JSON lines (EVE) to a file or standard output, written and flushed as
//! they are raised; a failing write is said when it happens and counted.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use super::engine::{AlertCounts, AlertEngine};
use super::rules::{RuleKind, Rules};
use super::Alert;
use crate::call::CallRecord;
use crate::pipeline::EventWatcher;
use crate::sip::SipEvent;

/// What became of a run's alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertReport {
    /// Raised per rule, and what the tables could not follow.
    pub counts: AlertCounts,
    /// Alerts written.
    pub written: u64,
    /// Alerts that could not be written.
    pub failed: u64,
}

impl AlertReport {
    /// Alerts raised in all.
    pub fn raised(&self) -> u64 {
        self.counts.raised.iter().sum()
    }

    /// `alerts: 3 raised (scanner 1, enumeration 2), 3 written` and what went wrong.
    pub fn summary(&self) -> String {
        let by_rule: Vec<String> = RuleKind::ALL
            .iter()
            .zip(self.counts.raised)
            .filter(|(_, n)| *n > 0)
            .map(|(rule, n)| format!("{} {n}", rule.name()))
            .collect();
        let mut line = format!("alerts: {} raised", self.raised());
        if !by_rule.is_empty() {
            line += &format!(" ({})", by_rule.join(", "));
        }
        line += &format!(", {} written", self.written);
        if self.failed > 0 {
            line += &format!(", {} NOT WRITTEN", self.failed);
        }
        if self.counts.overflow > 0 {
            line += &format!(
                ", {} offenders or calls not followed (tables full)",
                self.counts.overflow
            );
        }
        line
    }
}

/// The alert destination and its state.
struct Output {
    name: String,
    writer: Box<dyn Write + Send>,
    /// Whether the last write failed (said once per run of failures).
    failing: bool,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("name", &self.name).finish()
    }
}

#[derive(Debug)]
struct Inner {
    engine: AlertEngine,
    output: Output,
    raised: Vec<Alert>,
    written: u64,
    failed: u64,
}

impl Inner {
    fn write_raised(&mut self) {
        if self.raised.is_empty() {
            return;
        }
        let mut text = String::new();
        for alert in &self.raised {
            text += &alert.eve().to_string();
            text.push('\n');
        }
        let n = self.raised.len() as u64;
        self.raised.clear();
        let out = &mut self.output;
        match out
            .writer
            .write_all(text.as_bytes())
            .and_then(|()| out.writer.flush())
        {
            Ok(()) => {
                self.written += n;
                out.failing = false;
            }
            Err(e) => {
                self.failed += n;
                if !out.failing {
                    eprintln!("spycraft: alerts: {}: {e}; alerts are being lost", out.name);
                }
                out.failing = true;
            }
        }
    }
}

/// The rules applied to a run and the alerts written as they are raised; shown every
/// message and record by the pipeline (as its [`EventWatcher`]).
#[derive(Debug, Clone)]
pub struct AlertLog(Arc<Mutex<Inner>>);

impl AlertLog {
    /// Alerts of `rules` written to `writer`, named `name` in messages.
    pub fn new(rules: Rules, name: &str, writer: Box<dyn Write + Send>) -> Self {
        Self(Arc::new(Mutex::new(Inner {
            engine: AlertEngine::new(rules),
            output: Output {
                name: name.to_owned(),
                writer,
                failing: false,
            },
            raised: Vec::new(),
            written: 0,
            failed: 0,
        })))
    }

    /// What has been raised and written so far.
    pub fn report(&self) -> AlertReport {
        let inner = self.lock();
        AlertReport {
            counts: inner.engine.counts(),
            written: inner.written,
            failed: inner.failed,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the counts half-updated: keep going.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl EventWatcher for AlertLog {
    fn event(&self, event: &SipEvent) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.engine.event(event, &mut inner.raised);
        inner.write_raised();
    }

    fn record(&self, record: &CallRecord) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.engine.record(record, &mut inner.raised);
        inner.write_raised();
    }

    fn finish(&self) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.engine.finish(&mut inner.raised);
        inner.write_raised();
    }
}
