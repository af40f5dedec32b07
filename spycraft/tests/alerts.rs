// SPDX-License-Identifier: AGPL-3.0-or-later
//! Alerts against real attack tools: Debian's sipvicious (svmap, svwar, svcrack) and
//! sipsak's flood mode, each from an address of its own, attack Kamailio as a registrar in a
//! namespace of the test's. A live sensor (socket mode) and `analyze` of tcpdump's capture
//! raise the same alerts with the default rules, each naming the tool's address within a
//! second of its first packet, and nothing else.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::hep::micros;
use support::kamailio::{preamble, Kamailio};
use support::netns::Namespaces;
use support::process::{installed, interrupt, ip, may_capture, Reaped, Said, Tcpdump};
use support::{scratch, spycraft, text, utf8};

/// The registrar's address, in its namespace.
const PBX: &str = "10.73.0.1";
/// The host's end of the link to the registrar, where the sensor and tcpdump listen.
const HOST_IF: &str = "scids0";
/// The registrar's end.
const PBX_IF: &str = "scids1";

/// An attack: the tool, the address it attacks from, and the rules it must raise.
struct Attack {
    tool: &'static str,
    address: &'static str,
    rules: &'static [&'static str],
}

const ATTACKS: [Attack; 4] = [
    Attack {
        tool: "svmap",
        address: "10.73.0.2",
        rules: &["scanner"],
    },
    Attack {
        tool: "svwar",
        address: "10.73.0.3",
        rules: &["scanner", "enumeration"],
    },
    Attack {
        tool: "svcrack",
        address: "10.73.0.4",
        rules: &["scanner", "brute_force"],
    },
    Attack {
        tool: "sipsak",
        address: "10.73.0.5",
        rules: &["scanner", "options_flood"],
    },
];

/// A registrar for extensions 100–109 (password `pw` and the extension), 404 for any other,
/// 200 to OPTIONS.
fn registrar_config() -> String {
    let preamble = preamble(&format!("udp:{PBX}:5060"));
    format!(
        r#"{preamble}
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "auth.so"

request_route {{
    if (is_method("OPTIONS")) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (is_method("REGISTER")) {{
        if (!($tU =~ "^10[0-9]$")) {{
            sl_send_reply("404", "Not Found");
            exit;
        }}
        if (!pv_www_authenticate("$td", "pw$tU", "0")) {{
            www_challenge("$td", "0");
            exit;
        }}
        sl_send_reply("200", "OK");
        exit;
    }}
    sl_send_reply("404", "Not Found");
}}
"#
    )
}

/// The link: the registrar's namespace with `PBX`, the host's end with every attacker's
/// address.
fn build_link(ns: &Namespaces) {
    // Left over from a run that was killed.
    let _ = Command::new("ip")
        .args(["link", "del", HOST_IF])
        .stderr(Stdio::null())
        .status();
    let pbx = ns.name(0);
    ip(&[
        "link", "add", HOST_IF, "type", "veth", "peer", "name", PBX_IF, "netns", pbx,
    ]);
    ip(&[
        "-n",
        pbx,
        "addr",
        "add",
        &format!("{PBX}/24"),
        "dev",
        PBX_IF,
    ]);
    ip(&["-n", pbx, "link", "set", PBX_IF, "up"]);
    for attack in &ATTACKS {
        let address = format!("{}/24", attack.address);
        ip(&["addr", "add", &address, "dev", HOST_IF]);
    }
    ip(&["link", "set", HOST_IF, "up"]);
}

/// Runs one attack, bounded: sipvicious scans 200 extensions or tries 12 passwords, sipsak
/// sends 400 OPTIONS; each is given up after a minute. Its packets leave from its address
/// (the route to the registrar says so: svwar and svcrack bind to every address).
fn run_attack(attack: &Attack, dir: &Path) {
    ip(&[
        "route",
        "replace",
        &format!("{PBX}/32"),
        "dev",
        HOST_IF,
        "src",
        attack.address,
    ]);
    let words = dir.join("words");
    std::fs::write(&words, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\n").expect("a word list");
    let mut command = Command::new("timeout");
    command.args(["60", attack.tool]);
    match attack.tool {
        "svmap" => command.args(["-b", attack.address, "-p", "5060", PBX]),
        "svwar" => command.args(["-e100-299", PBX]),
        "svcrack" => command.args(["-u", "100", "-d", utf8(&words), PBX]),
        _ => command.args([
            "-F",
            "-e",
            "400",
            "--local-ip",
            attack.address,
            "-s",
            &format!("sip:100@{PBX}"),
        ]),
    };
    let log = std::fs::File::create(dir.join(format!("{}.log", attack.tool))).expect("a log");
    let package = if attack.tool == "sipsak" {
        "sipsak"
    } else {
        "sipvicious"
    };
    // sipvicious keeps its sessions in ~/.sipvicious: the test's directory.
    let ran = command
        .env("HOME", dir)
        .stdout(log.try_clone().expect("a log"))
        .stderr(log)
        .status();
    // `timeout` is there; whether the tool is shows in its log.
    let status = ran.expect("timeout");
    let said =
        std::fs::read_to_string(dir.join(format!("{}.log", attack.tool))).unwrap_or_default();
    let missing = status.code() == Some(127);
    let _: Option<()> = installed(
        attack.tool,
        package,
        if missing {
            Err(std::io::Error::other(said.clone()))
        } else {
            Ok(())
        },
    );
    assert_ne!(
        status.code(),
        Some(124),
        "{} ran for a minute: {said}",
        attack.tool
    );
}

/// A syslog server for one test: a UDP socket on loopback that keeps what it is sent
/// until read (a few dozen messages fit its buffer).
struct SyslogServer(std::net::UdpSocket);

impl SyslogServer {
    fn new() -> Self {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("a timeout");
        Self(socket)
    }

    /// What `--alerts-syslog` takes to send here.
    fn target(&self) -> String {
        format!("udp://{}", self.0.local_addr().expect("address"))
    }

    /// The messages received so far, written one a line to `file`.
    fn messages(&self, file: &Path) -> Vec<String> {
        let mut buf = [0; 65536];
        let mut messages = Vec::new();
        while let Ok(n) = self.0.recv(&mut buf) {
            messages.push(text(&buf[..n]));
        }
        let mut lines = messages.join("\n");
        lines.push('\n');
        std::fs::write(file, lines).expect("a syslog file");
        messages
    }
}

/// fail2ban-regex of `log` (a file or one line) with the shipped filter: (matched, missed).
fn fail2ban(log: &str) -> Option<(u64, u64)> {
    let filter = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/fail2ban/spycraft.conf");
    let out = installed(
        "fail2ban-regex",
        "fail2ban",
        Command::new("fail2ban-regex")
            .arg(log)
            .arg(&filter)
            .output(),
    )?;
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    let line = said
        .lines()
        .find(|l| l.starts_with("Lines: "))
        .unwrap_or_else(|| panic!("no count: {said}"));
    let number = |after: &str| -> u64 {
        let before = line.split(after).next().expect("a part");
        let n = before.rsplit(' ').next().expect("a number");
        n.parse().unwrap_or_else(|_| panic!("{line}"))
    };
    Some((number(" matched"), number(" missed")))
}

/// `/metrics`, `/api/v1/alerts` and the alerts page show what the alert log holds.
fn shown_while_running(http: std::net::SocketAddr, log: &Path) {
    use support::http::{get, sample};
    let (_, metrics) = get(http, "/metrics");
    let (_, api) = get(http, "/api/v1/alerts");
    let (status, page) = get(http, "/alerts");
    let written: Vec<Value> = std::fs::read_to_string(log)
        .expect("alerts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an alert"))
        .collect();
    for rule in [
        "scanner",
        "enumeration",
        "brute_force",
        "spraying",
        "options_flood",
    ] {
        let n = written
            .iter()
            .filter(|a| a["alert"]["rule"] == rule)
            .count();
        let series = format!("spycraft_alerts_total{{rule=\"{rule}\"}}");
        assert_eq!(
            sample(&metrics, &series),
            Some(n as f64),
            "{series}\n{metrics}"
        );
    }
    let api: Value = serde_json::from_str(&api).expect("JSON");
    assert_eq!(api["enabled"], true);
    let listed = api["alerts"].as_array().expect("alerts");
    assert_eq!(listed.len(), written.len());
    assert_eq!(listed.first(), written.last(), "newest first, as written");
    assert_eq!(status, 200);
    for attack in &ATTACKS {
        assert!(page.contains(attack.address), "{page}");
    }
    assert!(page.contains("options_flood"), "{page}");
}

/// The first time (µs) a packet from `address` is in `pcap`.
fn first_packet(pcap: &Path, address: &str) -> i64 {
    let out = Command::new("tcpdump")
        .args([
            "-r",
            utf8(pcap),
            "-n",
            "-tt",
            "-c",
            "1",
            "src",
            "host",
            address,
        ])
        .output()
        .expect("tcpdump");
    let line = text(&out.stdout);
    let secs: f64 = line
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no packet from {address}: {line}"));
    (secs * 1e6).round() as i64
}

/// The first alert of each (rule, source) in an alert file: its count and time (µs).
fn first_alerts(path: &Path) -> BTreeMap<(String, String), (u64, i64)> {
    let text = std::fs::read_to_string(path).expect("an alert file");
    let mut first = BTreeMap::new();
    for line in text.lines() {
        let alert: Value = serde_json::from_str(line).expect("an alert");
        assert_eq!(alert["event_type"], "alert", "{line}");
        if alert["repeat"] == true {
            continue;
        }
        let key = (
            alert["alert"]["rule"].as_str().expect("a rule").to_owned(),
            alert["src_ip"].as_str().expect("a source").to_owned(),
        );
        let value = (
            alert["count"].as_u64().expect("a count"),
            micros(alert["timestamp"].as_str().expect("a time")),
        );
        assert!(
            first.insert(key, value).is_none(),
            "a second first alert: {line}"
        );
    }
    first
}

#[test]
fn attack_tools_raise_their_alerts_live_and_from_the_capture() {
    if !may_capture() {
        return;
    }
    let dir = scratch("alerts-attacks");
    let ns = Namespaces::new(&["sc-ids-pbx"]);
    build_link(&ns);
    let Some(_registrar) = Kamailio::start_in(
        Some(ns.name(0)),
        &dir.join("kamailio"),
        &registrar_config(),
        5060,
    ) else {
        return;
    };
    let pcap = dir.join("attacks.pcap");
    let tcpdump = Tcpdump::start_on(HOST_IF, &pcap, "udp port 5060");
    let live = dir.join("live.jsonl");
    let syslog = SyslogServer::new();
    let mut sensor = Command::new(env!("CARGO_BIN_EXE_spycraft"))
        .args([
            "capture", "-i", HOST_IF, "--mode", "socket", "--ports", "5060",
        ])
        .args(["--alerts-syslog", &syslog.target(), "--http", "127.0.0.1:0"])
        .args([
            "--format",
            "jsonl",
            "-o",
            "/dev/null",
            "--alerts",
            utf8(&live),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spycraft");
    let said = Said::new(sensor.stderr.take().expect("stderr"));
    let sensor = Reaped::spawn_from(sensor);
    let capturing = format!("capturing on {HOST_IF}");
    let seen = said.wait_for(&capturing, Duration::from_secs(10));
    let http =
        support::http::serving_addr_in(&seen).unwrap_or_else(|| support::http::serving_addr(&said));

    for attack in &ATTACKS {
        run_attack(attack, &dir);
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_millis(500));
    shown_while_running(http, &live);
    interrupt(sensor.child());
    let status = sensor.output().status;
    let live_said = said.rest().join("\n");
    assert!(status.success(), "{status}: {live_said}");
    tcpdump.stop();

    let offline = dir.join("offline.jsonl");
    let out = spycraft(&[
        "analyze",
        "--ports",
        "5060",
        "-o",
        "/dev/null",
        "--alerts",
        utf8(&offline),
        utf8(&pcap),
    ]);
    let offline_said = text(&out.stderr);
    assert!(out.status.success(), "{offline_said}");

    let want: Vec<(String, String)> = ATTACKS
        .iter()
        .flat_map(|a| {
            a.rules
                .iter()
                .map(|r| (r.to_string(), a.address.to_owned()))
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let from_capture = first_alerts(&offline);
    let from_wire = first_alerts(&live);
    assert_eq!(
        from_capture.keys().cloned().collect::<Vec<_>>(),
        want,
        "analyze: {offline_said}"
    );
    assert_eq!(
        from_wire.keys().cloned().collect::<Vec<_>>(),
        want,
        "capture: {live_said}"
    );
    for (key, (count, at)) in &from_capture {
        let started = first_packet(&pcap, &key.1);
        let after = at - started;
        assert!(
            (0..=1_000_000).contains(&after),
            "{key:?} raised {after} µs after the attack's first packet"
        );
        let (live_count, live_at) = from_wire[key];
        assert_eq!(live_count, *count, "{key:?}: live and offline count alike");
        assert!(
            (live_at - at).abs() <= 20_000,
            "{key:?}: live at {live_at}, offline at {at}"
        );
    }

    // Syslog got every alert, and the shipped fail2ban filter matches each, naming only
    // the attackers.
    let syslog_file = dir.join("syslog.log");
    let messages = syslog.messages(&syslog_file);
    let written = std::fs::read_to_string(&live)
        .expect("alerts")
        .lines()
        .count();
    assert_eq!(messages.len(), written, "{messages:?}");
    for message in &messages {
        let source = message
            .split(" src=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .expect("a source");
        assert!(ATTACKS.iter().any(|a| a.address == source), "{message}");
    }
    if let Some(counts) = fail2ban(utf8(&syslog_file)) {
        assert_eq!(counts, (written as u64, 0), "{messages:?}");
    }
}

/// `analyze --alerts` of `pcap` (with the settings file `config`, if any): the alerts.
fn alerts_of(dir: &Path, pcap: &[u8], config: Option<&str>) -> Vec<Value> {
    let capture = dir.join("calls.pcap");
    std::fs::write(&capture, pcap).expect("a capture");
    let alerts = dir.join("alerts.jsonl");
    let _ = std::fs::remove_file(&alerts);
    let settings = dir.join("spycraft.toml");
    let syslog = SyslogServer::new();
    let target = syslog.target();
    let mut args = vec![
        "analyze",
        "--alerts-syslog",
        &target,
        "-q",
        "-o",
        "/dev/null",
        "--alerts",
        utf8(&alerts),
    ];
    if let Some(config) = config {
        std::fs::write(&settings, config).expect("a settings file");
        args.extend(["--config", utf8(&settings)]);
    }
    args.push(utf8(&capture));
    let out = spycraft(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let alerts: Vec<Value> = std::fs::read_to_string(&alerts)
        .expect("alerts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an alert"))
        .collect();
    // Toll fraud comes from an account's own PBX: syslog has it, fail2ban leaves it alone.
    let syslog_file = dir.join("syslog.log");
    let messages = syslog.messages(&syslog_file);
    assert_eq!(messages.len(), alerts.len(), "{messages:?}");
    if let Some(counts) = fail2ban(utf8(&syslog_file)) {
        assert_eq!(counts, (0, alerts.len() as u64), "{messages:?}");
    }
    alerts
}

/// Rule, count, time and repeat of each alert.
fn shown(alerts: &[Value]) -> Vec<(String, u64, String, bool)> {
    alerts
        .iter()
        .map(|a| {
            (
                a["alert"]["rule"].as_str().expect("rule").to_owned(),
                a["count"].as_u64().expect("count"),
                a["timestamp"].as_str().expect("time").to_owned(),
                a["repeat"] == true,
            )
        })
        .collect()
}

#[test]
fn toll_fraud_patterns_fire_exactly_their_rules_at_the_call_that_crosses_the_line() {
    let dir = scratch("alerts-toll-fraud");
    let pbx = |_| {
        let caller: std::net::SocketAddr = "192.0.2.10:5060".parse().expect("address");
        (caller, "198.51.100.1:5060".parse().expect("address"))
    };
    // Twelve calls of one account to +44 numbers, 10 ms apart: the tenth (at 90 ms) fires.
    let burst = support::calls::pcap_of_account_calls(12, &pbx, &|_| "acct1".into(), &|n| {
        format!("0044207946{n:04}")
    });
    // And at the end of the run, the two calls since.
    assert_eq!(
        shown(&alerts_of(&dir, &burst, None)),
        [
            (
                "premium_calls".into(),
                10,
                "2026-01-01T00:00:00.090000Z".into(),
                false
            ),
            (
                "premium_calls".into(),
                2,
                "2026-01-01T00:00:00.110000Z".into(),
                true
            )
        ]
    );
    // Fifty calls up at once (each lasts 2 s): the fortieth, at 390 ms, crosses the limit.
    let concurrent = support::calls::pcap_of_account_calls(50, &pbx, &|_| "acct2".into(), &|n| {
        format!("5550{n:03}")
    });
    let alerts = alerts_of(&dir, &concurrent, None);
    assert_eq!(
        shown(&alerts[..1]),
        [(
            "concurrent_calls".into(),
            40,
            "2026-01-01T00:00:00.390000Z".into(),
            false
        )]
    );
    assert_eq!(alerts[0]["src_ip"], "192.0.2.10");
    assert_eq!(alerts[0]["sip"]["from_user"], "acct2");
    assert!(
        alerts[1..]
            .iter()
            .all(|a| a["alert"]["rule"] == "concurrent_calls" && a["repeat"] == true),
        "then only the summary of the rest: {alerts:?}"
    );
    // The settings file changes a rule: calls over one second are long here.
    let config = "[[alert]]\nrule = \"long_call\"\nthreshold = 1\n\
                  [[alert]]\nrule = \"premium_calls\"\nenabled = false\n";
    let alerts = alerts_of(&dir, &burst, Some(config));
    let rules: Vec<String> = shown(&alerts)
        .into_iter()
        .map(|a| format!("{} {} {}", a.0, a.1, a.3))
        .collect();
    assert_eq!(rules, ["long_call 1 false", "long_call 11 true"]);
}

#[test]
fn the_fail2ban_filter_reads_the_line_as_a_syslog_daemon_writes_it() {
    let line = "Dec  4 20:56:00 sbc1 spycraft[4242]: alert rule=brute_force sid=8100003 \
                severity=1 src=192.0.2.66 src_port=5060 dest=198.51.100.1 dest_port=5060 \
                count=10 repeat=false call_id=\"x\" user_agent=\"\" signature=\"s\"";
    if let Some(counts) = fail2ban(line) {
        assert_eq!(counts, (1, 0));
    }
    let toll = line.replace("rule=brute_force sid=8100003", "rule=long_call sid=8100011");
    if let Some(counts) = fail2ban(&toll) {
        assert_eq!(counts, (0, 1));
    }
}

#[test]
fn the_bundled_captures_raise_no_alert() {
    let dir = scratch("alerts-bundled");
    let alerts = dir.join("alerts.jsonl");
    let mut args = vec!["analyze", "-o", "/dev/null", "--alerts", utf8(&alerts)];
    let captures: Vec<_> = support::bundled_cases()
        .iter()
        .map(|case| support::bundled(case))
        .collect();
    args.extend(captures.iter().map(|p| utf8(p)));
    let out = spycraft(&args);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("alerts: 0 raised; "), "{said}");
    assert!(said.contains(": 0 written"), "{said}");
    assert_eq!(std::fs::read_to_string(&alerts).expect("the file"), "");
}

#[test]
fn a_source_of_malformed_messages_is_named_on_either_thread_plan() {
    let dir = scratch("alerts-malformed");
    let from: std::net::SocketAddr = "192.0.2.77:5060".parse().expect("address");
    let to: std::net::SocketAddr = "198.51.100.1:5060".parse().expect("address");
    // Each different: the same bytes again within a moment are dropped as a mirror's copy.
    let texts: Vec<String> = (0..60u64)
        .map(|n| match n % 2 {
            0 => format!(
                "INVITE sip:bob{n}@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.77\r\n\
                 From: <sip:a@x>;tag={n}\r\nCSeq: 1 INVITE\r\n\r\n"
            ),
            _ => format!("HELLO sip:bob{n}@198.51.100.1 FTP/1.0\r\nVia: nothing at all\r\n\r\n"),
        })
        .collect();
    let datagrams: Vec<(u64, std::net::SocketAddr, std::net::SocketAddr, &[u8])> = texts
        .iter()
        .zip(0u64..)
        .map(|(text, n)| (n * 10_000, from, to, text.as_bytes()))
        .collect();
    let pcap = support::calls::pcap_of_datagrams(&datagrams);
    for threads in ["1", "2"] {
        let config = format!("[calls]\nthreads = {threads}\n");
        let alerts = alerts_of(&dir, &pcap, Some(&config));
        assert_eq!(
            shown(&alerts),
            [
                (
                    "malformed".into(),
                    50,
                    "2026-01-01T00:00:00.490000Z".into(),
                    false
                ),
                (
                    "malformed".into(),
                    10,
                    "2026-01-01T00:00:00.590000Z".into(),
                    true
                )
            ],
            "threads {threads}"
        );
        assert_eq!(alerts[0]["src_ip"], "192.0.2.77");
        assert_eq!(alerts[0]["sip"], Value::Null);
    }
}

#[test]
fn alerts_reach_homer_as_hep_logs_tied_to_their_call() {
    let dir = scratch("alerts-hep");
    let homer = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    homer
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("a timeout");
    let hep = format!("udp://{}", homer.local_addr().expect("address"));
    let burst = support::calls::pcap_of_account_calls(
        12,
        &|_| {
            (
                "192.0.2.10:5060".parse().expect("address"),
                "198.51.100.1:5060".parse().expect("address"),
            )
        },
        &|_| "acct1".into(),
        &|n| format!("0044207946{n:04}"),
    );
    let capture = dir.join("burst.pcap");
    std::fs::write(&capture, burst).expect("a capture");
    let alerts = dir.join("alerts.jsonl");
    let out = spycraft(&[
        "analyze",
        "-o",
        "/dev/null",
        "--alerts",
        utf8(&alerts),
        "--hep",
        &hep,
        utf8(&capture),
    ]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("HEP logs: 2 written"), "{said}");
    let mut buf = [0; 65536];
    let mut logs = Vec::new();
    let mut sip = 0;
    while let Ok(n) = homer.recv(&mut buf) {
        let packet = spycraft::hep::decode(&buf[..n]).expect("a HEP packet");
        match packet.protocol_type {
            spycraft::hep::PROTOCOL_LOG => logs.push((
                packet.correlation_id.map(text),
                serde_json::from_slice::<Value>(packet.payload).expect("JSON"),
            )),
            spycraft::hep::PROTOCOL_SIP => sip += 1,
            other => panic!("type {other}"),
        }
    }
    assert_eq!(sip, 60, "every message of the twelve calls");
    let written: Vec<Value> = std::fs::read_to_string(&alerts)
        .expect("alerts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an alert"))
        .collect();
    // A summary at the end of the run has no message, so no call.
    let want: Vec<(Option<String>, Value)> = written
        .into_iter()
        .map(|a| (a["sip"]["call_id"].as_str().map(str::to_owned), a))
        .collect();
    assert_eq!(logs, want, "each alert as its log line, tied to its call");
    assert_eq!(
        logs[0].0.as_deref(),
        Some("call-9@spycraft.test"),
        "the tenth call fired"
    );
}

#[test]
fn syslog_also_goes_to_a_local_socket() {
    let dir = scratch("alerts-unix-syslog");
    let path = dir.join("log.sock");
    let daemon = std::os::unix::net::UnixDatagram::bind(&path).expect("a socket");
    daemon
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("a timeout");
    let burst = support::calls::pcap_of_account_calls(
        12,
        &|_| {
            (
                "192.0.2.10:5060".parse().expect("address"),
                "198.51.100.1:5060".parse().expect("address"),
            )
        },
        &|_| "acct1".into(),
        &|n| format!("0044207946{n:04}"),
    );
    let capture = dir.join("burst.pcap");
    std::fs::write(&capture, burst).expect("a capture");
    let target = format!("unix:{}", utf8(&path));
    let out = spycraft(&[
        "analyze",
        "-o",
        "/dev/null",
        "--node",
        "sbc 1",
        "--alerts-syslog",
        &target,
        utf8(&capture),
    ]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("syslog {target}: 2 written")),
        "{said}"
    );
    let mut buf = [0; 4096];
    let n = daemon.recv(&mut buf).expect("a message");
    let message = text(&buf[..n]);
    // local0.crit (premium_calls is severity 1), RFC 5424, the node without its space.
    assert!(
        message.starts_with("<130>1 2026-01-01T00:00:00.090000Z sbc-1 spycraft "),
        "{message}"
    );
    assert!(
        message
            .contains(" alert - alert rule=premium_calls sid=8100008 severity=1 src=192.0.2.10 "),
        "{message}"
    );
    // A socket nobody listens on is refused at the start, named.
    drop(daemon);
    let out = spycraft(&[
        "analyze",
        "-o",
        "/dev/null",
        "--alerts-syslog",
        &target,
        utf8(&capture),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("--alerts-syslog {target}")),
        "{}",
        text(&out.stderr)
    );
}
