// SPDX-License-Identifier: AGPL-3.0-or-later
//! The sensor as a service: `--http` with `/metrics`, `/healthz` and `/readyz`, scraped by
//! the real Prometheus and checked by promtool; bounded label sets; readiness that follows
//! the database.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::calls::pcap_of_calls_between;
use support::http::{get, sample, series, serving_addr};
use support::process::{interrupt, may_capture, Reaped, Said};
use support::{scratch, spycraft, text, utf8};

/// Starts `spycraft ARGS` with stderr read line by line; returns it and where it serves.
fn sensor(args: &[&str]) -> (Reaped, Said, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spycraft"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spycraft");
    let said = Said::new(child.stderr.take().expect("stderr"));
    let addr = serving_addr(&said);
    (Reaped::spawn_from(child), said, addr)
}

/// promtool's lint of a scrape: what it prints (nothing when the exposition is clean).
/// Under CI=true promtool must be there (xtask installs Debian's prometheus).
fn promtool_says(metrics: &str) -> Option<String> {
    use std::io::Write;
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool (Debian's prometheus) must be installed in CI: {e}"
            );
            eprintln!("skipped promtool: {e}");
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics.as_bytes())
        .expect("fed");
    let out = child.wait_with_output().expect("promtool");
    Some(format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

#[test]
fn ten_thousand_numbers_and_addresses_stay_under_300_series() {
    let dir = scratch("service-cardinality");
    let capture = dir.join("calls.pcap");
    // Every call from its own address and number to its own address and number.
    let addresses = |n: u32| -> (SocketAddr, SocketAddr) {
        let (hi, lo) = ((n >> 8) as u8, n as u8);
        (
            SocketAddr::from(([10, 1, hi, lo], 5060)),
            SocketAddr::from(([172, 16, hi, lo], 5060)),
        )
    };
    std::fs::write(&capture, pcap_of_calls_between(10_000, &addresses)).expect("capture");
    let settings = dir.join("sensor.toml");
    std::fs::write(
        &settings,
        "[[peer_group]]\nname = \"carrier-a\"\ncidrs = [\"172.16.0.0/20\"]\n\n\
         [[peer_group]]\nname = \"pbx\"\ncidrs = [\"10.1.0.0/16\"]\n",
    )
    .expect("settings");
    let (sensor, said, addr) = sensor(&[
        "analyze",
        "--config",
        utf8(&settings),
        "--http",
        "127.0.0.1:0",
        "--linger",
        "120",
        "--format",
        "jsonl",
        "-o",
        utf8(&dir.join("records.jsonl")),
        utf8(&capture),
    ]);
    said.wait_for("still serving", Duration::from_secs(60));
    let (status, metrics) = get(addr, "/metrics");
    assert_eq!(status, 200);
    let n = series(&metrics);
    assert!(n < 300, "{n} series:\n{metrics}");
    let calls = |labels: &str| sample(&metrics, &format!("spycraft_calls_total{{{labels}}}"));
    assert_eq!(calls("disposition=\"answered\""), Some(10_000.0));
    // Callees 172.16.0.0 to 172.16.15.255 (calls 0 to 4095) are carrier-a's; the rest are
    // the pbx's by their callers.
    let group = |g: &str| {
        sample(
            &metrics,
            &format!("spycraft_peer_calls_total{{peer_group=\"{g}\",disposition=\"answered\"}}"),
        )
    };
    assert_eq!(group("carrier-a"), Some(4096.0));
    assert_eq!(group("pbx"), Some(5904.0));
    assert_eq!(
        sample(&metrics, "spycraft_sip_requests_total{method=\"INVITE\"}"),
        Some(10_000.0)
    );
    assert_eq!(
        sample(&metrics, "spycraft_asr_ratio{window=\"1h\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "spycraft_call_duration_seconds_count"),
        Some(10_000.0)
    );
    if let Some(said) = promtool_says(&metrics) {
        assert_eq!(said, "", "promtool check metrics");
    }
    // The input has ended: alive, not ready.
    assert_eq!(get(addr, "/healthz").0, 200);
    let (status, why) = get(addr, "/readyz");
    assert_eq!(status, 503);
    assert!(why.contains("the run has ended"), "{why}");
    interrupt(sensor.child());
    assert!(sensor.output().status.success());
}

#[test]
fn a_taken_port_and_bad_peer_groups_are_clear_errors() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let taken = holder.local_addr().expect("address").to_string();
    let capture = support::bundled("busy-486");
    let out = spycraft(&["analyze", "--http", &taken, utf8(&capture)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("--http {taken}: ")), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");

    let dir = scratch("service-bad-groups");
    let settings = dir.join("sensor.toml");
    std::fs::write(
        &settings,
        "[[peer_group]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n\
         [[peer_group]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n",
    )
    .expect("settings");
    let out = spycraft(&[
        "analyze",
        "--config",
        utf8(&settings),
        "--http",
        "127.0.0.1:0",
        utf8(&capture),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("peer group name \"a\" is empty or used twice"),
        "{stderr}"
    );
}
