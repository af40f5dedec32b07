// SPDX-License-Identifier: AGPL-3.0-or-later
//! The `spycraft analyze` command as a user runs it: formats, standard input, filters, and a
//! clear message with a documented exit status for every kind of bad input.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod support;

use support::{bundled, scratch, spycraft, text, utf8 as path};

#[test]
fn writes_jsonl_when_piped_and_a_summary_on_stderr() {
    let out = spycraft(&[
        "analyze",
        "--node",
        "golden",
        path(&bundled("answered-caller-bye")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps/answered-caller-bye/expected.jsonl"),
    )
    .expect("expected.jsonl");
    assert_eq!(
        text(&out.stdout),
        expected,
        "piped output is JSON lines, byte for byte"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("7 frames, 7 SIP messages, 0 parse errors, 1 calls (answered 1)"),
        "{stderr}"
    );
}

#[test]
fn writes_csv_and_table_to_a_file() {
    let dir = scratch("formats");
    let csv = dir.join("calls.csv");
    let out = spycraft(&[
        "analyze",
        "--format",
        "csv",
        "-o",
        path(&csv),
        "--quiet",
        path(&bundled("busy-486")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "--quiet: {}", text(&out.stderr));
    let csv = std::fs::read_to_string(&csv).expect("csv written");
    let mut lines = csv.lines();
    let header = lines.next().expect("header");
    assert!(
        header.starts_with("id,node,call_id,from_tag,to_tag,collation_id"),
        "{header}"
    );
    let row = lines.next().expect("one row");
    assert!(row.contains(",busy,486,Busy Here,"), "{row}");
    assert_eq!(lines.next(), None);

    let out = spycraft(&[
        "analyze",
        "--format",
        "table",
        path(&bundled("cancel-after-ringing")),
    ]);
    let table = text(&out.stdout);
    assert!(
        table
            .lines()
            .next()
            .expect("heading")
            .starts_with("INVITE (UTC)"),
        "{table}"
    );
    assert!(
        table.contains("cancelled") && table.contains("487"),
        "{table}"
    );
}

#[test]
fn reads_standard_input() {
    let capture = std::fs::read(bundled("congestion-503")).expect("capture");
    let mut child = Command::new(env!("CARGO_BIN_EXE_spycraft"))
        .args(["analyze", "--quiet", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&capture)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert!(text(&out.stdout).contains(r#""disposition":"congestion""#));
}

#[test]
fn applies_a_capture_filter_and_restricts_ports() {
    let capture = bundled("answered-caller-bye");
    let out = spycraft(&["analyze", "-f", "udp port 9999", path(&capture)]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "the filter passes no frame");
    let out = spycraft(&["analyze", "-f", "udp and port 5060", path(&capture)]);
    assert_eq!(text(&out.stdout).lines().count(), 1);

    // A call on 15060 is found by its start line, unless --ports restricts the search.
    let odd = bundled("nonstandard-port-15060");
    assert_eq!(
        text(&spycraft(&["analyze", path(&odd)]).stdout)
            .lines()
            .count(),
        1
    );
    assert_eq!(
        text(&spycraft(&["analyze", "--ports", "5060", path(&odd)]).stdout)
            .lines()
            .count(),
        0
    );
    assert_eq!(
        text(&spycraft(&["analyze", "--ports", "5060,15060", path(&odd)]).stdout)
            .lines()
            .count(),
        1
    );

    let out = spycraft(&["analyze", "-f", "udp port", path(&capture)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("invalid capture filter"),
        "{}",
        text(&out.stderr)
    );
}

fn fails_with(args: &[&str], code: i32, message: &str) -> Output {
    let out = spycraft(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(
        stderr.contains(message),
        "{args:?}: expected `{message}` in: {stderr}"
    );
    out
}

#[test]
fn bad_input_gets_a_clear_message_and_a_non_zero_exit() {
    let dir = scratch("bad-input");
    fails_with(
        &["analyze", path(&dir.join("missing.pcap"))],
        1,
        "no such file",
    );
    fails_with(&["analyze", path(&dir)], 1, "is a directory");

    let text_file = dir.join("notes.txt");
    std::fs::write(&text_file, "this is not a capture\n".repeat(10)).expect("write");
    fails_with(
        &["analyze", path(&text_file)],
        1,
        "not a pcap or pcapng capture",
    );

    let short = dir.join("short.pcap");
    std::fs::write(&short, [0xd4, 0xc3, 0xb2, 0xa1, 2, 0]).expect("write");
    fails_with(
        &["analyze", path(&short)],
        1,
        "not a pcap or pcapng capture",
    );

    // A valid header with link type 147 (USER0).
    let user0 = dir.join("user0.pcap");
    let mut header = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    header.extend_from_slice(&65535u32.to_le_bytes());
    header.extend_from_slice(&147u32.to_le_bytes());
    std::fs::write(&user0, header).expect("write");
    fails_with(&["analyze", path(&user0)], 1, "unsupported link type");

    // A missing file among good ones fails before anything is analysed.
    let out = fails_with(
        &[
            "analyze",
            path(&bundled("busy-486")),
            path(&dir.join("typo.pcap")),
        ],
        1,
        "typo.pcap: no such file",
    );
    assert!(out.stdout.is_empty());

    // A bad flag value is a usage error, as clap's own.
    fails_with(
        &[
            "analyze",
            "--host",
            "pbx.example",
            path(&bundled("busy-486")),
        ],
        2,
        "not an IP address",
    );
    fails_with(&["analyze"], 2, "FILE");
}

#[test]
fn a_capture_cut_mid_record_still_writes_what_it_holds() {
    let dir = scratch("truncated");
    let whole = std::fs::read(bundled("answered-caller-bye")).expect("capture");
    // Cut inside the last record (the 200 OK to the BYE).
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() - 40]).expect("write");
    let out = fails_with(
        &["analyze", path(&cut)],
        3,
        "capture damaged after 6 frames",
    );
    assert!(text(&out.stderr).contains("records cover the readable part"));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        1,
        "the call is still written: {stdout}"
    );
    assert!(
        stdout.contains(r#""end_reason":"bye""#),
        "the BYE was readable: {stdout}"
    );
}

/// The records of a classic little-endian pcap: (header fields, frame bytes).
fn records(capture: &[u8]) -> Vec<([u32; 4], Vec<u8>)> {
    let u32_at = |at: usize| u32::from_le_bytes(capture[at..at + 4].try_into().expect("4 bytes"));
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= capture.len() {
        let caplen = u32_at(at + 8) as usize;
        out.push((
            [u32_at(at), u32_at(at + 4), u32_at(at + 8), u32_at(at + 12)],
            capture[at + 16..at + 16 + caplen].to_vec(),
        ));
        at += 16 + caplen;
    }
    out
}

fn pcap_of(global: &[u8], records: &[([u32; 4], Vec<u8>)]) -> Vec<u8> {
    let mut out = global[..24].to_vec();
    for (h, data) in records {
        for field in h {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out.extend_from_slice(data);
    }
    out
}

#[test]
fn broken_captures_keep_what_they_hold() {
    let dir = scratch("broken");
    let whole = std::fs::read(bundled("answered-caller-bye")).expect("capture");
    let recs = records(&whole);

    // A record claiming a 4 GiB length after three good ones.
    let mut huge = pcap_of(&whole, &recs[..3]);
    huge.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    huge.extend_from_slice(&[0u8; 64]);
    let file = dir.join("huge.pcap");
    std::fs::write(&file, huge).expect("write");
    let out = fails_with(
        &["analyze", path(&file)],
        3,
        "capture damaged after 3 frames",
    );
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "the INVITE's call is still written"
    );

    // Zero-length records between the real ones: skipped, counted, harmless.
    let mut with_empty = Vec::new();
    for rec in &recs {
        with_empty.push(rec.clone());
        with_empty.push(([rec.0[0], rec.0[1], 0, 0], Vec::new()));
    }
    let file = dir.join("empty-records.pcap");
    std::fs::write(&file, pcap_of(&whole, &with_empty)).expect("write");
    let out = spycraft(&["analyze", "--node", "golden", path(&file)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(r#""end_reason":"bye""#));
    assert!(
        text(&out.stderr).contains("14 frames, 7 SIP messages"),
        "{}",
        text(&out.stderr)
    );

    // Frames cut by a 320-byte snap length: the headers that survive still make the call.
    let snapped: Vec<([u32; 4], Vec<u8>)> = recs
        .iter()
        .map(|(h, data)| {
            let cut = data.len().min(320);
            ([h[0], h[1], cut as u32, h[3]], data[..cut].to_vec())
        })
        .collect();
    let file = dir.join("snapped.pcap");
    std::fs::write(&file, pcap_of(&whole, &snapped)).expect("write");
    let out = spycraft(&["analyze", path(&file)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(r#""disposition":"answered""#) && stdout.contains(r#""end_reason":"bye""#),
        "{stdout}"
    );
}

#[test]
fn pcapng_with_unknown_blocks_is_read() {
    let dir = scratch("pcapng");
    let whole = std::fs::read(bundled("busy-486")).expect("capture");
    let block = |kind: u32, body: &[u8]| {
        let len = (12 + body.len()) as u32;
        let mut b = kind.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b.extend_from_slice(&len.to_le_bytes());
        b
    };
    // Section header (byte-order magic, version 1.0, unknown section length).
    let mut ng = block(
        0x0a0d_0d0a,
        &[
            0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    );
    // A block type nobody defined, before and after the interface description.
    ng.extend(block(0x0000_0bad, &[1, 2, 3, 4, 5, 6, 7, 8]));
    ng.extend(block(1, &[1, 0, 0, 0, 0xff, 0xff, 0, 0]));
    ng.extend(block(0x8000_0001, &[9; 12]));
    for (h, data) in records(&whole) {
        let ts = u64::from(h[0]) * 1_000_000 + u64::from(h[1]);
        let mut body = 0u32.to_le_bytes().to_vec();
        body.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ts as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(&data);
        body.resize(body.len().div_ceil(4) * 4, 0);
        ng.extend(block(6, &body));
    }
    let file = dir.join("unknown-blocks.pcapng");
    std::fs::write(&file, ng).expect("write");
    let out = spycraft(&["analyze", path(&file)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(r#""disposition":"busy""#),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn garbage_on_sip_ports_is_counted_never_fatal() {
    let dir = scratch("garbage");
    let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    pcap.extend_from_slice(&65535u32.to_le_bytes());
    pcap.extend_from_slice(&101u32.to_le_bytes()); // raw IP
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..2000u32 {
        let mut payload: Vec<u8> = (0..(i % 700 + 1))
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        if i % 3 == 0 {
            // Half-plausible SIP to reach deeper into the parser.
            let mut sip = b"INVITE sip:x@y SIP/2.0\r\nCall-ID: ".to_vec();
            sip.append(&mut payload);
            payload = sip;
        }
        let udp_len = 8 + payload.len() as u16;
        let mut frame = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let total = 20 + udp_len;
        frame[2..4].copy_from_slice(&total.to_be_bytes());
        frame.extend_from_slice(&5060u16.to_be_bytes());
        frame.extend_from_slice(&5060u16.to_be_bytes());
        frame.extend_from_slice(&udp_len.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&payload);
        pcap.extend_from_slice(&i.to_le_bytes());
        pcap.extend_from_slice(&0u32.to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&frame);
    }
    let file = dir.join("garbage.pcap");
    std::fs::write(&file, pcap).expect("write");
    let out = spycraft(&["analyze", path(&file)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("2000 frames"), "{stderr}");
    let errors: u64 = stderr
        .split(" parse errors")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("summary counts parse errors");
    assert!(errors > 1000, "the garbage is counted as errors: {stderr}");
}

#[test]
fn the_generated_capture_filter_keeps_every_call_of_every_bundled_case() {
    let cases = support::bundled_cases();
    assert!(cases.iter().any(|c| c == "udp-fragmented-invite"));
    for case in cases {
        let ports = if case.contains("15060") {
            "15060,15062"
        } else {
            "5060,5061,5080"
        };
        let expression = spycraft(&["filter", "--expression", "--ports", ports]);
        let expression = text(&expression.stdout);
        let capture = bundled(&case);
        let all = spycraft(&[
            "analyze",
            "--format",
            "jsonl",
            "--ports",
            ports,
            path(&capture),
        ]);
        let filtered = spycraft(&[
            "analyze",
            "--format",
            "jsonl",
            "--ports",
            ports,
            "-f",
            expression.trim(),
            path(&capture),
        ]);
        assert!(
            filtered.status.success(),
            "{case}: {}",
            text(&filtered.stderr)
        );
        assert_eq!(
            text(&filtered.stdout),
            text(&all.stdout),
            "{case}: the filter keeps every frame a record needs (fragments included)"
        );
    }
}

#[test]
fn calls_gathers_the_legs_of_a_b2bua_call_into_one_row() {
    let (a, b) = (bundled("b2bua-a-leg"), bundled("b2bua-b-leg"));
    let legs = spycraft(&["analyze", "-q", "--format", "jsonl", path(&a), path(&b)]);
    let legs: Vec<serde_json::Value> = text(&legs.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect();
    assert_eq!(legs.len(), 4);
    let out = spycraft(&[
        "analyze",
        "-q",
        "--calls",
        "--format",
        "jsonl",
        path(&a),
        path(&b),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let calls: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a call"))
        .collect();
    assert_eq!(calls.len(), 2, "two calls of two legs each");
    for call in &calls {
        let id = call["collation_id"].as_str().expect("collation id");
        assert!(id.starts_with("b2bua-call-"), "{id}");
        assert_eq!(call["leg_count"], 2);
        assert_eq!(call["disposition"], "answered");
        let nested = call["legs"].as_array().expect("legs");
        let call_ids: Vec<&str> = nested
            .iter()
            .filter_map(|l| l["call_id"].as_str())
            .collect();
        assert_ne!(call_ids[0], call_ids[1], "each leg keeps its own Call-ID");
        for leg in nested {
            assert!(
                legs.contains(leg),
                "a nested leg is the plain record, unchanged"
            );
            assert_eq!(leg["collation_id"], id);
        }
        assert_eq!(call["started_at"], nested[0]["invite_at"]);
    }
    let table = spycraft(&[
        "analyze",
        "-q",
        "--calls",
        "--format",
        "table",
        path(&a),
        path(&b),
    ]);
    let table = text(&table.stdout);
    assert_eq!(
        table.lines().filter(|l| l.starts_with("    ")).count(),
        4,
        "{table}"
    );
    let csv = spycraft(&["analyze", "--calls", "--format", "csv", path(&a)]);
    assert_eq!(csv.status.code(), Some(1));
    assert!(text(&csv.stderr).contains("--calls nests legs"));
}

/// `spycraft config` prints the effective settings, flags over the file over the defaults,
/// as a settings file that reads back to the same, and never the password.
#[test]
fn config_prints_the_effective_settings() {
    let dir = scratch("config");
    let file = dir.join("sensor.toml");
    std::fs::write(
        &file,
        "[sensor]\nnode = \"from-file\"\nports = [5070]\n\
         [capture]\ninterface = \"eth1\"\nmode = \"xdp\"\n\
         [postgres]\nurl = \"postgresql://spy:hunter2@db/cdr\"\n",
    )
    .expect("settings file");
    let out = spycraft(&["--config", path(&file), "config", "--node", "from-flag"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    for line in [
        "node = \"from-flag\"",
        "ports = [5070]",
        "interfaces = [\"eth1\"]",
        "mode = \"xdp\"",
        "ring_mb = 16",
        "threads = 2",
        "url = \"postgresql://spy:********@db/cdr\"",
    ] {
        assert!(printed.lines().any(|l| l == line), "{line} in:\n{printed}");
    }
    assert!(!printed.contains("hunter2"), "{printed}");
    let again = dir.join("printed.toml");
    std::fs::write(&again, &printed).expect("printed settings");
    let reread = spycraft(&["--config", path(&again), "config"]);
    assert_eq!(text(&reread.stdout), printed, "reads back to the same");

    fails_with(
        &["capture"],
        2,
        "-i IFACE (repeatable), or interfaces in [capture]",
    );
    fails_with(
        &["capture", "-i", "lo", "--pcapng"],
        2,
        "apply to the file of -w only",
    );
}

/// Settings and usage mistakes are named as the user wrote them, each said once, and found
/// before a run rather than after it.
#[test]
fn mistakes_are_named_where_they_were_made() {
    let dir = scratch("mistakes");
    let busy = bundled("busy-486");
    let settings = |name: &str, body: &str| {
        let file = dir.join(name);
        std::fs::write(&file, body).expect("settings file");
        file
    };
    let file = settings("port.toml", "[sensor]\nports = [99999]\n");
    let out = fails_with(
        &["--config", path(&file), "analyze", path(&busy)],
        1,
        "port.toml line 2, [sensor] ports: 99999 is not a port",
    );
    assert!(
        !text(&out.stderr).contains("PortSpec"),
        "{}",
        text(&out.stderr)
    );

    let file = settings("host.toml", "[sensor]\nhosts = [\"nothost\"]\n");
    let out = fails_with(
        &["--config", path(&file), "analyze", path(&busy)],
        1,
        "host.toml line 2, [sensor] hosts: `nothost` is not an IP address",
    );
    assert!(
        !text(&out.stderr).contains("--host"),
        "{}",
        text(&out.stderr)
    );

    let file = settings("type.toml", "[sensor]\nnode = 5\n");
    let out = fails_with(
        &["--config", path(&file), "analyze", path(&busy)],
        1,
        "type.toml line 2, [sensor] node: invalid type",
    );
    assert_eq!(
        text(&out.stderr).matches("invalid type").count(),
        1,
        "said once: {}",
        text(&out.stderr)
    );

    fails_with(&["analyze", "-", "-"], 2, "only once");

    let blocked = dir.join("a-file");
    std::fs::write(&blocked, "").expect("a file");
    let out = fails_with(
        &[
            "analyze",
            "--split-calls",
            path(&blocked.join("calls")),
            path(&busy),
        ],
        1,
        "--split-calls",
    );
    assert!(out.stdout.is_empty(), "checked before the run");

    fails_with(
        &[
            "analyze",
            "--postgres",
            "host=/nonexistent port=5432 user=x dbname=y",
            "--spool",
            path(&dir.join("spool")),
            "--spool-max-mb",
            "4",
            path(&busy),
        ],
        1,
        "below one spool segment",
    );
}

#[test]
fn frames_cut_by_the_snap_length_are_counted_as_such() {
    let dir = scratch("snapped");
    let whole = std::fs::read(bundled("answered-caller-bye")).expect("capture");
    let mut recs = records(&whole);
    // The INVITE keeps its first 200 bytes of a longer frame.
    let (h, data) = &mut recs[0];
    data.truncate(200);
    h[2] = 200;
    let cut = dir.join("snapped.pcap");
    std::fs::write(&cut, pcap_of(&whole, &recs)).expect("capture");
    let out = spycraft(&["analyze", path(&cut)]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("1 frames cut by the snap length"),
        "{stderr}"
    );
}

/// A pcapng whose interfaces have different link types (`mergecap` of an Ethernet and a raw
/// IP capture) is read, each interface with its own link type, as tshark reads it; libpcap
/// refuses such files. pcapng files read directly give what libpcap gives.
#[test]
fn pcapng_with_interfaces_of_different_link_types_is_read() {
    let dir = scratch("pcapng-mixed");
    let ethernet = bundled("b2bua-a-leg");
    // The other leg as raw IP: the Ethernet header cut off every frame (LINKTYPE_RAW, 101).
    let whole = std::fs::read(bundled("b2bua-b-leg")).expect("capture");
    let mut global = whole[..24].to_vec();
    global[20..24].copy_from_slice(&101u32.to_le_bytes());
    let raw: Vec<([u32; 4], Vec<u8>)> = records(&whole)
        .into_iter()
        .map(|(mut h, data)| {
            h[2] -= 14;
            h[3] -= 14;
            (h, data[14..].to_vec())
        })
        .collect();
    let raw_file = dir.join("raw.pcap");
    std::fs::write(&raw_file, pcap_of(&global, &raw)).expect("raw capture");
    let merged = dir.join("merged.pcapng");
    let status = Command::new("mergecap")
        .args([
            "-F",
            "pcapng",
            "-w",
            path(&merged),
            path(&ethernet),
            path(&raw_file),
        ])
        .status()
        .expect("mergecap (Debian's wireshark-common, with tshark)");
    assert!(status.success());

    let analyze = |files: &[&Path]| {
        let mut args = vec!["analyze", "--node", "golden", "--format", "jsonl"];
        args.extend(files.iter().map(|f| path(f)));
        let out = spycraft(&args);
        assert!(out.status.success(), "{files:?}: {}", text(&out.stderr));
        let mut lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    let apart = analyze(&[&ethernet, &raw_file]);
    assert_eq!(apart.len(), 4, "{apart:#?}");
    assert_eq!(
        analyze(&[&merged]),
        apart,
        "merged, each link type decoded as its own"
    );

    // Every bundled case as pcapng: read directly, then through libpcap (a filter sends it
    // there), the same records.
    for case in support::bundled_cases() {
        let ng = dir.join(format!("{case}.pcapng"));
        let status = Command::new("editcap")
            .args(["-F", "pcapng", path(&bundled(&case)), path(&ng)])
            .status()
            .expect("editcap");
        assert!(status.success());
        let direct = spycraft(&["analyze", "--node", "n", "--format", "jsonl", path(&ng)]);
        let libpcap = spycraft(&[
            "analyze",
            "--node",
            "n",
            "--format",
            "jsonl",
            "-f",
            "",
            path(&ng),
        ]);
        assert_eq!(text(&direct.stdout), text(&libpcap.stdout), "{case}");
        assert_eq!(direct.status.code(), libpcap.status.code(), "{case}");
    }
}

#[test]
fn formats_libpcap_cannot_read_are_named_with_the_way_to_convert_them() {
    let dir = scratch("other-formats");
    for (name, head, format) in [
        (
            "netmon.cap",
            &b"GMBU\x00\x02"[..],
            "Microsoft Network Monitor 2.x",
        ),
        (
            "trace.snoop",
            &b"snoop\0\0\0\0\0\0\x02\0\0\0\x04"[..],
            "Sun snoop",
        ),
    ] {
        let file = dir.join(name);
        let mut bytes = head.to_vec();
        bytes.resize(128, 0);
        std::fs::write(&file, bytes).expect("file");
        let out = fails_with(&["analyze", path(&file)], 1, format);
        assert!(
            text(&out.stderr).contains("editcap -F pcapng"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn records_are_compared_with_expected_ones_and_each_difference_named() {
    let expect = |expected: &Path, capture: &Path, extra: &[&str]| {
        let mut args = vec!["analyze", "-q", "--format", "jsonl", "-o", "/dev/null"];
        args.extend(["--expect", path(expected)]);
        args.extend(extra);
        args.push(path(capture));
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: &[String]| spycraft(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for case in support::bundled_cases() {
        let dir = support::pcaps().join(&case);
        let (expected, capture) = (dir.join("expected.jsonl"), dir.join("capture.pcap"));
        for extra in [&[][..], &["--match-on", "from_user,to_user,invite_order"]] {
            let out = run(&expect(&expected, &capture, extra));
            assert!(out.status.success(), "{case}: {}", text(&out.stderr));
        }
    }

    // The busy call expected to end in 603: exit 5, the call and the change named; another
    // expected call the run does not have is missing.
    let dir = scratch("expect");
    let busy = support::pcaps().join("busy-486");
    let capture = busy.join("capture.pcap");
    let line = std::fs::read_to_string(busy.join("expected.jsonl")).expect("expected.jsonl");
    let record: serde_json::Value = serde_json::from_str(line.trim()).expect("a record");
    let key = format!(
        "{} / {}",
        record["call_id"].as_str().expect("id"),
        record["from_tag"].as_str().expect("tag")
    );
    let changed = line.replace("\"final_status\":486", "\"final_status\":603");
    assert_ne!(changed, line);
    let other = line.replace(record["call_id"].as_str().expect("id"), "another-call");
    let expected = dir.join("expected.jsonl");
    std::fs::write(&expected, format!("{changed}{other}")).expect("a file");
    let out = run(&expect(&expected, &capture, &[]));
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(
        said.contains(&format!("changed: {key}: final_status: 603 → 486")),
        "{said}"
    );
    assert!(said.contains("missing: another-call / "), "{said}");
    assert!(
        said.contains("0 calls as expected, 1 changed, 1 missing, 0 extra"),
        "{said}"
    );
    // The same as JUnit XML that the schema CI servers read validates, and as JSON.
    let junit = dir.join("report.xml");
    let json = dir.join("report.json");
    let reports = [
        "--report".to_owned(),
        format!("junit:{}", path(&junit)),
        "--report".to_owned(),
        format!("json:{}", path(&json)),
    ];
    let reports: Vec<&str> = reports.iter().map(String::as_str).collect();
    let out = run(&expect(&expected, &capture, &reports));
    assert_eq!(out.status.code(), Some(5));
    let xml = std::fs::read_to_string(&junit).expect("a JUnit report");
    assert!(xml.contains("tests=\"2\" failures=\"2\""), "{xml}");
    assert!(xml.contains("final_status: 603 → 486</failure>"), "{xml}");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/junit.xsd");
    let xmllint = |file: &Path| {
        support::process::installed(
            "xmllint",
            "libxml2-utils",
            Command::new("xmllint")
                .args(["--noout", "--schema", path(&schema), path(file)])
                .output(),
        )
    };
    if let Some(valid) = xmllint(&junit) {
        assert!(valid.status.success(), "{}", text(&valid.stderr));
        // And the schema has teeth: a test case without a name does not validate.
        let nameless = dir.join("nameless.xml");
        std::fs::write(
            &nameless,
            xml.replacen(" name=\"another-call", " id=\"another-call", 1),
        )
        .expect("a file");
        let invalid = xmllint(&nameless).expect("xmllint");
        assert!(!invalid.status.success(), "a nameless case is refused");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("a JSON report"))
            .expect("JSON");
    assert_eq!(
        (report["changed"].as_u64(), report["missing"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(report["passed"], false);

    // Ignoring the field leaves only the missing call.
    let out = run(&expect(
        &expected,
        &capture,
        &["--ignore", "final_status", "--ignore", "disposition"],
    ));
    assert!(text(&out.stderr).contains("1 calls as expected, 0 changed, 1 missing"));

    // Expected files with mistakes are refused with the line named, before the run.
    std::fs::write(&expected, format!("{line}{{broken\n")).expect("a file");
    let out = run(&expect(&expected, &capture, &[]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("expected.jsonl:2: not JSON"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&expected, format!("{line}{line}")).expect("a file");
    let out = run(&expect(&expected, &capture, &[]));
    assert!(text(&out.stderr).contains(&format!(":2: the call {key} is already on line 1")));
    let out = run(&expect(
        &busy.join("expected.jsonl"),
        &capture,
        &["--ignore", "colour"],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn diff_compares_two_runs_captures_or_records() {
    let busy = support::pcaps().join("busy-486");
    let (capture, records) = (busy.join("capture.pcap"), busy.join("expected.jsonl"));
    let out = spycraft(&["diff", path(&capture), path(&records)]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("dispositions: busy 1 → 1"), "{said}");
    assert!(said.contains("1 calls as expected, 0 changed"), "{said}");

    // Another outcome for the same parties: paired by them, the changes named; exit 5.
    let other = support::pcaps().join("no-answer-480").join("capture.pcap");
    let out = spycraft(&[
        "diff",
        "--match-on",
        "from_user,to_user,invite_order",
        path(&capture),
        path(&other),
    ]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(
        said.contains("dispositions: busy 1 → 0, no_answer 0 → 1"),
        "{said}"
    );
    assert!(
        said.contains("changed: alice / bob / #1: disposition: \"busy\" → \"no_answer\", final_status: 486 → 480"),
        "{said}"
    );
    // By dialog they are two different calls.
    let out = spycraft(&["diff", path(&capture), path(&other)]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(
        said.contains("0 calls as expected, 0 changed, 1 missing, 1 extra"),
        "{said}"
    );
}

#[test]
fn stable_records_make_an_expected_file_that_later_runs_match() {
    let dir = scratch("stable");
    let capture = support::pcaps().join("b2bua-a-leg").join("capture.pcap");
    let expected = dir.join("expected.jsonl");
    let out = spycraft(&[
        "analyze",
        "-q",
        "--format",
        "jsonl",
        "--stable",
        "-o",
        path(&expected),
        path(&capture),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(&expected).expect("records");
    assert!(!written.is_empty());
    for line in written.lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("JSON");
        for field in ["id", "node", "invite_at", "answer_at", "end_at"] {
            assert!(record.get(field).is_none(), "{field} in {line}");
        }
        assert!(record.get("billable_ms").is_some());
    }
    // Another node, another day: the same file.
    let again = spycraft(&[
        "analyze",
        "-q",
        "--format",
        "jsonl",
        "--stable",
        "--node",
        "elsewhere",
        path(&capture),
    ]);
    assert_eq!(text(&again.stdout), written);
    for extra in [&[][..], &["--match-on", "from_user,to_user,invite_order"]] {
        let mut args = vec!["analyze", "-q", "-o", "/dev/null", "--format", "jsonl"];
        args.extend(["--expect", path(&expected)]);
        args.extend(extra);
        args.push(path(&capture));
        let out = spycraft(&args);
        assert!(out.status.success(), "{extra:?}: {}", text(&out.stderr));
    }
    fails_with(
        &["analyze", "--format", "csv", "--stable", path(&capture)],
        1,
        "--stable writes records as JSON lines",
    );
}
