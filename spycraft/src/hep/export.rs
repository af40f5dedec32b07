// SPDX-License-Identifier: AGPL-3.0-or-later
//! `--hep`: every SIP message a run parses, and with `--hep-cdr` each record, sent as HEP to
//! one or more collectors (Homer, heplify-server, sngrep, Kamailio's sipcapture).
//!
//! Each destination has a bounded queue of its own and a sending task of its own (all on one
//! thread), so a slow or absent collector holds back only its own packets. A live capture
//! never waits: what does not fit the queue is counted. Reading files waits for room, and the
//! sending is paced (`--hep-rate`) so that a receiver with ordinary socket buffers keeps up;
//! a destination failing for longer than the drain timeout is given up on (what comes for it
//! meanwhile is counted as unreachable) until it answers again.
//!
//! UDP sends a packet a datagram; what the kernel reports as refused is counted, a receiver
//! that is silently gone is not visible. TCP and TLS carry packets back to back, each framed
//! by its own length, reconnect with backoff and send again what was written since the last
//! successful flush, so an outage costs duplicates at worst, never a silent gap.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf, WriteHalf,
};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::codec::{encode, HepPacket, PROTOCOL_CDR, PROTOCOL_LOG, PROTOCOL_SIP};
use super::datagrams;
use super::endpoint::{Endpoint, HepTransport};
use crate::call::CallRecord;
use crate::packet::{Timestamp, Transport};
use crate::parse_stage::SeenMessage;
use crate::pipeline::{MessageTap, RunObserver, Summary};
use crate::sink::OutputReport;
use crate::trust::{root_store, TrustError};

/// Packets waiting for each destination by default: about 40 MB of typical SIP.
pub const QUEUED_PACKETS: usize = 65_536;
/// The largest UDP payload over IPv4 (65,535 less the IP and UDP headers); IPv6 allows 20
/// more, but receivers size their buffers for the smaller.
pub const MAX_DATAGRAM: usize = 65_507;
/// What a stream gathers before it writes.
const STREAM_BUFFER: usize = 64 * 1024;
/// Packets written to a stream between flushes at most.
const FLUSH_EVERY: usize = 512;
/// How long a connection or a write may take before the link counts as broken.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The first wait before connecting again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What the exporter is told to do.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// Where packets go; each gets every packet.
    pub destinations: Vec<Endpoint>,
    /// The capture agent id chunk (`--hep-node-id`).
    pub agent_id: Option<u32>,
    /// The node name chunk (`--hep-node-name`).
    pub node_name: String,
    /// The auth key chunk, when the collector wants one.
    pub password: Option<Vec<u8>>,
    /// Packets a second per destination at most; `None`: as they come.
    pub rate: Option<u32>,
    /// Packets waiting for each destination at most.
    pub queue: usize,
    /// Each record too, as HEP type 0x3c JSON (`--hep-cdr`).
    pub records: bool,
    /// Wait for room in a full queue (reading files) rather than drop (a live capture).
    pub wait_when_full: bool,
    /// How long a failing destination is waited for: at the end of a run, and mid-run when
    /// the pipeline waits for it.
    pub drain_timeout: Duration,
    /// PEM roots trusted for `tls://` [default: the system's].
    pub ca: Option<PathBuf>,
}

/// Why the exporter cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The host name does not resolve.
    #[error("--hep {endpoint}: cannot resolve its host: {source}")]
    Resolve {
        /// The destination.
        endpoint: String,
        /// Why.
        source: io::Error,
    },
    /// The host name resolves to nothing.
    #[error("--hep {0}: its host has no address")]
    NoAddress(String),
    /// The host of a `tls://` destination cannot be checked against a certificate.
    #[error("--hep {0}: not a TLS server name")]
    ServerName(String),
    /// The trusted roots cannot be read.
    #[error("--hep-ca {0}")]
    Trust(#[from] TrustError),
    /// rustls refused the client configuration.
    #[error("--hep TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The sending thread did not start.
    #[error("cannot start the HEP sender: {0}")]
    Thread(io::Error),
}

/// What became of the packets meant for one destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HepReport {
    /// The destination (`udp://host:port`).
    pub destination: String,
    /// Packets meant for it.
    pub offered: u64,
    /// Packets handed to its socket (a stream: flushed).
    pub sent: u64,
    /// Not sent: the queue was full (a live capture while it was slow or away).
    pub queue_full: u64,
    /// Not sent: larger than HEP (65,535 bytes) or, for UDP, than a datagram.
    pub oversize: u64,
    /// Not sent: refused or not reachable, or still waiting when the run ended.
    pub unreachable: u64,
    /// Times a stream was connected again after it broke.
    pub reconnects: u64,
}

impl HepReport {
    /// Packets that will never be sent.
    pub fn not_sent(&self) -> u64 {
        self.queue_full + self.oversize + self.unreachable
    }
}

#[derive(Debug, Default)]
struct Counts {
    offered: AtomicU64,
    sent: AtomicU64,
    queue_full: AtomicU64,
    oversize: AtomicU64,
    unreachable: AtomicU64,
    reconnects: AtomicU64,
}

impl Counts {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The run is ending: send what is queued, for at most the drain timeout.
#[derive(Debug, Default)]
struct Control {
    closing: AtomicBool,
    wake: Notify,
}

/// One destination, as the pipeline's threads see it.
#[derive(Debug)]
struct Lane {
    name: String,
    largest: usize,
    queue: mpsc::Sender<Arc<[u8]>>,
    counts: Arc<Counts>,
    control: Arc<Control>,
}

impl Lane {
    fn offer(&self, packet: &Arc<[u8]>, wait: bool) {
        let c = &self.counts;
        Counts::add(&c.offered, 1);
        if packet.len() > self.largest {
            Counts::add(&c.oversize, 1);
            return;
        }
        let queued = if wait {
            // Fails only once the sender has stopped.
            self.queue.blocking_send(packet.clone()).is_ok()
        } else {
            match self.queue.try_send(packet.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    Counts::add(&c.queue_full, 1);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        };
        if !queued {
            Counts::add(&c.unreachable, 1);
        }
    }

    fn report(&self) -> HepReport {
        let c = &self.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HepReport {
            destination: self.name.clone(),
            offered: get(&c.offered),
            sent: get(&c.sent),
            queue_full: get(&c.queue_full),
            oversize: get(&c.oversize),
            unreachable: get(&c.unreachable),
            reconnects: get(&c.reconnects),
        }
    }
}

/// What every packet says of its sender.
#[derive(Debug)]
struct Identity {
    agent_id: Option<u32>,
    node_name: Vec<u8>,
    password: Option<Vec<u8>>,
}

/// Sends what it is shown as HEP: a [`MessageTap`] for the messages, a [`RunObserver`] for
/// the records.
#[derive(Debug)]
pub struct HepExport {
    lanes: Vec<Lane>,
    identity: Identity,
    records: bool,
    wait_when_full: bool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

thread_local! {
    /// Where each pipeline thread encodes its packets before they are shared.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(STREAM_BUFFER));
}

impl HepExport {
    /// Resolves the destinations and starts the sending thread; connections are made from
    /// there, and packets queue until they are.
    pub fn start(config: ExportConfig) -> Result<Self, ExportError> {
        let tls = config
            .destinations
            .iter()
            .any(|d| d.transport == HepTransport::Tls)
            .then(|| tls_connector(&config))
            .transpose()?;
        let mut lanes = Vec::new();
        let mut workers = Vec::new();
        for endpoint in &config.destinations {
            let name = endpoint.to_string();
            let addr = resolve(endpoint)?;
            let server = match endpoint.transport {
                HepTransport::Tls => Some(
                    ServerName::try_from(endpoint.host.clone())
                        .map_err(|_| ExportError::ServerName(name.clone()))?,
                ),
                _ => None,
            };
            let (queue, incoming) = mpsc::channel(config.queue.max(1));
            let counts = Arc::new(Counts::default());
            let control = Arc::new(Control::default());
            workers.push(Worker {
                name: name.clone(),
                addr,
                transport: endpoint.transport,
                tls: tls.clone().zip(server),
                incoming,
                counts: counts.clone(),
                control: control.clone(),
                pacer: config.rate.filter(|r| *r > 0).map(Pacer::new),
                drain_timeout: config.drain_timeout,
                holds_back: config.wait_when_full,
                queue: config.queue.max(1),
                failing_since: None,
                give_up_at: None,
            });
            lanes.push(Lane {
                name,
                largest: match endpoint.transport {
                    HepTransport::Udp => MAX_DATAGRAM,
                    HepTransport::Tcp | HepTransport::Tls => usize::from(u16::MAX),
                },
                queue,
                counts,
                control,
            });
        }
        let thread = std::thread::Builder::new()
            .name("spycraft-hep".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => runtime.block_on(async {
                        let mut tasks = tokio::task::JoinSet::new();
                        for worker in workers {
                            tasks.spawn(worker.run());
                        }
                        while tasks.join_next().await.is_some() {}
                    }),
                    Err(e) => eprintln!("spycraft: --hep: {e}"),
                }
            })
            .map_err(ExportError::Thread)?;
        Ok(Self {
            lanes,
            identity: Identity {
                agent_id: config.agent_id,
                node_name: config.node_name.into_bytes(),
                password: config.password,
            },
            records: config.records,
            wait_when_full: config.wait_when_full,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Sends what is queued (for at most the drain timeout) and says what became of every
    /// packet, a report per destination.
    pub fn close(&self) -> Vec<HepReport> {
        for lane in &self.lanes {
            lane.control.closing.store(true, Ordering::Release);
            lane.control.wake.notify_one();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            if thread.join().is_err() {
                eprintln!("spycraft: --hep: the sending thread panicked");
            }
        }
        self.reports()
    }

    /// What became of the packets so far, a report per destination.
    pub fn reports(&self) -> Vec<HepReport> {
        self.lanes.iter().map(Lane::report).collect()
    }

    /// Encodes `packet` once and hands it to every destination.
    fn offer(&self, packet: &HepPacket<'_>) {
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            match encode(packet, scratch) {
                Ok(()) => {
                    let shared: Arc<[u8]> = Arc::from(scratch.as_slice());
                    for lane in &self.lanes {
                        lane.offer(&shared, self.wait_when_full);
                    }
                }
                Err(_) => {
                    for lane in &self.lanes {
                        Counts::add(&lane.counts.offered, 1);
                        Counts::add(&lane.counts.oversize, 1);
                    }
                }
            }
        });
    }
}

impl HepExport {
    /// Sends `text` as a HEP log (type 100) about traffic from `src` to `dst`, tied to the
    /// call `correlation_id` (its Call-ID) if there is one.
    pub fn log(
        &self,
        (src, dst): (SocketAddr, SocketAddr),
        time: Timestamp,
        transport: Transport,
        correlation_id: Option<&[u8]>,
        text: &[u8],
    ) {
        let id = &self.identity;
        self.offer(&HepPacket {
            ip_protocol: super::ip_protocol(transport),
            src,
            dst,
            time,
            protocol_type: PROTOCOL_LOG,
            agent_id: id.agent_id,
            auth_key: id.password.as_deref(),
            correlation_id,
            vlan: None,
            node_name: Some(&id.node_name),
            payload: text,
        });
    }
}

impl MessageTap for HepExport {
    fn message(&self, m: &SeenMessage<'_, '_, '_>) {
        let id = &self.identity;
        self.offer(&HepPacket {
            ip_protocol: super::ip_protocol(m.info.transport),
            src: m.info.src,
            dst: m.info.dst,
            time: m.info.time,
            protocol_type: PROTOCOL_SIP,
            agent_id: id.agent_id,
            auth_key: id.password.as_deref(),
            correlation_id: Some(m.event.call_id().as_bytes()),
            vlan: m.info.vlan,
            node_name: Some(&id.node_name),
            payload: m.raw,
        });
    }
}

impl RunObserver for HepExport {
    fn record(&self, record: &CallRecord) {
        if !self.records {
            return;
        }
        let Ok(json) = serde_json::to_vec(record) else {
            return;
        };
        let id = &self.identity;
        self.offer(&HepPacket {
            ip_protocol: super::ip_protocol(record.transport),
            src: SocketAddr::new(record.caller_ip, record.caller_port),
            dst: SocketAddr::new(record.callee_ip, record.callee_port),
            time: record.end_at.unwrap_or(record.invite_at),
            protocol_type: PROTOCOL_CDR,
            agent_id: id.agent_id,
            auth_key: id.password.as_deref(),
            correlation_id: Some(record.call_id.as_bytes()),
            vlan: record.vlan,
            node_name: Some(&id.node_name),
            payload: &json,
        });
    }

    fn snapshot(&self, _summary: &Summary, _live_legs: usize, _outputs: Vec<OutputReport>) {}
}

fn resolve(endpoint: &Endpoint) -> Result<SocketAddr, ExportError> {
    (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|source| ExportError::Resolve {
            endpoint: endpoint.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| ExportError::NoAddress(endpoint.to_string()))
}

fn tls_connector(config: &ExportConfig) -> Result<tokio_rustls::TlsConnector, ExportError> {
    let roots = root_store(config.ca.as_deref())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(client)))
}

/// Spaces packets `1/rate` apart, letting up to 10 ms of them go at once.
#[derive(Debug)]
struct Pacer {
    gap: Duration,
    next: Instant,
}

impl Pacer {
    const BURST: Duration = Duration::from_millis(10);

    fn new(rate: u32) -> Self {
        Self {
            gap: Duration::from_secs(1) / rate,
            next: Instant::now(),
        }
    }

    async fn wait(&mut self) {
        let now = Instant::now();
        if self.next > now + Duration::from_millis(2) {
            tokio::time::sleep_until(self.next).await;
        }
        self.next = self.next.max(now.checked_sub(Self::BURST).unwrap_or(now)) + self.gap;
    }
}

/// A TCP or TLS connection.
trait Io: AsyncRead + AsyncWrite + Send {}

impl<T: AsyncRead + AsyncWrite + Send> Io for T {}

type Connection = Pin<Box<dyn Io>>;

/// A connected destination.
enum Link {
    Datagram(UdpSocket),
    /// Collectors never answer: the read half only hears the connection close, so a stopped
    /// collector is noticed while idle, not by the next packet lost in its wake.
    Stream(BufWriter<WriteHalf<Connection>>, ReadHalf<Connection>),
}

/// What waiting on a stream gave.
enum Next {
    Packet(Arc<[u8]>),
    /// The run is over and the queue is empty.
    Done,
    /// The collector closed the connection.
    Closed(io::Error),
}

/// Why a stream stopped.
enum Broken {
    /// The run is over and everything is sent.
    Done,
    /// The connection failed; what was written since the last flush goes again.
    Failed(io::Error),
}

/// One destination's sending task.
struct Worker {
    name: String,
    addr: SocketAddr,
    transport: HepTransport,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    incoming: mpsc::Receiver<Arc<[u8]>>,
    counts: Arc<Counts>,
    control: Arc<Control>,
    pacer: Option<Pacer>,
    drain_timeout: Duration,
    /// The pipeline waits for room: a destination failing past the drain timeout is given
    /// up on rather than holding the run for ever.
    holds_back: bool,
    /// The queue's bound, for what the warning says.
    queue: usize,
    /// Since when connecting or writing fails.
    failing_since: Option<Instant>,
    /// When the end of the run stops waiting.
    give_up_at: Option<Instant>,
}

impl Worker {
    async fn run(mut self) {
        // Taken from the queue and not known to be sent: written to a stream since its last
        // flush, or waiting for a connection.
        let mut unsent: VecDeque<Arc<[u8]>> = VecDeque::new();
        let mut backoff = FIRST_BACKOFF;
        let mut connected_before = false;
        loop {
            self.check_closing();
            if self.give_up_at.is_some() && unsent.is_empty() && self.incoming.is_empty() {
                return;
            }
            let link = match self.connect().await {
                Ok(link) => link,
                Err(e) => {
                    self.failing(&e);
                    if self.out_of_patience() {
                        self.drop_waiting(&mut unsent);
                        if self.give_up_at.is_some() {
                            return;
                        }
                        // Mid-run, what comes while it stays away is not sent either.
                        self.discard_for(backoff).await;
                    } else {
                        self.pause(backoff).await;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            if connected_before {
                Counts::add(&self.counts.reconnects, 1);
            }
            connected_before = true;
            backoff = FIRST_BACKOFF;
            match self.pump(link, &mut unsent).await {
                Broken::Done => return,
                Broken::Failed(e) => self.failing(&e),
            }
        }
    }

    /// Notes the end of the run, once.
    fn check_closing(&mut self) {
        if self.give_up_at.is_none() && self.control.closing.load(Ordering::Acquire) {
            self.give_up_at = Some(Instant::now() + self.drain_timeout);
        }
    }

    /// A failure: said when a run of them starts.
    fn failing(&mut self, e: &io::Error) {
        if self.failing_since.is_none() {
            let then = if self.holds_back {
                format!(
                    "reading waits up to {} s for it",
                    self.drain_timeout.as_secs()
                )
            } else {
                format!("packets past a queue of {} are not sent", self.queue)
            };
            eprintln!(
                "spycraft: WARNING: --hep {}: {e}; retrying, {then}",
                self.name
            );
            self.failing_since = Some(Instant::now());
        }
    }

    /// Sending works (again).
    fn working(&mut self) {
        if self.failing_since.take().is_some() {
            eprintln!("spycraft: --hep {}: sending again", self.name);
        }
    }

    /// Whether to stop waiting for the destination: the run is over and the drain timeout
    /// has passed, or the pipeline has waited for it that long.
    fn out_of_patience(&self) -> bool {
        let now = Instant::now();
        self.give_up_at.is_some_and(|t| now >= t)
            || (self.holds_back
                && self
                    .failing_since
                    .is_some_and(|since| now >= since + self.drain_timeout))
    }

    /// Counts what waits as unreachable.
    fn drop_waiting(&mut self, unsent: &mut VecDeque<Arc<[u8]>>) {
        let mut n = unsent.len() as u64;
        unsent.clear();
        while self.incoming.try_recv().is_ok() {
            n += 1;
        }
        Counts::add(&self.counts.unreachable, n);
    }

    /// Waits `pause`, or less if the run ends meanwhile.
    async fn pause(&mut self, pause: Duration) {
        let pause = self.bounded(pause);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = self.control.wake.notified() => {}
        }
    }

    /// Waits `pause`, counting whatever arrives as unreachable.
    async fn discard_for(&mut self, pause: Duration) {
        let until = Instant::now() + self.bounded(pause);
        loop {
            tokio::select! {
                packet = self.incoming.recv() => match packet {
                    Some(_) => Counts::add(&self.counts.unreachable, 1),
                    None => return,
                },
                _ = tokio::time::sleep_until(until) => return,
                _ = self.control.wake.notified() => return,
            }
        }
    }

    /// `wait`, cut short at the end of the drain timeout.
    fn bounded(&self, wait: Duration) -> Duration {
        match self.give_up_at {
            Some(t) => wait.min(t.saturating_duration_since(Instant::now())),
            None => wait,
        }
    }

    async fn connect(&self) -> io::Result<Link> {
        let timeout = self.bounded(IO_TIMEOUT);
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "no answer");
        match self.transport {
            HepTransport::Udp => {
                let local: SocketAddr = if self.addr.is_ipv4() {
                    (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let socket = UdpSocket::bind(local).await?;
                // Connected, the kernel reports a refusing receiver on the next send.
                socket.connect(self.addr).await?;
                Ok(Link::Datagram(socket))
            }
            HepTransport::Tcp | HepTransport::Tls => {
                let tcp = tokio::time::timeout(timeout, TcpStream::connect(self.addr))
                    .await
                    .map_err(|_| timed_out())??;
                tcp.set_nodelay(true)?;
                let stream: Connection = match &self.tls {
                    Some((connector, server)) => Box::pin(
                        tokio::time::timeout(timeout, connector.connect(server.clone(), tcp))
                            .await
                            .map_err(|_| timed_out())??,
                    ),
                    None => Box::pin(tcp),
                };
                let (reader, writer) = tokio::io::split(stream);
                Ok(Link::Stream(
                    BufWriter::with_capacity(STREAM_BUFFER, writer),
                    reader,
                ))
            }
        }
    }

    /// Sends until the run ends or the link breaks: first what is left from before, then
    /// the queue.
    async fn pump(&mut self, link: Link, unsent: &mut VecDeque<Arc<[u8]>>) -> Broken {
        match link {
            Link::Datagram(socket) => self.pump_datagrams(socket, unsent).await,
            Link::Stream(writer, reader) => self.pump_stream(writer, reader, unsent).await,
        }
    }

    async fn pump_datagrams(
        &mut self,
        socket: UdpSocket,
        unsent: &mut VecDeque<Arc<[u8]>>,
    ) -> Broken {
        let mut batch: Vec<Arc<[u8]>> = Vec::with_capacity(datagrams::BATCH);
        loop {
            let first = match unsent.pop_front() {
                Some(p) => p,
                None => match self.next().await {
                    Some(p) => p,
                    None => return Broken::Done,
                },
            };
            batch.push(first);
            match &mut self.pacer {
                Some(pacer) => pacer.wait().await,
                // Unpaced, whatever waits goes out together.
                None => {
                    while batch.len() < datagrams::BATCH {
                        match unsent.pop_front().or_else(|| self.incoming.try_recv().ok()) {
                            Some(p) => batch.push(p),
                            None => break,
                        }
                    }
                }
            }
            let outcome = datagrams::send_all(&socket, &batch).await;
            Counts::add(&self.counts.sent, outcome.sent as u64);
            // Each datagram is tried once: a refusal loses that one, not the socket.
            Counts::add(&self.counts.unreachable, outcome.refused as u64);
            match outcome.error {
                Some(e) => self.failing(&e),
                None => self.working(),
            }
            batch.clear();
        }
    }

    async fn pump_stream(
        &mut self,
        mut stream: BufWriter<WriteHalf<Connection>>,
        mut reader: ReadHalf<Connection>,
        unsent: &mut VecDeque<Arc<[u8]>>,
    ) -> Broken {
        // What is left from a broken connection goes first, flushed before anything new.
        let mut written = 0;
        while written < unsent.len() {
            if let Err(e) = self.write(&mut stream, &unsent[written]).await {
                return Broken::Failed(e);
            }
            written += 1;
        }
        loop {
            let next = if written >= FLUSH_EVERY {
                None
            } else {
                self.incoming.try_recv().ok()
            };
            let packet = match next {
                Some(p) => p,
                None => {
                    if written > 0 {
                        if let Err(e) = self.flush(&mut stream).await {
                            return Broken::Failed(e);
                        }
                        Counts::add(&self.counts.sent, written as u64);
                        unsent.clear();
                        written = 0;
                        self.working();
                    }
                    match self.next_or_closed(&mut reader).await {
                        Next::Packet(p) => p,
                        Next::Done => return Broken::Done,
                        Next::Closed(e) => return Broken::Failed(e),
                    }
                }
            };
            if let Some(pacer) = &mut self.pacer {
                pacer.wait().await;
            }
            unsent.push_back(packet);
            if let Err(e) = self.write(&mut stream, &unsent[written]).await {
                return Broken::Failed(e);
            }
            written += 1;
        }
    }

    async fn write(
        &self,
        stream: &mut BufWriter<WriteHalf<Connection>>,
        packet: &[u8],
    ) -> io::Result<()> {
        let timeout = self.bounded(IO_TIMEOUT);
        tokio::time::timeout(timeout, stream.write_all(packet))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the receiver stopped reading"))?
    }

    async fn flush(&self, stream: &mut BufWriter<WriteHalf<Connection>>) -> io::Result<()> {
        let timeout = self.bounded(IO_TIMEOUT);
        tokio::time::timeout(timeout, stream.flush())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the receiver stopped reading"))?
    }

    /// The next packet of the queue, unless the collector closes the connection first.
    async fn next_or_closed(&mut self, reader: &mut ReadHalf<Connection>) -> Next {
        let mut byte = [0u8; 1];
        tokio::select! {
            packet = self.next() => match packet {
                Some(p) => Next::Packet(p),
                None => Next::Done,
            },
            read = reader.read(&mut byte) => Next::Closed(match read {
                Ok(_) => io::Error::new(io::ErrorKind::ConnectionAborted, "the collector closed the connection"),
                Err(e) => e,
            }),
        }
    }

    /// The next packet of the queue; `None` once the run has ended and the queue is empty.
    async fn next(&mut self) -> Option<Arc<[u8]>> {
        loop {
            self.check_closing();
            if self.give_up_at.is_some() {
                return self.incoming.try_recv().ok();
            }
            tokio::select! {
                packet = self.incoming.recv() => return packet,
                _ = self.control.wake.notified() => {}
            }
        }
    }
}
