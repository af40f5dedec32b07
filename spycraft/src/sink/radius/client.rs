// SPDX-License-Identifier: AGPL-3.0-or-later
//! One accounting request at a time to a list of servers, until one acknowledges it.
//!
//! Retransmission follows RFC 5080 §2.2.1: a request sent again unchanged keeps its
//! Identifier and Request Authenticator; once Acct-Delay-Time changes (a new round, or the
//! next server) it is a new request with a new Identifier. A server that does not answer
//! after the retries is left for the next one in the list; when none answers, the round
//! starts again from the first after a pause. Responses that do not check out are counted
//! and ignored, never taken for an acknowledgement.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;

use super::accounting::{self, Dictionary, Nas, Request};
use super::packet::{check_response, PacketError, MAX_PACKET};
use crate::call::Timestamp;

/// How long to wait for answers, and how often to ask again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// The wait for the first answer; it doubles with each retransmission.
    pub timeout: Duration,
    /// Retransmissions to one server before the next is tried.
    pub retries: u32,
}

impl Default for Timing {
    /// RFC 5080's initial retransmission time of 2 s, and 3 retransmissions (2 + 4 + 8 + 16
    /// s before the next server).
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            retries: 3,
        }
    }
}

/// What the client counted.
#[derive(Debug, Default)]
pub struct ClientCounts {
    /// Requests sent (each new Identifier once).
    pub sent: AtomicU64,
    /// Requests a server acknowledged.
    pub acknowledged: AtomicU64,
    /// Retransmissions of an unchanged request.
    pub retried: AtomicU64,
    /// Times a server did not answer and the next was tried (or the round began again).
    pub failovers: AtomicU64,
    /// Responses whose Response Authenticator did not match: ignored.
    pub bad_authenticator: AtomicU64,
    /// Responses that were not an Accounting-Response to an outstanding request (another
    /// code, a stale identifier, truncated): ignored.
    pub bad_responses: AtomicU64,
}

impl ClientCounts {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a request was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No server acknowledged it before the caller stopped waiting.
    #[error("no RADIUS server acknowledged the request: {0}")]
    Unacknowledged(String),
}

/// The servers and what each request says of the sensor.
#[derive(Debug)]
pub struct Client {
    servers: Vec<SocketAddr>,
    secret: Vec<u8>,
    nas_identifier: String,
    dictionary: Dictionary,
    timing: Timing,
    /// A live capture: Acct-Delay-Time is the time since the event; reading files, the time
    /// since the first try (their events are from the past).
    live: bool,
    /// One connected socket per server, opened when first used.
    sockets: Vec<Option<UdpSocket>>,
    /// The server that answered last: tried first.
    current: usize,
    next_id: u8,
    buffer: Vec<u8>,
}

impl Client {
    /// A client of `servers` (tried in order) sharing `secret`.
    pub fn new(
        servers: Vec<SocketAddr>,
        secret: Vec<u8>,
        nas_identifier: String,
        timing: Timing,
        live: bool,
    ) -> Self {
        let sockets = servers.iter().map(|_| None).collect();
        Self {
            servers,
            secret,
            nas_identifier,
            dictionary: Dictionary::default(),
            timing,
            live,
            sockets,
            current: 0,
            next_id: 0,
            buffer: vec![0; MAX_PACKET],
        }
    }

    /// Adds the attributes of `dictionary` to every request.
    pub fn with_dictionary(mut self, dictionary: Dictionary) -> Self {
        self.dictionary = dictionary;
        self
    }

    /// Sends `request` until a server acknowledges it; between rounds it asks `keep_trying`
    /// (with the last failure) whether to go on.
    pub async fn deliver(
        &mut self,
        request: Request<'_>,
        counts: &ClientCounts,
        keep_trying: &mut impl FnMut(&str) -> bool,
    ) -> Result<(), ClientError> {
        let first_try = Instant::now();
        let mut backoff = self.timing.timeout;
        loop {
            let mut why = String::new();
            for step in 0..self.servers.len() {
                let server = (self.current + step) % self.servers.len();
                match self.ask(server, request, first_try, counts).await {
                    Ok(()) => {
                        self.current = server;
                        ClientCounts::add(&counts.acknowledged);
                        return Ok(());
                    }
                    Err(e) => {
                        ClientCounts::add(&counts.failovers);
                        why = format!("{}: {e}", self.servers[server]);
                    }
                }
            }
            if !keep_trying(&why) {
                return Err(ClientError::Unacknowledged(why));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// One server: the request sent, then again unchanged on each timeout.
    async fn ask(
        &mut self,
        server: usize,
        request: Request<'_>,
        first_try: Instant,
        counts: &ClientCounts,
    ) -> io::Result<()> {
        if self.sockets[server].is_none() {
            self.sockets[server] = Some(connect(self.servers[server]).await?);
        }
        let Some(socket) = self.sockets[server].as_ref() else {
            unreachable!("opened just now")
        };
        let nas = Nas {
            identifier: self.nas_identifier.clone(),
            address: socket.local_addr().ok().map(|a| a.ip()),
        };
        let delay = if self.live {
            seconds_since(request.at)
        } else {
            u32::try_from(first_try.elapsed().as_secs()).unwrap_or(u32::MAX)
        };
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let request = accounting::attributes(request, &nas, delay, self.dictionary)
            .request(id, &self.secret)
            .map_err(io::Error::other)?;
        let mut wait = self.timing.timeout;
        for attempt in 0..=self.timing.retries {
            ClientCounts::add(if attempt == 0 {
                &counts.sent
            } else {
                &counts.retried
            });
            socket.send(&request).await?;
            let until = tokio::time::Instant::now() + wait;
            loop {
                let received = tokio::time::timeout_at(until, socket.recv(&mut self.buffer)).await;
                let n = match received {
                    Err(_) => break,
                    // A refusal (ICMP) says the server is down: no use waiting out the timer.
                    Ok(Err(e)) => return Err(e),
                    Ok(Ok(n)) => n,
                };
                match check_response(&self.buffer[..n], &request, &self.secret) {
                    Ok(()) => return Ok(()),
                    Err(PacketError::BadAuthenticator) => {
                        ClientCounts::add(&counts.bad_authenticator)
                    }
                    Err(_) => ClientCounts::add(&counts.bad_responses),
                }
            }
            wait *= 2;
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer after {} tries", self.timing.retries + 1),
        ))
    }
}

/// A UDP socket connected to `server`, from any local address of its family.
async fn connect(server: SocketAddr) -> io::Result<UdpSocket> {
    let any: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((any, 0)).await?;
    socket.connect(server).await?;
    Ok(socket)
}

/// Whole seconds from `t` to now (0 for a time ahead of the clock).
fn seconds_since(t: Timestamp) -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    u32::try_from((now - t.micros()).max(0) / 1_000_000).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use md5::{Digest, Md5};

    use super::*;
    use crate::call::CallRecord;
    use crate::sink::radius::accounting::Status;
    use crate::sink::radius::packet::ACCOUNTING_RESPONSE;

    /// The (identifier, authenticator) of each request a test server received.
    type Seen = Arc<std::sync::Mutex<Vec<(u8, [u8; 16])>>>;

    /// A server on loopback answering as told: each request's (identifier, authenticator)
    /// goes to `seen`; `answer` says what to send back for the n-th request received.
    async fn server(
        secret: &'static [u8],
        answer: impl Fn(usize) -> Answer + Send + 'static,
        seen: Seen,
    ) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("a socket");
        let addr = socket.local_addr().expect("address");
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            let mut n = 0;
            while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
                let request = &buffer[..len];
                let mut authenticator = [0u8; 16];
                authenticator.copy_from_slice(&request[4..20]);
                seen.lock().expect("lock").push((request[1], authenticator));
                let mut response = vec![ACCOUNTING_RESPONSE, request[1], 0, 20];
                let key = match answer(n) {
                    Answer::Nothing => {
                        n += 1;
                        continue;
                    }
                    Answer::Truncated => {
                        let _ = socket.send_to(&response, from).await;
                        n += 1;
                        continue;
                    }
                    Answer::AccessAccept => {
                        response[0] = 2;
                        secret
                    }
                    Answer::WrongSecret => &b"wrong"[..],
                    Answer::Right => secret,
                };
                let digest = Md5::new()
                    .chain_update(&response)
                    .chain_update(&request[4..20])
                    .chain_update(key)
                    .finalize();
                response.extend_from_slice(&digest);
                let _ = socket.send_to(&response, from).await;
                n += 1;
            }
        });
        addr
    }

    #[derive(Clone, Copy)]
    enum Answer {
        Nothing,
        /// A header cut short.
        Truncated,
        /// Another code, rightly signed.
        AccessAccept,
        WrongSecret,
        Right,
    }

    fn record() -> CallRecord {
        let mut r = CallRecord::blank();
        r.call_id = "c@h".into();
        r.collation_id = "c@h".into();
        r
    }

    fn quick() -> Timing {
        Timing {
            timeout: Duration::from_millis(50),
            retries: 2,
        }
    }

    #[tokio::test]
    async fn retransmits_unchanged_then_takes_only_a_true_acknowledgement() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Silence, a forged answer, a truncated one, one of another code, then the right one.
        let addr = server(
            b"s3cret",
            |n| match n {
                0 => Answer::Nothing,
                1 => Answer::WrongSecret,
                2 => Answer::Truncated,
                3 => Answer::AccessAccept,
                _ => Answer::Right,
            },
            seen.clone(),
        )
        .await;
        let timing = Timing {
            timeout: Duration::from_millis(50),
            retries: 4,
        };
        let mut client = Client::new(vec![addr], b"s3cret".to_vec(), "n".into(), timing, false);
        let counts = ClientCounts::default();
        client
            .deliver(Request::new(&record(), Status::Stop), &counts, &mut |_| {
                true
            })
            .await
            .expect("acknowledged");
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 5);
        assert!(
            seen.iter().all(|s| *s == seen[0]),
            "the same id and authenticator"
        );
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(get(&counts.sent), 1);
        assert_eq!(get(&counts.retried), 4);
        assert_eq!(get(&counts.bad_authenticator), 1);
        assert_eq!(get(&counts.bad_responses), 2, "truncated, and another code");
        assert_eq!(get(&counts.acknowledged), 1);
    }

    #[tokio::test]
    async fn fails_over_to_the_next_server_with_a_new_identifier() {
        let silent_seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let silent = server(b"s3cret", |_| Answer::Nothing, silent_seen.clone()).await;
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let good = server(b"s3cret", |_| Answer::Right, seen.clone()).await;
        let mut client = Client::new(
            vec![silent, good],
            b"s3cret".to_vec(),
            "n".into(),
            quick(),
            false,
        );
        let counts = ClientCounts::default();
        client
            .deliver(Request::new(&record(), Status::Stop), &counts, &mut |_| {
                true
            })
            .await
            .expect("acknowledged");
        let silent_seen = silent_seen.lock().expect("lock").clone();
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(silent_seen.len(), 3, "sent, then retried twice");
        assert_eq!(seen.len(), 1);
        assert_ne!(seen[0].0, silent_seen[0].0, "a new identifier");
        // The next request goes to the server that answered.
        client
            .deliver(Request::new(&record(), Status::Stop), &counts, &mut |_| {
                true
            })
            .await
            .expect("acknowledged");
        assert_eq!(silent_seen.len(), 3);
        assert_eq!(counts.failovers.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn gives_up_when_told_and_says_why() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let silent = server(b"s3cret", |_| Answer::Nothing, seen).await;
        let mut client = Client::new(vec![silent], b"s".to_vec(), "n".into(), quick(), false);
        let counts = ClientCounts::default();
        let mut rounds = 0;
        let result = client
            .deliver(Request::new(&record(), Status::Stop), &counts, &mut |_| {
                rounds += 1;
                rounds < 2
            })
            .await;
        let Err(ClientError::Unacknowledged(why)) = result else {
            panic!("given up")
        };
        assert!(why.contains("no answer after 3 tries"), "{why}");
        assert_eq!(
            counts.sent.load(Ordering::Relaxed),
            2,
            "one request a round"
        );
    }
}
