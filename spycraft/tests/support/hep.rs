// SPDX-License-Identifier: AGPL-3.0-or-later
//! HEP test support: loopback ports, spycraft as a HEP collector, records keyed by call.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{interrupt, Reaped, Said};
use super::{spycraft, text};

/// A UDP port free on loopback just now.
pub fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    socket.local_addr().expect("address").port()
}

/// Waits until something listens on UDP `port` (as /proc/net/udp says), for 10 s at most.
pub fn wait_udp_listening(port: u16) {
    let until = Instant::now() + Duration::from_secs(10);
    while !udp_listening(port) {
        assert!(Instant::now() < until, "nothing listens on UDP {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether something listens on UDP `port` on this machine, as /proc/net/udp says.
pub fn udp_listening(port: u16) -> bool {
    udp_listening_in("/proc/net/udp", port)
}

/// Whether UDP `port` is in `table` (`/proc/net/udp`, or `/proc/PID/net/udp` for the
/// network namespace of process PID).
pub fn udp_listening_in(table: &str, port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    let table = std::fs::read_to_string(table).unwrap_or_default();
    table.lines().any(|l| l.contains(&needle))
}

/// `analyze --format jsonl` of `files` on one thread.
pub fn analyzed(files: &[&str]) -> String {
    let mut args = vec!["analyze", "--format", "jsonl", "--threads", "1"];
    args.extend_from_slice(files);
    let out = spycraft(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// `2026-11-26T06:45:51.902338Z` as microseconds since the epoch.
pub fn micros(rfc3339: &str) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .expect("a time");
    i64::try_from(t.unix_timestamp_nanos() / 1000).expect("in range")
}

/// Starts `spycraft capture ARGS` and waits for it to say where it listens for HEP.
pub fn start_collector(args: &[&str]) -> (Reaped, Said, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spycraft"))
        .arg("capture")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spycraft");
    let said = Said::new(child.stderr.take().expect("stderr"));
    let lines = said.wait_for("listening for HEP on ", Duration::from_secs(10));
    let line = lines.last().expect("a line");
    let addr = line
        .split("listening for HEP on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("an address in {line:?}"));
    (Reaped::spawn_from(child), said, addr)
}

/// `spycraft capture --hep-listen TRANSPORT://127.0.0.1:0` writing JSON lines to `records`.
pub fn start_collector_writing(transport: &str, records: &Path) -> (Reaped, Said, SocketAddr) {
    let listen = format!("{transport}://127.0.0.1:0");
    let records = records.to_str().expect("a UTF-8 path");
    start_collector(&["--hep-listen", &listen, "--format", "jsonl", "-o", records])
}

/// Stops a collector and returns its records and what it said.
pub fn stop_collector(collector: Reaped, said: &Said, records: &Path) -> (String, String) {
    std::thread::sleep(Duration::from_millis(500));
    interrupt(collector.child());
    let status = collector.output().status;
    let said = said.rest().join("\n");
    assert!(status.success(), "{status}: {said}");
    (std::fs::read_to_string(records).expect("records"), said)
}
