// SPDX-License-Identifier: AGPL-3.0-or-later
//! The live sensor in libpcap mode: sipp calls on loopback, `spycraft capture` on `lo` with
//! its generated filter, and tcpdump beside it with the same filter; the records written
//! live must equal, byte for byte, those `analyze` writes from tcpdump's capture, and from the
//! sensor's own rotated capture files (`-w`, `-C`). Needs root (CI runs as root and must run
//! it; elsewhere it says why it skipped).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::process::{interrupt, may_capture, place_calls, Reaped, Tcpdump};
use support::{scratch, spycraft, text, utf8};

/// Scenario pairs (callee script, caller script, callee port, caller port), each placing three
/// calls: answered, busy, cancelled after ringing.
const PAIRS: [(&str, &str, u16, u16); 3] = [
    ("uas-answer.xml", "uac-answer.xml", 5060, 5062),
    ("uas-busy.xml", "uac-reject.xml", 5070, 5072),
    ("uas-cancel.xml", "uac-cancel.xml", 5080, 5082),
];

fn sipp(script: &str, port: u16) -> Command {
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps/scenarios");
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(scenarios.join(script))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", "3", "-l", "3", "-nostdin", "-timeout", "60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Waits for a capture to start, then places three calls to bob that the callee on
/// `uas_port` answers 486 Busy Here.
fn three_busy_calls(uas_port: u16, uac_port: u16) {
    std::thread::sleep(Duration::from_millis(1500));
    let callee = Reaped::spawn(&mut sipp("uas-busy.xml", uas_port));
    std::thread::sleep(Duration::from_millis(300));
    let status = sipp("uac-reject.xml", uac_port)
        .args(["-s", "bob", &format!("127.0.0.1:{uas_port}")])
        .status()
        .expect("sipp");
    assert!(status.success(), "caller: {status}");
    assert!(callee.output().status.success(), "callee");
}

#[test]
fn libpcap_live_capture_gives_the_records_offline_analysis_gives() {
    if !may_capture() {
        return;
    }
    let dir = scratch("live-pcap");
    let ports = "5060,5062,5070,5072,5080,5082";
    let live = dir.join("live.jsonl");
    let pcap = dir.join("tcpdump.pcap");
    let filter = text(&spycraft(&["filter", "--expression", "--ports", ports]).stdout);
    let sensor = Reaped::spawn(
        Command::new(env!("CARGO_BIN_EXE_spycraft"))
            .args(["capture", "-i", "lo", "--mode", "pcap", "--ports", ports])
            .args(["--node", "live", "--format", "jsonl", "-o", utf8(&live)])
            // Its own capture, in files of about 8 kB.
            .args(["-w", utf8(&dir.join("sensor.pcap")), "-C", "0.008"])
            .stderr(Stdio::piped()),
    );
    // Debian's tcpdump package.
    let tcpdump = Tcpdump::start(&pcap, filter.trim());
    std::thread::sleep(Duration::from_millis(1500));

    place_calls(&PAIRS, sipp, &[]);
    std::thread::sleep(Duration::from_millis(1000));

    let stopped = Instant::now();
    interrupt(sensor.child());
    let out = sensor.output();
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "SIGINT stops the sensor promptly"
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(
        stderr.contains("9 calls (answered 3, busy 3, cancelled 3)"),
        "{stderr}"
    );
    assert!(stderr.contains("libpcap: "), "{stderr}");
    tcpdump.stop();

    let offline = spycraft(&[
        "analyze",
        "--node",
        "live",
        "--format",
        "jsonl",
        utf8(&pcap),
    ]);
    assert!(offline.status.success(), "{}", text(&offline.stderr));
    let live_records = std::fs::read_to_string(&live).expect("live records");
    assert_eq!(live_records.lines().count(), 9);
    assert_eq!(
        live_records,
        text(&offline.stdout),
        "live and offline records are the same, byte for byte"
    );

    // The sensor's own files, read in order as one stream, give the same records again.
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("sensor-"))
        })
        .map(|p| utf8(&p).to_owned())
        .collect();
    written.sort();
    assert!(
        written.len() >= 3,
        "rotated into several files: {written:?}"
    );
    let mut args = vec!["analyze", "--node", "live", "--format", "jsonl"];
    args.extend(written.iter().map(String::as_str));
    let replayed = spycraft(&args);
    assert!(replayed.status.success(), "{}", text(&replayed.stderr));
    assert_eq!(
        live_records,
        text(&replayed.stdout),
        "the written capture replays exactly"
    );
}

#[test]
fn a_missing_interface_is_a_clear_error() {
    if !may_capture() {
        return;
    }
    let out = spycraft(&["capture", "-i", "spycraft-none0"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("capture on spycraft-none0"), "{stderr}");
}

#[test]
fn the_live_sensor_delivers_records_and_periodic_counters_to_postgresql() {
    if !may_capture() {
        return;
    }
    let pg = support::postgres::Cluster::start();
    let conn = pg.create_db("cdr");
    let dir = scratch("live-postgres");
    // A sensor run as a service: every setting from its file, no flags.
    let settings = dir.join("sensor.toml");
    std::fs::write(
        &settings,
        format!(
            "[sensor]\nnode = \"live-pg\"\nports = [5090, 5092]\nstats_interval_secs = 1\n\
             [capture]\ninterface = \"lo\"\nmode = \"pcap\"\n\
             [postgres]\nurl = \"{conn}\"\nspool = \"{}\"\n",
            utf8(&dir.join("spool"))
        ),
    )
    .expect("settings file");
    let sensor = Reaped::spawn(
        Command::new(env!("CARGO_BIN_EXE_spycraft"))
            .args(["capture", "--config", utf8(&settings)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    three_busy_calls(5090, 5092);
    // Long enough for a periodic snapshot or two while idle.
    std::thread::sleep(Duration::from_millis(2500));
    interrupt(sensor.child());
    let out = sensor.output();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "records go to the database only");
    assert!(stderr.contains("3 records delivered (3 new)"), "{stderr}");
    assert!(
        stderr.contains("capturing on lo (libpcap, filter: "),
        "{stderr}"
    );
    assert_eq!(
        pg.psql("cdr", "SELECT disposition, count(*) FROM cdr GROUP BY 1"),
        "busy|3"
    );
    let snapshots: u64 = pg
        .psql(
            "cdr",
            "SELECT count(*) FROM sensor_stats WHERE node = 'live-pg' AND source = 'capture'",
        )
        .parse()
        .expect("a count");
    assert!(
        snapshots >= 3,
        "periodic snapshots and the final one: {snapshots}"
    );
}

#[test]
fn dump_shows_live_messages_as_they_pass() {
    if !may_capture() {
        return;
    }
    let dump = Reaped::spawn(
        Command::new(env!("CARGO_BIN_EXE_spycraft"))
            .args([
                "dump",
                "-i",
                "lo",
                "--ports",
                "5094,5096",
                "--format",
                "json",
            ])
            .args(["--user", "bob"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    three_busy_calls(5094, 5096);
    std::thread::sleep(Duration::from_millis(500));
    interrupt(dump.child());
    let out = dump.output();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let labels: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| {
            let m: serde_json::Value = serde_json::from_str(l).expect("a JSON message");
            m["label"].as_str().expect("label").to_owned()
        })
        .collect();
    // Three overlapping calls, each INVITE, 100, 180, 486, ACK.
    assert_eq!(labels.len(), 15, "{labels:?}");
    for label in [
        "INVITE",
        "100 Trying",
        "180 Ringing",
        "486 Busy Here",
        "ACK",
    ] {
        assert_eq!(
            labels.iter().filter(|l| *l == label).count(),
            3,
            "{labels:?}"
        );
    }
}

#[test]
fn dump_writes_the_live_frames_of_the_chosen_messages() {
    if !may_capture() {
        return;
    }
    let file = scratch("live-dump-w").join("bob.pcap");
    let dump = Reaped::spawn(
        Command::new(env!("CARGO_BIN_EXE_spycraft"))
            .args(["dump", "-i", "lo", "--ports", "5098,5100", "--user", "bob"])
            .args(["-w", utf8(&file)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    three_busy_calls(5098, 5100);
    std::thread::sleep(Duration::from_millis(500));
    interrupt(dump.child());
    let out = dump.output();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("15 frames written"), "{stderr}");
    let replay = spycraft(&["analyze", "--format", "jsonl", utf8(&file)]);
    let records = text(&replay.stdout);
    assert_eq!(records.lines().count(), 3, "{records}");
    assert!(
        records.lines().all(|r| r.contains("\"final_status\":486")),
        "{records}"
    );
}
