// SPDX-License-Identifier: AGPL-3.0-or-later
//! The shared body of `analyze` and `capture`: track the calls of some sources, write their
//! records to every configured output, then say what became of them.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::Context;
use spycraft::alert::{AlertLog, Syslog};
use spycraft::capture::{CaptureError, FrameSource};
use spycraft::hep::{HepExport, HepReport};
use spycraft::monitor::Phase;
use spycraft::pipeline::{
    run_sources, AnalyzeError, ChangeSlot, EventWatcher, MessageTap, MessageTaps, Observers,
    Progress, RunObserver, SipPorts,
};
use spycraft::privilege::Dropped;
use spycraft::settings::Settings;
use spycraft::sink::calls::{CallFormat, CallSink};
use spycraft::sink::postgres::messages::{MessageReport, MessageWriter};
use spycraft::sink::postgres::PostgresSink;
use spycraft::sink::radius::RadiusSink;
use spycraft::sink::{
    sink_for, CsvSink, Format, Outputs, RecordSink, SinkError, StableSink, TableSink,
};

use crate::notify::Notifier;
use crate::outcome::{describe_output, Outcome, Usage};
use crate::service::Service;
use crate::stop::{self, STOP};

/// Which command runs, for the counters it stores and how its table prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    Analyze,
    Capture,
    /// Files analysed into memory for the web pages and API: no other output.
    Serve,
}

impl Run {
    fn name(self) -> &'static str {
        match self {
            Run::Analyze => "analyze",
            Run::Capture => "capture",
            Run::Serve => "serve",
        }
    }
}

/// What a live capture adds to a run.
pub struct Live<'a> {
    /// Records written so far, for the status line.
    pub written: Arc<AtomicU64>,
    /// What became of the privileges the attach needed (dropped before any thread started).
    pub dropped: Dropped,
    /// systemd, told when the capture is ready and when it stops.
    pub notifier: Option<&'a Notifier>,
    /// Where a reload leaves changes for the pipeline.
    pub changes: Arc<ChangeSlot>,
}

/// Who follows a run besides its outputs.
pub struct Watchers<'a> {
    /// The web service and its metrics.
    pub service: Option<&'a Service>,
    /// Sees every record (`analyze --expect`).
    pub observer: Option<Arc<dyn RunObserver>>,
}

/// Tracks the calls of `sources` on `ports`, writes their records where `settings` say (shown
/// to `watchers` too), prints the summary and returns the exit status.
pub fn record_run(
    settings: &Settings,
    run: Run,
    ports: SipPorts,
    sources: &mut [Box<dyn FrameSource>],
    progress: &mut dyn FnMut(&Progress),
    live: Option<Live<'_>>,
    watchers: Watchers<'_>,
) -> anyhow::Result<ExitCode> {
    let Watchers { service, observer } = watchers;
    let mut config = settings.pipeline(ports, run.name());
    let quiet = settings.records.quiet;
    let mut outputs = open_outputs(settings, run)?;
    let mut notifier = None;
    if let Some(live) = live {
        config.records_written = Some(live.written);
        config.changes = Some(live.changes);
        notifier = live.notifier;
        if let Some(n) = notifier {
            n.send(&format!("READY=1\nSTATUS=capturing; {}", live.dropped));
        }
    }

    let hep = open_hep(settings, run)?;
    let mut observers: Vec<Arc<dyn RunObserver>> = observer.into_iter().collect();
    if let Some(service) = service {
        observers.push(service.observer());
        service.monitor.set_phase(Phase::Running);
        if let Some(hep) = &hep {
            service.monitor.add_hep_export(hep.clone());
        }
    }
    if settings.hep.cdr {
        observers.extend(hep.clone().map(|h| h as Arc<dyn RunObserver>));
    }
    config.observer = match observers.len() {
        0 => None,
        1 => observers.pop(),
        _ => Some(Arc::new(Observers(observers))),
    };
    let alerts = open_alerts(settings, run, hep.clone())?;
    if let (Some(service), Some(alerts)) = (service, &alerts) {
        service.monitor.set_alerts(alerts.clone());
    }
    config.watcher = alerts.clone().map(|a| Arc::new(a) as Arc<dyn EventWatcher>);
    let stored_messages = open_message_store(settings, run)?;
    let taps: Vec<Arc<dyn MessageTap>> = service
        .and_then(Service::tap)
        .into_iter()
        .chain(stored_messages.clone().map(|w| w as Arc<dyn MessageTap>))
        .chain(hep.clone().map(|h| h as Arc<dyn MessageTap>))
        .collect();
    config.tap = match taps.len() {
        0 => None,
        1 => taps.into_iter().next(),
        _ => Some(Arc::new(MessageTaps(taps))),
    };
    let (summary, result) = run_sources(sources, &config, &mut outputs, progress);
    if let Some(n) = notifier {
        n.send("STOPPING=1\nSTATUS=writing the open calls and draining the outputs");
    }
    outputs.counters(run.name(), &summary.counters_json());
    // Outputs report their own failures; they never fail the finish.
    let _ = outputs.finish();
    if let Some(service) = service {
        // The run is over: nothing is in progress any more.
        let observer = service.observer();
        observer.snapshot(&summary, 0, outputs.reports());
        observer.live_calls(&[]);
    }

    // Every failure is said, and the most severe decides the exit status.
    let mut status = Outcome::Clean;
    if !quiet || result.is_err() {
        eprintln!("spycraft: {}", summary.one_line());
    }
    match result {
        Ok(()) => {}
        Err(AnalyzeError::Capture(e @ CaptureError::Damaged { .. })) => {
            eprintln!("spycraft: {e}; the records cover the readable part");
            status = status.max(Outcome::Damaged);
        }
        Err(e) => {
            eprintln!("spycraft: {}", spycraft::error_chain(&e));
            status = status.max(Outcome::Failed);
        }
    }
    if stop::requested() && run == Run::Analyze && !quiet {
        eprintln!(
            "spycraft: stopped before the end of the input; open calls written as incomplete"
        );
    }
    for report in &outputs.reports() {
        let outcome = Outcome::of(report);
        if !quiet || outcome != Outcome::Clean {
            eprintln!("spycraft: {}", describe_output(report));
        }
        status = status.max(outcome);
    }
    if let Some(writer) = stored_messages {
        let report = writer.close();
        if !quiet || report.lost > 0 {
            eprintln!("spycraft: {}", describe_messages(&report));
        }
        if report.lost > 0 {
            status = status.max(Outcome::Failed);
        }
    }
    if let Some(alerts) = alerts {
        let report = alerts.report();
        if !quiet || report.failed() > 0 || report.counts.overflow > 0 {
            eprintln!("spycraft: {}", report.summary());
        }
        if report.failed() > 0 {
            status = status.max(Outcome::Failed);
        }
    }
    for report in hep.map(|h| h.close()).unwrap_or_default() {
        if !quiet || report.not_sent() > 0 {
            eprintln!("spycraft: {}", describe_hep(&report));
        }
        if report.not_sent() > 0 {
            status = status.max(Outcome::Failed);
        }
    }
    // The summary is out; a server may go on showing the run.
    if let Some(service) = service {
        service.linger(match run {
            Run::Analyze => Some(settings.http.linger_secs),
            Run::Capture => Some(0),
            Run::Serve => None,
        });
    }
    Ok(status.exit_code())
}

/// `--alerts`, `--alerts-syslog`: the rules of the settings applied to the run, their
/// alerts written to the file (created, or appended to) or standard output, to syslog, and
/// as HEP logs when `--hep` exports.
fn open_alerts(
    settings: &Settings,
    run: Run,
    hep: Option<Arc<HepExport>>,
) -> anyhow::Result<Option<AlertLog>> {
    let wanted = &settings.alerts;
    if !wanted.on() || run == Run::Serve {
        return Ok(None);
    }
    let mut alerts = AlertLog::new(settings.alert_rules()?);
    if let Some(path) = &wanted.output {
        alerts = if path.as_os_str() == "-" {
            alerts.with_lines("standard output", Box::new(std::io::stdout()))
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("--alerts {}", path.display()))?;
            alerts.with_lines(&path.display().to_string(), Box::new(file))
        };
    }
    if let Some(target) = &wanted.syslog {
        let syslog = Syslog::open(target, &settings.sensor.node)
            .with_context(|| format!("--alerts-syslog {target}"))?;
        alerts = alerts.with_syslog(syslog);
    }
    if let Some(hep) = hep {
        alerts = alerts.with_hep(hep);
    }
    Ok(Some(alerts))
}

/// `--store-messages`: the writer of every SIP message to the database of `--postgres`.
fn open_message_store(settings: &Settings, run: Run) -> anyhow::Result<Option<Arc<MessageWriter>>> {
    if !settings.postgres.store_messages || run == Run::Serve {
        return Ok(None);
    }
    let Some(config) = settings.postgres(false).context("--postgres")? else {
        return Err(Usage(
            "--store-messages writes to the database of --postgres: give one".into(),
        )
        .into());
    };
    // Files wait for the database; a live capture never does.
    let wait_when_full = run != Run::Capture;
    let writer = MessageWriter::start(
        config.target,
        config.node,
        config.drain_timeout,
        wait_when_full,
    )?;
    Ok(Some(Arc::new(writer)))
}

/// One line on what became of the messages `--store-messages` was given.
fn describe_messages(report: &MessageReport) -> String {
    let mut line = format!(
        "SIP messages for PostgreSQL: {} seen, {} stored",
        report.seen, report.stored
    );
    if report.lost > 0 {
        line.push_str(&format!(", {} LOST (not stored)", report.lost));
    }
    if report.write_errors > 0 {
        line.push_str(&format!(", {} failed writes retried", report.write_errors));
    }
    line
}

/// `--hep`: the exporter of every SIP message (and with `--hep-cdr`, each record).
fn open_hep(settings: &Settings, run: Run) -> anyhow::Result<Option<Arc<HepExport>>> {
    if run == Run::Serve {
        return Ok(None);
    }
    let Some(config) = settings
        .hep(run == Run::Capture)
        .context("--hep-password-file")?
    else {
        return Ok(None);
    };
    Ok(Some(Arc::new(HepExport::start(config)?)))
}

/// One line on what became of the packets meant for one HEP collector.
fn describe_hep(r: &HepReport) -> String {
    let mut line = format!(
        "HEP to {}: {} packets, {} sent",
        r.destination, r.offered, r.sent
    );
    if r.not_sent() > 0 {
        let reasons: Vec<String> = [
            ("queue full", r.queue_full),
            ("oversize", r.oversize),
            ("unreachable", r.unreachable),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(why, n)| format!("{n} {why}"))
        .collect();
        line.push_str(&format!(
            ", {} NOT SENT ({})",
            r.not_sent(),
            reasons.join(", ")
        ));
    }
    if r.reconnects > 0 {
        line.push_str(&format!(", {} reconnections", r.reconnects));
    }
    line
}

/// The database and the RADIUS servers (opened first: a wrong URL, schema or server fails
/// before a long run) and the file or standard output. With either, records go to standard
/// output only when a format or file is asked for. A capture's file is reopened on SIGHUP (log rotation).
fn open_outputs(settings: &Settings, run: Run) -> anyhow::Result<Outputs> {
    let records = &settings.records;
    let mut outputs = Outputs::new(Some(&STOP));
    if run == Run::Serve {
        return Ok(outputs);
    }
    if let Some(mut config) = settings.postgres(!records.quiet).context("--postgres")? {
        config.deck = settings.rate_deck()?.map(Arc::new);
        let name = format!("PostgreSQL at {}", config.target.describe());
        outputs.add(name, Box::new(PostgresSink::start(config)?));
    }
    if let Some(config) = settings
        .radius(run == Run::Capture, !records.quiet)
        .context("--radius")?
    {
        let name = format!("RADIUS at {}", config.servers.join(", "));
        outputs.add(name, Box::new(RadiusSink::start(config)?));
    }
    if !outputs.is_empty() && records.format.is_none() && records.output.is_none() {
        return Ok(outputs);
    }
    let shape = Shape {
        calls: records.calls,
        stable: records.stable,
        run,
    };
    let Some(path) = &records.output else {
        let to_terminal = std::io::stdout().is_terminal();
        let format = records.format.unwrap_or(if to_terminal {
            Format::Table
        } else {
            Format::Jsonl
        });
        outputs.add(
            "standard output",
            shape.sink(format, Box::new(std::io::stdout()), true)?,
        );
        return Ok(outputs);
    };
    let format = records.format.unwrap_or(Format::Jsonl);
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let sink = shape.sink(format, Box::new(file), true)?;
    let name = path.display().to_string();
    if run == Run::Capture {
        let path = path.clone();
        let reopen = move || -> Result<Box<dyn RecordSink>, SinkError> {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            // A file rotated away is new and empty: it gets a header; one that was not, none.
            let fresh = file.metadata()?.len() == 0;
            shape
                .sink(format, Box::new(file), fresh)
                .map_err(|e| SinkError::Io(std::io::Error::other(e.to_string())))
        };
        outputs.add_reopenable(name, sink, Box::new(reopen));
        outputs.reopen_on(&stop::REOPEN);
    } else {
        outputs.add(name, sink);
    }
    Ok(outputs)
}

/// What the records of a run look like, whatever they are written to.
#[derive(Clone, Copy)]
struct Shape {
    calls: bool,
    stable: bool,
    run: Run,
}

impl Shape {
    /// A sink of `format` writing to `out`; `fresh`: `out` is empty (a header goes first).
    fn sink(
        self,
        format: Format,
        out: Box<dyn Write + Send>,
        fresh: bool,
    ) -> anyhow::Result<Box<dyn RecordSink>> {
        Ok(if self.stable {
            match (format, self.calls) {
                (Format::Jsonl, false) => Box::new(StableSink::new(out)),
                _ => anyhow::bail!(
                    "--stable writes records as JSON lines: use --format jsonl, without --calls"
                ),
            }
        } else if self.calls {
            match format {
                Format::Jsonl => Box::new(CallSink::new(out, CallFormat::Jsonl)),
                Format::Table => Box::new(CallSink::new(out, CallFormat::Table)),
                Format::Csv => anyhow::bail!("--calls nests legs: use --format jsonl or table"),
            }
        } else if format == Format::Table && self.run == Run::Capture {
            // Live, each row shows as its call is written, not when the capture stops.
            Box::new(TableSink::live(out))
        } else if format == Format::Csv && !fresh {
            Box::new(CsvSink::continuing(out))
        } else {
            sink_for(format, out)
        })
    }
}
