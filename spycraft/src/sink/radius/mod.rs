// SPDX-License-Identifier: AGPL-3.0-or-later
//! RADIUS accounting (RFC 2866): each record as a Start and a Stop (an unanswered one as a
//! Stop of no time, or a Failed) to the first of a list of servers that answers.
//!
//! Records go to a spool of their own first, as PostgreSQL's do, and a delivery thread moves
//! them to the servers one request at a time, advancing the spool's cursor only when a server
//! has acknowledged every request of a record. An outage or a crash loses nothing; a record
//! sent again after a crash carries the same Acct-Session-Id (its record id), so the server
//! can drop the duplicate.

mod accounting;
mod client;
mod packet;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::spool::{self, SpoolConfig, SpoolError, SpoolReader, SpoolWriter};
use super::{DeliveryStatus, RecordSink, RequestCounts, SinkError, Tally};
use crate::call::CallRecord;

pub use accounting::{cisco_time, q850_cause, terminate_cause, Dictionary, Status};
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
    /// A live capture (Acct-Delay-Time counts from the event).
    pub live: bool,
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
    closing: AtomicBool,
    give_up_at: Mutex<Option<Instant>>,
    wake: Notify,
    counts: ClientCounts,
    /// Records every request of which a server acknowledged.
    delivered: AtomicU64,
    unreachable: Mutex<Option<String>>,
    last_delivery: Mutex<Option<Instant>>,
}

impl Control {
    fn giving_up(&self) -> bool {
        self.closing.load(Ordering::Acquire)
            && self
                .give_up_at
                .lock()
                .map(|t| t.is_some_and(|t| Instant::now() >= t))
                .unwrap_or(true)
    }
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

/// Writes call records as RADIUS accounting through the spool.
#[derive(Debug)]
pub struct RadiusSink {
    spool: SpoolWriter,
    spool_dir: PathBuf,
    drain_timeout: Duration,
    control: Arc<Control>,
    delivery: Option<JoinHandle<Result<u64, RadiusError>>>,
    report: Option<RadiusReport>,
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
        let delivery = {
            let control = control.clone();
            let failed = config.failed;
            std::thread::Builder::new()
                .name("spycraft-radius".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| RadiusError::Thread(e.to_string()))?;
                    runtime.block_on(deliver(client, reader, control, failed))
                })
                .map_err(|e| RadiusError::Thread(e.to_string()))?
        };
        Ok(Self {
            spool,
            spool_dir: config.spool.dir,
            drain_timeout: config.drain_timeout,
            control,
            delivery: Some(delivery),
            report: None,
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
            bad_authenticator: get(&c.bad_authenticator),
            bad_responses: get(&c.bad_responses),
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
        if let Ok(mut t) = self.control.give_up_at.lock() {
            *t = Some(Instant::now() + self.drain_timeout);
        }
        self.control.closing.store(true, Ordering::Release);
        self.control.wake.notify_one();
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

    fn flush(&mut self) -> Result<(), SinkError> {
        self.spool.retry().map_err(|e| SinkError::Radius(e.into()))
    }

    fn delivery(&self) -> Option<DeliveryStatus> {
        let last = self.control.last_delivery.lock().ok().and_then(|t| *t);
        let unreachable = self.control.unreachable.lock().ok().and_then(|u| u.clone());
        Some(DeliveryStatus {
            requests: Some(self.requests()),
            ..self.spool.delivery_status(last, unreachable)
        })
    }

    fn tally(&self) -> Option<Tally> {
        Some(self.spool.tally(self.report.map(|r| r.undelivered)))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let report = self.stop().map_err(SinkError::Radius)?;
        eprintln!(
            "spycraft: RADIUS: {} records acknowledged; {} requests sent, {} acknowledged, {} retransmitted, {} bad authenticators, {} other bad responses",
            report.delivered,
            report.requests.sent,
            report.requests.acknowledged,
            report.requests.retried,
            report.requests.bad_authenticator,
            report.requests.bad_responses
        );
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

/// The delivery loop: each spooled record's requests in turn, the cursor advanced once all
/// are acknowledged; returns the records left when it gave up.
async fn deliver(
    mut client: client::Client,
    mut reader: SpoolReader,
    control: Arc<Control>,
    failed: bool,
) -> Result<u64, RadiusError> {
    let mut pending: Vec<CallRecord> = Vec::with_capacity(1);
    let mut last_warning: Option<Instant> = None;
    loop {
        pending.clear();
        let end = reader.read(1, &mut pending)?;
        let Some(record) = pending.first() else {
            if control.closing.load(Ordering::Acquire) {
                // The writer was closed before: everything it wrote has been read.
                return Ok(0);
            }
            tokio::select! {
                _ = reader.wait(Duration::from_millis(500)) => {}
                _ = control.wake.notified() => {}
            }
            continue;
        };
        for &status in accounting::statuses(record, failed) {
            let mut keep_trying = |why: &str| {
                if let Ok(mut u) = control.unreachable.lock() {
                    *u = Some(why.to_owned());
                }
                let now = Instant::now();
                if last_warning.is_none_or(|t| now.duration_since(t) >= OUTAGE_WARNING_EVERY) {
                    eprintln!(
                        "spycraft: WARNING: RADIUS: {why}; records are kept in spool {} until a server answers",
                        reader.dir().display()
                    );
                    last_warning = Some(now);
                }
                !control.giving_up()
            };
            if client
                .deliver(record, status, &control.counts, &mut keep_trying)
                .await
                .is_err()
            {
                return Ok(reader.backlog().records);
            }
        }
        if last_warning.take().is_some() {
            eprintln!(
                "spycraft: RADIUS: a server answers again; sending {} spooled records",
                reader.backlog().records
            );
        }
        if let Ok(mut u) = control.unreachable.lock() {
            *u = None;
        }
        reader.commit(end, 1)?;
        control.delivered.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut t) = control.last_delivery.lock() {
            *t = Some(Instant::now());
        }
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
