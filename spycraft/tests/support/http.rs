// SPDX-License-Identifier: AGPL-3.0-or-later
//! Plain HTTP/1.1 GETs against a sensor's endpoint, and finding the address it serves on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::process::{Reaped, Said};

/// GETs `path`; returns the status code and the body. Panics when the server cannot be
/// reached or answers something that is not HTTP.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// GETs `path`, or says why it could not.
pub fn try_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| e.to_string())?;
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not HTTP: {reply:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("status line: {head}"))?;
    Ok((status, body.to_owned()))
}

/// Waits for the sensor to say where it serves (`--http 127.0.0.1:0` picks a port).
pub fn serving_addr(stderr: &Said) -> SocketAddr {
    let lines = stderr.wait_for("serving /metrics", Duration::from_secs(60));
    serving_addr_in(&lines).expect("the line")
}

/// Where the sensor serves, if one of `lines` (what it said) says so.
pub fn serving_addr_in(lines: &[String]) -> Option<SocketAddr> {
    let line = lines.iter().find(|l| l.contains("serving /metrics"))?;
    let addr = line
        .rsplit("://")
        .next()
        .and_then(|a| a.trim().parse().ok());
    Some(addr.unwrap_or_else(|| panic!("an address in {line:?}")))
}

/// The value of the sample `series` (name and labels exactly as written) in a scrape.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The series a scrape holds: its lines that are not comments.
pub fn series(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// GETs `path` with `headers` (`Name: value` lines); returns the status, the head and the
/// body's bytes. For bodies of a known length (no chunked encoding).
pub fn get_raw(addr: SocketAddr, path: &str, headers: &[&str]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("request");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("reply");
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head, reply[split + 4..].to_vec())
}

/// Starts `spycraft ARGS` with stderr read line by line; returns it and where it serves.
pub fn start_sensor(args: &[&str]) -> (Reaped, Said, SocketAddr) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spycraft"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spycraft");
    let said = Said::new(child.stderr.take().expect("stderr"));
    let addr = serving_addr(&said);
    (Reaped::spawn_from(child), said, addr)
}
