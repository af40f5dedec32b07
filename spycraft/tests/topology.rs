// SPDX-License-Identifier: AGPL-3.0-or-later
//! Every capture mode on one real network: a sipp caller and callee in two network
//! namespaces joined by a bridge in a third, whose ports are mirrored (tc mirred) onto a veth
//! into a fourth, the monitoring namespace. There the sensor watches the mirror with its XDP
//! program and, beside it, with libpcap live, while tcpdump records the same frames; a third
//! sensor runs co-resident with the callee, on its interface, with the socket filter. Three
//! hundred calls (answered, busy, cancelled) later, each sensor's records must be exactly what
//! `analyze` makes of tcpdump's file. Needs root (CI runs as root and must run it).
//!
//! Capture timestamps differ between the modes by the microseconds between the points where
//! each stamps a frame (XDP before the stack, the socket at the callee's interface), so the
//! times, the durations and delays made from them (and the record id, which hashes the
//! INVITE's time) are compared to within 50 ms; every other field must be equal.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::process::{interrupt, ip, may_capture, Reaped};
use support::{records, scratch, spycraft, text, utf8};

const CALLER: &str = "10.77.0.1";
const CALLEE: &str = "10.77.0.2";
const CALLS_PER_OUTCOME: usize = 100;
/// (callee script, caller script, callee port, caller port)
const PAIRS: [(&str, &str, u16, u16); 3] = [
    ("uas-answer.xml", "uac-answer.xml", 5060, 5061),
    ("uas-busy.xml", "uac-reject.xml", 5070, 5071),
    ("uas-cancel.xml", "uac-cancel.xml", 5080, 5081),
];
const PORTS: &str = "5060,5061,5070,5071,5080,5081";

/// Four namespaces, deleted (with their interfaces) on every path out of the test.
struct Topology {
    switch: String,
    caller: String,
    callee: String,
    monitor: String,
}

fn tc(namespace: &str, args: &[&str]) {
    let out = Command::new("tc")
        .args(["-n", namespace])
        .args(args)
        .output()
        .expect("tc (iproute2)");
    assert!(out.status.success(), "tc {args:?}: {}", text(&out.stderr));
}

impl Topology {
    fn build() -> Self {
        let id = std::process::id();
        let t = Self {
            switch: format!("spy-sw-{id}"),
            caller: format!("spy-uac-{id}"),
            callee: format!("spy-uas-{id}"),
            monitor: format!("spy-mon-{id}"),
        };
        for ns in [&t.switch, &t.caller, &t.callee, &t.monitor] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let (sw, uac, uas, mon) = (&t.switch, &t.caller, &t.callee, &t.monitor);
        ip(&["-n", sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", sw, "link", "set", "br0", "up"]);
        for (ns, inside, port) in [(uac, "uac0", "uacp"), (uas, "uas0", "uasp")] {
            ip(&[
                "link", "add", inside, "netns", ns, "type", "veth", "peer", "name", port, "netns",
                sw,
            ]);
            ip(&["-n", sw, "link", "set", port, "master", "br0", "up"]);
        }
        ip(&[
            "link", "add", "mon0", "netns", mon, "type", "veth", "peer", "name", "mir0", "netns",
            sw,
        ]);
        ip(&["-n", sw, "link", "set", "mir0", "up"]);
        ip(&["-n", mon, "link", "set", "mon0", "up"]);
        ip(&[
            "-n",
            uac,
            "addr",
            "add",
            &format!("{CALLER}/24"),
            "dev",
            "uac0",
        ]);
        ip(&["-n", uac, "link", "set", "uac0", "up"]);
        ip(&[
            "-n",
            uas,
            "addr",
            "add",
            &format!("{CALLEE}/24"),
            "dev",
            "uas0",
        ]);
        ip(&["-n", uas, "link", "set", "uas0", "up"]);
        // What enters the bridge from either side is mirrored to the monitoring port: each
        // frame once. (u32 matching everything: the kernel here has no matchall classifier.)
        for port in ["uacp", "uasp"] {
            tc(sw, &["qdisc", "add", "dev", port, "clsact"]);
            tc(
                sw,
                &[
                    "filter", "add", "dev", port, "ingress", "protocol", "all", "u32", "match",
                    "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", "mir0",
                ],
            );
        }
        t
    }

    /// A command run inside `namespace`.
    fn exec(namespace: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", namespace, program]);
        cmd
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.switch, &self.caller, &self.callee, &self.monitor] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sensor(namespace: &str, interface: &str, mode: &str, out: &Path) -> Reaped {
    Reaped::spawn(
        Topology::exec(namespace, env!("CARGO_BIN_EXE_spycraft"))
            .args(["capture", "-i", interface, "--mode", mode, "--ports", PORTS])
            .args(["--node", "topology", "--format", "jsonl", "-o", utf8(out)])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

fn sipp(namespace: &str, script: &str, address: &str, port: u16) -> Command {
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps/scenarios");
    let mut cmd = Topology::exec(namespace, "sipp");
    cmd.arg("-sf")
        .arg(scenarios.join(script))
        .args(["-i", address, "-p", &port.to_string()])
        .args(["-m", &CALLS_PER_OUTCOME.to_string(), "-l", "100"])
        .args(["-nostdin", "-timeout", "90s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn micros(value: &Value) -> Option<i64> {
    let text = value.as_str()?;
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 time");
    Some((t.unix_timestamp_nanos() / 1000) as i64)
}

/// Fails unless `got` equals `want` field for field, times to within 50 ms.
fn assert_same_records(mode: &str, got: &str, want: &BTreeMap<(String, String), Value>) {
    let got = records(got);
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(missing.is_empty(), "{mode}: no records for {missing:?}");
    assert_eq!(got.len(), want.len(), "{mode}: number of records");
    for (key, expected) in want {
        let record = got
            .get(key)
            .unwrap_or_else(|| panic!("{mode}: no record for {key:?}"));
        let (Value::Object(record), Value::Object(expected)) = (record, expected) else {
            panic!("records are objects");
        };
        assert_eq!(
            record.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        );
        for (field, value) in expected {
            let actual = &record[field];
            match field.as_str() {
                "id" => {}
                "invite_at" | "ring_at" | "answer_at" | "end_at" | "transfer_at" => {
                    let (a, e) = (micros(actual), micros(value));
                    assert_eq!(a.is_some(), e.is_some(), "{mode} {key:?} {field}");
                    if let (Some(a), Some(e)) = (a, e) {
                        assert!(
                            (a - e).abs() <= 50_000,
                            "{mode} {key:?} {field}: {a} vs {e}"
                        );
                    }
                }
                "duration_ms" | "billable_ms" | "pdd_ms" | "sdd_ms" | "setup_ms" | "hold_ms" => {
                    let (a, e) = (actual.as_i64(), value.as_i64());
                    assert_eq!(a.is_some(), e.is_some(), "{mode} {key:?} {field}");
                    if let (Some(a), Some(e)) = (a, e) {
                        assert!((a - e).abs() <= 50, "{mode} {key:?} {field}: {a} vs {e}");
                    }
                }
                _ => assert_eq!(actual, value, "{mode} {key:?} {field}"),
            }
        }
    }
}

#[test]
fn xdp_socket_and_libpcap_sensors_give_the_records_of_tcpdumps_capture() {
    if !may_capture() {
        return;
    }
    let dir = scratch("topology");
    let topology = Topology::build();
    let (xdp_out, pcap_out, socket_out) = (
        dir.join("xdp.jsonl"),
        dir.join("pcap.jsonl"),
        dir.join("socket.jsonl"),
    );
    let capture = dir.join("tcpdump.pcap");
    let filter = text(&spycraft(&["filter", "--expression", "--ports", PORTS]).stdout);

    let xdp = sensor(&topology.monitor, "mon0", "xdp", &xdp_out);
    let pcap = sensor(&topology.monitor, "mon0", "pcap", &pcap_out);
    let socket = sensor(&topology.callee, "uas0", "socket", &socket_out);
    let tcpdump = Reaped::spawn(
        Topology::exec(&topology.monitor, "tcpdump")
            .args(["-i", "mon0", "-n", "-U", "--immediate-mode", "-w"])
            .arg(&capture)
            .arg(filter.trim())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    std::thread::sleep(Duration::from_millis(2000));

    let callees: Vec<Reaped> = PAIRS
        .iter()
        .map(|(uas, _, port, _)| Reaped::spawn(&mut sipp(&topology.callee, uas, CALLEE, *port)))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let callers: Vec<Reaped> = PAIRS
        .iter()
        .map(|(_, uac, uas_port, port)| {
            Reaped::spawn(sipp(&topology.caller, uac, CALLER, *port).args([
                "-r",
                "25",
                "-s",
                "bob",
                &format!("{CALLEE}:{uas_port}"),
            ]))
        })
        .collect();
    for sipp in callers.into_iter().chain(callees) {
        let status = sipp.output().status;
        assert!(status.success(), "sipp failed: {status}");
    }
    std::thread::sleep(Duration::from_millis(1500));

    let mut stderr = BTreeMap::new();
    for (mode, sensor) in [("xdp", xdp), ("pcap", pcap), ("socket", socket)] {
        interrupt(sensor.child());
        let out = sensor.output();
        let text = text(&out.stderr);
        assert!(out.status.success(), "{mode}: {}: {text}", out.status);
        stderr.insert(mode, text);
    }
    interrupt(tcpdump.child());
    tcpdump.output();

    let offline = spycraft(&[
        "analyze",
        "--node",
        "topology",
        "--format",
        "jsonl",
        utf8(&capture),
    ]);
    assert!(offline.status.success(), "{}", text(&offline.stderr));
    let want = records(&text(&offline.stdout));
    let calls = 3 * CALLS_PER_OUTCOME;
    assert_eq!(want.len(), calls, "tcpdump saw every call");
    for disposition in ["answered", "busy", "cancelled"] {
        let n = want
            .values()
            .filter(|r| r["disposition"] == disposition)
            .count();
        assert_eq!(n, CALLS_PER_OUTCOME, "{disposition}");
    }

    for (mode, out) in [
        ("xdp", &xdp_out),
        ("pcap", &pcap_out),
        ("socket", &socket_out),
    ] {
        let got = std::fs::read_to_string(out).expect("records");
        let summary = &stderr[mode];
        eprintln!("{mode}: {summary}");
        assert_same_records(mode, &got, &want);
        assert!(
            summary.contains(&format!(
                "{calls} calls (answered 100, busy 100, cancelled 100)"
            )),
            "{mode}: {summary}"
        );
    }
    // The kernel programs lost nothing and were attached as they said.
    let xdp_text = &stderr["xdp"];
    assert!(xdp_text.contains("XDP, "), "{xdp_text}");
    assert!(xdp_text.contains(" 0 lost (ring full)"), "{xdp_text}");
    let socket_text = &stderr["socket"];
    assert!(socket_text.contains("socket filter"), "{socket_text}");
    assert!(socket_text.contains(" 0 lost (ring full)"), "{socket_text}");
    eprintln!("{xdp_text}{socket_text}{}", stderr["pcap"]);
    drop(topology);
}
