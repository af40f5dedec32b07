// SPDX-License-Identifier: AGPL-3.0-or-later
//! PostgreSQL call accounting. Records go first to the on-disk spool (the pipeline never waits
//! for the network), and a delivery thread moves them from the spool into the database in
//! batches, committing the spool cursor only after the database committed. A database that is
//! down or slow makes records accumulate in the spool; they are delivered in order when it
//! returns, or at the next start after a crash. Delivery is idempotent on the record id.

mod batch;
mod connect;
pub mod messages;
pub mod schema;
mod status;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::delivery::DeliveryControl;
use super::spool::{self, SpoolConfig, SpoolError, SpoolReader, SpoolWriter};
use super::{DeliveryStatus, RecordSink, SinkError, Tally};
use crate::accounting::rates::RateDeck;
use crate::call::CallRecord;

pub use connect::{redact_password, Target};
pub use status::{status, DatabaseStatus, Partitions};

/// Everything the PostgreSQL sink needs.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// The database.
    pub target: Target,
    /// Sensor name, for `sensor_stats`.
    pub node: String,
    /// The spool in front of it.
    pub spool: SpoolConfig,
    /// Records per transaction.
    pub batch_size: usize,
    /// Drop daily partitions older than this many days (wall clock); none keeps everything.
    pub retention_days: Option<u32>,
    /// At the end of a run, how long to keep trying to deliver what is still spooled.
    pub drain_timeout: Duration,
    /// Say on stderr how many records were delivered, when the sink finishes.
    pub report_on_finish: bool,
    /// Prices each record (`rated_prefix`, `cost`) when given.
    pub deck: Option<Arc<RateDeck>>,
}

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The settings cannot work.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached or refused the login.
    #[error("cannot connect to PostgreSQL at {0}: {1}")]
    Connect(String, PgError),
    /// A statement failed.
    #[error("PostgreSQL: {0}")]
    Db(PgError),
    /// A schema migration failed.
    #[error("PostgreSQL: migration {0} failed: {1}")]
    Migration(i32, PgError),
    #[error(
        "the database has schema version {0}, newer than this spycraft knows; upgrade spycraft"
    )]
    /// The database's schema is newer than this spycraft knows.
    SchemaTooNew(i32),
    /// The database's schema is not the one this spycraft made.
    #[error("the database's migration {0} differs from this spycraft's; it was not made by this release")]
    SchemaDiffers(i32),
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The drain timeout passed with records still in the spool.
    #[error("{records} records could not be delivered yet; they are kept in the spool {} and will be delivered at the next start (or by `spycraft db flush`)", dir.display())]
    Undelivered {
        /// How many wait.
        records: u64,
        /// The spool they wait in.
        dir: PathBuf,
    },
    /// The delivery thread failed.
    #[error("PostgreSQL delivery thread: {0}")]
    Thread(String),
}

impl PostgresError {
    /// The database refuses spycraft for a reason that waiting will not mend: a wrong
    /// password or user, a database that does not exist, a server certificate that fails
    /// verification, a server that will not speak TLS when TLS is required.
    pub fn is_refusal(&self) -> bool {
        let Self::Connect(_, PgError(e)) = self else {
            return false;
        };
        if let Some(code) = e.code() {
            // 28: invalid authorization (password, pg_hba); 3D000: no such database.
            return code.code().starts_with("28") || code.code() == "3D000";
        }
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            let tls = c.downcast_ref::<rustls::Error>().or_else(|| {
                c.downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            });
            if matches!(
                tls,
                Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
            ) {
                return true;
            }
            cause = c.source();
        }
        // tokio-postgres says so in words only.
        e.to_string().contains("server does not support TLS")
    }

    /// The session is gone (server shut down, network cut), as opposed to the database
    /// refusing what was sent: reconnect rather than retry on the same session.
    fn is_connection_loss(&self) -> bool {
        match self {
            Self::Connect(..) => true,
            Self::Db(PgError(e)) => match e.code() {
                // 08: connection exception; 57: operator intervention (shutdown, crash).
                Some(code) => matches!(&code.code()[..2], "08" | "57"),
                None => e.as_db_error().is_none(),
            },
            _ => false,
        }
    }
}

impl From<tokio_postgres::Error> for PostgresError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(PgError(e))
    }
}

/// A tokio-postgres error shown with its causes ("db error: ERROR: …", "error performing TLS
/// handshake: invalid peer certificate: …"), since its own text names only the kind.
#[derive(Debug)]
pub struct PgError(pub tokio_postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::error_chain(&self.0))
    }
}

/// What a delivery run achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Records committed (including replays the database already had).
    pub delivered: u64,
    /// Of those, rows that were new.
    pub inserted: u64,
    /// Records still in the spool when delivery stopped.
    pub undelivered: u64,
}

/// Writes call records to PostgreSQL through the spool.
#[derive(Debug)]
pub struct PostgresSink {
    spool: SpoolWriter,
    spool_dir: PathBuf,
    drain_timeout: Duration,
    report_on_finish: bool,
    control: Arc<Control>,
    delivery: Option<JoinHandle<Result<DeliveryReport, PostgresError>>>,
    report: Option<DeliveryReport>,
}

/// Shared between the sink and its delivery thread.
#[derive(Debug, Default)]
struct Control {
    delivery: DeliveryControl,
    /// Counter snapshots waiting for the database (best effort, bounded).
    snapshots: Mutex<VecDeque<(String, serde_json::Value)>>,
}

/// Snapshots kept while the database is away; older ones are dropped first.
const MAX_SNAPSHOTS: usize = 64;

impl PostgresSink {
    /// Opens the spool and starts delivery. Waits for the first connection attempt, so a
    /// wrong schema or connection string fails here, before any analysis; an unreachable
    /// server is only a warning (records are spooled until it comes back).
    pub fn start(config: PostgresConfig) -> Result<Self, PostgresError> {
        let (spool, reader) = spool::open(&config.spool)?;
        let backlog = spool.backlog();
        if backlog.records > 0 {
            eprintln!(
                "spycraft: {} records left in spool {} by an earlier run will be delivered first",
                backlog.records,
                config.spool.dir.display()
            );
        }
        let control = Arc::new(Control::default());
        control.delivery.delivered_now();
        let (ready_tx, ready_rx) = mpsc::channel();
        let delivery = {
            let control = control.clone();
            let config = config.clone();
            std::thread::Builder::new()
                .name("spycraft-postgres".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| PostgresError::Thread(e.to_string()))?;
                    runtime.block_on(deliver(config, reader, control, ready_tx))
                })
                .map_err(|e| PostgresError::Thread(e.to_string()))?
        };
        let mut sink = Self {
            spool,
            spool_dir: config.spool.dir.clone(),
            drain_timeout: config.drain_timeout,
            report_on_finish: config.report_on_finish,
            control,
            delivery: Some(delivery),
            report: None,
        };
        // A timeout only means the server is slow to answer: delivery goes on without us.
        if let Ok(Err(fatal)) = ready_rx.recv_timeout(Duration::from_secs(30)) {
            // The thread has ended; join it so nothing is left running.
            let _ = sink.stop();
            return Err(fatal);
        }
        Ok(sink)
    }

    /// Delivers what is spooled and waits for the delivery thread. Records the spool could
    /// not take even now are lost (counted in the tally); the error says why.
    fn stop(&mut self) -> Result<DeliveryReport, PostgresError> {
        if let Some(report) = self.report {
            return Ok(report);
        }
        let closed = self.spool.close();
        self.control.delivery.close(self.drain_timeout);
        let report = match self.delivery.take().map(JoinHandle::join) {
            Some(Ok(result)) => result?,
            Some(Err(_)) => return Err(PostgresError::Thread("it panicked".into())),
            None => DeliveryReport::default(),
        };
        self.report = Some(report);
        closed?;
        Ok(report)
    }

    /// Stops delivery and reports; an error if records remain undelivered.
    pub fn close(&mut self) -> Result<DeliveryReport, PostgresError> {
        let report = self.stop()?;
        if report.undelivered > 0 {
            return Err(PostgresError::Undelivered {
                records: report.undelivered,
                dir: self.spool_dir.clone(),
            });
        }
        Ok(report)
    }
}

impl RecordSink for PostgresSink {
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
        self.spool
            .append(record)
            .map_err(|e| SinkError::Postgres(e.into()))
    }

    /// Retries the records a failed spool write holds.
    fn flush(&mut self) -> Result<(), SinkError> {
        self.spool
            .retry()
            .map_err(|e| SinkError::Postgres(e.into()))
    }

    fn delivery(&self) -> Option<DeliveryStatus> {
        Some(self.control.delivery.status(&self.spool))
    }

    fn tally(&self) -> Option<Tally> {
        Some(self.spool.tally(self.report.map(|r| r.undelivered)))
    }

    fn counters(&mut self, source: &str, counters: &serde_json::Value) {
        if let Ok(mut q) = self.control.snapshots.lock() {
            if q.len() == MAX_SNAPSHOTS {
                q.pop_front();
            }
            q.push_back((source.to_owned(), counters.clone()));
        }
        self.control.delivery.wake.notify_one();
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let report = self.close().map_err(SinkError::Postgres)?;
        if !self.report_on_finish {
            return Ok(());
        }
        eprintln!(
            "spycraft: PostgreSQL: {} records delivered ({} new)",
            report.delivered, report.inserted
        );
        Ok(())
    }
}

impl Drop for PostgresSink {
    fn drop(&mut self) {
        // An early return (an error elsewhere) still stops the thread; records stay spooled.
        if self.delivery.is_some() {
            let _ = self.stop();
        }
    }
}

/// How a delivery run talks to the outside while the database is away.
struct Outage {
    since: Instant,
    last_warning: Instant,
}

/// Repeats the outage warning this often.
const OUTAGE_WARNING_EVERY: Duration = Duration::from_secs(30);
/// Retention runs at start and then this often.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// The delivery loop: connect, migrate, then move batches from the spool to the database
/// until the sink closes and the spool is empty (or the drain timeout passes).
async fn deliver(
    config: PostgresConfig,
    mut reader: SpoolReader,
    control: Arc<Control>,
    ready: mpsc::Sender<Result<(), PostgresError>>,
) -> Result<DeliveryReport, PostgresError> {
    let mut ready = Some(ready);
    let target = &config.target;
    let mut report = DeliveryReport::default();
    let mut pending: Vec<CallRecord> = Vec::with_capacity(config.batch_size);
    let mut pending_end = 0;
    let mut outage: Option<Outage> = None;
    let mut migrated = false;
    let mut last_retention: Option<Instant> = None;
    let mut backoff = Duration::from_millis(200);
    // The server refused spycraft during the run (said once).
    let mut refused = false;

    loop {
        let mut client = match target.connect().await {
            Ok(client) => client,
            Err(e) if e.is_refusal() => {
                if let Some(tx) = ready.take() {
                    // At the start: the run fails at once, before it has read anything.
                    let _ = tx.send(Err(e));
                    return Ok(report);
                }
                control.delivery.set_unreachable(Some(e.to_string()));
                if !refused {
                    eprintln!(
                        "spycraft: ERROR: {e}; this will not pass by itself: records are kept \
                         in spool {} until the settings or the server are put right",
                        reader.dir().display()
                    );
                    refused = true;
                }
                if control.delivery.closing() {
                    // No point waiting out the drain timeout for a refusal.
                    report.undelivered = reader.backlog().records;
                    return Ok(report);
                }
                control.delivery.pause(Duration::from_secs(5)).await;
                continue;
            }
            Err(e) => {
                note_outage(&mut outage, &e, &reader, &control);
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Ok(()));
                }
                if control.delivery.giving_up() {
                    report.undelivered = reader.backlog().records;
                    return Ok(report);
                }
                control.delivery.pause(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if !migrated {
            match schema::migrate(&mut client).await {
                Ok(applied) if !applied.is_empty() => {
                    eprintln!(
                        "spycraft: PostgreSQL at {}: applied schema migrations {applied:?}",
                        target.describe()
                    );
                }
                Ok(_) => {}
                Err(e @ (PostgresError::SchemaTooNew(_) | PostgresError::SchemaDiffers(_))) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Err(PostgresError::Config(e.to_string())));
                    }
                    return Err(e);
                }
                Err(e) => {
                    note_outage(&mut outage, &e, &reader, &control);
                    control.delivery.pause(backoff).await;
                    continue;
                }
            }
            migrated = true;
        }
        if let Some(tx) = ready.take() {
            let _ = tx.send(Ok(()));
        }
        refused = false;
        control.delivery.set_unreachable(None);
        if let Some(o) = outage.take() {
            eprintln!(
                "spycraft: PostgreSQL at {} is back after {} s; delivering {} spooled records",
                target.describe(),
                o.since.elapsed().as_secs(),
                reader.backlog().records
            );
        }
        backoff = Duration::from_millis(200);

        // One session: until the connection breaks or the work is done.
        loop {
            if let Some(days) = config.retention_days {
                if last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
                    match apply_retention(&client, days).await {
                        Ok(0) => {}
                        Ok(n) => eprintln!(
                            "spycraft: retention: dropped {n} daily partitions older than {days} days"
                        ),
                        Err(e) => eprintln!("spycraft: WARNING: retention: {e}"),
                    }
                    last_retention = Some(Instant::now());
                }
            }
            if pending.is_empty() {
                pending_end = reader.read(config.batch_size, &mut pending)?;
            }
            if pending.is_empty() {
                if let Err(e) = write_snapshots(&client, &config.node, &control).await {
                    if client.is_closed() {
                        note_outage(&mut outage, &e, &reader, &control);
                        break;
                    }
                    eprintln!("spycraft: WARNING: sensor_stats: {e}");
                }
                if control.delivery.closing() {
                    // The writer is closed and everything it wrote is committed.
                    pending_end = reader.read(config.batch_size, &mut pending)?;
                    if pending.is_empty() {
                        return Ok(report);
                    }
                    continue;
                }
                tokio::select! {
                    _ = reader.wait(Duration::from_millis(500)) => {}
                    _ = control.delivery.wake.notified() => {}
                }
                // A server that went away while nothing was due is noticed now, not at the
                // next record: monitoring must see the outage as it happens.
                if client.is_closed() {
                    let gone = PostgresError::Config(format!(
                        "the connection to PostgreSQL at {} was closed",
                        target.describe()
                    ));
                    note_outage(&mut outage, &gone, &reader, &control);
                    break;
                }
                continue;
            }
            match batch::write_batch(&mut client, &pending, config.deck.as_deref()).await {
                Ok(inserted) => {
                    reader.commit(pending_end, pending.len() as u64)?;
                    control.delivery.delivered_now();
                    report.delivered += pending.len() as u64;
                    report.inserted += inserted;
                    pending.clear();
                }
                Err(e) if client.is_closed() || e.is_connection_loss() => {
                    note_outage(&mut outage, &e, &reader, &control);
                    break;
                }
                Err(e) => {
                    eprintln!(
                        "spycraft: WARNING: PostgreSQL at {} refused a batch of {} records ({e}); \
                         they stay in the spool and will be retried",
                        target.describe(),
                        pending.len()
                    );
                    if control.delivery.giving_up() {
                        report.undelivered = reader.backlog().records;
                        return Ok(report);
                    }
                    control.delivery.pause(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        if control.delivery.giving_up() {
            report.undelivered = reader.backlog().records;
            return Ok(report);
        }
    }
}

/// Says loudly that the database is away, then again every so often while it stays away.
fn note_outage(
    outage: &mut Option<Outage>,
    error: &PostgresError,
    reader: &SpoolReader,
    control: &Control,
) {
    control.delivery.set_unreachable(Some(error.to_string()));
    let now = Instant::now();
    let backlog = reader.backlog();
    match outage {
        None => {
            eprintln!(
                "spycraft: WARNING: {error}; records are kept in spool {} until it is back",
                reader.dir().display()
            );
            *outage = Some(Outage {
                since: now,
                last_warning: now,
            });
        }
        Some(o) if now.duration_since(o.last_warning) >= OUTAGE_WARNING_EVERY => {
            eprintln!(
                "spycraft: WARNING: PostgreSQL still unreachable after {} s ({error}); \
                 {} records ({} KiB) waiting in spool {}",
                now.duration_since(o.since).as_secs(),
                backlog.records,
                backlog.bytes >> 10,
                reader.dir().display()
            );
            o.last_warning = now;
        }
        Some(_) => {}
    }
}

async fn write_snapshots(
    client: &tokio_postgres::Client,
    node: &str,
    control: &Control,
) -> Result<(), PostgresError> {
    loop {
        let next = control
            .snapshots
            .lock()
            .ok()
            .and_then(|q| q.front().cloned());
        let Some((source, counters)) = next else {
            return Ok(());
        };
        client
            .execute(
                "INSERT INTO sensor_stats (node, source, counters) VALUES ($1, $2, $3)",
                &[&node, &source, &counters],
            )
            .await?;
        if let Ok(mut q) = control.snapshots.lock() {
            q.pop_front();
        }
    }
}

async fn apply_retention(client: &tokio_postgres::Client, days: u32) -> Result<i32, PostgresError> {
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    let row = client
        .query_one(
            "SELECT spycraft_drop_cdr_partitions_before(cutoff) \
               + spycraft_drop_sip_message_partitions_before(cutoff) \
             FROM (SELECT (now() - make_interval(days => $1))::date AS cutoff) AS retention",
            &[&days],
        )
        .await?;
    Ok(row.get(0))
}

/// Applies pending migrations (`spycraft db migrate`); returns the versions applied.
pub fn migrate(target: &Target) -> Result<Vec<i32>, PostgresError> {
    block_on(async {
        let mut client = target.connect().await?;
        schema::migrate(&mut client).await
    })
}

/// Runs `f` on a runtime of its own (for the `db` commands).
fn block_on<T>(
    f: impl std::future::Future<Output = Result<T, PostgresError>>,
) -> Result<T, PostgresError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PostgresError::Thread(e.to_string()))?
        .block_on(f)
}
