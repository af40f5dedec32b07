// SPDX-License-Identifier: AGPL-3.0-or-later
//! HEP between spycraft and Kamailio (Debian's, with siptrace and sipcapture): a proxy
//! mirrors its traffic with siptrace to `capture --hep-listen`, over UDP and over TCP, and
//! the records equal those `analyze` writes from a tcpdump of the same run; Kamailio's
//! sipcapture receives spycraft's export and reads its identity chunks.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::hep::{analyzed, free_udp_port, micros, start_collector_writing, stop_collector};
use support::kamailio::{preamble, proxy_route, Kamailio};
use support::process::{may_capture, place_calls, Tcpdump};
use support::{pcaps, records, scratch, spycraft, text, utf8};

/// Where the proxy listens (UDP for SIP; TCP too, for siptrace's HEP over TCP).
const PROXY: u16 = 25170;

/// Callee scenario, caller scenario, callee port, caller port: answered, busy, cancelled
/// while ringing, and not answered (the callee rings for 3 s, then gives up with 408).
const KINDS: [(&str, &str, u16, u16); 4] = [
    ("uas-answer.xml", "uac-answer.xml", 25180, 25181),
    ("uas-busy.xml", "uac-reject.xml", 25182, 25183),
    ("uas-cancel.xml", "uac-cancel.xml", 25184, 25185),
    ("uas-timeout.xml", "uac-reject.xml", 25186, 25187),
];

/// Calls of each kind: 200 in all.
const CALLS_PER_KIND: u32 = 50;

/// A stateful proxy that relays each call to its Request-URI (the callee's port) and
/// mirrors everything it receives and sends as HEP to `collector`.
fn proxy_config(transport: &str, collector: SocketAddr) -> String {
    let preamble = preamble(&format!("udp:127.0.0.1:{PROXY} tcp:127.0.0.1:{PROXY}"));
    let route = proxy_route("");
    format!(
        r#"{preamble}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "siptrace.so"
modparam("siptrace", "duplicate_uri", "sip:{collector};transport={transport}")
modparam("siptrace", "hep_mode_on", 1)
modparam("siptrace", "hep_version", 3)
modparam("siptrace", "hep_capture_id", 7)
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_to_database", 0)
modparam("siptrace", "trace_mode", 1)

{route}"#
    )
}

/// sipp on loopback playing a bundled scenario: `calls` calls at 25 per second.
fn sipp(script: &str, port: u16) -> Command {
    let mut sipp = support::process::sipp(
        Command::new("sipp"),
        script,
        "127.0.0.1",
        port,
        CALLS_PER_KIND,
    );
    sipp.args(["-r", "25"]);
    sipp
}

/// tcpdump on loopback of every SIP port of the run, without the HEP stream to `collector`.
fn tcpdump(pcap: &Path, collector: SocketAddr) -> Tcpdump {
    let mut ports = vec![PROXY.to_string()];
    for (_, _, callee, caller) in KINDS {
        ports.extend([callee.to_string(), caller.to_string()]);
    }
    let filter = spycraft(&["filter", "--expression", "--ports", &ports.join(",")]);
    let filter = format!(
        "({}) and not port {}",
        text(&filter.stdout).trim(),
        collector.port()
    );
    Tcpdump::start(pcap, &filter)
}

/// `got` equals `want` field by field; times (`*_at`) and durations (`*_ms`) within 20 ms,
/// since Kamailio stamps a message when it handles it and tcpdump when it crosses loopback
/// (so the record `id`, which hashes the INVITE's time, differs too). The wire has no HEP
/// agent: `agent_id` and `agent_name` are the collector's alone.
fn same_records(got: &BTreeMap<(String, String), Value>, want: &BTreeMap<(String, String), Value>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the same calls"
    );
    for (key, want) in want {
        let (got, want) = (&got[key], want.as_object().expect("an object"));
        let compared =
            |field: &&String| !["id", "agent_id", "agent_name"].contains(&field.as_str());
        for (field, w) in want.iter().filter(|(field, _)| compared(field)) {
            let g = &got[field];
            let close = match (g, w) {
                (Value::String(g), Value::String(w)) if field.ends_with("_at") => {
                    (micros(g) - micros(w)).abs() <= 20_000
                }
                (Value::Number(g), Value::Number(w)) if field.ends_with("_ms") => {
                    (g.as_i64().expect("ms") - w.as_i64().expect("ms")).abs() <= 20
                }
                _ => g == w,
            };
            assert!(
                close,
                "{key:?} {field}: got {g}, tcpdump gave {w}\ngot {}\nwant {}",
                got,
                Value::Object(want.clone())
            );
        }
    }
}

#[test]
fn kamailio_siptrace_gives_the_collector_the_records_of_the_wire() {
    if !may_capture() {
        return;
    }
    let dir = scratch("hep-kamailio-siptrace");
    for transport in ["udp", "tcp"] {
        let out = dir.join(format!("{transport}.jsonl"));
        let (collector, said, addr) = start_collector_writing(transport, &out);
        let pcap = dir.join(format!("{transport}.pcap"));
        let tcpdump = tcpdump(&pcap, addr);
        let config = proxy_config(transport, addr);
        let Some(proxy) = Kamailio::start(&dir.join(transport), &config, PROXY) else {
            return;
        };
        let proxy_address = format!("127.0.0.1:{PROXY}");
        place_calls(&KINDS, sipp, &["-rsa", &proxy_address]);
        let log = proxy.log();
        drop(proxy);
        let (got, said) = stop_collector(collector, &said, &out);
        std::thread::sleep(Duration::from_millis(300));
        tcpdump.stop();

        let want = records(&analyzed(&[utf8(&pcap)]));
        let got = records(&got);
        assert_eq!(got.len(), 200, "{transport}: {said}\n{log}");
        same_records(&got, &want);
        assert!(
            got.values()
                .all(|r| r["agent_id"] == 7 && r["agent_name"].is_null()),
            "each record names the agent: siptrace's hep_capture_id"
        );
        let mut dispositions = BTreeMap::new();
        for record in got.values() {
            *dispositions
                .entry(record["disposition"].as_str().expect("a disposition"))
                .or_insert(0) += 1;
        }
        assert_eq!(
            dispositions,
            BTreeMap::from([
                ("answered", 50),
                ("busy", 50),
                ("cancelled", 50),
                ("no_answer", 50)
            ]),
            "{transport}"
        );
        assert!(said.contains(", 0 refused"), "{said}");
    }
}

/// Kamailio's sipcapture, logging the chunks of each HEP packet it receives. Kamailio 5.6's
/// `$hep(...)` does not read the node name chunk (0x13), so the node name is checked by
/// the TCP receiver of tests/hep.rs.
fn sipcapture_config(port: u16, db: &Path) -> String {
    let db = utf8(db);
    let preamble = preamble(&format!("udp:127.0.0.1:{port}"));
    format!(
        r#"{preamble}
loadmodule "xlog.so"
loadmodule "db_text.so"
loadmodule "sipcapture.so"
modparam("sipcapture", "db_url", "text://{db}")
modparam("sipcapture", "hep_capture_on", 1)
modparam("sipcapture", "nonsip_hook", 1)

event_route[sipcapture:request] {{
    xlog("L_ALERT", "HEP type=$hep(0x00b) agent=$hep(0x00c) correlation=$hep(0x011) src=$hep(0x003):$hep(0x007) dst=$hep(0x004):$hep(0x008) time=$hep(0x009).$hep(0x00a)\n");
    return 0;
}}

request_route {{
    drop;
}}
"#
    )
}

/// One line of the sipcapture log: its `name=value` fields.
fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_once("HEP ")
        .map_or("", |(_, rest)| rest)
        .split(' ')
        .filter_map(|f| f.split_once('='))
        .collect()
}

#[test]
fn kamailio_sipcapture_reads_what_spycraft_exports() {
    let dir = scratch("hep-kamailio-sipcapture");
    // sipcapture binds a database at start; db_text with an empty table will do.
    let db = dir.join("db");
    std::fs::create_dir_all(&db).expect("a directory");
    std::fs::write(db.join("sip_capture"), "id(int,auto) date(int)\n").expect("a table");
    let port = free_udp_port();
    let Some(kamailio) = Kamailio::start(&dir, &sipcapture_config(port, &db), port) else {
        return;
    };
    let busy = pcaps().join("busy-486").join("capture.pcap");
    let url = format!("udp://127.0.0.1:{port}");
    let out = spycraft(&[
        "analyze",
        "--format",
        "jsonl",
        "--hep",
        &url,
        "--hep-node-id",
        "42",
        "--hep-node-name",
        "sensor-a",
        "--hep-cdr",
        utf8(&busy),
    ]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("6 packets, 6 sent"), "{said}");
    let record: Value = serde_json::from_str(text(&out.stdout).trim()).expect("a record");
    let call_id = record["call_id"].as_str().expect("a Call-ID");

    // Five SIP messages and the record.
    let until = Instant::now() + Duration::from_secs(10);
    let mut log = kamailio.log();
    while log.matches("HEP type=").count() < 6 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        log = kamailio.log();
    }
    let got: Vec<BTreeMap<&str, &str>> = log
        .lines()
        .filter(|l| l.contains("HEP type="))
        .map(fields)
        .collect();
    assert_eq!(got.len(), 6, "{log}");
    for packet in &got {
        assert_eq!(packet["agent"], "42", "{log}");
        assert_eq!(packet["correlation"], call_id, "{log}");
    }
    let types: Vec<&str> = got.iter().map(|p| p["type"]).collect();
    assert_eq!(types.iter().filter(|t| **t == "1").count(), 5, "{log}");
    assert_eq!(types.iter().filter(|t| **t == "60").count(), 1, "{log}");

    // Each SIP message with its addresses and microsecond time as captured.
    let dumped = spycraft(&["dump", "--format", "json", utf8(&busy)]);
    let mut want: Vec<(String, String, i64)> = text(&dumped.stdout)
        .lines()
        .map(|l| {
            let m: Value = serde_json::from_str(l).expect("a message");
            let field = |k: &str| m[k].as_str().expect("a string").to_owned();
            (field("src"), field("dst"), micros(&field("time")))
        })
        .collect();
    let mut sip: Vec<(String, String, i64)> = got
        .iter()
        .filter(|p| p["type"] == "1")
        .map(|p| {
            let (seconds, micro) = p["time"].split_once('.').expect("seconds.micros");
            let at = seconds.parse::<i64>().expect("seconds") * 1_000_000
                + micro.parse::<i64>().expect("micros");
            (p["src"].to_owned(), p["dst"].to_owned(), at)
        })
        .collect();
    want.sort();
    sip.sort();
    assert_eq!(sip, want);
}
