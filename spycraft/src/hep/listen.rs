// SPDX-License-Identifier: AGPL-3.0-or-later
//! `--hep-listen`: HEP from agents (Kamailio's siptrace, heplify, captagent, Asterisk,
//! FreeSWITCH, another spycraft) as a capture source beside or instead of interfaces.
//!
//! Each packet received becomes the frame a capture of the HEP traffic would hold: Ethernet,
//! IP and UDP from the agent to the listening address, the HEP packet as payload. The
//! decoder then takes the SIP out of it as it does for a capture file of a HEP stream, so
//! live collection, `analyze` of a tcpdump of HEP and `capture -w` files agree. Packets are
//! checked here only for what the decoder cannot see: stream framing and the password.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use etherparse::PacketBuilder;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};

use super::codec::packet_len;
use super::endpoint::{Endpoint, HepTransport};
use crate::capture::{CaptureCounts, CaptureError, CaptureFigures, FrameSource, Polled};
use crate::packet::{Frame, LinkType, Timestamp};

/// Packets waiting for the pipeline.
const QUEUED: usize = 65_536;
/// How long a poll waits before it says the source is idle.
const IDLE: Duration = Duration::from_millis(100);
/// The largest HEP packet a synthesised UDP datagram carries.
const MAX_PAYLOAD: usize = 65_507;
/// Open TCP or TLS connections at most, so a flood of connections cannot exhaust the box.
const MAX_CONNECTIONS: usize = 256;

/// What a listener is told.
#[derive(Clone, Debug)]
pub struct ListenConfig {
    /// Where to listen.
    pub endpoint: Endpoint,
    /// The auth key a packet must carry, when one is configured.
    pub password: Option<Vec<u8>>,
    /// Certificate chain and key for `tls://`.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Why a listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address does not resolve or cannot be bound.
    #[error("--hep-listen {endpoint}: {source}")]
    Bind {
        /// Where.
        endpoint: String,
        /// Why.
        source: io::Error,
    },
    /// `tls://` without a certificate, or one that cannot be used.
    #[error("--hep-listen {endpoint}: {why}")]
    Tls {
        /// Where.
        endpoint: String,
        /// Why.
        why: String,
    },
    /// The receiving thread did not start.
    #[error("cannot start the HEP listener: {0}")]
    Thread(io::Error),
}

/// What a listener counted.
#[derive(Debug, Default)]
pub struct ListenCounts {
    /// Packets received.
    pub packets: AtomicU64,
    /// Their bytes.
    pub bytes: AtomicU64,
    /// Packets handed to the pipeline.
    pub read: AtomicU64,
    /// Dropped: the pipeline's queue was full.
    pub queue_full: AtomicU64,
    /// Dropped: no or the wrong password, a stream that is not HEP, or larger than a
    /// datagram can carry on.
    pub refused: AtomicU64,
    /// Connections accepted (TCP, TLS).
    pub connections: AtomicU64,
    name: String,
}

impl CaptureCounts for ListenCounts {
    fn mode(&self) -> &'static str {
        "hep"
    }

    fn figures(&self) -> CaptureFigures {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CaptureFigures {
            seen: Some((get(&self.packets), get(&self.bytes))),
            selected: (get(&self.packets) - get(&self.refused), None),
            read: get(&self.read),
            lost: [
                ("queue_full", get(&self.queue_full)),
                ("refused", get(&self.refused)),
            ],
        }
    }

    fn one_line(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "HEP {}: {} packets received, {} refused (password, framing, size), {} dropped (queue full)",
            self.name,
            get(&self.packets),
            get(&self.refused),
            get(&self.queue_full)
        )
    }
}

/// One packet as received.
struct Received {
    from: SocketAddr,
    at: Timestamp,
    packet: Vec<u8>,
}

/// HEP received on one address, as frames.
pub struct HepListener {
    packets: Receiver<Received>,
    counts: Arc<ListenCounts>,
    local: SocketAddr,
    stop: &'static AtomicBool,
    frame: Vec<u8>,
}

impl std::fmt::Debug for HepListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HepListener")
            .field("local", &self.local)
            .finish()
    }
}

impl HepListener {
    /// Binds and starts receiving on a thread of its own, until `stop` is raised.
    pub fn open(config: ListenConfig, stop: &'static AtomicBool) -> Result<Self, ListenError> {
        let name = config.endpoint.to_string();
        let bind_error = |source| ListenError::Bind {
            endpoint: name.clone(),
            source,
        };
        let acceptor = match (config.endpoint.transport, &config.tls) {
            (HepTransport::Tls, Some((cert, key))) => Some(tokio_rustls::TlsAcceptor::from(
                crate::http::tls::server_config(cert, key).map_err(|e| ListenError::Tls {
                    endpoint: name.clone(),
                    why: e.to_string(),
                })?,
            )),
            (HepTransport::Tls, None) => {
                return Err(ListenError::Tls {
                    endpoint: name,
                    why: "needs --hep-cert and --hep-key".into(),
                })
            }
            _ => None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ListenError::Thread)?;
        let target = (config.endpoint.host.as_str(), config.endpoint.port);
        let socket = runtime
            .block_on(async {
                match config.endpoint.transport {
                    HepTransport::Udp => UdpSocket::bind(target).await.map(Socket::Udp),
                    _ => TcpListener::bind(target).await.map(Socket::Tcp),
                }
            })
            .map_err(bind_error)?;
        let local = socket.local_addr().map_err(bind_error)?;
        let counts = Arc::new(ListenCounts {
            name: name.clone(),
            ..ListenCounts::default()
        });
        let (queue, packets) = sync_channel(QUEUED);
        let receiver = Receiving {
            queue,
            counts: counts.clone(),
            password: config.password.map(Arc::from),
            acceptor,
        };
        std::thread::Builder::new()
            .name("spycraft-hep-in".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = receiver.run(socket) => {}
                        _ = stopped(stop) => {}
                    }
                });
            })
            .map_err(ListenError::Thread)?;
        Ok(Self {
            packets,
            counts,
            local,
            stop,
            frame: Vec::with_capacity(MAX_PAYLOAD + 62),
        })
    }

    /// The address it listens on (the port chosen, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Its counters, readable while it runs.
    pub fn counts(&self) -> Arc<ListenCounts> {
        self.counts.clone()
    }

    /// The frame a capture of this packet on the way to us would hold.
    fn frame_of(&mut self, r: &Received) -> bool {
        self.frame.clear();
        let to = match (r.from.ip(), self.local.ip()) {
            (IpAddr::V4(_), IpAddr::V4(ip)) => IpAddr::V4(ip),
            (IpAddr::V6(_), IpAddr::V6(ip)) => IpAddr::V6(ip),
            (IpAddr::V4(_), _) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (IpAddr::V6(_), _) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let ethernet = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let (port, to_port) = (r.from.port(), self.local.port());
        let built = match (r.from.ip(), to) {
            (IpAddr::V4(from), IpAddr::V4(to)) => ethernet
                .ipv4(from.octets(), to.octets(), 64)
                .udp(port, to_port)
                .write(&mut self.frame, &r.packet),
            (IpAddr::V6(from), IpAddr::V6(to)) => ethernet
                .ipv6(from.octets(), to.octets(), 64)
                .udp(port, to_port)
                .write(&mut self.frame, &r.packet),
            _ => return false,
        };
        built.is_ok()
    }
}

impl FrameSource for HepListener {
    fn poll(&mut self) -> Result<Polled<'_>, CaptureError> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(Polled::End);
        }
        let received = match self.packets.recv_timeout(IDLE) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => return Ok(Polled::Idle),
            Err(RecvTimeoutError::Disconnected) => return Ok(Polled::End),
        };
        if !self.frame_of(&received) {
            self.counts.refused.fetch_add(1, Ordering::Relaxed);
            return Ok(Polled::Idle);
        }
        self.counts.read.fetch_add(1, Ordering::Relaxed);
        Ok(Polled::Frame(Frame::whole(
            received.at,
            LinkType::Ethernet,
            &self.frame,
        )))
    }
}

/// Resolves once `stop` is raised.
async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

enum Socket {
    Udp(UdpSocket),
    Tcp(TcpListener),
}

impl Socket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Udp(s) => s.local_addr(),
            Self::Tcp(s) => s.local_addr(),
        }
    }
}

/// The receiving thread's side.
#[derive(Clone)]
struct Receiving {
    queue: SyncSender<Received>,
    counts: Arc<ListenCounts>,
    password: Option<Arc<[u8]>>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
}

impl Receiving {
    async fn run(self, socket: Socket) {
        match socket {
            Socket::Udp(socket) => self.datagrams(socket).await,
            Socket::Tcp(listener) => self.connections(listener).await,
        }
    }

    async fn datagrams(&self, socket: UdpSocket) {
        let mut buffer = vec![0u8; 65_536];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buffer).await else {
                continue;
            };
            self.take(from, &buffer[..n]);
        }
    }

    async fn connections(&self, listener: TcpListener) {
        let open = Arc::new(AtomicU64::new(0));
        loop {
            let Ok((stream, from)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS as u64 {
                continue;
            }
            open.fetch_add(1, Ordering::Relaxed);
            self.counts.connections.fetch_add(1, Ordering::Relaxed);
            let (this, open) = (self.clone(), open.clone());
            tokio::spawn(async move {
                match &this.acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            this.stream(from, tls).await;
                        }
                    }
                    None => this.stream(from, stream).await,
                }
                open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    /// Cuts a stream into packets by their lengths; a stream that is not HEP is dropped.
    async fn stream(&self, from: SocketAddr, mut stream: impl AsyncRead + Unpin) {
        let mut buffer: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            let mut at = 0;
            loop {
                match packet_len(&buffer[at..]) {
                    Ok(Some(len)) if buffer.len() - at >= len => {
                        self.take(from, &buffer[at..at + len]);
                        at += len;
                    }
                    Ok(_) => break,
                    Err(_) => {
                        self.counts.packets.fetch_add(1, Ordering::Relaxed);
                        self.counts.refused.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
            buffer.drain(..at);
        }
    }

    /// One packet received: checked for its password, queued for the pipeline.
    fn take(&self, from: SocketAddr, packet: &[u8]) {
        let c = &self.counts;
        c.packets.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(packet.len() as u64, Ordering::Relaxed);
        // Whatever is not HEP is refused here: raw SIP sent to the HEP port must not pass
        // for traffic between the agent and this listener.
        let allowed = super::is_hep(packet)
            && match &self.password {
                None => true,
                // A packet that does not decode has no key: it cannot be let in.
                Some(password) => super::decode(packet)
                    .map(|p| p.auth_key == Some(&password[..]))
                    .unwrap_or(false),
            };
        if !allowed || packet.len() > MAX_PAYLOAD {
            c.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let received = Received {
            from,
            at: Timestamp::now(),
            packet: packet.to_vec(),
        };
        if let Err(TrySendError::Full(_)) = self.queue.try_send(received) {
            c.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }
}
