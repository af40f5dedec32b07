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
use support::http::{get, sample, series, serving_addr, start_sensor as sensor, try_get};
use support::netns::Namespaces;
use support::process::{interrupt, may_capture, place_calls, Reaped, Said, Tcpdump};
use support::{scratch, spycraft, text, utf8};

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
    let mut child = support::process::installed("promtool", "prometheus", child)?;
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

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Asks Prometheus for the value of `query` (a single number), if it has one.
fn prometheus_value(prometheus: SocketAddr, query: &str) -> Option<f64> {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = try_get(prometheus, &format!("/api/v1/query?query={encoded}")).ok()?;
    if status != 200 {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// sipp on loopback with a bundled scenario, `calls` calls at 25 per second.
fn sipp(script: &str, port: u16, calls: u32) -> Command {
    let mut cmd = support::process::sipp(Command::new("sipp"), script, "127.0.0.1", port, calls);
    cmd.args(["-r", "25"]);
    cmd
}

#[test]
fn prometheus_scrapes_the_live_sensor_and_its_counts_match_the_wire() {
    if !may_capture() {
        return;
    }
    let dir = scratch("service-prometheus");
    // Callee and caller ports of the answered, busy and cancelled calls.
    let pairs = [
        ("uas-answer.xml", "uac-answer.xml", 5260, 5262),
        ("uas-busy.xml", "uac-reject.xml", 5270, 5272),
        ("uas-cancel.xml", "uac-cancel.xml", 5280, 5282),
    ];
    let ports = "5260,5262,5270,5272,5280,5282";
    let filter = text(&spycraft(&["filter", "--expression", "--ports", ports]).stdout);
    let pcap = dir.join("tcpdump.pcap");
    let tcpdump = Tcpdump::start(&pcap, filter.trim());
    let (sensor, _said, addr) = sensor(&[
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
        utf8(&dir.join("records.jsonl")),
    ]);
    let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: spycraft\n    static_configs:\n      \
             - targets: ['{addr}']\n"
        ),
    )
    .expect("prometheus.yml");
    let _prometheus = Reaped::spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", utf8(&config)))
            .arg(format!("--storage.tsdb.path={}", utf8(&dir.join("tsdb"))))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // Prometheus is up and has scraped the sensor once.
    let until = Instant::now() + Duration::from_secs(60);
    while prometheus_value(web, "up{job=\"spycraft\"}") != Some(1.0) {
        assert!(
            Instant::now() < until,
            "Prometheus never scraped the sensor"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // 300 calls: 100 answered, 100 busy, 100 cancelled while ringing.
    place_calls(&pairs, |script, port| sipp(script, port, 100), &[]);
    // Each record is written once its retransmission linger (32 s) is over.
    let until = Instant::now() + Duration::from_secs(90);
    while prometheus_value(web, "sum(spycraft_calls_total)") != Some(300.0) {
        assert!(
            Instant::now() < until,
            "Prometheus never saw 300 calls: {:?}",
            prometheus_value(web, "sum(spycraft_calls_total)")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for disposition in ["answered", "busy", "cancelled"] {
        assert_eq!(
            prometheus_value(
                web,
                &format!("spycraft_calls_total{{disposition=\"{disposition}\"}}")
            ),
            Some(100.0),
            "{disposition}"
        );
    }
    let (_, metrics) = get(addr, "/metrics");
    if let Some(said) = promtool_says(&metrics) {
        assert_eq!(said, "", "promtool check metrics");
    }
    assert_eq!(get(addr, "/readyz").0, 200);
    // Asked while the sensor runs: once its target is gone, Prometheus marks it stale.
    let invites = prometheus_value(web, "spycraft_sip_requests_total{method=\"INVITE\"}");
    interrupt(sensor.child());
    assert!(sensor.output().status.success());
    tcpdump.stop();
    // tshark's count of INVITEs on the wire, SIP decoded on each port.
    let mut tshark = Command::new("tshark");
    tshark.args(["-r", utf8(&pcap), "-Y", "sip.Method == \"INVITE\""]);
    for port in ports.split(',') {
        tshark.args(["-d", &format!("udp.port=={port},sip")]);
    }
    let out = tshark.output().expect("tshark");
    assert!(out.status.success(), "tshark: {}", text(&out.stderr));
    let on_the_wire = text(&out.stdout).lines().count() as f64;
    assert!(on_the_wire >= 300.0, "{on_the_wire} INVITEs");
    assert_eq!(invites, Some(on_the_wire));
}

/// Polls `/readyz` until its status is `want`; returns its body.
fn readiness_becomes(addr: SocketAddr, want: u16, within: Duration) -> String {
    let until = Instant::now() + within;
    loop {
        let (status, body) = get(addr, "/readyz");
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < until,
            "/readyz stayed {status} ({body:?}), not {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn readiness_follows_the_database() {
    if !may_capture() {
        return;
    }
    let pg = support::postgres::Cluster::start();
    let conn = pg.create_db("cdr");
    let dir = scratch("service-readiness");
    let (sensor, _said, addr) = sensor(&[
        "capture",
        "-i",
        "lo",
        "--mode",
        "pcap",
        "--ports",
        "5290",
        "--http",
        "127.0.0.1:0",
        "--postgres",
        &conn,
        "--spool",
        utf8(&dir.join("spool")),
    ]);
    readiness_becomes(addr, 200, Duration::from_secs(30));
    pg.pause();
    let why = readiness_becomes(addr, 503, Duration::from_secs(30));
    assert!(why.contains("not ready: PostgreSQL at "), "{why}");
    let (_, metrics) = get(addr, "/metrics");
    assert!(
        metrics.contains("spycraft_output_up{output=\"PostgreSQL at ") && metrics.contains("} 0.0"),
        "{metrics}"
    );
    pg.resume();
    readiness_becomes(addr, 200, Duration::from_secs(30));
    interrupt(sensor.child());
    let out = sensor.output();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The fields named in `keys` of a `/proc/PID/task/TID/status`.
fn proc_status(status: &Path, keys: &[&str]) -> Vec<String> {
    let status = std::fs::read_to_string(status).expect("status");
    keys.iter()
        .map(|key| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}:")))
                .unwrap_or_else(|| panic!("{key} in {status}"))
                .trim()
                .to_owned()
        })
        .collect()
}

#[test]
fn a_capture_drops_its_privileges_and_keeps_recording() {
    if !may_capture() {
        return;
    }
    for (mode, uas, uac) in [("socket", 5294, 5296), ("pcap", 5298, 5300)] {
        let ports = format!("{uas},{uac}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_spycraft"))
            .args(["capture", "-i", "lo", "--mode", mode, "--ports", &ports])
            .args([
                "--user",
                "nobody",
                "--format",
                "jsonl",
                "--http",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spycraft");
        let said = Said::new(child.stderr.take().expect("stderr"));
        let sensor = Reaped::spawn_from(child);
        let line = said.wait_for("privileges dropped", Duration::from_secs(30));
        assert!(
            line.last().is_some_and(
                |l| l.contains("running as nobody") && l.contains("no capabilities kept")
            ),
            "{mode}: {line:?}"
        );
        said.wait_for("serving /metrics", Duration::from_secs(30));
        // Capabilities belong to each thread: every one of them (the capture's, the
        // recorder's, the HTTP server's) has none.
        let tasks = format!("/proc/{}/task", sensor.child().id());
        // The recorder thread starts with the run, just after the server.
        let until = Instant::now() + Duration::from_secs(10);
        while std::fs::read_dir(&tasks).map_or(0, Iterator::count) < 3 {
            assert!(Instant::now() < until, "{mode}: fewer than 3 threads");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut threads = 0;
        for task in std::fs::read_dir(&tasks).expect("tasks") {
            let status = task.expect("a task").path().join("status");
            let fields = proc_status(
                &status,
                &[
                    "Name",
                    "Uid",
                    "CapInh",
                    "CapPrm",
                    "CapEff",
                    "CapBnd",
                    "CapAmb",
                    "NoNewPrivs",
                ],
            );
            let name = &fields[0];
            assert!(
                fields[1].starts_with("65534\t65534"),
                "{mode} {name}: Uid {}",
                fields[1]
            );
            for (set, value) in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
                .iter()
                .zip(&fields[2..7])
            {
                assert_eq!(value, "0000000000000000", "{mode} {name}: {set}");
            }
            assert_eq!(fields[7], "1", "{mode} {name}: NoNewPrivs");
            threads += 1;
        }
        assert!(
            threads >= 3,
            "{mode}: the capture, recorder and HTTP threads: {threads}"
        );
        // Calls placed after the drop are still captured and recorded.
        let callee = Reaped::spawn(&mut sipp("uas-busy.xml", uas, 3));
        std::thread::sleep(Duration::from_millis(300));
        let status = sipp("uac-reject.xml", uac, 3)
            .args(["-s", "bob", &format!("127.0.0.1:{uas}")])
            .status()
            .expect("sipp");
        assert!(status.success(), "{mode}: caller {status}");
        assert!(callee.output().status.success(), "{mode}: callee");
        std::thread::sleep(Duration::from_millis(500));
        interrupt(sensor.child());
        let out = sensor.output();
        assert!(out.status.success(), "{mode}: {:?}", said.rest());
        let records = text(&out.stdout);
        assert_eq!(
            records.matches("\"disposition\":\"busy\"").count(),
            3,
            "{mode}: {records}"
        );
    }
}

/// The unit in contrib/ verifies with systemd's own checker (the binary path replaced by the
/// one under test), and the settings file shipped beside it reads.
#[test]
fn the_systemd_unit_and_its_settings_file_verify() {
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd");
    let out = spycraft(&["config", "--config", utf8(&contrib.join("sensor.toml"))]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("interfaces = [\"eth1\"]"));

    let dir = scratch("service-unit");
    let unit = std::fs::read_to_string(contrib.join("spycraft@.service")).expect("unit");
    assert!(unit.contains("ExecStart=/usr/bin/spycraft capture --config /etc/spycraft/%i.toml"));
    let unit = unit.replace("/usr/bin/spycraft", env!("CARGO_BIN_EXE_spycraft"));
    std::fs::write(dir.join("spycraft@.service"), unit).expect("unit copy");
    let verify = Command::new("systemd-analyze")
        .args(["verify", "./spycraft@sensor.service"])
        .current_dir(&dir)
        .output();
    let Some(out) = support::process::installed("systemd-analyze", "systemd", verify) else {
        return;
    };
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    // It warns about unknown keys and bad values without failing: any word about the unit
    // is a failure here.
    assert!(!said.contains("spycraft@"), "{said}");
}

/// Under systemd (`Type=notify`), the capture says READY once attached and privileges are
/// dropped, pets the watchdog while it runs, and says STOPPING when stopped.
#[test]
fn the_capture_speaks_systemds_notify_protocol() {
    if !may_capture() {
        return;
    }
    let dir = scratch("service-notify");
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let sensor = Reaped::spawn(
        Command::new(env!("CARGO_BIN_EXE_spycraft"))
            .args([
                "capture", "-i", "lo", "--mode", "pcap", "--ports", "5302", "-q",
            ])
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "400000")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let mut heard = Vec::new();
    let next = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    heard.push(next());
    assert!(
        heard[0].starts_with("READY=1\nSTATUS=capturing; privileges dropped"),
        "{heard:?}"
    );
    // The watchdog every 200 ms, from the capture loop (idle reads return every 200 ms).
    for _ in 0..3 {
        heard.push(next());
    }
    assert!(heard[1..].iter().all(|h| h == "WATCHDOG=1"), "{heard:?}");
    interrupt(sensor.child());
    let stopping = loop {
        let said = next();
        if said != "WATCHDOG=1" {
            break said;
        }
    };
    assert!(stopping.starts_with("STOPPING=1"), "{stopping}");
    assert!(sensor.output().status.success());
}

/// SIGHUP mid-capture: the ports change in the kernel maps (the program stays attached, its
/// counters go on), the calls open across the reload are recorded once and complete, calls
/// on the new ports are captured, the record file is reopened after a rotation, and a
/// setting that cannot change live is named.
#[test]
fn sighup_changes_the_ports_live_and_reopens_the_records_file() {
    if !may_capture() {
        return;
    }
    sighup_in_mode("socket", 5310);
    sighup_in_mode("pcap", 5340);
}

fn sighup_in_mode(mode: &str, base: u16) {
    let (uas, uac, new_uas, new_uac) = (base, base + 2, base + 10, base + 12);
    let dir = scratch(&format!("service-sighup-{mode}"));
    let settings = dir.join("sensor.toml");
    let records = dir.join("records.jsonl");
    let write_settings = |ports: &str, ring_mb: u32| {
        std::fs::write(
            &settings,
            format!(
                "[sensor]\nports = [{ports}]\n[capture]\ninterface = \"lo\"\nmode = \"{mode}\"\n\
                 ring_mb = {ring_mb}\n[records]\nformat = \"jsonl\"\noutput = \"{}\"\n\
                 [http]\nlisten = \"127.0.0.1:0\"\n",
                utf8(&records)
            ),
        )
        .expect("settings");
    };
    write_settings(&format!("{uas}, {uac}"), 16);
    let (sensor, said, addr) = sensor(&["capture", "--config", utf8(&settings)]);
    let seen = |metrics: &str| {
        sample(
            metrics,
            &format!("spycraft_capture_read_frames_total{{interface=\"lo\",mode=\"{mode}\"}}"),
        )
        .expect("the capture's counter")
    };
    // Two answered calls (3 s each) that are open when the settings change.
    let callee = Reaped::spawn(&mut sipp("uas-answer.xml", uas, 2));
    std::thread::sleep(Duration::from_millis(300));
    let caller = Reaped::spawn(sipp("uac-answer.xml", uac, 2).args([
        "-s",
        "bob",
        &format!("127.0.0.1:{uas}"),
    ]));
    std::thread::sleep(Duration::from_millis(1000));
    let before = seen(&get(addr, "/metrics").1);
    std::fs::rename(&records, dir.join("records.jsonl.1")).expect("rotated");
    let ports = format!("{uas}, {uac}, {new_uas}, {new_uac}");
    write_settings(&ports, 8);
    // SAFETY: kill with our own child's pid and a valid signal.
    unsafe { libc::kill(sensor.child().id() as i32, libc::SIGHUP) };
    let applied = match mode {
        "pcap" => "lo: filter now ".to_owned(),
        _ => format!("kernel programs now select ports {ports}"),
    };
    let mut stderr = said.wait_for(&applied, Duration::from_secs(10));
    assert!(
        caller.output().status.success(),
        "the calls across the reload"
    );
    assert!(callee.output().status.success());
    // Three busy calls on ports the old filter did not take.
    let callee = Reaped::spawn(&mut sipp("uas-busy.xml", new_uas, 3));
    std::thread::sleep(Duration::from_millis(300));
    let status = sipp("uac-reject.xml", new_uac, 3)
        .args(["-s", "bob", &format!("127.0.0.1:{new_uas}")])
        .status()
        .expect("sipp");
    assert!(status.success());
    assert!(callee.output().status.success());
    std::thread::sleep(Duration::from_millis(700));
    let after = seen(&get(addr, "/metrics").1);
    assert!(
        before > 0.0 && after > before,
        "{mode}: the counters go on: {before} then {after}"
    );
    interrupt(sensor.child());
    let out = sensor.output();
    stderr.extend(said.rest());
    let stderr = stderr.join("\n");
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("capture.ring_mb cannot change while capturing; restart to apply"),
        "{stderr}"
    );
    assert!(stderr.contains("reopened"), "{stderr}");
    let written = std::fs::read_to_string(&records).expect("the reopened file");
    let lines: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect();
    let answered: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|r| r["disposition"] == "answered")
        .collect();
    assert_eq!(answered.len(), 2, "{written}");
    assert_ne!(answered[0]["call_id"], answered[1]["call_id"]);
    for r in &answered {
        assert_eq!(r["end_reason"], "bye", "{r}");
        assert_eq!(r["capture_issues"], serde_json::json!([]), "{r}");
    }
    let busy = lines.iter().filter(|r| r["disposition"] == "busy").count();
    assert_eq!(busy, 3, "{written}");
    assert_eq!(lines.len(), 5, "{written}");
}

/// One sensor on two interfaces, each in its own mode (socket filter and libpcap), one call
/// tracker: a router namespace between a caller's and a callee's sees every datagram on both
/// of its interfaces; each call is recorded once, and each interface's counters show it.
#[test]
fn one_sensor_on_two_interfaces_in_their_own_modes_records_each_call_once() {
    if !may_capture() {
        return;
    }
    // 0: the caller, 1: the router with the sensor, 2: the callee.
    let ns = Namespaces::new(&["sc-caller", "sc-router", "sc-callee"]);
    let ip = support::process::ip;
    ip(&[
        "-n",
        ns.name(0),
        "link",
        "add",
        "a0",
        "type",
        "veth",
        "peer",
        "name",
        "ra",
        "netns",
        ns.name(1),
    ]);
    ip(&[
        "-n",
        ns.name(2),
        "link",
        "add",
        "b0",
        "type",
        "veth",
        "peer",
        "name",
        "rb",
        "netns",
        ns.name(1),
    ]);
    for (n, dev, addr, via) in [
        (0, "a0", "10.71.1.2/24", "10.71.1.1"),
        (2, "b0", "10.71.2.2/24", "10.71.2.1"),
    ] {
        ip(&["-n", ns.name(n), "addr", "add", addr, "dev", dev]);
        ip(&["-n", ns.name(n), "link", "set", dev, "up"]);
        ip(&["-n", ns.name(n), "route", "add", "default", "via", via]);
    }
    for (dev, addr) in [("ra", "10.71.1.1/24"), ("rb", "10.71.2.1/24")] {
        ip(&["-n", ns.name(1), "addr", "add", addr, "dev", dev]);
        ip(&["-n", ns.name(1), "link", "set", dev, "up"]);
    }
    let forwarding = ns
        .exec(1, "sysctl")
        .args(["-qw", "net.ipv4.ip_forward=1"])
        .status()
        .expect("sysctl");
    assert!(forwarding.success());
    let dir = scratch("service-two-interfaces");
    let mut child = ns
        .exec(1, env!("CARGO_BIN_EXE_spycraft"))
        .args([
            "capture",
            "-i",
            "ra:socket",
            "-i",
            "rb:pcap",
            "--ports",
            "5060",
        ])
        .args([
            "--http",
            "127.0.0.1:0",
            "--format",
            "jsonl",
            "--pcapng",
            "-w",
        ])
        .arg(dir.join("both.pcapng"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spycraft");
    let said = Said::new(child.stderr.take().expect("stderr"));
    let addr = serving_addr(&said);
    let sensor = Reaped::spawn_from(child);
    let sipp_in = |n: usize, script: &str, address: &str| {
        support::process::sipp(ns.exec(n, "sipp"), script, address, 5060, 3)
    };
    let callee = Reaped::spawn(&mut sipp_in(2, "uas-busy.xml", "10.71.2.2"));
    std::thread::sleep(Duration::from_millis(300));
    let status = sipp_in(0, "uac-reject.xml", "10.71.1.2")
        .args(["-s", "bob", "10.71.2.2:5060"])
        .status()
        .expect("sipp");
    assert!(status.success(), "caller: {status}");
    assert!(callee.output().status.success(), "callee");
    std::thread::sleep(Duration::from_millis(700));
    // The metrics are served inside the router's namespace: ask from there.
    let metrics = ns
        .exec(1, "curl")
        .args(["-s", &format!("http://{addr}/metrics")])
        .output()
        .map(|o| text(&o.stdout))
        .unwrap_or_default();
    for (interface, mode) in [("ra", "socket"), ("rb", "pcap")] {
        let read = sample(
            &metrics,
            &format!(
                "spycraft_capture_read_frames_total{{interface=\"{interface}\",mode=\"{mode}\"}}"
            ),
        );
        assert!(
            read.is_some_and(|n| n >= 15.0),
            "{interface}: {read:?}\n{metrics}"
        );
    }
    interrupt(sensor.child());
    let out = sensor.output();
    let stderr = said.rest().join("\n");
    assert!(out.status.success(), "{stderr}");
    let records = text(&out.stdout);
    let calls: Vec<serde_json::Value> = records
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect();
    assert_eq!(calls.len(), 3, "each call once: {records}");
    assert!(
        calls.iter().all(|c| c["disposition"] == "busy"),
        "{records}"
    );
    assert!(stderr.contains("duplicate frames dropped"), "{stderr}");
    // The capture file says which interface each frame came from.
    let out = Command::new("tshark")
        .arg("-r")
        .arg(dir.join("both.pcapng"))
        .args(["-T", "fields", "-e", "frame.interface_name"])
        .output()
        .expect("tshark");
    assert!(out.status.success(), "tshark: {}", text(&out.stderr));
    let names = text(&out.stdout);
    for interface in ["ra", "rb"] {
        let frames = names.lines().filter(|l| *l == interface).count();
        assert!(frames >= 15, "{interface}: {frames} frames in\n{names}");
    }
}
