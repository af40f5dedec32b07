// SPDX-License-Identifier: AGPL-3.0-or-later
//! `--store-messages`: every SIP message into `sip_message`, beside the records, so that the
//! call pages of `spycraft serve --postgres` have the ladders, messages and pcaps of past
//! calls.
//!
//! Messages are not records: they wait in a bounded queue in memory, not in the spool. Reading
//! files, a full queue holds the reading back until the database catches up, so nothing is
//! lost to its speed. A live capture is never held back for a ladder: while the database is
//! slow or away the queue fills, and what does not fit is counted as lost. Lost messages are
//! said in the run's summary and make it exit non-zero; a failing write is said when it
//! happens.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use super::batch::{day_of, instant, text};
use super::{PostgresError, Target};
use crate::fnv::{fnv1a, START};
use crate::parse_stage::SeenMessage;
use crate::pipeline::MessageTap;
use crate::store::kept::KeptMessage;

/// Messages waiting for the database: about 40 MB of typical SIP.
pub const QUEUED_MESSAGES: usize = 65_536;
/// Messages per transaction.
const BATCH: usize = 2_000;
/// How long a message may wait before a batch goes out short.
const LINGER: Duration = Duration::from_millis(200);

/// What became of the messages of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageReport {
    /// Messages handed to the writer.
    pub seen: u64,
    /// Messages the database committed (a message it had already is counted too).
    pub stored: u64,
    /// Messages that never reached it: the queue was full, or the run ended first.
    pub lost: u64,
    /// Writes that failed (each retried until the run ends).
    pub write_errors: u64,
}

#[derive(Debug, Default)]
struct Counts {
    seen: AtomicU64,
    stored: AtomicU64,
    lost: AtomicU64,
    write_errors: AtomicU64,
}

#[derive(Debug, Default)]
struct Control {
    closing: AtomicBool,
    wake: Notify,
}

/// Writes every message it is shown to `sip_message`.
#[derive(Debug)]
pub struct MessageWriter {
    queue: mpsc::Sender<KeptMessage>,
    counts: Arc<Counts>,
    control: Arc<Control>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Wait for room in the queue rather than drop (reading files).
    wait_when_full: bool,
}

impl MessageWriter {
    /// Starts the writer's thread. The database is reached from there; until it is, messages
    /// queue. `wait_when_full`: a full queue holds the pipeline back (files) rather than
    /// dropping messages (a live capture).
    pub fn start(
        target: Target,
        node: String,
        drain_timeout: Duration,
        wait_when_full: bool,
    ) -> Result<Self, PostgresError> {
        let (queue, incoming) = mpsc::channel(QUEUED_MESSAGES);
        let counts = Arc::new(Counts::default());
        let control = Arc::new(Control::default());
        let writer = Writer {
            target,
            node,
            incoming,
            counts: counts.clone(),
            control: control.clone(),
            drain_timeout,
            holds_back: wait_when_full,
        };
        let thread = std::thread::Builder::new()
            .name("spycraft-messages".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(writer.run()),
                    Err(e) => eprintln!("spycraft: --store-messages: {e}"),
                }
            })
            .map_err(|e| PostgresError::Thread(e.to_string()))?;
        Ok(Self {
            queue,
            counts,
            control,
            thread: Mutex::new(Some(thread)),
            wait_when_full,
        })
    }

    /// Stores what is queued (for at most the drain timeout) and says what became of every
    /// message.
    pub fn close(&self) -> MessageReport {
        self.control.closing.store(true, Ordering::Release);
        self.control.wake.notify_one();
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            if thread.join().is_err() {
                eprintln!("spycraft: --store-messages: the writer thread panicked");
            }
        }
        self.report()
    }

    /// What became of the messages so far.
    pub fn report(&self) -> MessageReport {
        MessageReport {
            seen: self.counts.seen.load(Ordering::Relaxed),
            stored: self.counts.stored.load(Ordering::Relaxed),
            lost: self.counts.lost.load(Ordering::Relaxed),
            write_errors: self.counts.write_errors.load(Ordering::Relaxed),
        }
    }
}

impl MessageTap for MessageWriter {
    fn message(&self, message: &SeenMessage<'_, '_, '_>) {
        self.counts.seen.fetch_add(1, Ordering::Relaxed);
        let kept = KeptMessage::of(message);
        // Waiting fails only once the writer has given up (its drain timeout passed).
        let sent = if self.wait_when_full {
            self.queue.blocking_send(kept).is_ok()
        } else {
            self.queue.try_send(kept).is_ok()
        };
        if !sent {
            self.counts.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer thread's side.
struct Writer {
    target: Target,
    node: String,
    incoming: mpsc::Receiver<KeptMessage>,
    counts: Arc<Counts>,
    control: Arc<Control>,
    drain_timeout: Duration,
    /// The pipeline waits for room in the queue: a database away longer than the drain
    /// timeout is given up on mid-run, rather than holding the pipeline for ever.
    holds_back: bool,
}

impl Writer {
    async fn run(mut self) {
        let mut client: Option<Client> = None;
        let mut batch: Vec<KeptMessage> = Vec::with_capacity(BATCH);
        let mut backoff = Duration::from_millis(200);
        let mut failing_since: Option<Instant> = None;
        let mut give_up_at: Option<Instant> = None;
        loop {
            let closing = self.control.closing.load(Ordering::Acquire);
            if closing && give_up_at.is_none() {
                give_up_at = Some(Instant::now() + self.drain_timeout);
            }
            if batch.len() < BATCH {
                self.gather(&mut batch, closing).await;
            }
            if batch.is_empty() {
                if closing && self.incoming.is_empty() {
                    return;
                }
                continue;
            }
            match self.deliver(&mut client, &batch).await {
                Ok(()) => {
                    self.counts
                        .stored
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                    backoff = Duration::from_millis(200);
                    if failing_since.take().is_some() {
                        eprintln!("spycraft: --store-messages: PostgreSQL takes messages again");
                    }
                    if !closing {
                        give_up_at = None;
                    }
                }
                Err(e) => {
                    self.counts.write_errors.fetch_add(1, Ordering::Relaxed);
                    let since = *failing_since.get_or_insert_with(|| {
                        let then = if self.holds_back {
                            format!(
                                "the run waits up to {} s for it",
                                self.drain_timeout.as_secs()
                            )
                        } else {
                            format!("messages past a queue of {QUEUED_MESSAGES} are lost")
                        };
                        eprintln!(
                            "spycraft: WARNING: --store-messages: {}; retrying, {then}",
                            crate::error_chain(&e)
                        );
                        Instant::now()
                    });
                    client = None;
                    if self.holds_back && give_up_at.is_none() {
                        give_up_at = Some(since + self.drain_timeout);
                    }
                    if give_up_at.is_some_and(|t| Instant::now() >= t) {
                        eprintln!(
                            "spycraft: --store-messages: giving up on PostgreSQL; messages from now on are lost"
                        );
                        self.incoming.close();
                        let mut left = batch.len() as u64;
                        while self.incoming.try_recv().is_ok() {
                            left += 1;
                        }
                        self.counts.lost.fetch_add(left, Ordering::Relaxed);
                        return;
                    }
                    // Closing (or holding the run back), the wait ends with the drain timeout.
                    let pause = give_up_at.map_or(backoff, |t| {
                        backoff.min(t.saturating_duration_since(Instant::now()))
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = self.control.wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Adds queued messages to `batch`: waits up to [`LINGER`] for the first unless closing,
    /// then takes what is there, up to a full batch.
    async fn gather(&mut self, batch: &mut Vec<KeptMessage>, closing: bool) {
        if batch.is_empty() && !closing {
            tokio::select! {
                m = self.incoming.recv() => batch.extend(m),
                _ = tokio::time::sleep(LINGER) => {}
                _ = self.control.wake.notified() => {}
            }
        }
        while batch.len() < BATCH {
            match self.incoming.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
    }

    async fn deliver(
        &self,
        client: &mut Option<Client>,
        batch: &[KeptMessage],
    ) -> Result<(), PostgresError> {
        if client.as_ref().is_none_or(Client::is_closed) {
            *client = Some(self.target.connect().await?);
        }
        let Some(client) = client.as_mut() else {
            return Ok(());
        };
        write_messages(client, &self.node, batch).await
    }
}

/// Column types of `sip_message`, in [`MESSAGE_COLUMNS`] order.
const TYPES: [Type; 10] = [
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::INET,
    Type::INT4,
    Type::INET,
    Type::INT4,
    Type::TEXT,
    Type::BYTEA,
];

const MESSAGE_COLUMNS: &str =
    "digest, captured_at, node, call_id, src_ip, src_port, dst_ip, dst_port, transport, raw";

/// Writes `batch` in one transaction; a message already stored is skipped.
async fn write_messages(
    client: &mut Client,
    node: &str,
    batch: &[KeptMessage],
) -> Result<(), PostgresError> {
    let mut days: Vec<time::Date> = batch.iter().map(|m| day_of(m.time)).collect();
    days.sort_unstable();
    days.dedup();
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT spycraft_ensure_sip_message_partition(d) FROM unnest($1::date[]) AS d",
        &[&days],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS sip_message_incoming ON COMMIT DELETE ROWS AS \
         SELECT {MESSAGE_COLUMNS} FROM sip_message WITH NO DATA"
    ))
    .await?;
    let sink = tx
        .copy_in(&format!(
            "COPY sip_message_incoming ({MESSAGE_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &TYPES);
    let mut writer = std::pin::pin!(writer);
    let node = text(node);
    for m in batch {
        let digest = digest(m);
        let at = instant(m.time);
        let call_id = text(&m.call_id);
        let (src_ip, dst_ip) = (m.src.ip(), m.dst.ip());
        let (src_port, dst_port) = (i32::from(m.src.port()), i32::from(m.dst.port()));
        let transport = m.transport.as_str();
        let raw: &[u8] = &m.raw;
        let row: [&(dyn ToSql + Sync); 10] = [
            &digest, &at, &node, &call_id, &src_ip, &src_port, &dst_ip, &dst_port, &transport, &raw,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    tx.execute(
        &format!(
            "INSERT INTO sip_message ({MESSAGE_COLUMNS}) SELECT {MESSAGE_COLUMNS} \
             FROM sip_message_incoming ON CONFLICT DO NOTHING"
        ),
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// FNV-1a of the message's time, addresses, ports and bytes: its identity across replays
/// and sensors.
fn digest(m: &KeptMessage) -> i64 {
    let mut h = fnv1a(START, &m.time.0.to_le_bytes());
    for addr in [m.src, m.dst] {
        h = match addr.ip() {
            std::net::IpAddr::V4(ip) => fnv1a(h, &ip.octets()),
            std::net::IpAddr::V6(ip) => fnv1a(h, &ip.octets()),
        };
        h = fnv1a(h, &addr.port().to_le_bytes());
    }
    fnv1a(h, &m.raw) as i64
}
