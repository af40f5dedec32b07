// SPDX-License-Identifier: AGPL-3.0-or-later
//! `cargo xtask capbench [--calls N] [--noise PERCENT]`: what each live capture mode costs.
//!
//! A synthetic capture (N calls, PERCENT % of its frames RTP-like noise; 10,000 calls and 90 %
//! by default) is replayed by tcpreplay at the highest rate it reaches (`--topspeed`) into one
//! end of a veth pair, inside a network namespace of its own; `spycraft capture` watches the
//! other end in each mode in turn: xdp, socket, pcap with the generated filter, pcap with no
//! filter. For each it reports the SIP messages lost (against the generator's truth), the
//! kernel's or libpcap's counters, and the sensor's CPU time (user + system, from wait4),
//! less that of an idle run of the same mode, per replayed frame. It reports; it asserts
//! nothing about time. Needs root and the kernel programs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::bench::json_number;
use crate::synth;

struct Mode {
    name: &'static str,
    args: &'static [&'static str],
}

const MODES: [Mode; 4] = [
    Mode {
        name: "xdp",
        args: &["--mode", "xdp"],
    },
    Mode {
        name: "socket",
        args: &["--mode", "socket"],
    },
    Mode {
        name: "pcap, generated filter",
        args: &["--mode", "pcap"],
    },
    Mode {
        name: "pcap, no filter",
        args: &["--mode", "pcap", "--pcap-filter", ""],
    },
];

/// What one sensor run gave.
struct Run {
    cpu: Duration,
    sip_messages: u64,
    counters: String,
    replay: String,
}

/// The namespace with the veth pair `rp0` (tcpreplay) – `cap0` (the sensor); deleted on drop.
struct Bench(String);

impl Bench {
    fn new() -> Result<Self> {
        let name = format!("spy-capbench-{}", std::process::id());
        let ns = Self(name);
        ns.ip(&["netns", "add", &ns.0])?;
        ns.ip(&[
            "-n", &ns.0, "link", "add", "name", "rp0", "type", "veth", "peer", "name", "cap0",
        ])?;
        ns.ip(&["-n", &ns.0, "link", "set", "rp0", "up"])?;
        ns.ip(&["-n", &ns.0, "link", "set", "cap0", "up"])?;
        Ok(ns)
    }

    fn ip(&self, args: &[&str]) -> Result<()> {
        crate::run(Command::new("ip").args(args))
    }

    fn exec(&self, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0]).arg(program);
        cmd
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

pub fn command(root: &Path, args: &[String]) -> Result<()> {
    let mut calls = 10_000u32;
    let mut noise = 90u32;
    let mut http = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--calls" => calls = it.next().context("--calls N")?.parse()?,
            "--noise" => noise = it.next().context("--noise PERCENT")?.parse()?,
            "--http" => http = true,
            other => bail!("capbench: unknown argument {other}"),
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("capbench loads kernel programs and builds network namespaces: run as root");
    }
    crate::setup(&["tcpreplay", "iproute2"])?;
    crate::setup_kernel_build()?;
    crate::build_release(&[])?;
    let binary = root.join("target/release/spycraft");
    let capture = root.join(format!("target/bench/capbench-{calls}-{noise}.pcap"));
    let truth = synth::generate_with_noise(calls, noise, &capture)?;
    let count = |key| json_number(&truth, key).with_context(|| format!("truth: {key}"));
    let (sip_messages, noise_frames) = (count("sip_messages")?, count("noise_frames")?);
    let frames = sip_messages + noise_frames;
    println!(
        "capture: {calls} calls, {frames} frames ({sip_messages} SIP messages, {noise_frames} noise frames, {noise} %)"
    );
    let bench = Bench::new()?;
    let mut rows = Vec::new();
    for mode in &MODES {
        let idle = sensor_run(&bench, &binary, mode, None, http)?;
        let run = sensor_run(&bench, &binary, mode, Some(&capture), http)?;
        let cpu = run.cpu.saturating_sub(idle.cpu);
        let per_frame_ns = cpu.as_nanos() as f64 / frames as f64;
        println!(
            "\n{}: {} of {} SIP messages, {} lost; CPU {:.3} s ({:.0} ns per replayed frame)\n  {}\n  tcpreplay: {}",
            mode.name,
            run.sip_messages,
            sip_messages,
            sip_messages.saturating_sub(run.sip_messages),
            cpu.as_secs_f64(),
            per_frame_ns,
            run.counters,
            run.replay
        );
        rows.push((
            mode.name,
            sip_messages.saturating_sub(run.sip_messages),
            per_frame_ns,
        ));
    }
    let baseline = rows.last().map_or(1.0, |r| r.2).max(f64::MIN_POSITIVE);
    println!("\n| mode | SIP messages lost | sensor CPU per replayed frame | vs pcap, no filter |");
    println!("|---|---|---|---|");
    for (name, lost, per_frame) in rows {
        println!(
            "| {name} | {lost} | {per_frame:.0} ns | {:.1}× less |",
            baseline / per_frame.max(f64::MIN_POSITIVE)
        );
    }
    Ok(())
}

/// Runs the sensor in `mode` on `cap0` for a second, replays `capture` (if any) into `rp0`,
/// waits a second more, stops it and reads what it used and counted. With `http`, the sensor
/// serves /metrics and is scraped every second meanwhile.
fn sensor_run(
    bench: &Bench,
    binary: &Path,
    mode: &Mode,
    capture: Option<&Path>,
    http: bool,
) -> Result<Run> {
    const METRICS: &str = "127.0.0.1:9479";
    let child = bench
        .exec(binary)
        .args([
            "capture",
            "-i",
            "cap0",
            "--format",
            "jsonl",
            "-o",
            "/dev/null",
        ])
        .args(if http { &["--http", METRICS][..] } else { &[] })
        .args(mode.args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the sensor")?;
    std::thread::sleep(Duration::from_millis(1500));
    let scraping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(http));
    let scraper = {
        let scraping = scraping.clone();
        let mut curl = bench.exec(Path::new("curl"));
        curl.args([
            "-s",
            "-o",
            "/dev/null",
            &format!("http://{METRICS}/metrics"),
        ]);
        std::thread::spawn(move || {
            while scraping.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = curl.status();
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let mut replay = String::from("(idle run)");
    if let Some(capture) = capture {
        let out = bench
            .exec(Path::new("tcpreplay"))
            .args(["-i", "rp0", "--topspeed"])
            .arg(capture)
            .output()
            .context("tcpreplay")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "tcpreplay failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        replay = text
            .lines()
            .filter(|l| l.contains("Actual:") || l.contains("Rated:"))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("; ");
    }
    std::thread::sleep(Duration::from_millis(1500));
    scraping.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = scraper.join();
    let pid = child.id() as i32;
    // SAFETY: our own child's pid, a valid signal.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr {
        use std::io::Read;
        pipe.read_to_string(&mut stderr)?;
    }
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid out-pointers.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("the sensor ({}) failed: {stderr}", mode.name);
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    let sip_messages = stderr
        .split(" SIP messages")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no SIP message count in: {stderr}"))?;
    let counters = stderr
        .lines()
        .filter(|l| l.contains("kernel:") || l.contains("libpcap:"))
        .map(|l| l.trim_start_matches("spycraft: "))
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Run {
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        sip_messages,
        counters,
        replay,
    })
}
