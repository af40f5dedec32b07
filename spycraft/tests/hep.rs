// SPDX-License-Identifier: AGPL-3.0-or-later
//! HEP export as its receivers see it: sngrep (Debian's, built with HEP) writes what it gets
//! to a pcap that gives the same records and messages as the original capture; a TCP
//! receiver here decodes every packet with its addresses, times and identity chunks; a
//! message too large for a datagram is counted for UDP and sent whole over TCP.

mod support;

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use spycraft::hep::{decode, packet_len, PROTOCOL_CDR, PROTOCOL_SIP};
use support::calls::{pcap_of_datagrams, send_calls_numbered};
use support::hep::{
    analyzed, free_udp_port, micros, start_collector, start_collector_writing, stop_collector,
    wait_udp_listening,
};
use support::http::{get, sample, serving_addr, start_sensor};
use support::process::{installed, interrupt, may_capture, Reaped};
use support::{pcaps, records, scratch, spycraft, text, utf8};

/// Bundled captures of several outcomes and transports: busy, cancelled, answered (UDP, TCP
/// with three calls on one connection, a fragmented INVITE).
fn mixed() -> Vec<PathBuf> {
    [
        "busy-486",
        "cancel-after-ringing",
        "answered-caller-bye",
        "tcp-one-connection",
        "udp-fragmented-invite",
    ]
    .iter()
    .map(|case| pcaps().join(case).join("capture.pcap"))
    .collect()
}

fn args_of(files: &[PathBuf]) -> Vec<&str> {
    files.iter().map(|f| utf8(f)).collect()
}

/// `dump --format json` of `files`: each message's time, addresses, Call-ID and text, in
/// time order (a run parsing on two threads may send a batch out of capture order).
fn messages(files: &[&str]) -> Vec<(String, String, String, String, String)> {
    let mut args = vec!["dump", "--format", "json"];
    args.extend_from_slice(files);
    let out = spycraft(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut all: Vec<_> = text(&out.stdout)
        .lines()
        .map(|l| {
            let m: Value = serde_json::from_str(l).expect("a JSON message");
            let field = |k: &str| m[k].as_str().expect("a string").to_owned();
            (
                field("time"),
                field("src"),
                field("dst"),
                field("call_id"),
                field("text"),
            )
        })
        .collect();
    all.sort();
    all
}

/// `got` equals `want`; a difference is shown alone, not two lists of whole messages.
fn same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T]) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!("item {i} differs:\n got {:?}\nwant {:?}", got[i], want[i]);
    }
    assert_eq!(got.len(), want.len(), "as many items");
}

#[test]
fn sngrep_receives_every_message_as_it_was_captured() {
    let dir = scratch("hep-sngrep");
    let received = dir.join("sngrep.pcap");
    let port = free_udp_port();
    let listen = format!("udp:127.0.0.1:{port}");
    let started = Command::new("sngrep")
        .args(["-N", "-q", "-F", "-L", &listen, "-O", utf8(&received)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let Some(sngrep) = installed("sngrep", "sngrep", started) else {
        return;
    };
    let sngrep = Reaped::spawn_from(sngrep);
    wait_udp_listening(port);

    let captures = mixed();
    let files = args_of(&captures);
    let expected = messages(&files);
    let url = format!("udp://127.0.0.1:{port}");
    let mut args = vec!["analyze", "--format", "jsonl", "--hep", &url];
    args.extend_from_slice(&files);
    let out = spycraft(&args);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    let n = expected.len();
    assert!(
        said.contains(&format!("HEP to {url}: {n} packets, {n} sent\n")),
        "{said}"
    );

    // sngrep writes each message as it arrives: wait for the last one, then stop it.
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let dumped = spycraft(&["dump", "--format", "json", utf8(&received)]);
        if text(&dumped.stdout).lines().count() >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    interrupt(sngrep.child());
    let stopped = sngrep.output();
    assert!(
        stopped.status.success() || stopped.status.code().is_none(),
        "sngrep: {}",
        text(&stopped.stderr)
    );

    // Every message with its addresses, ports and microsecond time.
    same(&messages(&[utf8(&received)]), &expected);
    // The same records: sngrep writes every message as a UDP datagram, so only the
    // transport of the TCP calls differs.
    let mut want = records(&analyzed(&files));
    let got = records(&analyzed(&[utf8(&received)]));
    for r in want.values_mut() {
        r["transport"] = "udp".into();
    }
    assert_eq!(got.len(), 7);
    assert_eq!(got, want);
}

/// One decoded packet, owned.
#[derive(Clone, Debug)]
struct Received {
    ip_protocol: u8,
    src: SocketAddr,
    dst: SocketAddr,
    micros: i64,
    protocol_type: u8,
    agent_id: Option<u32>,
    auth_key: Option<Vec<u8>>,
    correlation_id: Option<Vec<u8>>,
    node_name: Option<Vec<u8>>,
    payload: Vec<u8>,
}

impl Received {
    fn of(bytes: &[u8]) -> Self {
        let p = decode(bytes).expect("a HEP packet");
        Self {
            ip_protocol: p.ip_protocol,
            src: p.src,
            dst: p.dst,
            micros: p.time.0,
            protocol_type: p.protocol_type,
            agent_id: p.agent_id,
            auth_key: p.auth_key.map(<[u8]>::to_vec),
            correlation_id: p.correlation_id.map(<[u8]>::to_vec),
            node_name: p.node_name.map(<[u8]>::to_vec),
            payload: p.payload.to_vec(),
        }
    }
}

/// A HEP receiver over TCP: every connection's stream cut into packets by their length.
/// Stopped, it closes its port and its connections; started again, it listens on the same
/// port and adds to the same packets.
struct TcpReceiver {
    addr: SocketAddr,
    packets: Arc<Mutex<Vec<Received>>>,
    running: Arc<AtomicBool>,
}

impl TcpReceiver {
    fn start() -> Self {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        Self::on(any, Arc::new(Mutex::new(Vec::new())))
    }

    fn on(addr: SocketAddr, packets: Arc<Mutex<Vec<Received>>>) -> Self {
        let listener = TcpListener::bind(addr).expect("a TCP port");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("address");
        let running = Arc::new(AtomicBool::new(true));
        let (sink, on) = (packets.clone(), running.clone());
        std::thread::spawn(move || {
            while on.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (sink, on) = (sink.clone(), on.clone());
                        std::thread::spawn(move || receive(stream, &sink, &on));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => return,
                }
            }
        });
        Self {
            addr,
            packets,
            running,
        }
    }

    /// Closes the port and every connection.
    fn stop(&self) {
        self.running.store(false, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Listens again on the same port.
    fn restart(&self) -> Self {
        Self::on(self.addr, self.packets.clone())
    }

    /// The packets received, once `n` have come (10 s at most).
    fn wait_for(&self, n: usize) -> Vec<Received> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.packets.lock().expect("lock").clone();
            if got.len() >= n || Instant::now() > until {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Reads HEP packets from `stream` into `sink` until it closes or `running` turns false.
fn receive(mut stream: TcpStream, sink: &Mutex<Vec<Received>>, running: &AtomicBool) {
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("a read timeout");
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 65536];
    while running.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        while let Some(len) = packet_len(&buffer).expect("a HEP stream") {
            if buffer.len() < len {
                break;
            }
            let packet: Vec<u8> = buffer.drain(..len).collect();
            sink.lock().expect("lock").push(Received::of(&packet));
        }
    }
}

#[test]
fn tcp_export_carries_each_message_its_record_and_the_sensor_identity() {
    let dir = scratch("hep-tcp");
    let receiver = TcpReceiver::start();
    let password = dir.join("hep-password");
    std::fs::write(&password, "s3cret\nignored\n").expect("password file");
    let captures = mixed();
    let files = args_of(&captures);
    let expected = messages(&files);
    let url = format!("tcp://{}", receiver.addr);
    let mut args = vec![
        "analyze",
        "--format",
        "jsonl",
        "--hep",
        &url,
        "--hep-node-id",
        "2001",
        "--hep-node-name",
        "sbc-test",
        "--hep-password-file",
        utf8(&password),
        "--hep-cdr",
    ];
    args.extend_from_slice(&files);
    let out = spycraft(&args);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    let records = records(&text(&out.stdout));
    let n = expected.len() + records.len();
    assert!(
        said.contains(&format!("HEP to {url}: {n} packets, {n} sent\n")),
        "{said}"
    );

    let got = receiver.wait_for(n);
    assert_eq!(got.len(), n);
    for p in &got {
        assert_eq!(p.agent_id, Some(2001));
        assert_eq!(p.node_name.as_deref(), Some(&b"sbc-test"[..]));
        assert_eq!(p.auth_key.as_deref(), Some(&b"s3cret"[..]));
    }
    let (sip, cdr): (Vec<_>, Vec<_>) = got.iter().partition(|p| p.protocol_type == PROTOCOL_SIP);
    assert!(cdr.iter().all(|p| p.protocol_type == PROTOCOL_CDR));

    // Every message as dump shows it: time to the microsecond, addresses, ports, bytes,
    // and its Call-ID as the correlation id; TCP calls say IP protocol 6.
    let mut seen: Vec<_> = sip
        .iter()
        .map(|p| {
            // dump shows line ends as `\n`.
            let text = String::from_utf8(p.payload.clone())
                .expect("UTF-8 SIP")
                .replace("\r\n", "\n");
            let call_id = String::from_utf8(p.correlation_id.clone().expect("correlation id"))
                .expect("UTF-8");
            (
                p.micros,
                p.src.to_string(),
                p.dst.to_string(),
                call_id,
                text,
            )
        })
        .collect();
    seen.sort();
    let want: Vec<_> = expected
        .iter()
        .map(|(t, src, dst, call_id, text)| {
            (
                micros(t),
                src.clone(),
                dst.clone(),
                call_id.clone(),
                text.clone(),
            )
        })
        .collect();
    same(&seen, &want);
    for r in records.values() {
        let call_id = r["call_id"].as_str().expect("call_id");
        let want = if r["transport"] == "udp" { 17 } else { 6 };
        let protocols: Vec<u8> = sip
            .iter()
            .filter(|p| p.correlation_id.as_deref() == Some(call_id.as_bytes()))
            .map(|p| p.ip_protocol)
            .collect();
        assert!(!protocols.is_empty());
        assert!(
            protocols.iter().all(|p| *p == want),
            "{call_id}: {protocols:?}"
        );
    }

    // Each record once, as its JSON line, correlated by its Call-ID.
    assert_eq!(cdr.len(), records.len());
    for p in &cdr {
        let record: Value = serde_json::from_slice(&p.payload).expect("a JSON record");
        let key = (
            record["call_id"].as_str().expect("call_id").to_owned(),
            record["from_tag"].as_str().expect("from_tag").to_owned(),
        );
        assert_eq!(records.get(&key), Some(&record));
        assert_eq!(p.correlation_id.as_deref(), Some(key.0.as_bytes()));
    }
}

/// A capture of one OPTIONS of `size` bytes.
fn capture_of_one_options(dir: &Path, size: usize) -> PathBuf {
    let head = "OPTIONS sip:big@10.0.0.2 SIP/2.0\r\n\
                Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-big\r\n\
                From: <sip:a@10.0.0.1>;tag=a\r\nTo: <sip:big@10.0.0.2>\r\n\
                Call-ID: big@test\r\nCSeq: 1 OPTIONS\r\nContent-Type: text/plain\r\n";
    let fixed = head.len() + "Content-Length: 00000\r\n\r\n".len();
    let body = "x".repeat(size - fixed);
    let message = format!("{head}Content-Length: {:05}\r\n\r\n{body}", body.len());
    assert_eq!(message.len(), size);
    let caller: SocketAddr = "10.0.0.1:5060".parse().expect("address");
    let callee: SocketAddr = "10.0.0.2:5060".parse().expect("address");
    let path = dir.join("big.pcap");
    std::fs::write(
        &path,
        pcap_of_datagrams(&[(0, caller, callee, message.as_bytes())]),
    )
    .expect("pcap");
    path
}

#[test]
fn a_message_too_large_for_a_datagram_is_counted_for_udp_and_sent_whole_over_tcp() {
    let dir = scratch("hep-oversize");
    // HEP adds 110 bytes here (chunks, Call-ID `big@test`, node name `n`): 65,520 in all,
    // more than a UDP datagram holds (65,507), less than a HEP packet's limit (65,535).
    let size = 65_410;
    let capture = capture_of_one_options(&dir, size);
    let udp = UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    let receiver = TcpReceiver::start();
    let (to_udp, to_tcp) = (
        format!("udp://{}", udp.local_addr().expect("address")),
        format!("tcp://{}", receiver.addr),
    );
    let out = spycraft(&[
        "analyze",
        "--format",
        "jsonl",
        "--hep",
        &to_udp,
        "--hep",
        &to_tcp,
        "--hep-node-name",
        "n",
        utf8(&capture),
    ]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "HEP to {to_udp}: 1 packets, 0 sent, 1 NOT SENT (1 oversize)\n"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("HEP to {to_tcp}: 1 packets, 1 sent\n")),
        "{said}"
    );
    let got = receiver.wait_for(1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload.len(), size);
    assert!(got[0]
        .payload
        .starts_with(b"OPTIONS sip:big@10.0.0.2 SIP/2.0\r\n"));
}

/// Unique payloads among `packets` (a stream sends again what a broken connection may have
/// lost, so a collector can see a packet twice).
fn unique(packets: &[Received]) -> usize {
    let mut seen: Vec<&[u8]> = packets.iter().map(|p| p.payload.as_slice()).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

#[test]
fn a_stopped_collector_never_holds_the_capture_and_its_losses_are_bounded_and_counted() {
    if !may_capture() {
        return;
    }
    let dir = scratch("hep-outage");
    let records = dir.join("live.jsonl");
    let receiver = TcpReceiver::start();
    let url = format!("tcp://{}", receiver.addr);
    let ports = "25060-25065";
    let (sensor, said, http) = start_sensor(&[
        "capture",
        "-i",
        "lo",
        "--mode",
        "pcap",
        "--ports",
        ports,
        "--http",
        "127.0.0.1:0",
        "--format",
        "jsonl",
        "-o",
        utf8(&records),
        "--hep",
        &url,
        "--hep-queue",
        "100",
    ]);
    std::thread::sleep(Duration::from_millis(1500));

    // 50 calls (250 messages) while the collector takes them.
    send_calls_numbered(0..50, 25060, 25061);
    assert_eq!(receiver.wait_for(250).len(), 250);
    // Stopped for 10 s, while 50 more calls pass: the queue keeps 100 packets.
    receiver.stop();
    let outage = Instant::now();
    send_calls_numbered(50..100, 25062, 25063);
    let full = "spycraft_hep_unsent_packets_total{destination=\"URL\",reason=\"queue_full\"}"
        .replace("URL", &url);
    let counted = || sample(&get(http, "/metrics").1, &full);
    let until = Instant::now() + Duration::from_secs(5);
    while counted() != Some(150.0) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        counted(),
        Some(150.0),
        "/metrics counts the packets not queued"
    );
    std::thread::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed()));
    // Back: what was queued goes out, then 50 calls more.
    let receiver = receiver.restart();
    assert_eq!(
        receiver.wait_for(350).len(),
        350,
        "the queue is sent after the outage"
    );
    send_calls_numbered(100..150, 25064, 25065);
    let got = receiver.wait_for(600);
    std::thread::sleep(Duration::from_millis(500));

    interrupt(sensor.child());
    let status = sensor.output().status;
    let said = said.rest().join("\n");
    // Every call has its record: the capture never waited for the collector.
    assert!(said.contains("150 calls (answered 150)"), "{said}");
    assert_eq!(
        std::fs::read_to_string(&records)
            .expect("records")
            .lines()
            .count(),
        150
    );
    // At least one reconnection; a second when a connect lands on the listener as it closes.
    let summary = format!("HEP to {url}: 750 packets, 600 sent, 150 NOT SENT (150 queue full), ");
    let reconnections: u32 = said
        .lines()
        .find_map(|line| line.split_once(&summary))
        .and_then(|(_, rest)| rest.strip_suffix(" reconnections"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a HEP summary with reconnections: {said}"));
    assert!(reconnections >= 1, "{said}");
    assert_eq!(
        status.code(),
        Some(1),
        "packets not sent fail the run: {said}"
    );
    assert_eq!(got.len(), 600);
    assert_eq!(unique(&got), 600);
}

/// Exports `files` as HEP to `url` with `extra` options; returns what it said.
fn export(files: &[&str], url: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "analyze",
        "--format",
        "jsonl",
        "-o",
        "/dev/null",
        "--hep",
        url,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(files);
    let out = spycraft(&args);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    said
}

#[test]
fn spycraft_collects_what_two_agents_export_once_over_udp_and_tcp() {
    let dir = scratch("hep-collect");
    let captures = mixed();
    let files = args_of(&captures);
    let want = records(&analyzed(&files));
    for transport in ["udp", "tcp"] {
        let out = dir.join(format!("{transport}.jsonl"));
        let (collector, said, addr) = start_collector_writing(transport, &out);
        let url = format!("{transport}://{addr}");
        // Two agents deliver the same messages, one after the other.
        for (id, name) in [("4294967295", "edge-1"), ("2", "edge-2")] {
            let said = export(
                &files,
                &url,
                &["--hep-node-id", id, "--hep-node-name", name],
            );
            assert!(said.contains("47 packets, 47 sent"), "{said}");
        }
        // Raw SIP to the HEP port is refused, not taken for traffic.
        let raw = b"OPTIONS sip:x@10.0.0.9 SIP/2.0\r\nCall-ID: raw@test\r\n\r\n";
        if transport == "udp" {
            let sender = UdpSocket::bind("127.0.0.1:0").expect("a socket");
            sender.send_to(raw, addr).expect("sent");
        } else {
            use std::io::Write;
            TcpStream::connect(addr)
                .and_then(|mut s| s.write_all(raw))
                .expect("sent");
        }
        let (got, said) = stop_collector(collector, &said, &out);
        // Each record names the agent whose copy counted: the first's.
        let mut got = records(&got);
        for record in got.values_mut() {
            let record = record.as_object_mut().expect("an object");
            assert_eq!(
                record.remove("agent_id"),
                Some(u32::MAX.into()),
                "{transport}"
            );
            assert_eq!(record.remove("agent_name"), Some("edge-1".into()));
        }
        let mut want = want.clone();
        for record in want.values_mut() {
            let record = record.as_object_mut().expect("an object");
            assert_eq!(record.remove("agent_id"), Some(Value::Null));
            assert_eq!(record.remove("agent_name"), Some(Value::Null));
        }
        assert_eq!(got, want, "{transport}");
        assert!(
            said.contains("7 calls (answered 5, busy 1, cancelled 1); 47 duplicate frames dropped; HEP: 94 SIP messages"),
            "{said}"
        );
        assert!(said.contains("95 packets received, 1 refused"), "{said}");
    }
}

#[test]
fn the_collector_refuses_wrong_passwords_and_bad_packets() {
    let dir = scratch("hep-refuse");
    let (right, wrong) = (dir.join("right"), dir.join("wrong"));
    std::fs::write(&right, "s3cret\n").expect("password");
    std::fs::write(&wrong, "guess\n").expect("password");
    let out = dir.join("records.jsonl");
    let (collector, said, addr) = start_collector(&[
        "--hep-listen",
        "udp://127.0.0.1:0",
        "--hep-password-file",
        utf8(&right),
        "--http",
        "127.0.0.1:0",
        "--format",
        "jsonl",
        "-o",
        utf8(&out),
    ]);
    let http = serving_addr(&said);
    let url = format!("udp://{addr}");
    let busy = pcaps().join("busy-486").join("capture.pcap");
    export(&[utf8(&busy)], &url, &["--hep-password-file", utf8(&wrong)]);
    export(&[utf8(&busy)], &url, &[]);
    // Not HEP at all, HEP with a chunk running past the end, and the right password.
    let sender = UdpSocket::bind("127.0.0.1:0").expect("a socket");
    sender
        .send_to(b"OPTIONS sip:x SIP/2.0\r\n\r\n", addr)
        .expect("sent");
    sender
        .send_to(
            b"HEP3\x00\x10\x00\x00\x00\x01\xff\xff\x02\x00\x00\x00",
            addr,
        )
        .expect("sent");
    export(&[utf8(&busy)], &url, &["--hep-password-file", utf8(&right)]);
    // /metrics: the listener's refusals, and what the decoder made of the rest.
    let refused = "spycraft_capture_lost_frames_total{interface=\"hep udp://127.0.0.1:0\",mode=\"hep\",reason=\"refused\"}";
    let sip = "spycraft_hep_decoded_packets_total{outcome=\"sip\"}";
    let until = Instant::now() + Duration::from_secs(5);
    let mut metrics = get(http, "/metrics").1;
    while sample(&metrics, sip) != Some(5.0) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        metrics = get(http, "/metrics").1;
    }
    assert_eq!(sample(&metrics, sip), Some(5.0), "{metrics}");
    assert_eq!(sample(&metrics, refused), Some(12.0), "{metrics}");
    let (got, said) = stop_collector(collector, &said, &out);
    assert_eq!(records(&got).len(), 1, "{said}");
    assert!(
        said.contains("17 packets received, 12 refused (password, framing, size)"),
        "{said}"
    );
}

#[test]
fn analyze_reads_a_capture_of_a_hep_stream_and_counts_what_is_not_sip() {
    let dir = scratch("hep-in-pcap");
    let agent: SocketAddr = "192.0.2.10:40000".parse().expect("address");
    let collector: SocketAddr = "192.0.2.20:9060".parse().expect("address");
    let invite = "INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\n\
                  From: <sip:alice@10.0.0.1>;tag=a\r\nTo: <sip:bob@10.0.0.2>\r\nCall-ID: in-hep@test\r\n\
                  CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let packet = |protocol_type: u8, payload: &str, seconds: i64| {
        let mut out = Vec::new();
        spycraft::hep::encode(
            &spycraft::hep::HepPacket {
                ip_protocol: 17,
                src: "10.0.0.1:5060".parse().expect("address"),
                dst: "10.0.0.2:5060".parse().expect("address"),
                time: spycraft::call::Timestamp(seconds * 1_000_000),
                protocol_type,
                agent_id: None,
                auth_key: None,
                correlation_id: None,
                vlan: None,
                node_name: None,
                payload: payload.as_bytes(),
            },
            &mut out,
        )
        .expect("encoded");
        out
    };
    let sip = packet(PROTOCOL_SIP, invite, 1_767_225_600);
    let log = packet(100, "a log line", 1_767_225_601);
    let cut = &sip[..sip.len() - 10];
    let mut broken = sip.clone();
    broken[5] = 0xff;
    let capture = dir.join("hep.pcap");
    std::fs::write(
        &capture,
        pcap_of_datagrams(&[
            (0, agent, collector, &sip[..]),
            (1000, agent, collector, &log),
            (2000, agent, collector, cut),
            (3000, agent, collector, &broken),
        ]),
    )
    .expect("pcap");
    let out = spycraft(&["analyze", "--format", "jsonl", utf8(&capture)]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("HEP: 1 SIP messages, 1 other packets skipped, 2 malformed packets dropped"),
        "{said}"
    );
    let records = records(&text(&out.stdout));
    let record = records.values().next().expect("one record");
    assert_eq!(record["call_id"], "in-hep@test");
    assert_eq!(record["caller_ip"], "10.0.0.1");
    assert_eq!(record["invite_at"], "2026-01-01T00:00:00.000000Z");
}
