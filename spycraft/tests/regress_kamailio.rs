// SPDX-License-Identifier: AGPL-3.0-or-later
//! A regression run against a SIP platform, as an engineer testing a dial-plan change does
//! it: the same sipp calls through a Kamailio proxy, captured by tcpdump, run after run.
//! A re-run makes new Call-IDs, so it passes only when paired with `--match-on`; a run with
//! the proxy's failure route changed (486 turned into 603) fails, naming exactly the busy
//! calls.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::kamailio::{preamble, proxy_route, Kamailio};
use support::process::{may_capture, Reaped, Tcpdump};
use support::{records, scratch, spycraft, text, utf8};

/// Where the proxy listens.
const PROXY: u16 = 25400;

/// Callee scenario, caller scenario, callee port, caller port, and the user dialled: an
/// answered call, a busy callee, and a caller who gives up while it rings.
const KINDS: [(&str, &str, u16, u16, &str); 3] = [
    ("uas-answer.xml", "uac-answer.xml", 25401, 25402, "answer"),
    (
        "uas-busy.xml",
        "uac-reject-via-proxy.xml",
        25403,
        25404,
        "busy",
    ),
    ("uas-cancel.xml", "uac-cancel.xml", 25405, 25406, "cancel"),
];

/// Calls of each kind in a run.
const CALLS_PER_KIND: u32 = 10;

/// A stateful proxy relaying each call to its Request-URI; with `declines_busy` its
/// failure route gives the caller 603 Decline where the callee said 486 Busy Here.
fn proxy_config(declines_busy: bool) -> String {
    let preamble = preamble(&format!("udp:127.0.0.1:{PROXY}"));
    let (arm, failure_route) = if declines_busy {
        (
            "t_on_failure(\"DECLINE_BUSY\");",
            "failure_route[DECLINE_BUSY] {\n    if (t_check_status(\"486\")) {\n        \
             t_reply(\"603\", \"Decline\");\n    }\n}\n",
        )
    } else {
        ("", "")
    };
    let route = proxy_route(arm);
    format!(
        r#"{preamble}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "siputils.so"
loadmodule "textops.so"

{route}
{failure_route}"#
    )
}

/// One run: the proxy started with `proxy_config(declines_busy)`, the calls of every kind
/// through it, all of it captured by tcpdump into `<name>.pcap`; `None` when Kamailio is
/// not installed here (outside CI).
fn run_through_proxy(dir: &Path, name: &str, declines_busy: bool) -> Option<PathBuf> {
    let pcap = dir.join(format!("{name}.pcap"));
    let mut ports = vec![PROXY.to_string()];
    for (_, _, callee, caller, _) in KINDS {
        ports.extend([callee.to_string(), caller.to_string()]);
    }
    let filter = spycraft(&["filter", "--expression", "--ports", &ports.join(",")]);
    let tcpdump = Tcpdump::start(&pcap, text(&filter.stdout).trim());
    let proxy = Kamailio::start(&dir.join(name), &proxy_config(declines_busy), PROXY)?;
    let sipp = |script: &str, port: u16| {
        support::process::sipp(
            Command::new("sipp"),
            script,
            "127.0.0.1",
            port,
            CALLS_PER_KIND,
        )
    };
    let callees: Vec<Reaped> = KINDS
        .iter()
        .map(|(uas, _, port, _, _)| Reaped::spawn(&mut sipp(uas, *port)))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let proxy_address = format!("127.0.0.1:{PROXY}");
    let callers: Vec<Reaped> = KINDS
        .iter()
        .map(|(_, uac, callee, port, user)| {
            Reaped::spawn(
                sipp(uac, *port)
                    .args(["-s", user, "-rsa", &proxy_address])
                    .arg(format!("127.0.0.1:{callee}")),
            )
        })
        .collect();
    let scripts = KINDS.iter().map(|k| k.1).chain(KINDS.iter().map(|k| k.0));
    for (sipp, script) in callers.into_iter().chain(callees).zip(scripts) {
        let status = sipp.output().status;
        assert!(status.success(), "sipp {script}: {status}\n{}", proxy.log());
    }
    drop(proxy);
    std::thread::sleep(std::time::Duration::from_millis(300));
    tcpdump.stop();
    Some(pcap)
}

/// `spycraft analyze --expect EXPECTED` of `pcap` with `options`.
fn expect(expected: &Path, pcap: &Path, options: &[&str]) -> Output {
    let mut args = vec!["analyze", "-o", "/dev/null", "--expect", utf8(expected)];
    args.extend_from_slice(options);
    args.push(utf8(pcap));
    spycraft(&args)
}

#[test]
fn a_proxy_rerun_matches_its_expected_calls_and_a_changed_failure_route_does_not() {
    if !may_capture() {
        return;
    }
    let dir = scratch("regress-kamailio");
    let Some(baseline) = run_through_proxy(&dir, "baseline", false) else {
        return;
    };
    // The expected file, as an engineer writes it once and reviews it.
    let expected = dir.join("expected.jsonl");
    let out = spycraft(&[
        "analyze",
        "-q",
        "--format",
        "jsonl",
        "--stable",
        "-o",
        utf8(&expected),
        utf8(&baseline),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(&expected).expect("the expected file");
    let mut dispositions = BTreeMap::new();
    for record in records(&written).values() {
        *dispositions
            .entry(
                record["disposition"]
                    .as_str()
                    .expect("a disposition")
                    .to_owned(),
            )
            .or_insert(0) += 1;
    }
    assert_eq!(
        dispositions,
        BTreeMap::from([
            ("answered".to_owned(), 10),
            ("busy".to_owned(), 10),
            ("cancelled".to_owned(), 10)
        ]),
        "{written}"
    );

    // The same calls again: new Call-IDs, so only fields that survive a run pair them.
    let rerun = run_through_proxy(&dir, "rerun", false).expect("Kamailio ran once");
    let match_on = ["--match-on", "from_user,to_user,invite_order"];
    let out = expect(&expected, &rerun, &match_on);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("30 calls as expected, 0 changed, 0 missing, 0 extra"),
        "{said}"
    );
    let out = expect(&expected, &rerun, &[]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(
        said.contains("0 calls as expected, 0 changed, 30 missing, 30 extra"),
        "paired by dialog, no call of the re-run is found: {said}"
    );

    // The dial-plan change: exactly the busy calls differ, each by its status.
    let declined = run_through_proxy(&dir, "declined", true).expect("Kamailio ran twice");
    let report = dir.join("report.json");
    let report_to = format!("json:{}", utf8(&report));
    let mut options = match_on.to_vec();
    options.extend(["--report", &report_to]);
    let out = expect(&expected, &declined, &options);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(
        said.contains("20 calls as expected, 10 changed, 0 missing, 0 extra"),
        "{said}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("a report")).expect("JSON");
    let mut changed: Vec<(String, String)> = report["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter(|call| call["outcome"] != "as_expected")
        .map(|call| {
            (
                call["call"].as_str().expect("a key").to_owned(),
                call["changes"].to_string(),
            )
        })
        .collect();
    changed.sort();
    // A 603 is a final refusal: the disposition follows the status the caller got.
    let mut want: Vec<(String, String)> = (1..=CALLS_PER_KIND)
        .map(|n| {
            (
                format!("alice / busy / #{n}"),
                serde_json::json!([
                    {"field": "disposition", "expected": "busy", "got": "failed"},
                    {"field": "final_status", "expected": 486, "got": 603},
                ])
                .to_string(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(changed, want, "{said}");

    // Answered, busy and cancelled calls through a proxy are no attack: no alert.
    for run in [&baseline, &rerun, &declined] {
        let out = spycraft(&["analyze", "-o", "/dev/null", "--alerts", "-", utf8(run)]);
        assert_eq!(text(&out.stdout), "", "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("alerts: 0 raised"));
    }
}
