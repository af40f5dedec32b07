// SPDX-License-Identifier: AGPL-3.0-or-later
//! Nothing lost, nothing silent: full disks, a database that is away, a reader that goes,
//! signals. Each failure is reported when it happens, every record reaches every output that
//! can take it, and what could not be delivered is counted and decides the exit status. The
//! full-disk tests mount tmpfs filesystems of a few KiB (root; CI runs them).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::calls::pcap_of_calls;
use support::process::{Reaped, Said};
use support::tmpfs::Tmpfs;
use support::{bundled, scratch, spycraft, text, utf8};

/// A PostgreSQL that is not there: its socket directory does not exist (an outage, not a
/// refusal: it might come back).
const NO_SERVER: &str = "host=/nonexistent/spycraft-test port=5432 user=postgres dbname=cdr";

/// `spycraft capture` on loopback in libpcap mode, for calls on `ports`, records to `out`.
fn live_sensor(ports: &str, out: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spycraft"));
    cmd.args(["capture", "-i", "lo", "--mode", "pcap", "--ports", ports])
        .args(["--format", "jsonl", "-o", utf8(out)]);
    cmd
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn a_full_spool_in_an_outage_is_reported_and_the_file_still_gets_every_record() {
    let Some(disk) = Tmpfs::mount("faults-full-spool", 64) else {
        return;
    };
    let dir = scratch("faults-full-spool-run");
    let capture = dir.join("calls.pcap");
    std::fs::write(&capture, pcap_of_calls(1000)).expect("capture");
    let out = dir.join("out.jsonl");
    let run = spycraft(&[
        "analyze",
        "--postgres",
        NO_SERVER,
        "--spool",
        utf8(&disk.path().join("spool")),
        "--drain-timeout",
        "1",
        "-o",
        utf8(&out),
        utf8(&capture),
    ]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "records were lost: {stderr}");
    assert_eq!(
        lines(&out),
        1000,
        "the file output has every record: {stderr}"
    );
    assert!(
        stderr.contains("ERROR: writing records to PostgreSQL")
            && stderr.contains("No space left on device"),
        "the full spool is named: {stderr}"
    );
    // The summary says what became of every record, for each output.
    assert!(
        stderr.contains(&format!("{}: 1000 records: 1000 written", out.display())),
        "{stderr}"
    );
    let db_line = stderr
        .lines()
        .find(|l| l.contains("PostgreSQL at ") && l.contains("1000 records:"))
        .unwrap_or_else(|| panic!("a line for the database: {stderr}"));
    let number_before = |word: &str| -> u64 {
        let at = db_line
            .find(word)
            .unwrap_or_else(|| panic!("{word}: {db_line}"));
        db_line[..at]
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a count before {word}: {db_line}"))
    };
    let (kept, lost) = (number_before(" kept"), number_before(" LOST"));
    assert!(kept > 0 && lost > 0, "{db_line}");
    assert_eq!(
        kept + lost,
        1000,
        "every record is accounted for: {db_line}"
    );
    // Error text said once, not "…(os error 28): …(os error 28)".
    for line in stderr.lines() {
        assert!(line.matches("os error 28").count() <= 1, "{line}");
    }
}

#[test]
fn a_damaged_capture_outranks_an_undelivered_spool() {
    let dir = scratch("faults-damaged-undelivered");
    let mut capture = std::fs::read(bundled("answered-caller-bye")).expect("capture");
    capture.truncate(capture.len() - 20);
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, capture).expect("cut capture");
    let run = spycraft(&[
        "analyze",
        "--postgres",
        NO_SERVER,
        "--spool",
        utf8(&dir.join("spool")),
        "--drain-timeout",
        "1",
        utf8(&cut),
    ]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("capture damaged"), "{stderr}");
    assert!(stderr.contains("1 kept in the spool"), "{stderr}");
}

#[test]
fn sigterm_ends_analyze_of_a_pipe_with_the_records_of_what_it_read() {
    let capture = pcap_of_calls(50);
    let mut sensor = Command::new(env!("CARGO_BIN_EXE_spycraft"))
        .args(["analyze", "--format", "jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spycraft runs");
    // Half the capture, and the pipe left open as tcpdump would leave it.
    let mut stdin = sensor.stdin.take().expect("stdin");
    stdin.write_all(&capture[..capture.len() / 2]).expect("fed");
    stdin.flush().expect("fed");
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill with our own child's pid and a valid signal.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    let out = sensor.wait_with_output().expect("waited");
    drop(stdin);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    let records: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect();
    assert!(records.len() > 10, "{} records: {stderr}", records.len());
    assert!(
        records.iter().any(|r| r["end_reason"] == "incomplete"),
        "calls still open are written as incomplete"
    );
    assert!(
        stderr.contains("stopped before the end of the input"),
        "{stderr}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_run_quietly() {
    let dir = scratch("faults-closed-pipe");
    let capture = dir.join("calls.pcap");
    std::fs::write(&capture, pcap_of_calls(2000)).expect("capture");
    for args in [
        vec!["analyze", "--format", "jsonl", utf8(&capture)],
        vec!["dump", utf8(&capture)],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spycraft"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spycraft runs");
        // As `| head -1`: one line, then the pipe is closed.
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("a line");
        assert!(!first.is_empty(), "{args:?}");
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("stderr");
        let status = child.wait().expect("waited");
        assert!(status.success(), "{args:?}: {status}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_spool_path_that_is_a_file_is_named_as_such() {
    let dir = scratch("faults-spool-file");
    let file = dir.join("spool");
    std::fs::write(&file, "").expect("a file");
    let run = spycraft(&[
        "analyze",
        "--postgres",
        NO_SERVER,
        "--spool",
        utf8(&file),
        utf8(&bundled("busy-486")),
    ]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a directory"), "{stderr}");
    assert!(!stderr.contains("File exists"), "{stderr}");
}

/// Live: the sensor's outputs fill up while it runs. Each failure is on stderr while the
/// sensor runs, records wait in memory, and once space returns the sensor catches up by
/// itself: the file and the database get every call.
#[test]
fn a_live_sensor_reports_a_full_disk_at_once_and_recovers_when_space_returns() {
    if !support::process::may_capture() {
        return;
    }
    let Some(disk) = Tmpfs::mount("faults-live-full", 64) else {
        return;
    };
    let pg = support::postgres::Cluster::start();
    let conn = pg.create_db("cdr");
    let out = disk.path().join("live.jsonl");
    let mut sensor = live_sensor("5960-5961", &out)
        .args(["--postgres", &conn, "--spool"])
        .arg(disk.path().join("spool"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spycraft runs");
    let said = Said::new(sensor.stderr.take().expect("stderr"));
    let sensor = Reaped::spawn_from(sensor);
    said.wait_for("capturing on lo", Duration::from_secs(10));
    // The spool's first segment exists; now nothing more fits.
    std::thread::sleep(Duration::from_millis(500));
    disk.fill();
    support::calls::send_calls(20, 5960, 5961);
    // Records are written 32 s after their call ends (retransmissions may still come).
    let first = said.wait_for("ERROR: writing records to", Duration::from_secs(60));
    let error = first.last().expect("a line");
    assert!(error.contains("No space left on device"), "{error}");
    disk.free();
    said.wait_for("writing again", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while (lines(&out) < 20 || pg.psql("cdr", "SELECT count(*) FROM cdr").trim() != "20")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both outputs caught up while the sensor runs: nothing waited for the stop.
    assert_eq!(lines(&out), 20, "the file has every call");
    assert_eq!(pg.psql("cdr", "SELECT count(*) FROM cdr").trim(), "20");
    // The database heard of the failures when they began, and of the recovery.
    let failing = pg.psql(
        "cdr",
        "SELECT count(*) FROM sensor_stats, jsonb_array_elements(counters->'outputs') o \
         WHERE source = 'outputs' AND o->>'failing' LIKE '%No space left on device%'",
    );
    assert_ne!(failing.trim(), "0", "a sensor_stats row names the failure");
    support::process::interrupt(sensor.child());
    let status = sensor.output().status;
    let rest = said.rest();
    assert!(status.success(), "{status}: {rest:#?}");
    assert!(
        rest.iter().all(|l| !l.contains("LOST")),
        "nothing lost: {rest:#?}"
    );
}

/// Live records reach their file within a second of being written, so a crash (kill -9)
/// afterwards loses none of them.
#[test]
fn live_records_reach_their_file_before_a_kill() {
    if !support::process::may_capture() {
        return;
    }
    let dir = scratch("faults-live-flush");
    let out = dir.join("live.jsonl");
    let sensor = Reaped::spawn(live_sensor("5962-5963", &out).stderr(Stdio::null()));
    std::thread::sleep(Duration::from_millis(1500));
    support::calls::send_calls(5, 5962, 5963);
    // The calls end, linger 32 s for retransmissions, are written, and flushed within 1 s.
    let deadline = Instant::now() + Duration::from_secs(45);
    while lines(&out) < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill with our own child's pid and a valid signal.
    unsafe { libc::kill(sensor.child().id() as i32, libc::SIGKILL) };
    drop(sensor);
    assert_eq!(lines(&out), 5, "every record was on disk before the kill");
}
