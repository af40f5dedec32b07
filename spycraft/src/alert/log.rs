// SPDX-License-Identifier: AGPL-3.0-or-later
//! Where alerts go: JSON lines (EVE) to a file or standard output, and syslog; each written
//! (and flushed) as it is raised, a failing write said when it happens and counted.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::engine::{AlertCounts, AlertEngine};
use super::rules::{RuleKind, Rules};
use super::syslog::Syslog;
use super::Alert;
use crate::call::CallRecord;
use crate::hep::HepExport;
use crate::packet::{Timestamp, Transport};
use crate::pipeline::EventWatcher;
use crate::sip::SipEvent;

/// What became of a run's alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertReport {
    /// Raised per rule, and what the tables could not follow.
    pub counts: AlertCounts,
    /// Each output: its name, alerts written and alerts that could not be.
    pub outputs: Vec<(String, u64, u64)>,
}

impl AlertReport {
    /// Alerts raised in all.
    pub fn raised(&self) -> u64 {
        self.counts.raised.iter().sum()
    }

    /// Alerts raised per rule, every rule named.
    pub fn by_rule(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        RuleKind::ALL
            .iter()
            .zip(self.counts.raised)
            .map(|(rule, n)| (rule.name(), n))
    }

    /// Alerts some output did not get.
    pub fn failed(&self) -> u64 {
        self.outputs.iter().map(|(_, _, failed)| failed).sum()
    }

    /// `alerts: 3 raised (scanner 1, enumeration 2); alerts.jsonl: 3 written` and what
    /// went wrong.
    pub fn summary(&self) -> String {
        let by_rule: Vec<String> = self
            .by_rule()
            .filter(|(_, n)| *n > 0)
            .map(|(rule, n)| format!("{rule} {n}"))
            .collect();
        let mut line = format!("alerts: {} raised", self.raised());
        if !by_rule.is_empty() {
            line += &format!(" ({})", by_rule.join(", "));
        }
        if self.counts.overflow > 0 {
            line += &format!(
                ", {} offenders or calls not followed (tables full)",
                self.counts.overflow
            );
        }
        for (name, written, failed) in &self.outputs {
            line += &format!("; {name}: {written} written");
            if *failed > 0 {
                line += &format!(", {failed} NOT WRITTEN");
            }
        }
        line
    }
}

/// Where alerts go.
enum Sink {
    /// JSON lines (EVE) to a file or standard output.
    Lines(Box<dyn Write + Send>),
    /// Syslog messages.
    Syslog(Syslog),
    /// HEP logs (type 100) to the HEP collectors, tied to the call by its Call-ID; what
    /// the collectors do not get is counted by the HEP export.
    Hep(Arc<HepExport>),
}

/// An alert destination and what it has done.
struct Output {
    name: String,
    sink: Sink,
    written: u64,
    failed: u64,
    /// Whether the last write failed (said once per run of failures).
    failing: bool,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("name", &self.name).finish()
    }
}

impl Output {
    fn write(&mut self, alerts: &[Alert]) {
        let sent = match &mut self.sink {
            Sink::Lines(writer) => {
                let mut text = String::new();
                for alert in alerts {
                    text += &alert.eve().to_string();
                    text.push('\n');
                }
                writer
                    .write_all(text.as_bytes())
                    .and_then(|()| writer.flush())
            }
            Sink::Syslog(syslog) => alerts.iter().try_for_each(|a| syslog.send(a)),
            Sink::Hep(hep) => {
                for a in alerts {
                    let call_id = a.sip.as_ref().map(|s| s.call_id.as_bytes());
                    let text = a.eve().to_string();
                    hep.log(
                        (a.offender, a.target),
                        a.at,
                        a.transport,
                        call_id,
                        text.as_bytes(),
                    );
                }
                Ok(())
            }
        };
        let n = alerts.len() as u64;
        match sent {
            Ok(()) => {
                self.written += n;
                self.failing = false;
            }
            Err(e) => {
                self.failed += n;
                if !self.failing {
                    eprintln!(
                        "spycraft: alerts: {}: {e}; alerts are being lost",
                        self.name
                    );
                }
                self.failing = true;
            }
        }
    }
}

/// Alerts kept in memory for the web API and pages, the newest last.
pub const RECENT: usize = 1000;

#[derive(Debug)]
struct Inner {
    engine: AlertEngine,
    outputs: Vec<Output>,
    raised: Vec<Alert>,
    recent: VecDeque<Alert>,
}

impl Inner {
    fn write_raised(&mut self) {
        if self.raised.is_empty() {
            return;
        }
        for output in &mut self.outputs {
            output.write(&self.raised);
        }
        for alert in self.raised.drain(..) {
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(alert);
        }
    }
}

/// The rules applied to a run and the alerts written as they are raised; shown every
/// message and record by the pipeline (as its [`EventWatcher`]).
#[derive(Debug, Clone)]
pub struct AlertLog(Arc<Mutex<Inner>>);

impl AlertLog {
    /// Alerts of `rules`, written nowhere yet.
    pub fn new(rules: Rules) -> Self {
        Self(Arc::new(Mutex::new(Inner {
            engine: AlertEngine::new(rules),
            outputs: Vec::new(),
            raised: Vec::new(),
            recent: VecDeque::new(),
        })))
    }

    /// Alerts also written to `writer` as JSON lines, named `name` in messages.
    pub fn with_lines(self, name: &str, writer: Box<dyn Write + Send>) -> Self {
        self.add(name.to_owned(), Sink::Lines(writer))
    }

    /// Alerts also sent to syslog.
    pub fn with_syslog(self, syslog: Syslog) -> Self {
        let name = format!("syslog {}", syslog.target());
        self.add(name, Sink::Syslog(syslog))
    }

    /// Alerts also sent as HEP logs (type 100) through `hep`.
    pub fn with_hep(self, hep: Arc<HepExport>) -> Self {
        self.add("HEP logs".to_owned(), Sink::Hep(hep))
    }

    fn add(self, name: String, sink: Sink) -> Self {
        self.lock().outputs.push(Output {
            name,
            sink,
            written: 0,
            failed: 0,
            failing: false,
        });
        self
    }

    /// What has been raised and written so far.
    pub fn report(&self) -> AlertReport {
        let inner = self.lock();
        AlertReport {
            counts: inner.engine.counts(),
            outputs: inner
                .outputs
                .iter()
                .map(|o| (o.name.clone(), o.written, o.failed))
                .collect(),
        }
    }

    /// The latest alerts (at most [`RECENT`]), newest first.
    pub fn recent(&self) -> Vec<Alert> {
        self.lock().recent.iter().rev().cloned().collect()
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

    fn malformed(&self, from: SocketAddr, to: SocketAddr, time: Timestamp, transport: Transport) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner
            .engine
            .malformed(from, to, time, transport, &mut inner.raised);
        inner.write_raised();
    }

    fn finish(&self) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.engine.finish(&mut inner.raised);
        inner.write_raised();
    }
}
