// SPDX-License-Identifier: AGPL-3.0-or-later
//! The bundled captures in `pcaps/`: every record equals `expected.jsonl` field by field, and
//! every case's outcome matches this hand-written table (so a regenerated golden file that
//! went wrong cannot pass unnoticed).

use std::path::PathBuf;

use serde_json::Value;
use spycraft_tests::analyze;

fn case_dir(name: &str) -> PathBuf {
    spycraft_tests::pcaps().join(name)
}

fn records_of(name: &str) -> Vec<Value> {
    let (records, _) = analyze(&[case_dir(name).join("capture.pcap")]);
    records
        .iter()
        .map(|r| serde_json::to_value(r).expect("records serialise"))
        .collect()
}

#[test]
fn every_case_matches_its_expected_records_field_by_field() {
    for dir in spycraft_tests::bundled_cases()
        .iter()
        .map(|case| spycraft_tests::pcaps().join(case))
    {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let expected: Vec<Value> = std::fs::read_to_string(dir.join("expected.jsonl"))
            .expect("expected.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("expected.jsonl is JSON lines"))
            .collect();
        let actual = records_of(&name);
        assert_eq!(actual.len(), expected.len(), "{name}: number of records");
        for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
            let (a, e) = (
                a.as_object().expect("object"),
                e.as_object().expect("object"),
            );
            for (field, want) in e {
                assert_eq!(
                    a.get(field),
                    Some(want),
                    "{name}: record {i}, field {field}"
                );
            }
            for field in a.keys() {
                assert!(
                    e.contains_key(field),
                    "{name}: record {i} has new field {field}"
                );
            }
        }
    }
}

/// What each scenario does, independent of the golden files.
struct Outcome {
    case: &'static str,
    disposition: &'static str,
    final_status: Option<u64>,
    end_reason: &'static str,
    ended_by: &'static str,
    /// Billable time expected from the scenario's pauses (ms), with 150 ms of slack (5 below).
    billable_ms: Option<u64>,
    /// Time on hold expected from the scenario's pauses (ms), with the same slack.
    hold_ms: Option<u64>,
    auth_challenges: u64,
    q850_cause: Option<u64>,
    has_ring: bool,
    /// Legs in the capture, all alike, and their transport.
    legs: usize,
    transport: &'static str,
    /// The software that answered the caller first (its Server header).
    server: &'static str,
}

/// An answered UDP call, rung and hung up by the caller after 3 s, Q.850 cause 16.
const ANSWERED: Outcome = Outcome {
    case: "",
    disposition: "answered",
    final_status: Some(200),
    end_reason: "bye",
    ended_by: "caller",
    billable_ms: Some(3000),
    hold_ms: Some(0),
    auth_challenges: 0,
    q850_cause: Some(16),
    has_ring: true,
    server: "spycraft-scenario-uas",
    legs: 1,
    transport: "udp",
};

/// A UDP call the callee refused after ringing.
const REJECTED: Outcome = Outcome {
    end_reason: "rejected",
    ended_by: "callee",
    billable_ms: Some(0),
    hold_ms: None,
    q850_cause: None,
    ..ANSWERED
};

const OUTCOMES: &[Outcome] = &[
    Outcome {
        case: "reinvite-glare",
        // Both re-INVITEs failed with 491: the call was never held.
        billable_ms: Some(1000),
        ..ANSWERED
    },
    Outcome {
        case: "forked-second-answers",
        ..ANSWERED
    },
    Outcome {
        case: "prack-100rel",
        billable_ms: Some(2000),
        ..ANSWERED
    },
    Outcome {
        case: "hold-resume",
        billable_ms: Some(4000),
        hold_ms: Some(2000),
        ..ANSWERED
    },
    Outcome {
        case: "session-timer-expired",
        end_reason: "timeout",
        ended_by: "timeout",
        // The 2 s session interval, from the 200 OK: nobody refreshed it.
        billable_ms: Some(2000),
        q850_cause: None,
        ..ANSWERED
    },
    Outcome {
        case: "answered-caller-bye",
        ..ANSWERED
    },
    Outcome {
        case: "answered-callee-bye",
        ended_by: "callee",
        billable_ms: Some(2000),
        ..ANSWERED
    },
    Outcome {
        case: "busy-486",
        disposition: "busy",
        final_status: Some(486),
        ..REJECTED
    },
    Outcome {
        case: "no-answer-480",
        disposition: "no_answer",
        final_status: Some(480),
        ..REJECTED
    },
    Outcome {
        case: "no-answer-408",
        disposition: "no_answer",
        final_status: Some(408),
        ..REJECTED
    },
    Outcome {
        case: "cancel-after-ringing",
        disposition: "cancelled",
        final_status: Some(487),
        end_reason: "cancel",
        billable_ms: Some(0),
        q850_cause: None,
        hold_ms: None,
        ..ANSWERED
    },
    Outcome {
        case: "congestion-503",
        disposition: "congestion",
        final_status: Some(503),
        q850_cause: Some(34),
        has_ring: false,
        ..REJECTED
    },
    Outcome {
        case: "auth-407-answered",
        billable_ms: Some(1500),
        auth_challenges: 1,
        q850_cause: None,
        ..ANSWERED
    },
    Outcome {
        case: "answered-no-bye",
        end_reason: "incomplete",
        ended_by: "unknown",
        billable_ms: None,
        q850_cause: None,
        has_ring: false,
        ..ANSWERED
    },
    Outcome {
        case: "nonstandard-port-15060",
        ..ANSWERED
    },
    Outcome {
        case: "tcp-one-connection",
        legs: 3,
        transport: "tcp",
        ..ANSWERED
    },
    Outcome {
        case: "tcp-connection-per-call",
        legs: 3,
        transport: "tcp",
        ..ANSWERED
    },
    Outcome {
        case: "b2bua-a-leg",
        legs: 2,
        ..ANSWERED
    },
    Outcome {
        case: "b2bua-b-leg",
        legs: 2,
        ..ANSWERED
    },
    Outcome {
        case: "udp-fragmented-invite",
        billable_ms: Some(2000),
        ..ANSWERED
    },
    // Both hops of a proxy captured: the record says what the caller saw. The callee's 503
    // reached the caller as 500 (its Q.850 cause is the one on the wire).
    Outcome {
        case: "proxy-relays-503-as-500",
        disposition: "congestion",
        final_status: Some(500),
        q850_cause: Some(34),
        has_ring: false,
        server: KAMAILIO,
        ..REJECTED
    },
    // The proxy gave up on the ringing callee: 408 to the caller, a timeout; the callee's
    // 487 for the proxy's CANCEL changes nothing.
    Outcome {
        case: "proxy-timeout-408",
        disposition: "no_answer",
        final_status: Some(408),
        end_reason: "timeout",
        ended_by: "timeout",
        server: KAMAILIO,
        ..REJECTED
    },
];

/// The proxy of the `proxy-` cases, which answers the caller first (100 Trying).
const KAMAILIO: &str = "kamailio (5.6.3 (x86_64/linux))";

#[test]
fn every_case_has_the_outcome_its_scenario_plays() {
    for o in OUTCOMES {
        let records = records_of(o.case);
        assert_eq!(records.len(), o.legs, "{}: legs", o.case);
        for r in &records {
            check_outcome(o, r);
        }
    }
}

fn check_outcome(o: &Outcome, r: &Value) {
    let c = o.case;
    assert_eq!(r["transport"], o.transport, "{c}");
    assert_eq!(r["disposition"], o.disposition, "{c}");
    assert_eq!(r["final_status"].as_u64(), o.final_status, "{c}");
    assert_eq!(r["end_reason"], o.end_reason, "{c}");
    assert_eq!(r["ended_by"], o.ended_by, "{c}");
    assert_eq!(
        r["auth_challenges"].as_u64(),
        Some(o.auth_challenges),
        "{c}"
    );
    assert_eq!(r["q850_cause"].as_u64(), o.q850_cause, "{c}");
    assert_eq!(r["ring_at"].is_string(), o.has_ring, "{c}: ring_at");
    assert_eq!(r["from_user"], "alice", "{c}");
    assert_eq!(r["to_user"], "bob", "{c}");
    let pai = r["p_asserted_identity"].as_str().unwrap_or_default();
    assert!(pai.starts_with("sip:+15550100@"), "{c}: {pai}");
    assert_eq!(r["user_agent"], "spycraft-scenario-uac", "{c}");
    assert_eq!(r["server"], o.server, "{c}");
    assert_eq!(r["invite_retransmissions"], 0, "{c}");
    match (o.billable_ms, r["billable_ms"].as_u64()) {
        (Some(want), Some(got)) => assert!(
            // sipp's millisecond timer can end a pause a millisecond early.
            got + 5 >= want && got <= want + 150,
            "{c}: billable {got} ms, scenario plays {want} ms"
        ),
        (want, got) => assert_eq!(got, want, "{c}: billable"),
    }
    match (o.hold_ms, r["hold_ms"].as_u64()) {
        (Some(want), Some(got)) => assert!(
            got + 5 >= want && got <= want + 150,
            "{c}: on hold {got} ms, scenario plays {want} ms"
        ),
        (want, got) => assert_eq!(got, want, "{c}: hold"),
    }
    if o.end_reason == "incomplete" {
        assert!(r["end_at"].is_null() && r["duration_ms"].is_null(), "{c}");
        assert_eq!(
            r["capture_issues"],
            serde_json::json!(["capture_ended"]),
            "{c}"
        );
    } else {
        assert_eq!(r["capture_issues"], serde_json::json!([]), "{c}");
        let duration = r["duration_ms"]
            .as_u64()
            .expect("ended calls have a duration");
        let billable = r["billable_ms"].as_u64().expect("billable");
        assert!(
            duration >= billable,
            "{c}: duration {duration} < billable {billable}"
        );
    }
}

#[test]
fn register_and_options_make_no_call() {
    let (records, summary) = analyze(&[case_dir("register-options").join("capture.pcap")]);
    assert!(records.is_empty(), "{records:?}");
    assert_eq!(summary.parse.sip_messages, 6);
    assert_eq!(summary.tracker.non_call_messages, 6);
}

#[test]
fn either_thread_plan_gives_the_same_records_and_counters() {
    use spycraft::pipeline::PipelineConfig;
    use spycraft_tests::analyze_with;
    // All the bundled captures as one stream: UDP, TCP one connection and many, a fragmented
    // INVITE, a non-standard port.
    let paths = spycraft_tests::bundled_captures();
    let run = |threads| {
        let config = PipelineConfig {
            threads,
            ..PipelineConfig::default()
        };
        let (records, summary, result) = analyze_with(&paths, &config);
        result.expect("analysed");
        (records, summary)
    };
    let (records_1, summary_1) = run(1);
    let (records_2, summary_2) = run(2);
    assert!(
        summary_1.parse.sip_messages > 200 && summary_1.records() > 20,
        "{} messages, {} records",
        summary_1.parse.sip_messages,
        summary_1.records()
    );
    assert!(
        summary_1.parse.decode.tcp.segments > 0,
        "TCP cases included"
    );
    assert_eq!(summary_1, summary_2);
    assert_eq!(records_1, records_2);
}

#[test]
fn several_files_are_one_stream_in_order() {
    let paths: Vec<PathBuf> = ["busy-486", "answered-caller-bye", "congestion-503"]
        .iter()
        .map(|c| case_dir(c).join("capture.pcap"))
        .collect();
    let (records, summary) = analyze(&paths);
    let mut dispositions: Vec<String> = records.iter().map(|r| r.disposition.to_string()).collect();
    dispositions.sort();
    assert_eq!(dispositions, ["answered", "busy", "congestion"]);
    assert_eq!(summary.records(), 3);
}

#[test]
fn node_and_monitored_hosts_shape_id_and_direction() {
    use spycraft::call::{Direction, MonitoredHosts};
    use spycraft::pipeline::PipelineConfig;
    let path = case_dir("answered-caller-bye").join("capture.pcap");
    let mut config = PipelineConfig::default();
    config.tracker.node = "sensor-a".into();
    config.tracker.hosts = MonitoredHosts::parse(&["127.0.0.0/8"]).expect("cidr");
    let (a, _, _) = spycraft_tests::analyze_with(std::slice::from_ref(&path), &config);
    assert_eq!(a[0].direction, Direction::Internal);
    assert_eq!(a[0].node, "sensor-a");
    config.tracker.node = "sensor-b".into();
    let (b, _, _) = spycraft_tests::analyze_with(&[path], &config);
    assert_ne!(a[0].id, b[0].id, "ids differ per node");
    assert_eq!(a[0].call_id, b[0].call_id);
}

#[test]
fn a_blind_transfer_links_the_new_call_to_the_one_it_came_from() {
    let records = records_of("blind-transfer");
    assert_eq!(records.len(), 2);
    let (first, second) = (&records[0], &records[1]);
    // Alice–Bob: Bob (the callee) transferred Alice to Carol, which worked; then hung up.
    assert_eq!(first["to_user"], "bob");
    assert_eq!(first["transferred_by"], "callee");
    let target = first["transfer_to"].as_str().expect("transfer_to");
    assert!(target.starts_with("sip:carol@"), "{target}");
    assert_eq!(first["transfer_status"], 200);
    assert_eq!(first["ended_by"], "callee");
    assert!(first["transfer_at"].as_str() > first["answer_at"].as_str());
    // Alice–Carol: asked for by Bob, and linked to the Alice–Bob call.
    assert_eq!(second["to_user"], "carol");
    assert!(second["referred_by"]
        .as_str()
        .is_some_and(|r| r.starts_with("sip:bob@")));
    assert_eq!(second["transferred_from"], first["call_id"]);
    assert!(second["invite_at"].as_str() > first["transfer_at"].as_str());
    for r in &records {
        assert_eq!(r["disposition"], "answered");
        assert_eq!(r["capture_issues"], serde_json::json!([]));
    }
}

#[test]
fn an_attended_transfer_links_the_new_call_to_the_consultation_it_replaces() {
    let records = records_of("attended-transfer");
    assert_eq!(records.len(), 3);
    let (first, consultation, new) = (&records[0], &records[1], &records[2]);
    assert_eq!(first["to_user"], "bob");
    assert_eq!(first["transferred_by"], "callee");
    assert_eq!(first["transfer_status"], 200);
    // Refer-To's ?Replaces= part is not the target's address.
    let target = first["transfer_to"].as_str().expect("transfer_to");
    assert!(
        target.starts_with("sip:carol@") && !target.contains('?'),
        "{target}"
    );
    assert_eq!(consultation["call_id"], "consult-1@spycraft");
    assert_eq!(consultation["from_user"], "bob");
    assert_eq!(new["to_user"], "carol");
    assert_eq!(new["request_uri"].as_str(), Some(target));
    assert!(new["referred_by"]
        .as_str()
        .is_some_and(|r| r.starts_with("sip:bob@")));
    assert_eq!(new["transferred_from"], consultation["call_id"]);
    for r in &records {
        assert_eq!(r["disposition"], "answered");
        assert_eq!(r["capture_issues"], serde_json::json!([]));
    }
}
