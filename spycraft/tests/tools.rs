// SPDX-License-Identifier: AGPL-3.0-or-later
//! The operator's tools as a user runs them: `dump` selects the messages tshark selects with
//! the equivalent display filter, `find` lists the endpoints a capture holds, and the call
//! flow page renders in a real browser with one arrow per message.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use spycraft::call::Timestamp;
use support::{bundled, scratch, spycraft, text, utf8};

/// The first line of every SIP message in the frames tshark's display filter keeps.
fn tshark_first_lines(captures: &[&Path], filter: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for capture in captures {
        let out = Command::new("tshark")
            .args(["-n", "-r", utf8(capture), "-Y", filter, "-T", "fields"])
            .args(["-e", "sip.Request-Line", "-e", "sip.Status-Line"])
            .args(["-E", "occurrence=a", "-E", "aggregator=|"])
            .output()
            .expect("tshark runs (Debian's tshark package; `cargo xtask setup` installs it)");
        assert!(out.status.success(), "tshark: {}", text(&out.stderr));
        for row in text(&out.stdout).lines() {
            lines.extend(
                row.split(['\t', '|'])
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    lines
}

/// `dump --format json`'s messages: their first lines.
fn dump_first_lines(captures: &[&Path], selection: &[&str]) -> Vec<String> {
    let mut args = vec!["dump", "--format", "json"];
    args.extend_from_slice(selection);
    args.extend(captures.iter().map(|c| utf8(c)));
    let out = spycraft(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            let m: Value = serde_json::from_str(l).expect("a JSON message");
            let first = m["text"].as_str().expect("text").lines().next();
            first.expect("a first line").to_owned()
        })
        .collect()
}

fn call_id(case: &str, n: usize) -> String {
    let records = std::fs::read_to_string(support::pcaps().join(case).join("expected.jsonl"))
        .expect("expected.jsonl");
    let line = records.lines().nth(n).expect("a record");
    let record: Value = serde_json::from_str(line).expect("json");
    record["call_id"].as_str().expect("call_id").to_owned()
}

#[test]
fn dump_selects_the_messages_tshark_selects() {
    let busy = bundled("busy-486");
    let auth = bundled("auth-407-answered");
    let register = bundled("register-options");
    let tcp = bundled("tcp-connection-per-call");
    let b2bua_a = bundled("b2bua-a-leg");
    let b2bua_b = bundled("b2bua-b-leg");
    let busy_call = call_id("busy-486", 0);
    let tcp_call = call_id("tcp-connection-per-call", 1);
    let (a_leg, b_leg) = (call_id("b2bua-a-leg", 0), call_id("b2bua-b-leg", 0));
    let cases: Vec<(Vec<&Path>, Vec<&str>, String)> = vec![
        (
            vec![&busy],
            vec!["--call-id", &busy_call],
            format!("sip.Call-ID == \"{busy_call}\""),
        ),
        (
            vec![&auth],
            vec!["--host", "127.0.0.1:5062"],
            "sip && ip.addr == 127.0.0.1 && udp.port == 5062".into(),
        ),
        (
            vec![&register],
            vec!["--user", "alice"],
            "sip.from.user == \"alice\" || sip.to.user == \"alice\" || sip.r-uri.user == \"alice\""
                .into(),
        ),
        (
            vec![&tcp],
            vec!["--call-id", &tcp_call],
            format!("sip.Call-ID == \"{tcp_call}\""),
        ),
        // One leg asked for, both legs of the B2BUA call shown (tshark needs both named).
        (
            vec![&b2bua_a, &b2bua_b],
            vec!["--call-id", &b_leg],
            format!("sip.Call-ID == \"{a_leg}\" || sip.Call-ID == \"{b_leg}\""),
        ),
    ];
    for (captures, selection, filter) in cases {
        let ours = dump_first_lines(&captures, &selection);
        let theirs = tshark_first_lines(&captures, &filter);
        assert!(!ours.is_empty(), "{selection:?} selects something");
        assert_eq!(ours, theirs, "{selection:?} against tshark's {filter}");
    }
}

#[test]
fn dump_text_shows_each_message_with_time_direction_and_addresses() {
    let out = spycraft(&[
        "dump",
        "--host",
        "127.0.0.1:5060",
        utf8(&bundled("busy-486")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("2026-")
            && stdout.contains("127.0.0.1:5062 -> 127.0.0.1:5060  UDP  (in)\nINVITE sip:bob@"),
        "{stdout}"
    );
    assert!(stdout.contains("127.0.0.1:5060 -> 127.0.0.1:5062  UDP  (out)\nSIP/2.0 486 Busy Here"));
    assert_eq!(
        stdout.matches("\n\n2026-").count() + 1,
        5,
        "five messages: {stdout}"
    );

    let out = spycraft(&["dump", "--host", "pbx.example", utf8(&bundled("busy-486"))]);
    assert_eq!(out.status.code(), Some(2), "a bad address is a usage error");
}

#[test]
fn find_lists_each_endpoint_with_its_registrations_methods_and_calls() {
    let out = spycraft(&[
        "find",
        "--format",
        "json",
        utf8(&bundled("register-options")),
        utf8(&bundled("busy-486")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let endpoints: Vec<Value> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    assert_eq!(endpoints.len(), 2, "{endpoints:#?}");
    let (uas, uac) = (&endpoints[0], &endpoints[1]);
    assert_eq!(
        (uas["port"].as_u64(), uac["port"].as_u64()),
        (Some(5060), Some(5062))
    );
    for e in &endpoints {
        assert_eq!(e["address"], "127.0.0.1");
        assert_eq!(e["transport"], "udp");
        assert_eq!(e["calls"], 1, "the busy call, on both sides");
    }
    assert_eq!(
        uac["user_agents"],
        serde_json::json!(["spycraft-scenario-uac"])
    );
    assert_eq!(
        uas["user_agents"],
        serde_json::json!(["spycraft-scenario-uas"])
    );
    assert_eq!(
        uac["sent"],
        serde_json::json!({"ACK": 1, "INVITE": 1, "OPTIONS": 1, "REGISTER": 2})
    );
    assert_eq!(
        uac["received"],
        serde_json::json!({"100": 1, "180": 1, "200": 2, "401": 1, "486": 1})
    );
    assert_eq!(uas["sent"], uac["received"]);
    assert_eq!(uas["received"], uac["sent"]);
    // Registered by the REGISTER answered 200: the AOR, until 200's time + 3600 s.
    let registrations = uac["registrations"].as_object().expect("registrations");
    assert_eq!(registrations.len(), 1, "{registrations:?}");
    let until = registrations["sip:alice@127.0.0.1"]
        .as_str()
        .expect("expiry");
    let dump = spycraft(&[
        "dump",
        "--format",
        "json",
        "--user",
        "alice",
        utf8(&bundled("register-options")),
    ]);
    let ok_time = text(&dump.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|m| m["label"] == "200 OK")
        .map(|m| m["time"].as_str().expect("time").to_owned())
        .next()
        .expect("the 200 to the REGISTER");
    let at = |t: &str| Timestamp::parse_rfc3339(t).expect("an RFC 3339 time").0;
    assert_eq!(
        at(until) - at(&ok_time),
        3_600_000_000,
        "{ok_time} + 3600 s = {until}"
    );
    assert_eq!(uas["registrations"], serde_json::json!({}));

    let table = spycraft(&["find", utf8(&bundled("register-options"))]);
    let table = text(&table.stdout);
    assert!(table.starts_with("ENDPOINT "), "{table}");
    assert!(
        table.contains("127.0.0.1:5062/udp  spycraft-scenario-uac  sip:alice@127.0.0.1 until "),
        "{table}"
    );
}

/// Chromium as root in a sandbox: the flags this machine needs.
fn chromium(args: &[&str], profile: &Path) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs (Debian's chromium package; `cargo xtask setup` installs it)")
}

#[test]
fn the_call_flow_page_renders_one_arrow_per_message_in_a_browser() {
    let dir = scratch("ladder");
    let page = dir.join("call.html");
    let (a, b) = (bundled("b2bua-a-leg"), bundled("b2bua-b-leg"));
    let leg = call_id("b2bua-a-leg", 0);
    let out = spycraft(&[
        "dump",
        "--call-id",
        &leg,
        "--format",
        "html",
        "-o",
        utf8(&page),
        utf8(&a),
        utf8(&b),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let messages = dump_first_lines(&[&a, &b], &["--call-id", &leg]).len();
    assert_eq!(messages, 14, "two legs of seven messages");

    // The DOM after the page's script ran, opened on message 3 (the 200 OK).
    let url = format!("file://{}#3", page.display());
    let out = chromium(&["--dump-dom", &url], &dir.join("profile"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dom = text(&out.stdout);
    assert!(
        dom.contains(&format!(r#"data-arrows="{messages}""#)),
        "{dom}"
    );
    assert!(dom.contains(r#"data-ready="1""#), "the script ran");
    assert_eq!(dom.matches(r#"<g class="arrow"#).count(), messages);
    assert!(
        dom.contains(r#"<pre id="message">SIP/2.0 200 OK"#),
        "the chosen arrow shows its whole message"
    );

    let shot = dir.join("call.png");
    let out = chromium(
        &[
            "--window-size=1400,800",
            &format!("--screenshot={}", shot.display()),
            &url,
        ],
        &dir.join("profile"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );

    let out = spycraft(&["dump", "--call-id", &leg, "--format", "svg", utf8(&a)]);
    let svg = text(&out.stdout);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(svg.matches(r#"<g class="arrow""#).count(), 7);
}

#[test]
fn stats_gives_the_hand_computed_rfc_6076_figures() {
    // Seven legs: two answered and hung up (200), busy (486), 480, 408, cancelled (487), 503.
    let cases = [
        "busy-486",
        "no-answer-480",
        "no-answer-408",
        "cancel-after-ringing",
        "congestion-503",
        "answered-caller-bye",
        "auth-407-answered",
    ];
    let captures: Vec<_> = cases.iter().map(|c| bundled(c)).collect();
    let mut args = vec!["stats", "--format", "json", "--node", "sbc"];
    args.extend(captures.iter().map(|c| utf8(c)));
    let out = spycraft(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let all = &report["all"];
    assert_eq!(all["attempts"], 7);
    assert_eq!(all["answered"], 2);
    // SER = 2xx / (7 − 0 redirects); SEER adds 480 and 486: 4/7; ISA = 408 + 503: 2/7;
    // SCR = answered and ended by BYE: 2/7; ASR = 2/7; NER = all but the 503: 6/7.
    for (figure, want) in [
        ("ser", 28.57),
        ("seer", 57.14),
        ("isa", 28.57),
        ("scr", 28.57),
        ("asr", 28.57),
        ("ner", 85.71),
    ] {
        assert_eq!(all[figure].as_f64(), Some(want), "{figure}");
    }
    // SRD from the records' pdd_ms, ACD from their billable_ms.
    let records: Vec<Value> = cases
        .iter()
        .flat_map(|c| {
            std::fs::read_to_string(support::pcaps().join(c).join("expected.jsonl"))
                .expect("expected")
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("json"))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut srd: Vec<u64> = records
        .iter()
        .filter_map(|r| r["pdd_ms"].as_u64())
        .collect();
    srd.sort_unstable();
    assert_eq!(all["srd_p50_ms"].as_u64(), Some(srd[3]), "median of seven");
    assert_eq!(
        all["srd_p95_ms"].as_u64(),
        Some(srd[6]),
        "nearest rank: the 7th"
    );
    let billable: u64 = records
        .iter()
        .filter(|r| r["disposition"] == "answered")
        .filter_map(|r| r["billable_ms"].as_u64())
        .sum();
    let acd = (billable as f64 / 2.0 / 10.0).round() / 100.0;
    assert_eq!(all["acd_s"].as_f64(), Some(acd));
    assert_eq!(
        all["by_final_status"],
        serde_json::json!({"200": 2, "408": 1, "480": 1, "486": 1, "487": 1, "503": 1})
    );
    assert_eq!(report["nodes"]["sbc"], *all, "one node");
    assert_eq!(report["peers"]["127.0.0.1"], *all, "one peer");
}

/// The records `analyze` writes from these captures, sorted.
fn records(captures: &[&Path]) -> Vec<String> {
    let mut args = vec!["analyze", "-q", "--node", "golden", "--format", "jsonl"];
    args.extend(captures.iter().map(|c| utf8(c)));
    let out = spycraft(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn split_calls_writes_each_call_whole_and_each_replays_to_its_records() {
    for (name, cases, files) in [
        ("b2bua", &["b2bua-a-leg", "b2bua-b-leg"][..], 2),
        ("fragments", &["udp-fragmented-invite"][..], 1),
        ("tcp", &["tcp-connection-per-call"][..], 3),
    ] {
        let dir = scratch(&format!("split-{name}"));
        let captures: Vec<_> = cases.iter().map(|c| bundled(c)).collect();
        let capture_refs: Vec<&Path> = captures.iter().map(|c| c.as_path()).collect();
        let mut args = vec!["analyze", "-q", "--format", "jsonl", "--split-calls"];
        let out_dir = dir.join("calls");
        args.push(utf8(&out_dir));
        args.extend(captures.iter().map(|c| utf8(c)));
        let out = spycraft(&args);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let mut written: Vec<_> = std::fs::read_dir(&out_dir)
            .expect("the call directory")
            .flatten()
            .map(|e| e.path())
            .collect();
        written.sort();
        assert_eq!(written.len(), files, "{name}: {written:?}");
        if name == "b2bua" {
            let named = out_dir.join("b2bua-call-1.pcap");
            assert!(named.exists(), "named after the collation id: {written:?}");
        }
        let written_refs: Vec<&Path> = written.iter().map(|p| p.as_path()).collect();
        let mut replayed: Vec<String> = written_refs
            .iter()
            .flat_map(|file| records(&[file]))
            .collect();
        replayed.sort();
        assert_eq!(
            replayed,
            records(&capture_refs),
            "{name}: each call's file replays to exactly its records"
        );
    }
}

#[test]
fn dump_writes_the_frames_of_the_chosen_call_and_they_replay_to_its_records() {
    let (a, b) = (bundled("b2bua-a-leg"), bundled("b2bua-b-leg"));
    let leg = call_id("b2bua-b-leg", 1);
    let file = scratch("dump-w").join("call.pcap");
    let out = spycraft(&[
        "dump",
        "--call-id",
        &leg,
        "-w",
        utf8(&file),
        utf8(&a),
        utf8(&b),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("14 frames written"),
        "{}",
        text(&out.stderr)
    );
    let want: Vec<String> = records(&[&a, &b])
        .into_iter()
        .filter(|r| r.contains("\"collation_id\":\"b2bua-call-2\""))
        .collect();
    assert_eq!(want.len(), 2, "both legs of the second call");
    assert_eq!(records(&[&file]), want);
}

#[test]
fn split_calls_keeps_a_shared_tcp_connection_whole_around_each_call() {
    // Three calls over one TCP connection: each file holds the connection's segments from
    // its call's first message to its last, so its own record replays exactly (the other
    // calls inside that window show up as partial legs).
    let capture = bundled("tcp-one-connection");
    let out_dir = scratch("split-shared-tcp").join("calls");
    let out = spycraft(&[
        "analyze",
        "-q",
        "--format",
        "jsonl",
        "--split-calls",
        utf8(&out_dir),
        utf8(&capture),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let original = records(&[&capture]);
    assert_eq!(original.len(), 3);
    for record in &original {
        let r: Value = serde_json::from_str(record).expect("json");
        let call_id = r["call_id"].as_str().expect("call id");
        let file = out_dir.join(format!("{call_id}.pcap"));
        let replayed = records(&[&file]);
        assert!(
            replayed.contains(record),
            "{call_id}: its record replays exactly from its file: {replayed:#?}"
        );
    }
}
