// SPDX-License-Identifier: AGPL-3.0-or-later
//! `cargo xtask bench-web [--memory-calls N] [--db-records N] [--queries Q]`: how long a
//! number search takes through the web API. In memory: `spycraft serve` on the synthetic
//! capture. In PostgreSQL: a throwaway cluster (the test harness's) filled with generated rows
//! over a week, served by `spycraft serve --postgres`. It reports p50 and p95; it never fails
//! on a time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::ingest::cluster;
use crate::synth;

pub fn command(root: &Path, args: &[String]) -> Result<()> {
    let mut memory_calls = 100_000u32;
    let mut db_records = 1_000_000u64;
    let mut queries = 200usize;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--memory-calls" => memory_calls = it.next().context("--memory-calls N")?.parse()?,
            "--db-records" => db_records = it.next().context("--db-records N")?.parse()?,
            "--queries" => queries = it.next().context("--queries Q")?.parse()?,
            other => bail!("bench-web: unknown argument {other}"),
        }
    }
    crate::build_release(&[])?;
    let spycraft = root.join("target/release/spycraft");

    let capture = root.join(format!("target/bench/synth-{}k.pcap", memory_calls / 1000));
    if !capture.is_file() {
        synth::generate(memory_calls, &capture)?;
    }
    let (mut child, addr) = serve(
        Command::new(&spycraft).arg("serve").arg(&capture),
        "the input has ended",
    )?;
    // The synthetic callees are +1666 and seven digits: a prefix of nine names 100 calls.
    let paths: Vec<String> = (0..queries)
        .map(|n| {
            let block = (n as u32 * 7919) % (memory_calls / 100).max(1);
            format!("/api/v1/calls?q=%2B1666{block:05}&limit=100")
        })
        .collect();
    report(
        &format!("memory, {memory_calls} records, number prefix"),
        addr,
        &paths,
    )?;
    let _ = child.kill();
    let _ = child.wait();

    let pg = cluster::Cluster::start();
    let conn = pg.create_db("cdr");
    let migrated = Command::new(&spycraft)
        .args(["db", "migrate", "--postgres", &conn])
        .output()?;
    if !migrated.status.success() {
        bail!("db migrate: {}", String::from_utf8_lossy(&migrated.stderr));
    }
    let started = Instant::now();
    pg.psql("cdr", &fill_sql(db_records));
    println!(
        "filled cdr with {db_records} rows over 7 days in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (mut child, addr) = serve(
        Command::new(&spycraft)
            .args(["serve", "--postgres", &conn])
            .args(["--query-timeout", "30"]),
        "serving /metrics",
    )?;
    // Callees are 4930 and seven digits, each number called about db_records / 10^7 times.
    let number = |n: usize| (n * 7_919_993) % 10_000_000;
    for (window, from, to) in [
        ("a day", "2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z"),
        ("a week", "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"),
    ] {
        let paths: Vec<String> = (0..queries)
            .map(|n| {
                format!(
                    "/api/v1/calls?q=4930{:04}&from={from}&to={to}&limit=100",
                    number(n) / 1000
                )
            })
            .collect();
        report(
            &format!("PostgreSQL, {db_records} records, number prefix within {window}"),
            addr,
            &paths,
        )?;
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// Rows like a week of a carrier's calls: callers and callees of ten million numbers each,
/// a third busy, the rest answered, times spread evenly over 2026-11-01 to 2026-11-07.
fn fill_sql(rows: u64) -> String {
    format!(
        "SELECT spycraft_ensure_cdr_partition(d::date) \
           FROM generate_series('2026-11-01'::date, '2026-11-07'::date, '1 day') d; \
         INSERT INTO cdr (id, node, call_id, from_tag, collation_id, from_uri, from_user, \
           to_uri, to_user, request_uri, caller_ip, caller_port, callee_ip, callee_port, \
           transport, direction, invite_at, answer_at, end_at, duration_ms, billable_ms, \
           pdd_ms, disposition, final_status, ended_by, end_reason) \
         SELECT gen_random_uuid(), 'bench', 'c' || n, 't' || n, 'c' || n, \
           'sip:' || a || '@10.0.0.1', a, 'sip:' || b || '@10.0.0.2', b, \
           'sip:' || b || '@10.0.0.2', '10.0.0.1', 5060, '10.0.0.2', 5060, 'udp', 'unknown', \
           t, CASE WHEN n % 3 = 0 THEN NULL ELSE t END, t + interval '1 minute', 60000, \
           CASE WHEN n % 3 = 0 THEN 0 ELSE 60000 END, 900, \
           CASE WHEN n % 3 = 0 THEN 'busy' ELSE 'answered' END, \
           CASE WHEN n % 3 = 0 THEN 486 ELSE 200 END, 'caller', \
           CASE WHEN n % 3 = 0 THEN 'rejected' ELSE 'bye' END \
         FROM (SELECT n, \
                 '4420' || lpad(((n * 48271) % 10000000)::text, 7, '0') AS a, \
                 '4930' || lpad(((n * 7919993) % 10000000)::text, 7, '0') AS b, \
                 '2026-11-01T00:00:00Z'::timestamptz \
                   + (n * 604800.0 / {rows}) * interval '1 second' AS t \
               FROM generate_series(0::bigint, {last}) n) g; \
         ANALYZE cdr;",
        last = rows - 1
    )
}

/// Starts `serve` on a port of its own; returns it, and where, once it has said `ready`
/// (a capture's records are all in once its input has ended).
fn serve(command: &mut Command, ready: &str) -> Result<(Child, SocketAddr)> {
    let mut child = command
        .args(["--http", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let mut said = String::new();
    let mut buf = [0u8; 4096];
    // Until it has said `ready` and every line so far is whole.
    while !said.contains(ready) || !said.ends_with('\n') {
        let n = stderr.read(&mut buf)?;
        if n == 0 {
            bail!("spycraft serve ended: {said}");
        }
        said.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let addr = said
        .lines()
        .find_map(|l| l.strip_prefix("spycraft: serving /metrics"))
        .and_then(|l| l.rsplit("://").next())
        .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        .with_context(|| format!("where it serves, in {said}"))?;
    // Drain the rest (the access log), so a full pipe never stops it.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Ok((child, addr))
}

/// Times each GET; prints p50 and p95 and how many rows the searches found.
fn report(what: &str, addr: SocketAddr, paths: &[String]) -> Result<()> {
    let _ = get(addr, &paths[0])?; // warm
    let mut times = Vec::with_capacity(paths.len());
    let mut found = 0u64;
    for path in paths {
        let started = Instant::now();
        let (status, body) = get(addr, path)?;
        times.push(started.elapsed());
        if status != 200 {
            bail!("{path}: {status} {body}");
        }
        found += crate::bench::json_number(&body, "total").unwrap_or(0);
    }
    times.sort();
    let at = |p: f64| times[((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "{what}: {} searches, p50 {:.1} ms, p95 {:.1} ms, {:.1} matches each",
        times.len(),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.95).as_secs_f64() * 1000.0,
        found as f64 / times.len() as f64
    );
    Ok(())
}

/// A plain HTTP/1.1 GET: the status and the body.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").context("an HTTP reply")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("a status")?;
    Ok((status, body.to_owned()))
}
