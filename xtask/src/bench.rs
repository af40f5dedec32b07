// SPDX-License-Identifier: AGPL-3.0-or-later
//! `cargo xtask bench [--calls N] [--runs R]`: times `spycraft analyze` on the synthetic
//! capture against reading the file, a floor program, and tshark and sngrep when installed;
//! prints throughput, peak RSS and the ratios, and checks the records against the generator's
//! truth. It reports; it never fails on a time.
//!
//! `cargo xtask floor FILE` is the floor itself: walk the pcap records and memmem-count
//! `\r\n\r\n` in each UDP payload — the least any SIP analyser must do.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::synth;

/// Entry point of `cargo xtask bench`.
pub fn command(root: &Path, args: &[String]) -> Result<()> {
    let mut calls = 200_000u32;
    let mut runs = 3usize;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--calls" => calls = it.next().context("--calls N")?.parse()?,
            "--runs" => runs = it.next().context("--runs R")?.parse()?,
            other => bail!("bench: unknown argument {other}"),
        }
    }
    crate::build_release(&["xtask"])?;
    let capture = root.join(format!("target/bench/synth-{}k.pcap", calls / 1000));
    if !capture.is_file() || !synth::truth_path(&capture).is_file() {
        synth::generate(calls, &capture)?;
    }
    let truth = std::fs::read_to_string(synth::truth_path(&capture))?;
    let bytes = std::fs::metadata(&capture)?.len();
    let messages = json_number(&truth, "sip_messages").context("truth: sip_messages")?;
    println!(
        "capture: {} ({:.0} MB, {messages} SIP messages)",
        capture.display(),
        bytes as f64 / 1e6
    );
    println!("machine: {} cores, {}", cores(), cpu_model());
    println!("median of {runs} runs after one untimed run, page cache warm\n");
    println!(
        "{:<44} {:>9} {:>13} {:>9} {:>10}",
        "tool", "wall s", "SIP msg/s", "MB/s", "peak RSS"
    );

    let spycraft = root.join("target/release/spycraft");
    let xtask = root.join("target/release/xtask");
    let file = capture.to_str().context("utf-8 path")?;
    let mut tools: Vec<(String, Command)> = Vec::new();
    let mut add = |name: &str, program: &Path, args: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
        tools.push((name.to_owned(), cmd));
    };
    add(
        "reading the file (cat > /dev/null)",
        Path::new("cat"),
        &[file],
    );
    add(
        "floor (pcap walk + memmem CRLFCRLF)",
        &xtask,
        &["floor", file],
    );
    add(
        "spycraft analyze --format jsonl",
        &spycraft,
        &["analyze", "--format", "jsonl", file],
    );
    add(
        "spycraft analyze --format jsonl --threads 1",
        &spycraft,
        &["analyze", "--format", "jsonl", "--threads", "1", file],
    );
    // The HTTP endpoint on, with Prometheus's pace of scrapes and more (`Scraper`).
    add(
        "spycraft analyze --format jsonl --http (scraped)",
        &spycraft,
        &["analyze", "--format", "jsonl", "--http", SCRAPED, file],
    );
    let _scraper = Scraper::start(SCRAPED);
    if which("tshark") {
        add(
            "tshark -q -z sip,stat",
            Path::new("tshark"),
            &["-n", "-r", file, "-q", "-z", "sip,stat"],
        );
    }
    if which("sngrep") {
        // sngrep stops taking dialogs at its capture limit (20,000 by default): raise it so
        // that it holds every call, as spycraft does.
        add(
            "sngrep -N -q -l 1000000 -I F port 5060",
            Path::new("sngrep"),
            &["-N", "-q", "-l", "1000000", "-I", file, "port", "5060"],
        );
    }
    let mut results: Vec<(String, f64, u64)> = Vec::new();
    for (name, mut cmd) in tools {
        // One untimed run first: the file back in the page cache after the tool before.
        measure(&mut cmd)?;
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            samples.push(measure(&mut cmd)?);
        }
        samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (wall, rss_kib) = samples[samples.len() / 2];
        results.push((name, wall, rss_kib));
    }
    let floor = results
        .iter()
        .find(|(name, ..)| name.starts_with("floor"))
        .map_or(f64::NAN, |r| r.1);
    for (name, wall, rss_kib) in &results {
        println!(
            "{name:<44} {wall:>9.2} {:>13.0} {:>9.0} {:>7} MiB   ({:.1}× floor)",
            messages as f64 / wall,
            bytes as f64 / 1e6 / wall,
            rss_kib / 1024,
            wall / floor
        );
    }
    // How spycraft (both threads) compares with each tool people use today.
    let row = |prefix: &str| results.iter().find(|(name, ..)| name.starts_with(prefix));
    if let Some((_, ours, our_rss)) = row("spycraft analyze --format jsonl") {
        println!();
        for tool in ["tshark", "sngrep"] {
            if let Some((name, wall, rss)) = row(tool) {
                println!(
                    "spycraft vs {name}: {:.1}× faster, {:.0}× less memory",
                    wall / ours,
                    *rss as f64 / (*our_rss).max(1) as f64
                );
            }
        }
        let rate = messages as f64 / ours;
        println!(
            "target: 2.4 M SIP messages/s and 64 MiB: {:.2} M/s ({}), {} MiB ({})",
            rate / 1e6,
            if rate >= 2.4e6 { "met" } else { "not met" },
            our_rss / 1024,
            if *our_rss <= 64 * 1024 {
                "met"
            } else {
                "not met"
            }
        );
    }
    println!();
    verify(&spycraft, file, &truth)
}

/// Where the `--http` row serves.
const SCRAPED: &str = "127.0.0.1:9478";

/// GETs /metrics from `addr` every 100 ms while it lives (ten times Prometheus's usual 1 s,
/// since a run lasts half a second); a refused connection is a run not started yet.
struct Scraper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Scraper {
    fn start(addr: &'static str) -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                    let _ = s.write_all(
                        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    );
                    let _ = s.read_to_end(&mut Vec::new());
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        Self { stop }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs the command once: wall seconds and the child's peak RSS in KiB.
fn measure(cmd: &mut Command) -> Result<(f64, u64)> {
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let mut status = 0;
    // SAFETY: rusage is plain old data, zeroed is a valid value; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child with valid pointers to locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    if pid < 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{cmd:?} failed (status {status})");
    }
    Ok((wall, usage.ru_maxrss as u64))
}

/// Checks spycraft's counts against the generator's truth.
fn verify(spycraft: &Path, file: &str, truth: &str) -> Result<()> {
    let out = Command::new(spycraft)
        .args(["analyze", "--format", "jsonl", file])
        .output()?;
    let records = String::from_utf8_lossy(&out.stdout);
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for line in records.lines() {
        let start = line
            .find("\"disposition\":\"")
            .context("disposition in record")?
            + 15;
        let end = start + line[start..].find('"').context("closing quote")?;
        *counts.entry(line[start..end].to_owned()).or_default() += 1;
    }
    let mut ok = true;
    for (disposition, n) in &counts {
        let want = json_number(truth, disposition).unwrap_or(0);
        ok &= want == *n;
        println!("  {disposition:<11} {n:>8}  (truth {want})");
    }
    let calls = json_number(truth, "calls").unwrap_or(0);
    let total: u64 = counts.values().sum();
    ok &= total == calls;
    println!(
        "records {total}, truth {calls}: {}",
        if ok { "match" } else { "MISMATCH" }
    );
    if !ok {
        bail!("spycraft's records do not match the generator's truth");
    }
    Ok(())
}

/// The floor: `cargo xtask floor FILE` prints the number of UDP payloads and of `\r\n\r\n`.
pub fn floor(file: &Path) -> Result<()> {
    let handle = std::fs::File::open(file)?;
    let len = handle.metadata()?.len() as usize;
    if len == 0 {
        bail!("{}: empty", file.display());
    }
    // SAFETY: a private read-only mapping of a file we keep open for the mapping's lifetime;
    // nothing writes the file meanwhile.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            std::os::fd::AsRawFd::as_raw_fd(&handle),
            0,
        )
    };
    if map == libc::MAP_FAILED {
        bail!("{}: mmap failed", file.display());
    }
    // SAFETY: the mapping is `len` readable bytes and outlives this borrow (never unmapped
    // before the process exits).
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(map.cast::<u8>(), len) };
    if bytes.len() < 24 || bytes[..4] != [0xd4, 0xc3, 0xb2, 0xa1] {
        bail!("{}: not a little-endian microsecond pcap", file.display());
    }
    let finder = memchr::memmem::Finder::new(b"\r\n\r\n");
    let (mut at, mut payloads, mut ends) = (24usize, 0u64, 0u64);
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into()?) as usize;
        let frame = &bytes[at + 16..(at + 16 + caplen).min(bytes.len())];
        // Ethernet + IPv4 (IHL) + UDP.
        if frame.len() > 14 + 20 + 8 && frame[12..14] == [0x08, 0x00] && frame[14 + 9] == 17 {
            let ihl = usize::from(frame[14] & 0x0f) * 4;
            if let Some(payload) = frame.get(14 + ihl + 8..) {
                payloads += 1;
                ends += finder.find_iter(payload).count() as u64;
            }
        }
        at += 16 + caplen;
    }
    println!("{payloads} UDP payloads, {ends} message ends");
    Ok(())
}

pub fn json_number(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
