// SPDX-License-Identifier: AGPL-3.0-or-later
//! RADIUS accounting (RFC 2866) to the first of a list of servers that answers: a Start when
//! a call leg is answered, Interim-Updates while it lasts, and its record as the Stop (an
//! unanswered one as a Stop of no time, or a Failed).
//!
//! Records go to a spool of their own first, as PostgreSQL's do, and a delivery thread moves
//! them to the servers one request at a time, advancing the spool's cursor only when a server
//! has acknowledged every request of a record. An outage or a crash loses nothing; a record
//! sent again after a crash carries the same Acct-Session-Id (its record id), so the server
//! can drop the duplicate.
//!
//! Starts and Interim-Updates of calls still up wait in a bounded queue in memory instead:
//! the call they report on is itself in memory until it ends. A Start not acknowledged by the
//! time its record is delivered (the queue was full, the sensor restarted) goes out before
//! the Stop, so every answered record has both.

mod accounting;
mod client;
mod packet;

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::delivery::DeliveryControl;
use super::spool::{self, SpoolConfig, SpoolError, SpoolReader, SpoolWriter};
use super::{DeliveryStatus, RecordSink, RequestCounts, SinkError, Tally};
use crate::call::{CallProgress, CallRecord, Timestamp};

pub use accounting::{cisco_time, q850_cause, terminate_cause, Dictionary, Request, Status};
pub use client::{ClientCounts, Timing};
pub use packet::{check_response, Attributes, PacketError};

/// The default accounting port (RFC 2866).
pub const ACCOUNTING_PORT: u16 = 1813;

/// Everything the RADIUS sink needs.
#[derive(Clone, Debug)]
pub struct RadiusConfig {
    /// Servers, tried in order: `host`, `host:port`, `[v6]:port`.
    pub servers: Vec<String>,
    /// The shared secret.
    pub secret: Vec<u8>,
    /// NAS-Identifier.
    pub nas_identifier: String,
    /// An unanswered call as Acct-Status-Type Failed rather than a Stop of no time.
    pub failed: bool,
    /// Attributes beside RFC 2866's and Cisco's.
    pub dictionary: Dictionary,
    /// The spool in front of the servers.
    pub spool: SpoolConfig,
    /// How long to wait for answers, and how often to ask again.
    pub timing: Timing,
    /// At the end of a run, how long to keep trying unreachable servers.
    pub drain_timeout: Duration,
    /// A live capture (Acct-Delay-Time counts from the event; Starts and Interim-Updates
    /// never wait for room).
    pub live: bool,
    /// Say on stderr what was sent when the sink finishes (it is said anyway when requests
    /// were skipped or answers were bad).
    pub report_on_finish: bool,
}

/// What went wrong with RADIUS.
#[derive(Debug, thiserror::Error)]
pub enum RadiusError {
    /// A server's address does not resolve.
    #[error("--radius {server}: {why}")]
    Address {
        /// As given.
        server: String,
        /// Why.
        why: String,
    },
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The drain timeout passed with records still in the spool.
    #[error("{records} records were not acknowledged by a RADIUS server yet; they are kept in the spool {} and will be sent at the next start", dir.display())]
    Undelivered {
        /// How many wait.
        records: u64,
        /// The spool they wait in.
        dir: PathBuf,
    },
    /// The delivery thread failed.
    #[error("RADIUS delivery thread: {0}")]
    Thread(String),
}

/// A server list entry as an address: `host` takes the accounting port.
fn resolve(server: &str) -> Result<SocketAddr, RadiusError> {
    let error = |why: String| RadiusError::Address {
        server: server.to_owned(),
        why,
    };
    if let Ok(addr) = server.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = server.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, ACCOUNTING_PORT));
    }
    let found = match server.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .map_err(|_| error(format!("{port:?} is not a port")))?;
            (host, port).to_socket_addrs()
        }
        None => (server, ACCOUNTING_PORT).to_socket_addrs(),
    };
    found
        .map_err(|e| error(e.to_string()))?
        .next()
        .ok_or_else(|| error("resolves to no address".into()))
}

/// Shared between the sink and its delivery thread.
#[derive(Debug, Default)]
struct Control {
    delivery: DeliveryControl,
    counts: ClientCounts,
    /// Records every request of which a server acknowledged.
    delivered: AtomicU64,
    /// Starts and Interim-Updates not sent: the queue was full in a live capture, or an
    /// Interim-Update's Start was never acknowledged.
    skipped: AtomicU64,
}

/// What the RADIUS servers were sent, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RadiusReport {
    /// Records acknowledged in full.
    pub delivered: u64,
    /// The requests and their answers.
    pub requests: RequestCounts,
    /// Records left in the spool at the end.
    pub undelivered: u64,
}

/// Starts and Interim-Updates waiting for the delivery thread, at most: 4,096 calls'
/// records, a few MiB.
const PROGRESS_QUEUE: usize = 4096;

/// Calls whose Start was acknowledged and whose record is yet to come, remembered at most;
/// beyond, a record's Start goes again with its Stop (the server drops the duplicate).
const MAX_STARTED: usize = 1 << 20;

/// A Start or an Interim-Update of a call in progress, on its way to the delivery thread.
#[derive(Debug)]
struct InProgress {
    /// The call as it stood.
    record: Box<CallRecord>,
    /// `None` for the Start; the time of an Interim-Update.
    interim: Option<Timestamp>,
}

impl InProgress {
    fn request(&self) -> Request<'_> {
        match self.interim {
            None => Request::new(&self.record, Status::Start),
            Some(at) => Request::interim(&self.record, at),
        }
    }
}

/// Writes call records as RADIUS accounting through the spool.
#[derive(Debug)]
pub struct RadiusSink {
    spool: SpoolWriter,
    /// Starts and Interim-Updates, to the delivery thread.
    progress: mpsc::Sender<InProgress>,
    /// A live capture never waits for the queue; a file does.
    live: bool,
    spool_dir: PathBuf,
    drain_timeout: Duration,
    control: Arc<Control>,
    delivery: Option<JoinHandle<Result<u64, RadiusError>>>,
    report: Option<RadiusReport>,
    report_on_finish: bool,
}

impl RadiusSink {
    /// Resolves the servers, opens the spool and starts delivery.
    pub fn start(config: RadiusConfig) -> Result<Self, RadiusError> {
        let servers = config
            .servers
            .iter()
            .map(|s| resolve(s))
            .collect::<Result<Vec<_>, _>>()?;
        let (spool, reader) = spool::open(&config.spool)?;
        let backlog = spool.backlog();
        if backlog.records > 0 {
            eprintln!(
                "spycraft: {} records left in spool {} by an earlier run will be sent to RADIUS first",
                backlog.records,
                config.spool.dir.display()
            );
        }
        let control = Arc::new(Control::default());
        let client = client::Client::new(
            servers,
            config.secret.clone(),
            config.nas_identifier.clone(),
            config.timing,
            config.live,
        )
        .with_dictionary(config.dictionary);
        let (progress, in_progress) = mpsc::channel(PROGRESS_QUEUE);
        let delivery = {
            let delivery = Delivery {
                client,
                control: control.clone(),
                dir: config.spool.dir.clone(),
                last_warning: None,
                started: HashSet::new(),
            };
            let failed = config.failed;
            std::thread::Builder::new()
                .name("spycraft-radius".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| RadiusError::Thread(e.to_string()))?;
                    runtime.block_on(delivery.run(reader, in_progress, failed))
                })
                .map_err(|e| RadiusError::Thread(e.to_string()))?
        };
        Ok(Self {
            spool,
            progress,
            live: config.live,
            spool_dir: config.spool.dir,
            drain_timeout: config.drain_timeout,
            control,
            delivery: Some(delivery),
            report: None,
            report_on_finish: config.report_on_finish,
        })
    }

    /// The requests sent so far and their answers.
    fn requests(&self) -> RequestCounts {
        let c = &self.control.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestCounts {
            sent: get(&c.sent),
            acknowledged: get(&c.acknowledged),
            retried: get(&c.retried),
            failed: get(&c.failovers),
            bad_authenticator: get(&c.bad_authenticator),
            bad_responses: get(&c.bad_responses),
            skipped: get(&self.control.skipped),
        }
    }

    /// What was sent so far.
    pub fn report(&self) -> RadiusReport {
        if let Some(report) = self.report {
            return report;
        }
        RadiusReport {
            delivered: self.control.delivered.load(Ordering::Relaxed),
            requests: self.requests(),
            undelivered: self.spool.backlog().records,
        }
    }

    /// Delivers what is spooled (within the drain timeout) and stops the thread.
    fn stop(&mut self) -> Result<RadiusReport, RadiusError> {
        if let Some(report) = self.report {
            return Ok(report);
        }
        let closed = self.spool.close();
        self.control.delivery.close(self.drain_timeout);
        let undelivered = match self.delivery.take().map(JoinHandle::join) {
            Some(Ok(result)) => result?,
            Some(Err(_)) => return Err(RadiusError::Thread("it panicked".into())),
            None => 0,
        };
        let report = RadiusReport {
            undelivered,
            ..self.report()
        };
        self.report = Some(report);
        closed?;
        Ok(report)
    }
}

impl RecordSink for RadiusSink {
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
        self.spool
            .append(record)
            .map_err(|e| SinkError::Radius(e.into()))
    }

    /// Queues the call's Start or Interim-Update. A file waits for room; a live capture
    /// never does: what does not fit is counted as skipped (a Start then goes with the
    /// Stop).
    fn progress(&mut self, call: &CallRecord, progress: CallProgress) -> Result<(), SinkError> {
        let interim = match progress {
            CallProgress::Answered => None,
            CallProgress::Interim(at) => Some(at),
        };
        let mut item = InProgress {
            record: Box::new(call.clone()),
            interim,
        };
        loop {
            match self.progress.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(back)) if !self.live => {
                    item = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => {
                    self.control.skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
            }
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.spool.retry().map_err(|e| SinkError::Radius(e.into()))
    }

    fn delivery(&self) -> Option<DeliveryStatus> {
        Some(DeliveryStatus {
            requests: Some(self.requests()),
            ..self.control.delivery.status(&self.spool)
        })
    }

    fn tally(&self) -> Option<Tally> {
        Some(self.spool.tally(self.report.map(|r| r.undelivered)))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let report = self.stop().map_err(SinkError::Radius)?;
        let r = report.requests;
        if self.report_on_finish || r.skipped + r.bad_authenticator + r.bad_responses > 0 {
            eprintln!(
                "spycraft: RADIUS: {} records acknowledged; {} requests sent, {} acknowledged, {} retransmitted, {} unanswered by a server, {} bad authenticators, {} other bad responses, {} Starts and Interim-Updates skipped",
                report.delivered,
                r.sent,
                r.acknowledged,
                r.retried,
                r.failed,
                r.bad_authenticator,
                r.bad_responses,
                r.skipped
            );
        }
        if report.undelivered > 0 {
            return Err(SinkError::Radius(RadiusError::Undelivered {
                records: report.undelivered,
                dir: self.spool_dir.clone(),
            }));
        }
        Ok(())
    }
}

impl Drop for RadiusSink {
    fn drop(&mut self) {
        if self.delivery.is_some() {
            let _ = self.stop();
        }
    }
}

/// Repeats the outage warning this often.
const OUTAGE_WARNING_EVERY: Duration = Duration::from_secs(30);

/// The delivery thread's state: the client, and which calls' Starts are acknowledged.
struct Delivery {
    client: client::Client,
    control: Arc<Control>,
    /// The spool's directory, for the outage warning.
    dir: PathBuf,
    /// When the last outage warning was given, while the servers are unreachable.
    last_warning: Option<Instant>,
    /// Record ids of calls whose Start a server acknowledged, until their record comes.
    started: HashSet<uuid::Uuid>,
}

/// The delivery loop's verdict on a request: sent, or given up on at the end of the run.
type Sent = Result<(), client::ClientError>;

impl Delivery {
    /// Each spooled record's requests in turn, the cursor advanced once all are
    /// acknowledged, and the Starts and Interim-Updates of calls in progress as they come;
    /// returns the records left when it gave up.
    async fn run(
        mut self,
        mut reader: SpoolReader,
        mut in_progress: mpsc::Receiver<InProgress>,
        failed: bool,
    ) -> Result<u64, RadiusError> {
        let mut pending: Vec<CallRecord> = Vec::with_capacity(1);
        loop {
            // Seen closed before the queue and the spool are read: then both are read to
            // their very end.
            let closing = self.control.delivery.closing();
            if self.progress(&mut in_progress).await.is_err() {
                return Ok(reader.backlog().records);
            }
            pending.clear();
            let end = reader.read(1, &mut pending)?;
            let Some(record) = pending.first() else {
                if closing {
                    return Ok(0);
                }
                tokio::select! {
                    _ = reader.wait(Duration::from_millis(500)) => {}
                    _ = self.control.delivery.wake.notified() => {}
                    item = in_progress.recv(), if !in_progress.is_closed() => {
                        if let Some(item) = item {
                            if self.send_progress(&item).await.is_err() {
                                return Ok(reader.backlog().records);
                            }
                        }
                    }
                }
                continue;
            };
            // A call's Start is queued before its record is spooled: send what came
            // meanwhile first.
            if self.progress(&mut in_progress).await.is_err() {
                return Ok(reader.backlog().records);
            }
            let started = record.answer_at.is_some() && self.started.remove(&record.id);
            let statuses = match accounting::statuses(record, failed) {
                [Status::Start, rest @ ..] if started => rest,
                all => all,
            };
            for &status in statuses {
                if self.send(Request::new(record, status)).await.is_err() {
                    return Ok(reader.backlog().records);
                }
            }
            reader.commit(end, 1)?;
            self.control.delivered.fetch_add(1, Ordering::Relaxed);
            self.control.delivery.delivered_now();
        }
    }

    /// Sends the Starts and Interim-Updates queued now.
    async fn progress(&mut self, in_progress: &mut mpsc::Receiver<InProgress>) -> Sent {
        while let Ok(item) = in_progress.try_recv() {
            self.send_progress(&item).await?;
        }
        Ok(())
    }

    /// A Start, remembered once acknowledged; an Interim-Update only after its Start.
    async fn send_progress(&mut self, item: &InProgress) -> Sent {
        let id = item.record.id;
        if item.interim.is_some() && !self.started.contains(&id) {
            self.control.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.send(item.request()).await?;
        if item.interim.is_none() && self.started.len() < MAX_STARTED {
            self.started.insert(id);
        }
        Ok(())
    }

    /// One request, until a server acknowledges it or the run gives up at its end; an
    /// outage is reported as it begins (and every 30 s), and when it is over.
    async fn send(&mut self, request: Request<'_>) -> Sent {
        let (control, dir, last_warning) = (&self.control, &self.dir, &mut self.last_warning);
        let mut keep_trying = |why: &str| {
            control.delivery.set_unreachable(Some(why.to_owned()));
            let now = Instant::now();
            if last_warning.is_none_or(|t| now.duration_since(t) >= OUTAGE_WARNING_EVERY) {
                eprintln!(
                    "spycraft: WARNING: RADIUS: {why}; records are kept in spool {} until a server answers",
                    dir.display()
                );
                *last_warning = Some(now);
            }
            !control.delivery.giving_up()
        };
        self.client
            .deliver(request, &control.counts, &mut keep_trying)
            .await?;
        if self.last_warning.take().is_some() {
            eprintln!("spycraft: RADIUS: a server answers again; sending what waits");
        }
        self.control.delivery.set_unreachable(None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_take_the_accounting_port_unless_they_name_one() {
        assert_eq!(
            resolve("127.0.0.1").expect("address"),
            "127.0.0.1:1813".parse().expect("address")
        );
        assert_eq!(
            resolve("127.0.0.1:18130").expect("address"),
            "127.0.0.1:18130".parse().expect("address")
        );
        assert_eq!(
            resolve("::1").expect("address"),
            "[::1]:1813".parse().expect("address")
        );
        assert_eq!(
            resolve("[::1]:1646").expect("address"),
            "[::1]:1646".parse().expect("address")
        );
        assert_eq!(
            resolve("localhost").expect("address").port(),
            ACCOUNTING_PORT
        );
        assert!(resolve("no-such-host.invalid").is_err());
    }
}
