// SPDX-License-Identifier: AGPL-3.0-or-later
//! RADIUS accounting against Debian's FreeRADIUS, started here in the foreground with a
//! throwaway configuration: a client with a test secret, the `detail` module writing every
//! request it takes, and a cache that drops a request whose Acct-Session-Id and status it
//! has already written (what a billing server does with a replay). sipp places 300 calls
//! (answered, busy, cancelled, not answered) on loopback under tcpdump; spycraft analyses
//! that capture into the server, through an outage, and through a SIGKILL and restart.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::http::{get, sample, serving_addr};
use support::process::{interrupt, may_capture, place_calls, Reaped, Said, Tcpdump};
use support::{scratch, spycraft, text, utf8};

/// The secret the server and spycraft share.
const SECRET: &str = "testing123";

/// Callee scenario, caller scenario, callee port, caller port: answered, busy, cancelled
/// while ringing, and not answered (408 after 3 s of ringing).
const KINDS: [(&str, &str, u16, u16); 4] = [
    ("uas-answer.xml", "uac-answer.xml", 25280, 25281),
    ("uas-busy.xml", "uac-reject.xml", 25282, 25283),
    ("uas-cancel.xml", "uac-cancel.xml", 25284, 25285),
    ("uas-timeout.xml", "uac-reject.xml", 25286, 25287),
];

/// 300 calls in all.
const CALLS_PER_KIND: u32 = 75;

/// FreeRADIUS in the foreground (`-X`), killed when dropped.
struct FreeRadius {
    child: Reaped,
    dir: PathBuf,
    port: u16,
}

impl FreeRadius {
    fn start(dir: &Path, port: u16) -> Option<Self> {
        std::fs::create_dir_all(dir.join("radacct")).expect("a directory");
        std::fs::create_dir_all(dir.join("run")).expect("a directory");
        std::fs::write(dir.join("radiusd.conf"), config(dir, port)).expect("config");
        // Kamailio acc_radius's attributes, under names of their own: FreeRADIUS's
        // dictionary.openser cannot be loaded beside the default ones (Sip-Method is taken).
        std::fs::write(dir.join("dictionary"), KAMAILIO_DICTIONARY).expect("dictionary");
        let log = std::fs::File::create(dir.join("radiusd.log")).expect("a log");
        let child = support::process::installed(
            "freeradius",
            "freeradius",
            Command::new("freeradius")
                .args(["-X", "-d", utf8(dir)])
                .stdout(log)
                .stderr(Stdio::null())
                .spawn(),
        )?;
        let server = Self {
            child: Reaped::spawn_from(child),
            dir: dir.to_owned(),
            port,
        };
        let until = Instant::now() + Duration::from_secs(20);
        while !server.log().contains("Ready to process requests") {
            assert!(
                Instant::now() < until,
                "FreeRADIUS did not start:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("radiusd.log")).unwrap_or_default()
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.child().id().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// The requests the detail file holds, each as attribute → value (quotes removed).
    fn detail(&self) -> Vec<BTreeMap<String, String>> {
        let text = std::fs::read_to_string(self.dir.join("radacct/detail")).unwrap_or_default();
        text.split("\n\n")
            .filter(|block| !block.trim().is_empty())
            .map(|block| {
                block
                    .lines()
                    .skip(1)
                    .filter_map(|line| line.trim().split_once(" = "))
                    .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                    .collect()
            })
            .collect()
    }
}

/// The numbers of Kamailio's acc_radius attributes (dictionary.openser).
const KAMAILIO_DICTIONARY: &str = "ATTRIBUTE\tAcc-Sip-Method\t101\tinteger
ATTRIBUTE\tAcc-Sip-Response-Code\t102\tinteger
ATTRIBUTE\tAcc-Sip-To-Tag\t104\tstring
ATTRIBUTE\tAcc-Sip-From-Tag\t105\tstring
ATTRIBUTE\tAcc-Sip-Src-IP\t108\tstring
";

/// A server that writes each accounting request once to `radacct/detail`.
fn config(dir: &Path, port: u16) -> String {
    let dir = utf8(dir);
    format!(
        r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
raddbdir = {dir}
confdir = {dir}
logdir = {dir}
radacctdir = {dir}/radacct
run_dir = {dir}/run
db_dir = {dir}
libdir = /usr/lib/freeradius
pidfile = {dir}/run/radiusd.pid
name = freeradius
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no
log {{
    destination = stdout
    colourise = no
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = no
}}
client spycraft {{
    ipaddr = 127.0.0.1
    secret = {SECRET}
}}
modules {{
    detail {{
        filename = ${{radacctdir}}/detail
        escape_filenames = no
        permissions = 0600
        header = "%t"
    }}
    cache seen {{
        driver = "rlm_cache_rbtree"
        key = "%{{Acct-Session-Id}}-%{{Acct-Status-Type}}-%{{%{{Acct-Session-Time}}:-0}}"
        ttl = 3600
        update {{
            &reply:Reply-Message := "accounted"
        }}
    }}
}}
server spycraft {{
    listen {{
        type = acct
        ipaddr = 127.0.0.1
        port = {port}
    }}
    preacct {{
    }}
    accounting {{
        seen
        if (updated) {{
            detail
        }}
    }}
}}
"#
    )
}

fn sipp(script: &str, port: u16) -> Command {
    let mut sipp = support::process::sipp(
        Command::new("sipp"),
        script,
        "127.0.0.1",
        port,
        CALLS_PER_KIND,
    );
    sipp.args(["-r", "30"]);
    sipp
}

/// tshark printing `fields` of the RADIUS packets in `exchange`, authenticators checked with
/// `secret`. Two passes: on one, a request is shown before tshark has met its response.
fn checked_by_tshark(exchange: &Path, secret: &str, fields: &[&str]) -> Command {
    let mut tshark = Command::new("tshark");
    tshark
        .args(["-2", "-n", "-d", "udp.port==25290,radius", "-r"])
        .arg(exchange)
        .args(["-o", &format!("radius.shared_secret:{secret}")])
        .args(["-o", "radius.validate_authenticator:TRUE", "-T", "fields"]);
    for field in fields {
        tshark.args(["-e", field]);
    }
    tshark
}

fn stop(tcpdump: Tcpdump) {
    std::thread::sleep(Duration::from_millis(300));
    tcpdump.stop();
}

/// The 300 calls, captured.
fn calls(dir: &Path) -> PathBuf {
    let pcap = dir.join("calls.pcap");
    let ports: Vec<String> = KINDS
        .iter()
        .flat_map(|(_, _, a, b)| [a.to_string(), b.to_string()])
        .collect();
    let filter = spycraft(&["filter", "--expression", "--ports", &ports.join(",")]);
    let capture = Tcpdump::start(&pcap, text(&filter.stdout).trim());
    place_calls(&KINDS, sipp, &[]);
    stop(capture);
    pcap
}

/// `analyze` of `pcap` into `server` through `spool`, records also to `records`.
fn analyze(pcap: &Path, server: &FreeRadius, spool: &Path, records: &Path) -> Command {
    analyze_with(pcap, server, spool, records, &[])
}

/// [`analyze`] with `extra` options.
fn analyze_with(
    pcap: &Path,
    server: &FreeRadius,
    spool: &Path,
    records: &Path,
    extra: &[&str],
) -> Command {
    let secret = spool.with_extension("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("secret");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spycraft"));
    cmd.args(["analyze", "--node", "radius-test", "--format", "jsonl"])
        .args(["-o", utf8(records)])
        .args(["--radius", &server.address()])
        .args(["--radius-secret-file", utf8(&secret)])
        .args(["--radius-spool", utf8(spool)])
        .args(["--radius-timeout", "0.5", "--drain-timeout", "60"])
        .args(extra)
        .arg(pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("records")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect()
}

/// Every record has its Stop (and its Start when answered) exactly once in the detail
/// file, with the record's id, billable seconds, parties and cause; with `interims`, an
/// answered one has an Interim-Update for each whole second talked, in order between them.
fn every_record_accounted_once(
    records: &[Value],
    detail: &[BTreeMap<String, String>],
    interims: bool,
) {
    let mut by_key: BTreeMap<(String, String, String), &BTreeMap<String, String>> = BTreeMap::new();
    let mut sequences: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for request in detail {
        let (id, status) = (&request["Acct-Session-Id"], &request["Acct-Status-Type"]);
        let time = match status.as_str() {
            "Interim-Update" => request["Acct-Session-Time"].clone(),
            _ => String::new(),
        };
        let key = (id.clone(), status.clone(), time.clone());
        assert!(
            by_key.insert(key.clone(), request).is_none(),
            "{key:?} twice"
        );
        sequences
            .entry(id)
            .or_default()
            .push(format!("{status} {time}").trim().to_owned());
    }
    let answered: Vec<&Value> = records
        .iter()
        .filter(|r| !r["answer_at"].is_null())
        .collect();
    let talked = |r: &Value| r["billable_ms"].as_u64().expect("billable") / 1000;
    let interim_count: u64 = match interims {
        true => answered.iter().map(|r| talked(r)).sum(),
        false => 0,
    };
    assert_eq!(
        by_key.len() as u64,
        (records.len() + answered.len()) as u64 + interim_count,
        "a Stop each, a Start each answered, an Interim-Update each second talked"
    );
    for r in records {
        let id = r["id"].as_str().expect("an id").to_owned();
        let stop = by_key
            .get(&(id.clone(), "Stop".to_owned(), String::new()))
            .unwrap_or_else(|| panic!("no Stop for {id}"));
        let billable = talked(r);
        assert_eq!(stop["Acct-Session-Time"], billable.to_string(), "{id}");
        assert_eq!(
            stop["Calling-Station-Id"],
            r["from_user"].as_str().expect("from")
        );
        assert_eq!(
            stop["Called-Station-Id"],
            r["to_user"].as_str().expect("to")
        );
        assert_eq!(
            stop["Acct-Multi-Session-Id"],
            r["collation_id"].as_str().expect("id")
        );
        assert_eq!(stop["NAS-Identifier"], "radius-test");
        assert_eq!(stop["NAS-IP-Address"], "127.0.0.1");
        assert_eq!(
            stop["Cisco-AVPair"],
            format!("call-id={}", r["call_id"].as_str().expect("call id"))
        );
        // The record's own Q.850 cause, else RFC 3398's for its outcome, in hex.
        let cause = match (r["q850_cause"].as_u64(), r["disposition"].as_str()) {
            (Some(cause), _) => format!("{cause:X}"),
            (None, Some("answered" | "cancelled")) => "10".into(),
            (None, Some("busy")) => "11".into(),
            (None, Some("no_answer")) => "66".into(),
            (None, other) => panic!("{other:?}"),
        };
        assert_eq!(
            stop["h323-disconnect-cause"],
            format!("h323-disconnect-cause={cause}"),
            "{id}: {}",
            r["disposition"]
        );
        let start = by_key.get(&(id.clone(), "Start".to_owned(), String::new()));
        assert_eq!(start.is_some(), !r["answer_at"].is_null(), "{id}");
        if interims && start.is_some() {
            let mut want = vec!["Start".to_owned()];
            want.extend((1..=billable).map(|s| format!("Interim-Update {s}")));
            want.push("Stop".to_owned());
            assert_eq!(sequences[id.as_str()], want, "{id}");
        }
    }
}

#[test]
fn freeradius_takes_every_record_once_through_an_outage_and_a_kill() {
    if !may_capture() {
        return;
    }
    let dir = scratch("radius");
    let pcap = calls(&dir);

    // 1. Straight through, with the exchange under tcpdump for tshark to check.
    let Some(server) = FreeRadius::start(&dir.join("server-1"), 25290) else {
        return;
    };
    let exchange = dir.join("radius.pcap");
    let capture = Tcpdump::start(&exchange, "udp port 25290");
    let out_1 = dir.join("records-1.jsonl");
    // Serving /metrics a while after the run, to read its request counts.
    // Interim-Updates every second of capture time.
    let mut child = analyze(&pcap, &server, &dir.join("spool-1"), &out_1)
        .args(["--radius-interim", "1"])
        .args(["--http", "127.0.0.1:0", "--linger", "60"])
        .spawn()
        .expect("spycraft");
    let lines = Said::new(child.stderr.take().expect("stderr"));
    let running = Reaped::spawn_from(child);
    let http = serving_addr(&lines);
    let mut said = lines
        .wait_for("RADIUS: 300 records acknowledged", Duration::from_secs(60))
        .join("\n");
    let metrics = get(http, "/metrics").1;
    interrupt(running.child());
    let status = running.output().status;
    said.push('\n');
    said.push_str(&lines.rest().join("\n"));
    stop(capture);
    assert!(status.success(), "{said}");
    let requests = |outcome: &str| {
        let series = format!(
            "spycraft_output_requests_total{{output=\"RADIUS at 127.0.0.1:25290\",outcome=\"{outcome}\"}}"
        );
        sample(&metrics, &series)
    };
    let want = records(&out_1);
    // A Stop each, a Start and an Interim-Update each second for the answered ones.
    let expected = want
        .iter()
        .filter(|r| !r["answer_at"].is_null())
        .map(|r| 1 + r["billable_ms"].as_u64().expect("billable") / 1000)
        .sum::<u64>()
        + 300;
    assert_eq!(requests("sent"), Some(expected as f64), "{metrics}");
    assert_eq!(requests("acknowledged"), Some(expected as f64));
    assert_eq!(requests("bad_authenticator"), Some(0.0));
    assert_eq!(requests("skipped"), Some(0.0));
    assert_eq!(requests("failed"), Some(0.0));
    assert_eq!(want.len(), 300, "{said}");
    let mut dispositions = BTreeMap::new();
    for r in &want {
        *dispositions
            .entry(r["disposition"].as_str().expect("disposition").to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(
        dispositions.values().copied().collect::<Vec<_>>(),
        [75, 75, 75, 75],
        "{dispositions:?}"
    );
    every_record_accounted_once(&want, &server.detail(), true);
    assert!(said.contains("RADIUS: 300 records acknowledged"), "{said}");
    // tshark checks every authenticator, requests and responses, with the secret.
    let tshark = support::process::installed(
        "tshark",
        "tshark",
        checked_by_tshark(
            &exchange,
            SECRET,
            &["radius.code", "radius.authenticator.valid"],
        )
        .output(),
    );
    if let Some(tshark) = tshark {
        let fields = text(&tshark.stdout);
        let lines: Vec<&str> = fields.lines().collect();
        let requests = expected as usize;
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("4\t")).count(),
            requests
        );
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("5\t")).count(),
            requests
        );
        assert!(
            lines.iter().all(|l| l.split('\t').nth(1) == Some("1")),
            "every authenticator valid:\n{fields}"
        );
        // And the check has teeth: with another secret, none is.
        let wrong = checked_by_tshark(&exchange, "wrong", &["radius.authenticator.invalid"])
            .output()
            .expect("tshark");
        let wrong = text(&wrong.stdout);
        assert_eq!(wrong.lines().filter(|l| *l == "1").count(), 2 * requests);
    }
    drop(server);

    // 2. The server stopped for 10 s while spycraft sends: it waits, retries, loses nothing.
    // With Kamailio's attributes too.
    let Some(server) = FreeRadius::start(&dir.join("server-2"), 25291) else {
        return;
    };
    server.signal("-STOP");
    let out_2 = dir.join("records-2.jsonl");
    let running = Reaped::spawn(&mut analyze_with(
        &pcap,
        &server,
        &dir.join("spool-2"),
        &out_2,
        &["--radius-dictionary", "kamailio"],
    ));
    std::thread::sleep(Duration::from_secs(10));
    server.signal("-CONT");
    let out = running.output();
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("WARNING: RADIUS"),
        "the outage is said: {said}"
    );
    assert!(said.contains("RADIUS: 300 records acknowledged"), "{said}");
    assert!(!said.contains(" 0 retransmitted"), "{said}");
    assert!(!said.contains(" 0 unanswered by a server"), "{said}");
    let records_2 = records(&out_2);
    let detail = server.detail();
    every_record_accounted_once(&records_2, &detail, false);
    for r in &records_2 {
        let id = r["id"].as_str().expect("an id");
        let stop = detail
            .iter()
            .find(|d| d["Acct-Session-Id"] == id && d["Acct-Status-Type"] == "Stop")
            .expect("a Stop");
        let method = match r["end_reason"].as_str() {
            Some("bye") => "8",
            Some("cancel") => "2",
            _ => "1",
        };
        assert_eq!(stop["Acc-Sip-Method"], method, "{id}");
        assert_eq!(
            stop["Acc-Sip-From-Tag"],
            r["from_tag"].as_str().expect("tag")
        );
        assert_eq!(stop["Acc-Sip-Src-IP"], r["caller_ip"].as_str().expect("ip"));
        assert_eq!(
            stop["Acc-Sip-Response-Code"],
            r["final_status"].as_u64().expect("status").to_string()
        );
    }
    let plain = std::fs::read_to_string(dir.join("server-1/radacct/detail")).expect("detail");
    assert!(
        !plain.contains("Acc-Sip"),
        "Kamailio's attributes only when asked for"
    );
    drop(server);

    // 3. spycraft killed while the server is away; restarted, it sends what it kept.
    let Some(server) = FreeRadius::start(&dir.join("server-3"), 25292) else {
        return;
    };
    let spool = dir.join("spool-3");
    let out_3 = dir.join("records-3.jsonl");
    let running = Reaped::spawn(&mut analyze(&pcap, &server, &spool, &out_3));
    // Some records reach the server, then it stops answering, then spycraft dies.
    let until = Instant::now() + Duration::from_secs(20);
    while server.detail().len() < 50 {
        assert!(Instant::now() < until, "nothing reached the server");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.signal("-STOP");
    std::thread::sleep(Duration::from_millis(500));
    let pid = running.child().id().to_string();
    Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill");
    drop(running.output());
    server.signal("-CONT");
    let out = analyze(&pcap, &server, &spool, &out_3)
        .output()
        .expect("spycraft");
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("left in spool") && said.contains("will be sent to RADIUS first"),
        "{said}"
    );
    every_record_accounted_once(&records(&out_3), &server.detail(), false);
}

#[test]
fn a_live_capture_starts_accounting_at_the_answer_and_updates_while_the_call_lasts() {
    if !may_capture() {
        return;
    }
    let dir = scratch("radius-live");
    let Some(server) = FreeRadius::start(&dir.join("server"), 25293) else {
        return;
    };
    let secret = dir.join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("secret");
    let out = dir.join("records.jsonl");
    let sensor = Reaped::spawn(
        Command::new(env!("CARGO_BIN_EXE_spycraft"))
            .args([
                "capture",
                "-i",
                "lo",
                "--mode",
                "pcap",
                "--ports",
                "25296,25297",
            ])
            .args([
                "--node",
                "radius-test",
                "--format",
                "jsonl",
                "-o",
                utf8(&out),
            ])
            .args(["--radius", &server.address()])
            .args(["--radius-secret-file", utf8(&secret)])
            .args(["--radius-spool", utf8(&dir.join("spool"))])
            .args(["--radius-interim", "1", "--radius-timeout", "0.5"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    std::thread::sleep(Duration::from_millis(1500));
    // Three calls of 3 s talk each.
    let call = |script: &str, port: u16| {
        support::process::sipp(Command::new("sipp"), script, "127.0.0.1", port, 3)
    };
    place_calls(
        &[("uas-answer.xml", "uac-answer.xml", 25296, 25297)],
        call,
        &[],
    );
    std::thread::sleep(Duration::from_millis(500));
    interrupt(sensor.child());
    let done = sensor.output();
    let said = text(&done.stderr);
    assert!(done.status.success(), "{said}");
    let records = records(&out);
    assert_eq!(records.len(), 3, "{said}");
    let detail = server.detail();
    every_record_accounted_once(&records, &detail, true);
    // The server heard of each call while it lasted: the Start and the first
    // Interim-Update came (by the server's clock, whole seconds) before the call's end.
    for r in &records {
        let id = r["id"].as_str().expect("an id");
        let end = r["end_at"].as_str().expect("an end");
        let end_secs = support::hep::micros(end).div_euclid(1_000_000);
        let heard = |status: &str, session_time: Option<&str>| {
            let request = detail
                .iter()
                .find(|d| {
                    d["Acct-Session-Id"] == id
                        && d["Acct-Status-Type"] == status
                        && session_time.is_none_or(|t| d["Acct-Session-Time"] == t)
                })
                .unwrap_or_else(|| panic!("{id}: no {status}"));
            assert_eq!(
                request["Acct-Delay-Time"], "0",
                "{id}: {status} sent at once"
            );
            request["Timestamp"]
                .parse::<i64>()
                .expect("the server's time")
        };
        assert!(
            heard("Start", None) + 2 <= end_secs,
            "{id}: Start at the answer"
        );
        assert!(
            heard("Interim-Update", Some("1")) < end_secs,
            "{id}: Interim-Update"
        );
        assert!(heard("Stop", None) >= end_secs, "{id}: Stop at the end");
    }
}
