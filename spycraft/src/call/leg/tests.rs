// SPDX-License-Identifier: AGPL-3.0-or-later
//! The leg state machine, table-driven: scripted dialogs through a tracker, and the records
//! they end in.

use super::{put_user, Phase};
use crate::call::*;
use crate::decode::PacketInfo;
use crate::decode::Transport;
use crate::sip::{parse_datagram, SipEvent, EMPTY_HEADER};

const A: &str = "192.0.2.10:5060";
const B: &str = "198.51.100.20:5060";

/// One scripted message: seconds, sender, and the message text without Call-ID/Via.
struct Step {
    at_ms: i64,
    from_a: bool,
    start: &'static str,
    cseq: &'static str,
    /// Tag of the party that sent the *request* of this transaction in From; To tag.
    from_tag: &'static str,
    to_tag: &'static str,
    extra: &'static str,
    /// An SDP body: its media-level attribute lines (and the connection address).
    sdp: Option<(&'static str, &'static str)>,
    /// A `message/sipfrag` body: its status line.
    frag: Option<&'static str>,
}

fn step(at_ms: i64, from_a: bool, start: &'static str, cseq: &'static str) -> Step {
    let (from_tag, to_tag) = ("a1", "");
    Step {
        at_ms,
        from_a,
        start,
        cseq,
        from_tag,
        to_tag,
        extra: "",
        sdp: None,
        frag: None,
    }
}

impl Step {
    fn tags(mut self, from_tag: &'static str, to_tag: &'static str) -> Self {
        self.from_tag = from_tag;
        self.to_tag = to_tag;
        self
    }
    fn extra(mut self, extra: &'static str) -> Self {
        self.extra = extra;
        self
    }
    /// An SDP body with connection address `c` and attribute lines `a`.
    fn sdp(mut self, c: &'static str, a: &'static str) -> Self {
        self.sdp = Some((c, a));
        self
    }
    fn frag(mut self, status_line: &'static str) -> Self {
        self.frag = Some(status_line);
        self
    }
}

fn event(call_id: &str, s: &Step) -> SipEvent {
    let to_tag = if s.to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={}", s.to_tag)
    };
    let body = s.sdp.map_or(String::new(), |(c, a)| {
        format!("v=0\r\no=- 1 1 IN IP4 {c}\r\ns=-\r\nc=IN IP4 {c}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n{a}")
    });
    let (content_type, body) = match s.frag {
        Some(line) => ("Content-Type: message/sipfrag\r\n", format!("{line}\r\n")),
        None if body.is_empty() => ("", body),
        None => ("Content-Type: application/sdp\r\n", body),
    };
    let raw = format!(
        "{}\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK{}\r\nFrom: <sip:alice@a.example>;tag={}\r\n\
         To: <sip:bob@b.example>{}\r\nCall-ID: {}\r\nCSeq: {}\r\n{}{content_type}Content-Length: {}\r\n\r\n{body}",
        s.start,
        s.cseq,
        s.from_tag,
        to_tag,
        call_id,
        s.cseq,
        s.extra,
        body.len()
    );
    let mut headers = [EMPTY_HEADER; 32];
    let msg = parse_datagram(raw.as_bytes(), &mut headers).expect("test message parses");
    let (src, dst) = if s.from_a { (A, B) } else { (B, A) };
    let meta = PacketInfo {
        time: Timestamp(1_700_000_000_000_000 + s.at_ms * 1000),
        src: src.parse().expect("addr"),
        dst: dst.parse().expect("addr"),
        transport: Transport::Udp,
        vlan: None,
    };
    SipEvent::from_message(meta, &msg, &["X-CollateID".into()]).expect("event")
}

fn run(steps: &[Step]) -> Vec<CallRecord> {
    let config = TrackerConfig {
        node: "test".into(),
        hosts: MonitoredHosts::parse(&["192.0.2.0/24"]).expect("hosts"),
        ..TrackerConfig::default()
    };
    let mut tracker = CallTracker::new(config);
    let mut out = Vec::new();
    for s in steps {
        tracker.on_event(&event("call-1", s), &mut |r| out.push(r.clone()));
    }
    tracker.finish(&mut |r| out.push(r.clone()));
    out
}

/// Runs steps of several calls, each step with its Call-ID.
fn run_calls(steps: &[(&str, Step)]) -> Vec<CallRecord> {
    let mut tracker = CallTracker::new(TrackerConfig {
        node: "test".into(),
        ..TrackerConfig::default()
    });
    let mut out = Vec::new();
    for (call, s) in steps {
        tracker.on_event(&event(call, s), &mut |r| out.push(r.clone()));
    }
    tracker.finish(&mut |r| out.push(r.clone()));
    out
}

const INV: &str = "INVITE sip:bob@b.example SIP/2.0";

/// What a mid-call script must leave on the record.
struct MidCall {
    name: &'static str,
    /// Steps after the call is answered at 1 s (SDP active) and ACKed.
    steps: Vec<Step>,
    hold_ms: u64,
    end_reason: EndReason,
    ended_by: EndedBy,
    billable_ms: u64,
    sdd_ms: Option<u64>,
}

const SENDONLY: &str = "a=sendonly\r\n";
const SENDRECV: &str = "a=sendrecv\r\n";
const INACTIVE: &str = "a=inactive\r\n";
const UAC: &str = "192.0.2.10";
const REINV: &str = "INVITE sip:bob@b.example SIP/2.0";
const BYE_A: &str = "BYE sip:bob@b.example SIP/2.0";

/// A request of the caller's within the dialog, and a response to it.
fn mine(at_ms: i64, start: &'static str, cseq: &'static str) -> Step {
    step(at_ms, true, start, cseq).tags("a1", "b2")
}
fn theirs(at_ms: i64, start: &'static str, cseq: &'static str) -> Step {
    step(at_ms, false, start, cseq).tags("a1", "b2")
}

/// Every mid-call transition: holds by re-INVITE and UPDATE (sendonly, inactive,
/// c=0.0.0.0, an offer in the 2xx), failures that leave the session as it was (491 glare,
/// 481), a BYE crossing a re-INVITE, retransmitted 2xx and BYE, session refresh and
/// session expiry.
#[test]
fn mid_call_transitions() {
    let cases = vec![
        MidCall {
            name: "re-INVITE hold, re-INVITE resume",
            steps: vec![
                mine(2_000, REINV, "2 INVITE").sdp(UAC, SENDONLY),
                theirs(2_010, "SIP/2.0 200 OK", "2 INVITE").sdp("198.51.100.20", "a=recvonly\r\n"),
                mine(2_020, "ACK sip:bob@b.example SIP/2.0", "2 ACK"),
                mine(5_000, REINV, "3 INVITE").sdp(UAC, SENDRECV),
                theirs(5_010, "SIP/2.0 200 OK", "3 INVITE").sdp("198.51.100.20", SENDRECV),
                mine(8_000, BYE_A, "4 BYE"),
                theirs(8_020, "SIP/2.0 200 OK", "4 BYE"),
            ],
            hold_ms: 3_000,
            end_reason: EndReason::Bye,
            ended_by: EndedBy::Caller,
            billable_ms: 7_000,
            sdd_ms: Some(20),
        },
        MidCall {
            name: "UPDATE inactive, BYE while held",
            steps: vec![
                mine(2_000, "UPDATE sip:bob@b.example SIP/2.0", "2 UPDATE").sdp(UAC, INACTIVE),
                theirs(2_010, "SIP/2.0 200 OK", "2 UPDATE").sdp("198.51.100.20", INACTIVE),
                mine(4_010, BYE_A, "3 BYE"),
                theirs(4_015, "SIP/2.0 200 OK", "3 BYE"),
            ],
            hold_ms: 2_000,
            end_reason: EndReason::Bye,
            ended_by: EndedBy::Caller,
            billable_ms: 3_010,
            sdd_ms: Some(5),
        },
        MidCall {
            name: "the callee holds with c=0.0.0.0 and resumes",
            steps: vec![
                step(
                    2_000,
                    false,
                    "INVITE sip:alice@a.example SIP/2.0",
                    "1 INVITE",
                )
                .tags("b2", "a1")
                .sdp("0.0.0.0", ""),
                step(2_010, true, "SIP/2.0 200 OK", "1 INVITE")
                    .tags("b2", "a1")
                    .sdp(UAC, ""),
                step(
                    3_000,
                    false,
                    "INVITE sip:alice@a.example SIP/2.0",
                    "2 INVITE",
                )
                .tags("b2", "a1")
                .sdp("198.51.100.20", ""),
                step(3_010, true, "SIP/2.0 200 OK", "2 INVITE")
                    .tags("b2", "a1")
                    .sdp(UAC, ""),
                mine(4_000, BYE_A, "2 BYE"),
                theirs(4_001, "SIP/2.0 200 OK", "2 BYE"),
            ],
            hold_ms: 1_000,
            end_reason: EndReason::Bye,
            ended_by: EndedBy::Caller,
            billable_ms: 3_000,
            sdd_ms: Some(1),
        },
        MidCall {
            name: "an empty re-INVITE whose 2xx offers the hold",
            steps: vec![
                mine(2_000, REINV, "2 INVITE"),
                theirs(2_010, "SIP/2.0 200 OK", "2 INVITE").sdp("198.51.100.20", SENDONLY),
                mine(3_010, BYE_A, "3 BYE"),
                theirs(3_020, "SIP/2.0 200 OK", "3 BYE"),
            ],
            hold_ms: 1_000,
            end_reason: EndReason::Bye,
            ended_by: EndedBy::Caller,
            billable_ms: 2_010,
            sdd_ms: Some(10),
        },
        MidCall {
            name: "glare: 491 leaves the media as it was",
            steps: vec![
                mine(2_000, REINV, "2 INVITE").sdp(UAC, SENDONLY),
                theirs(2_005, "SIP/2.0 491 Request Pending", "2 INVITE"),
                mine(2_006, "ACK sip:bob@b.example SIP/2.0", "2 ACK"),
                mine(4_000, BYE_A, "3 BYE"),
                theirs(4_010, "SIP/2.0 200 OK", "3 BYE"),
            ],
            hold_ms: 0,
            end_reason: EndReason::Bye,
            ended_by: EndedBy::Caller,
            billable_ms: 3_000,
            sdd_ms: Some(10),
        },
        MidCall {
            name: "481 to a re-INVITE leaves the media as it was",
            steps: vec![
                mine(2_000, REINV, "2 INVITE").sdp(UAC, SENDONLY),
                theirs(
                    2_005,
                    "SIP/2.0 481 Call/Transaction Does Not Exist",
                    "2 INVITE",
                ),
                mine(3_000, BYE_A, "3 BYE"),
                theirs(3_010, "SIP/2.0 200 OK", "3 BYE"),
            ],
            hold_ms: 0,
            end_reason: EndReason::Bye,
            ended_by: EndedBy::Caller,
            billable_ms: 2_000,
            sdd_ms: Some(10),
        },
        MidCall {
            name: "a BYE crossing a re-INVITE",
            steps: vec![
                mine(2_000, REINV, "2 INVITE").sdp(UAC, SENDONLY),
                step(2_001, false, "BYE sip:alice@a.example SIP/2.0", "1 BYE").tags("b2", "a1"),
                step(2_005, true, "SIP/2.0 200 OK", "1 BYE").tags("b2", "a1"),
                theirs(
                    2_006,
                    "SIP/2.0 481 Call/Transaction Does Not Exist",
                    "2 INVITE",
                ),
            ],
            hold_ms: 0,
            end_reason: EndReason::Bye,
            ended_by: EndedBy::Callee,
            billable_ms: 1_001,
            sdd_ms: Some(4),
        },
        MidCall {
            name: "retransmitted 2xx and BYE count once",
            steps: vec![
                mine(2_000, REINV, "2 INVITE").sdp(UAC, SENDONLY),
                theirs(2_010, "SIP/2.0 200 OK", "2 INVITE").sdp("198.51.100.20", SENDONLY),
                theirs(2_510, "SIP/2.0 200 OK", "2 INVITE").sdp("198.51.100.20", SENDONLY),
                mine(2_520, "ACK sip:bob@b.example SIP/2.0", "2 ACK"),
                mine(4_010, REINV, "3 INVITE").sdp(UAC, SENDRECV),
                theirs(4_010, "SIP/2.0 200 OK", "3 INVITE").sdp("198.51.100.20", SENDRECV),
                mine(5_000, BYE_A, "4 BYE"),
                mine(5_500, BYE_A, "4 BYE"),
                theirs(5_600, "SIP/2.0 200 OK", "4 BYE"),
                theirs(5_700, "SIP/2.0 200 OK", "4 BYE"),
            ],
            hold_ms: 2_000,
            end_reason: EndReason::Bye,
            ended_by: EndedBy::Caller,
            billable_ms: 4_000,
            sdd_ms: Some(600),
        },
        MidCall {
            name: "a session refresh moves the expiry on",
            steps: vec![
                mine(8_000, REINV, "2 INVITE")
                    .sdp(UAC, SENDRECV)
                    .extra("Session-Expires: 10;refresher=uac\r\n"),
                theirs(8_010, "SIP/2.0 200 OK", "2 INVITE")
                    .sdp("198.51.100.20", SENDRECV)
                    .extra("Session-Expires: 10;refresher=uac\r\n"),
                mine(30_000, "OPTIONS sip:bob@b.example SIP/2.0", "3 OPTIONS"),
            ],
            hold_ms: 0,
            end_reason: EndReason::Timeout,
            ended_by: EndedBy::Timeout,
            billable_ms: 17_010,
            sdd_ms: None,
        },
        MidCall {
            name: "no refresh: the session ends at its expiry",
            steps: vec![mine(
                30_000,
                "OPTIONS sip:bob@b.example SIP/2.0",
                "2 OPTIONS",
            )],
            hold_ms: 0,
            end_reason: EndReason::Timeout,
            ended_by: EndedBy::Timeout,
            billable_ms: 10_000,
            sdd_ms: None,
        },
    ];
    for case in cases {
        let timer = case.name.contains("session") || case.name.contains("refresh");
        let mut steps = vec![
            step(0, true, INV, "1 INVITE").sdp(UAC, "").extra(if timer {
                "Session-Expires: 10\r\n"
            } else {
                ""
            }),
            step(1_000, false, "SIP/2.0 200 OK", "1 INVITE")
                .tags("a1", "b2")
                .sdp("198.51.100.20", "")
                .extra(if timer {
                    "Session-Expires: 10;refresher=uac\r\n"
                } else {
                    ""
                }),
            step(1_010, true, "ACK sip:bob@b.example SIP/2.0", "1 ACK").tags("a1", "b2"),
        ];
        steps.extend(case.steps);
        let records = run(&steps);
        assert_eq!(records.len(), 1, "{}", case.name);
        let r = &records[0];
        let name = case.name;
        assert_eq!(r.disposition, Disposition::Answered, "{name}");
        assert_eq!(r.hold_ms, Some(case.hold_ms), "{name}: hold");
        assert_eq!(r.setup_ms, Some(1_000), "{name}: setup");
        assert_eq!(r.end_reason, case.end_reason, "{name}");
        assert_eq!(r.ended_by, case.ended_by, "{name}");
        assert_eq!(r.billable_ms, Some(case.billable_ms), "{name}: billable");
        assert_eq!(r.sdd_ms, case.sdd_ms, "{name}: sdd");
        assert_eq!(r.capture_issues, vec![], "{name}");
    }
}

/// Capture issues of the call's life: a party's CSeq skipping a number (a request the
/// capture missed), and frames the capture itself lost while the call was up.
#[test]
fn cseq_gaps_and_capture_losses_are_noted() {
    let answered = || {
        vec![
            step(0, true, INV, "1 INVITE"),
            step(1_000, false, "SIP/2.0 200 OK", "1 INVITE").tags("a1", "b2"),
            step(1_010, true, "ACK sip:bob@b.example SIP/2.0", "1 ACK").tags("a1", "b2"),
        ]
    };
    let issues = |extra: Vec<Step>| {
        let mut steps = answered();
        steps.extend(extra);
        let records = run(&steps);
        assert_eq!(records.len(), 1);
        records[0].capture_issues.clone()
    };
    // Clean: the caller's next request takes the next number; the callee's first request
    // sets its own count, retransmissions repeat it.
    let clean = issues(vec![
        step(2_000, false, "INFO sip:alice@a.example SIP/2.0", "7 INFO").tags("b2", "a1"),
        step(2_001, false, "INFO sip:alice@a.example SIP/2.0", "7 INFO").tags("b2", "a1"),
        step(3_000, false, "BYE sip:alice@a.example SIP/2.0", "8 BYE").tags("b2", "a1"),
        step(3_001, true, "SIP/2.0 200 OK", "8 BYE").tags("b2", "a1"),
    ]);
    assert_eq!(clean, vec![]);
    for (who, gap) in [
        ("caller", mine(3_000, BYE_A, "3 BYE")),
        (
            "callee",
            step(3_000, false, "BYE sip:alice@a.example SIP/2.0", "9 BYE").tags("b2", "a1"),
        ),
    ] {
        let mut extra =
            vec![step(2_000, false, "INFO sip:alice@a.example SIP/2.0", "7 INFO").tags("b2", "a1")];
        extra.push(gap);
        assert_eq!(issues(extra), vec![CaptureIssue::CseqGap], "{who}");
    }

    // A loss while the call is up marks it; a call that starts after does not.
    let config = TrackerConfig {
        node: "test".into(),
        ..TrackerConfig::default()
    };
    let mut tracker = CallTracker::new(config);
    let mut out = Vec::new();
    for s in answered() {
        tracker.on_event(&event("lossy", &s), &mut |r| out.push(r.clone()));
    }
    tracker.on_capture_loss();
    for s in answered() {
        tracker.on_event(&event("after", &s), &mut |r| out.push(r.clone()));
    }
    tracker.finish(&mut |r| out.push(r.clone()));
    let issues_of = |id: &str| {
        out.iter()
            .find(|r| r.call_id == id)
            .map(|r| r.capture_issues.clone())
            .expect("record")
    };
    assert!(issues_of("lossy").contains(&CaptureIssue::CaptureLoss));
    assert!(!issues_of("after").contains(&CaptureIssue::CaptureLoss));
}

/// A forked INVITE (RFC 3261 §13.2.2.4): one record for the dialog that answered, the
/// other dialogs counted with the last status one had; a second 2xx, and the ACK and BYE
/// the caller sends to that fork, leave the answered call as it was.
#[test]
fn forked_invites_make_one_record_and_note_the_other_dialogs() {
    let ringing = |at, tag| step(at, false, "SIP/2.0 180 Ringing", "1 INVITE").tags("a1", tag);
    let ok = |at, tag| step(at, false, "SIP/2.0 200 OK", "1 INVITE").tags("a1", tag);
    let to = |at, start, cseq, tag| step(at, true, start, cseq).tags("a1", tag);
    // (name, the steps between the INVITE and the BYE, the answered dialog's To tag,
    // other dialogs, their last status, billable ms)
    type Case = (&'static str, Vec<Step>, &'static str, u32, Option<u16>, u64);
    let cases: Vec<Case> = vec![
        (
            "no fork",
            vec![
                ringing(100, "b2"),
                ok(1_000, "b2"),
                to(1_010, "ACK sip:b SIP/2.0", "1 ACK", "b2"),
            ],
            "b2",
            0,
            None,
            4_000,
        ),
        (
            "two early dialogs, the second answers",
            vec![
                ringing(100, "b2"),
                ringing(150, "b3"),
                ok(1_000, "b3"),
                to(1_010, "ACK sip:b SIP/2.0", "1 ACK", "b3"),
            ],
            "b3",
            1,
            Some(180),
            4_000,
        ),
        (
            "two forks answer: the second is ACKed and hung up",
            vec![
                ringing(100, "b2"),
                ok(1_000, "b2"),
                to(1_010, "ACK sip:b SIP/2.0", "1 ACK", "b2"),
                ok(1_100, "b3"),
                to(1_110, "ACK sip:b SIP/2.0", "1 ACK", "b3"),
                to(1_120, "BYE sip:b SIP/2.0", "2 BYE", "b3"),
                step(1_130, false, "SIP/2.0 200 OK", "2 BYE").tags("a1", "b3"),
                step(2_000, false, "BYE sip:a SIP/2.0", "1 BYE").tags("b3", "a1"),
            ],
            "b2",
            1,
            Some(200),
            4_000,
        ),
    ];
    for (name, middle, dialog, forked, last, billable) in cases {
        let mut steps = vec![step(0, true, INV, "1 INVITE")];
        steps.extend(middle);
        // Each dialog numbers its own requests: the answered one's BYE is its second.
        steps.push(to(5_000, BYE_A, "2 BYE", dialog));
        steps.push(step(5_010, false, "SIP/2.0 200 OK", "2 BYE").tags("a1", dialog));
        let records = run(&steps);
        assert_eq!(records.len(), 1, "{name}");
        let r = &records[0];
        assert_eq!(r.to_tag.as_deref(), Some(dialog), "{name}");
        assert_eq!(r.end_reason, EndReason::Bye, "{name}");
        assert_eq!(r.billable_ms, Some(billable), "{name}");
        assert_eq!(r.sdd_ms, Some(10), "{name}");
        assert_eq!(
            (r.forked_dialogs, r.forked_last_status),
            (forked, last),
            "{name}"
        );
    }
}

/// Transfers (RFC 3515, 3891, 3892): the call that carried the REFER says when, by whom,
/// to whom and with what outcome (the NOTIFYs' sipfrag); the call the transfer made says
/// who asked for it and links to the call it came from — through the REFER's target for a
/// blind transfer, through Replaces for an attended one.
#[test]
fn transfers_are_recorded_on_both_calls() {
    let answered = |call: &'static str, at: i64, uri: &'static str, extra: &'static str| {
        let inv: &'static str = Box::leak(format!("INVITE {uri} SIP/2.0").into_boxed_str());
        vec![
            (call, step(at, true, inv, "1 INVITE").extra(extra)),
            (
                call,
                step(at + 500, false, "SIP/2.0 200 OK", "1 INVITE").tags("a1", "b2"),
            ),
            (
                call,
                step(at + 510, true, "ACK sip:x SIP/2.0", "1 ACK").tags("a1", "b2"),
            ),
        ]
    };
    let callee = |call, at, start, cseq| (call, step(at, false, start, cseq).tags("b2", "a1"));
    let caller = |call, at, start, cseq| (call, step(at, true, start, cseq).tags("b2", "a1"));
    let refer = "REFER sip:alice@a.example SIP/2.0";
    let notify = "NOTIFY sip:bob@b.example SIP/2.0";
    for (outcome, status) in [("SIP/2.0 200 OK", 200), ("SIP/2.0 486 Busy Here", 486)] {
        let mut steps = answered("call-1", 0, "sip:bob@b.example", "");
        let (call, refer_step) = callee("call-1", 3_000, refer, "1 REFER");
        steps.push((
            call,
            refer_step
                .extra("Refer-To: <sip:carol@c.example>\r\nReferred-By: <sip:bob@b.example>\r\n"),
        ));
        steps.push(caller("call-1", 3_001, "SIP/2.0 202 Accepted", "1 REFER"));
        steps.push((
            "call-1",
            step(3_002, true, notify, "2 NOTIFY")
                .tags("a1", "b2")
                .extra("Event: refer\r\n")
                .frag("SIP/2.0 100 Trying"),
        ));
        // The call the transfer makes: to the REFER's target, naming who asked.
        steps.extend(answered(
            "call-2",
            3_100,
            "sip:carol@c.example",
            "Referred-By: <sip:bob@b.example>\r\n",
        ));
        steps.push((
            "call-1",
            step(4_000, true, notify, "3 NOTIFY")
                .tags("a1", "b2")
                .extra("Event: refer\r\n")
                .frag(outcome),
        ));
        steps.push(callee(
            "call-1",
            4_500,
            "BYE sip:alice@a.example SIP/2.0",
            "2 BYE",
        ));
        // An attended transfer: the new call replaces call-1's dialog.
        steps.extend(answered(
            "call-3",
            5_000,
            "sip:dave@d.example",
            "Replaces: call-1;to-tag=a1;from-tag=b2\r\n",
        ));
        let records = run_calls(&steps);
        let by_call = |id: &str| records.iter().find(|r| r.call_id == id).expect("record");
        let first = by_call("call-1");
        assert_eq!(first.transfer_at, Some(Timestamp(1_700_000_003_000_000)));
        assert_eq!(first.transferred_by, Some(Party::Callee));
        assert_eq!(first.transfer_to.as_deref(), Some("sip:carol@c.example"));
        assert_eq!(first.transfer_status, Some(status));
        assert_eq!(first.end_reason, EndReason::Bye);
        assert_eq!(first.referred_by, None);
        let blind = by_call("call-2");
        assert_eq!(blind.referred_by.as_deref(), Some("sip:bob@b.example"));
        assert_eq!(blind.transferred_from.as_deref(), Some("call-1"));
        assert_eq!(blind.transfer_to, None);
        let attended = by_call("call-3");
        assert_eq!(attended.transferred_from.as_deref(), Some("call-1"));
    }
}

#[test]
fn answered_call_ended_by_callee() {
    let r = run(&[
        step(0, true, INV, "1 INVITE").extra("User-Agent: softphone\r\n"),
        step(20, false, "SIP/2.0 100 Trying", "1 INVITE"),
        step(900, false, "SIP/2.0 180 Ringing", "1 INVITE").tags("a1", "b2"),
        step(5_000, false, "SIP/2.0 200 OK", "1 INVITE")
            .tags("a1", "b2")
            .extra("Server: pbx\r\n"),
        step(5_010, true, "ACK sip:bob@b.example SIP/2.0", "1 ACK").tags("a1", "b2"),
        step(65_000, false, "BYE sip:alice@a.example SIP/2.0", "7 BYE")
            .tags("b2", "a1")
            .extra("Reason: Q.850;cause=16\r\n"),
        step(65_005, true, "SIP/2.0 200 OK", "7 BYE").tags("b2", "a1"),
    ]);
    assert_eq!(r.len(), 1);
    let r = &r[0];
    assert_eq!(r.disposition, Disposition::Answered);
    assert_eq!(r.direction, Direction::Outbound);
    assert_eq!(r.to_tag.as_deref(), Some("b2"));
    assert_eq!(r.pdd_ms, Some(900));
    assert_eq!(r.duration_ms, Some(65_000));
    assert_eq!(r.billable_ms, Some(60_000));
    assert_eq!(r.ended_by, EndedBy::Callee);
    assert_eq!(r.end_reason, EndReason::Bye);
    assert_eq!(r.q850_cause, Some(16));
    assert_eq!(r.final_status, Some(200));
    assert_eq!(r.final_reason.as_deref(), Some("OK"));
    assert_eq!(r.user_agent.as_deref(), Some("softphone"));
    assert_eq!(r.server.as_deref(), Some("pbx"));
    assert_eq!(r.from_user.as_deref(), Some("alice"));
    assert_eq!(r.to_user.as_deref(), Some("bob"));
    assert_eq!(r.collation_id, "call-1");
    assert!(r.capture_issues.is_empty(), "{:?}", r.capture_issues);
}

/// What the tracker handed out, in order: progress reports and records.
#[derive(Debug, PartialEq)]
enum Handed {
    Progress(CallProgress, CallRecord),
    Record(CallRecord),
}

/// Runs `steps` of call-1, then the clock to `clock_ms`, with progress reports every
/// `interim_s` seconds.
fn run_with_progress(steps: &[Step], clock_ms: i64, interim_s: u64) -> Vec<Handed> {
    let mut tracker = CallTracker::new(TrackerConfig {
        node: "test".into(),
        progress: ProgressReports {
            answers: true,
            interim: Some(std::time::Duration::from_secs(interim_s)),
        },
        ..TrackerConfig::default()
    });
    let handed = std::cell::RefCell::new(Vec::new());
    let record = &mut |r: &CallRecord| handed.borrow_mut().push(Handed::Record(r.clone()));
    let progress =
        &mut |r: &CallRecord, p| handed.borrow_mut().push(Handed::Progress(p, r.clone()));
    for s in steps {
        let ev = event("call-1", s);
        tracker.report_progress(ev.meta.time, progress);
        tracker.on_event(&ev, record);
        tracker.report_progress(Timestamp::MIN, progress);
    }
    tracker.on_clock(Timestamp(1_700_000_000_000_000 + clock_ms * 1000), record);
    tracker.report_progress(Timestamp::MIN, progress);
    tracker.finish(record);
    handed.into_inner()
}

#[test]
fn answered_legs_are_reported_when_answered_and_at_each_interim() {
    let steps = [
        step(0, true, INV, "1 INVITE"),
        step(900, false, "SIP/2.0 180 Ringing", "1 INVITE").tags("a1", "b2"),
        step(5_000, false, "SIP/2.0 200 OK", "1 INVITE").tags("a1", "b2"),
        step(5_010, true, "ACK sip:bob@b.example SIP/2.0", "1 ACK").tags("a1", "b2"),
        // A retransmitted 200 answers nothing new.
        step(5_500, false, "SIP/2.0 200 OK", "1 INVITE").tags("a1", "b2"),
        step(
            16_000,
            true,
            "OPTIONS sip:bob@b.example SIP/2.0",
            "2 OPTIONS",
        )
        .tags("a1", "b2"),
        step(38_000, true, BYE_A, "3 BYE").tags("a1", "b2"),
        step(38_005, false, "SIP/2.0 200 OK", "3 BYE").tags("a1", "b2"),
    ];
    let handed = run_with_progress(&steps, 40_000, 10);
    let at = |ms: i64| Timestamp(1_700_000_000_000_000 + ms * 1000);
    let kinds: Vec<_> = handed
        .iter()
        .map(|h| match h {
            Handed::Progress(p, _) => Some(*p),
            Handed::Record(_) => None,
        })
        .collect();
    // Every 10 s from the answer, those due in the quiet before the BYE included.
    assert_eq!(
        kinds,
        [
            Some(CallProgress::Answered),
            Some(CallProgress::Interim(at(15_000))),
            Some(CallProgress::Interim(at(25_000))),
            Some(CallProgress::Interim(at(35_000))),
            None
        ]
    );
    let Handed::Record(end) = &handed[4] else {
        panic!("the record last")
    };
    for h in &handed[..4] {
        let Handed::Progress(_, r) = h else {
            panic!("progress first")
        };
        // The record as it stands: the same call, answered, no end yet.
        assert_eq!((r.id, &r.call_id), (end.id, &end.call_id));
        assert_eq!(r.answer_at, Some(at(5_000)));
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!((r.end_at, r.billable_ms), (None, None));
        assert_eq!(r.pdd_ms, Some(900));
    }
    assert_eq!(end.billable_ms, Some(33_000));

    // Unanswered legs are never reported; without interims, only the answer is.
    let busy = run_with_progress(
        &[
            step(0, true, INV, "1 INVITE"),
            step(100, false, "SIP/2.0 486 Busy Here", "1 INVITE").tags("a1", "b2"),
        ],
        60_000,
        10,
    );
    assert!(matches!(busy[..], [Handed::Record(_)]), "{busy:?}");
}

#[test]
fn outcomes_by_final_response() {
    let cases = [
        ("SIP/2.0 486 Busy Here", Disposition::Busy),
        ("SIP/2.0 600 Busy Everywhere", Disposition::Busy),
        ("SIP/2.0 480 Temporarily Unavailable", Disposition::NoAnswer),
        ("SIP/2.0 408 Request Timeout", Disposition::NoAnswer),
        ("SIP/2.0 503 Service Unavailable", Disposition::Congestion),
        ("SIP/2.0 404 Not Found", Disposition::Failed),
        ("SIP/2.0 603 Decline", Disposition::Failed),
    ];
    for (line, disposition) in cases {
        let r = run(&[
            step(0, true, INV, "1 INVITE"),
            step(300, false, line, "1 INVITE").tags("a1", "b2"),
            step(310, true, "ACK sip:bob@b.example SIP/2.0", "1 ACK").tags("a1", "b2"),
        ]);
        assert_eq!(r.len(), 1, "{line}");
        assert_eq!(r[0].disposition, disposition, "{line}");
        assert_eq!(r[0].end_reason, EndReason::Rejected, "{line}");
        assert_eq!(r[0].ended_by, EndedBy::Callee, "{line}");
        assert_eq!(r[0].duration_ms, Some(300), "{line}");
        assert_eq!(r[0].billable_ms, Some(0), "{line}");
        assert_eq!(r[0].pdd_ms, Some(300), "{line}");
    }
}

/// The expiry queue holds each leg's next check, which must never be later than its
/// deadline: a deadline that moves sooner (an answered call hung up: from hours of idle
/// time to the linger) is queued again, and the end of the ACK wait has a check of its own.
/// The clock at 50 s takes the INVITE's first check (at 32 s) off the queue beforehand.
#[test]
fn legs_are_checked_when_due_even_when_their_deadline_moves_sooner() {
    let t0 = 1_700_000_000_000_000;
    let clock = |tracker: &mut CallTracker, out: &mut Vec<CallRecord>, secs: i64| {
        tracker.on_clock(Timestamp(t0 + secs * 1_000_000), &mut |r| {
            out.push(r.clone())
        });
    };
    let feed = |tracker: &mut CallTracker, out: &mut Vec<CallRecord>, steps: Vec<Step>| {
        for s in steps {
            tracker.on_event(&event("call-1", &s), &mut |r| out.push(r.clone()));
        }
    };
    let ack = |at_ms| step(at_ms, true, "ACK sip:bob@b.example SIP/2.0", "1 ACK").tags("a1", "b2");
    let bye = |at_ms| step(at_ms, true, "BYE sip:bob@b.example SIP/2.0", "2 BYE").tags("a1", "b2");
    let ok = |at_ms, cseq| step(at_ms, false, "SIP/2.0 200 OK", cseq).tags("a1", "b2");

    // Answered, then hung up at 60 s: written once the 32 s linger is over, not hours
    // later at the idle timeout.
    let mut tracker = CallTracker::new(TrackerConfig::default());
    let mut out = Vec::new();
    feed(
        &mut tracker,
        &mut out,
        vec![
            step(0, true, INV, "1 INVITE"),
            ok(100, "1 INVITE"),
            ack(110),
        ],
    );
    clock(&mut tracker, &mut out, 50);
    feed(
        &mut tracker,
        &mut out,
        vec![bye(60_000), ok(60_010, "2 BYE")],
    );
    clock(&mut tracker, &mut out, 80);
    assert!(out.is_empty(), "still lingering");
    clock(&mut tracker, &mut out, 100);
    assert_eq!(out.len(), 1, "written when the linger ended");
    assert_eq!(out[0].duration_ms, Some(60_000), "INVITE to BYE");
    assert!(
        out[0].capture_issues.is_empty(),
        "{:?}",
        out[0].capture_issues
    );

    // Answered at 55 s after ringing, never ACKed by the end of the wait (87 s): noted by
    // a clock after it, although the call's own deadline is hours away and an ACK comes
    // later; not noted when the ACK comes before any check after the wait.
    for (clock_s, missing) in [(90, true), (80, false)] {
        let mut tracker = CallTracker::new(TrackerConfig::default());
        let mut out = Vec::new();
        let ringing = step(50, false, "SIP/2.0 180 Ringing", "1 INVITE").tags("a1", "b2");
        feed(
            &mut tracker,
            &mut out,
            vec![step(0, true, INV, "1 INVITE"), ringing],
        );
        clock(&mut tracker, &mut out, 50);
        feed(&mut tracker, &mut out, vec![ok(55_000, "1 INVITE")]);
        clock(&mut tracker, &mut out, clock_s);
        feed(
            &mut tracker,
            &mut out,
            vec![ack(95_000), bye(120_000), ok(120_010, "2 BYE")],
        );
        tracker.finish(&mut |r| out.push(r.clone()));
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].capture_issues.contains(&CaptureIssue::MissingAck),
            missing,
            "clock at {clock_s} s: {:?}",
            out[0].capture_issues
        );
    }
}

#[test]
fn a_quiet_clock_ends_the_linger_without_more_traffic() {
    let config = TrackerConfig::default();
    let mut tracker = CallTracker::new(config);
    let mut out = Vec::new();
    for s in [
        step(0, true, INV, "1 INVITE"),
        step(500, false, "SIP/2.0 486 Busy Here", "1 INVITE").tags("a1", "b2"),
        step(510, true, "ACK sip:bob@b.example SIP/2.0", "1 ACK").tags("a1", "b2"),
    ] {
        tracker.on_event(&event("call-1", &s), &mut |r| out.push(r.clone()));
    }
    let t0 = 1_700_000_000_000_000;
    tracker.on_clock(Timestamp(t0 + 10_000_000), &mut |r| out.push(r.clone()));
    assert!(out.is_empty(), "still lingering for retransmissions");
    tracker.on_clock(Timestamp(t0 + 40_000_000), &mut |r| out.push(r.clone()));
    assert_eq!(
        out.len(),
        1,
        "written once the linger is over, with no traffic"
    );
    assert_eq!(out[0].disposition, Disposition::Busy);
    assert_eq!(out[0].end_reason, EndReason::Rejected);
    tracker.on_clock(Timestamp(t0), &mut |r| out.push(r.clone()));
    assert_eq!(out.len(), 1, "a clock never goes back");
}

#[test]
fn cancel_after_ringing() {
    let r = run(&[
        step(0, true, INV, "1 INVITE"),
        step(500, false, "SIP/2.0 180 Ringing", "1 INVITE").tags("a1", "b2"),
        step(4_000, true, "CANCEL sip:bob@b.example SIP/2.0", "1 CANCEL"),
        step(4_010, false, "SIP/2.0 200 OK", "1 CANCEL").tags("a1", "b2"),
        step(4_020, false, "SIP/2.0 487 Request Terminated", "1 INVITE").tags("a1", "b2"),
        step(4_030, true, "ACK sip:bob@b.example SIP/2.0", "1 ACK").tags("a1", "b2"),
    ]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].disposition, Disposition::Cancelled);
    assert_eq!(r[0].end_reason, EndReason::Cancel);
    assert_eq!(r[0].ended_by, EndedBy::Caller);
    assert_eq!(r[0].final_status, Some(487));
    assert_eq!(r[0].pdd_ms, Some(500));
}

#[test]
fn ok_after_cancel_counts_as_answered() {
    let r = run(&[
        step(0, true, INV, "1 INVITE"),
        step(500, false, "SIP/2.0 180 Ringing", "1 INVITE").tags("a1", "b2"),
        step(4_000, true, "CANCEL sip:bob@b.example SIP/2.0", "1 CANCEL"),
        step(4_001, false, "SIP/2.0 200 OK", "1 INVITE").tags("a1", "b2"),
        step(
            4_010,
            false,
            "SIP/2.0 481 Call/Transaction Does Not Exist",
            "1 CANCEL",
        )
        .tags("a1", "b2"),
        step(4_020, true, "ACK sip:bob@b.example SIP/2.0", "1 ACK").tags("a1", "b2"),
        step(4_030, true, "BYE sip:bob@b.example SIP/2.0", "2 BYE").tags("a1", "b2"),
        step(4_040, false, "SIP/2.0 200 OK", "2 BYE").tags("a1", "b2"),
    ]);
    assert_eq!(r[0].disposition, Disposition::Answered);
    assert_eq!(r[0].ended_by, EndedBy::Caller);
    assert_eq!(r[0].billable_ms, Some(29));
}

#[test]
fn challenge_then_answer_is_one_leg() {
    let r = run(&[
        step(0, true, INV, "1 INVITE"),
        step(
            10,
            false,
            "SIP/2.0 407 Proxy Authentication Required",
            "1 INVITE",
        )
        .tags("a1", "p9"),
        step(
            11,
            false,
            "SIP/2.0 407 Proxy Authentication Required",
            "1 INVITE",
        )
        .tags("a1", "p9"),
        step(20, true, "ACK sip:bob@b.example SIP/2.0", "1 ACK").tags("a1", "p9"),
        step(30, true, INV, "2 INVITE"),
        step(30, true, INV, "2 INVITE"),
        step(600, false, "SIP/2.0 180 Ringing", "2 INVITE").tags("a1", "b2"),
        step(2_000, false, "SIP/2.0 200 OK", "2 INVITE").tags("a1", "b2"),
        step(2_010, true, "ACK sip:bob@b.example SIP/2.0", "2 ACK").tags("a1", "b2"),
        step(12_000, true, "BYE sip:bob@b.example SIP/2.0", "3 BYE").tags("a1", "b2"),
        step(12_010, false, "SIP/2.0 200 OK", "3 BYE").tags("a1", "b2"),
    ]);
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!(r[0].auth_challenges, 1);
    assert_eq!(r[0].invite_retransmissions, 1);
    assert_eq!(r[0].disposition, Disposition::Answered);
    assert_eq!(r[0].ended_by, EndedBy::Caller);
    assert_eq!(r[0].duration_ms, Some(12_000));
    assert_eq!(r[0].billable_ms, Some(10_000));
    assert_eq!(r[0].pdd_ms, Some(600));
}

#[test]
fn unretried_challenge_fails_after_the_challenge_timer() {
    let r = run(&[
        step(0, true, INV, "1 INVITE"),
        step(10, false, "SIP/2.0 401 Unauthorized", "1 INVITE").tags("a1", "p9"),
        step(
            100_000,
            true,
            "OPTIONS sip:x@b.example SIP/2.0",
            "1 OPTIONS",
        )
        .tags("zz", ""),
    ]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].disposition, Disposition::Failed);
    assert_eq!(r[0].final_status, Some(401));
    assert_eq!(r[0].end_reason, EndReason::Rejected);
    assert_eq!(r[0].auth_challenges, 1);
}

#[test]
fn open_calls_at_end_of_input_are_incomplete() {
    let r = run(&[
        step(0, true, INV, "1 INVITE"),
        step(100, false, "SIP/2.0 200 OK", "1 INVITE").tags("a1", "b2"),
        step(110, true, "ACK sip:bob@b.example SIP/2.0", "1 ACK").tags("a1", "b2"),
    ]);
    assert_eq!(r[0].disposition, Disposition::Answered);
    assert_eq!(r[0].end_reason, EndReason::Incomplete);
    assert_eq!(r[0].ended_by, EndedBy::Unknown);
    assert_eq!(r[0].end_at, None);
    assert_eq!(r[0].duration_ms, None);
    assert_eq!(r[0].billable_ms, None);
    assert_eq!(r[0].capture_issues, vec![CaptureIssue::CaptureEnded]);
}

#[test]
fn unanswered_invite_times_out() {
    let r = run(&[
        step(0, true, INV, "1 INVITE"),
        step(500, true, INV, "1 INVITE"),
        step(1_500, true, INV, "1 INVITE"),
        step(40_000, true, "OPTIONS sip:x@b.example SIP/2.0", "1 OPTIONS").tags("zz", ""),
    ]);
    assert_eq!(r[0].disposition, Disposition::Failed);
    assert_eq!(r[0].end_reason, EndReason::Timeout);
    assert_eq!(r[0].ended_by, EndedBy::Timeout);
    assert_eq!(r[0].invite_retransmissions, 2);
    assert_eq!(r[0].capture_issues, vec![CaptureIssue::NoResponse]);
}

#[test]
fn answered_call_without_bye_times_out_with_missing_bye() {
    let mut tracker = CallTracker::new(TrackerConfig {
        timers: Timers {
            call_idle_secs: 60,
            ..Timers::default()
        },
        ..TrackerConfig::default()
    });
    let mut out = Vec::new();
    for s in [
        step(0, true, INV, "1 INVITE"),
        step(100, false, "SIP/2.0 200 OK", "1 INVITE").tags("a1", "b2"),
        step(
            200_000,
            true,
            "OPTIONS sip:x@b.example SIP/2.0",
            "1 OPTIONS",
        )
        .tags("zz", ""),
    ] {
        tracker.on_event(&event("c", &s), &mut |r| out.push(r.clone()));
    }
    assert_eq!(out.len(), 1, "expired before the input ended");
    assert_eq!(out[0].end_reason, EndReason::Timeout);
    assert_eq!(out[0].duration_ms, Some(100));
    assert_eq!(
        out[0].capture_issues,
        vec![CaptureIssue::MissingAck, CaptureIssue::MissingBye]
    );
}

#[test]
fn non_call_traffic_makes_no_record() {
    let r = run(&[
        step(0, true, "REGISTER sip:b.example SIP/2.0", "1 REGISTER"),
        step(5, false, "SIP/2.0 401 Unauthorized", "1 REGISTER").tags("a1", "r1"),
        step(10, true, "OPTIONS sip:b.example SIP/2.0", "1 OPTIONS"),
        step(15, false, "SIP/2.0 200 OK", "1 OPTIONS").tags("a1", "o1"),
        step(20, false, "BYE sip:alice@a.example SIP/2.0", "5 BYE").tags("b2", "a9"),
    ]);
    assert!(r.is_empty(), "{r:#?}");
}

#[test]
fn tracks_phases_and_evicts_beyond_the_cap() {
    let mut tracker = CallTracker::new(TrackerConfig {
        max_live_legs: 2,
        ..TrackerConfig::default()
    });
    let mut out = Vec::new();
    for (i, cid) in ["c1", "c2", "c3"].iter().enumerate() {
        tracker.on_event(
            &event(cid, &step(i as i64, true, INV, "1 INVITE")),
            &mut |r| out.push(r.clone()),
        );
    }
    assert_eq!(tracker.phase_of("c1", "a1"), None);
    assert_eq!(tracker.phase_of("c3", "a1"), Some(Phase::Trying));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].call_id, "c1");
    assert_eq!(out[0].capture_issues, vec![CaptureIssue::Evicted]);
    assert_eq!(tracker.counters().evicted, 1);
    assert_eq!(tracker.live_legs(), 2);
}

#[test]
fn a_gap_on_the_connection_marks_the_calls_it_carries() {
    let mut tracker = CallTracker::new(TrackerConfig::default());
    let mut out = Vec::new();
    // Two calls over the same connection, A to B; the gap is reported in either direction.
    tracker.on_event(&event("first", &step(0, true, INV, "1 INVITE")), &mut |r| {
        out.push(r.clone())
    });
    tracker.on_event(
        &event("second", &step(0, true, INV, "1 INVITE")),
        &mut |r| out.push(r.clone()),
    );
    tracker.on_stream_gap(B.parse().expect("addr"), A.parse().expect("addr"));
    tracker.finish(&mut |r| out.push(r.clone()));
    assert_eq!(out.len(), 2);
    for r in &out {
        assert!(
            r.capture_issues.contains(&CaptureIssue::ReassemblyGap),
            "{r:?}"
        );
    }
    // A gap on another connection leaves the call alone.
    let mut tracker = CallTracker::new(TrackerConfig::default());
    let mut out = Vec::new();
    tracker.on_event(&event("c", &step(0, true, INV, "1 INVITE")), &mut |r| {
        out.push(r.clone())
    });
    tracker.on_stream_gap(
        "203.0.113.9:5060".parse().expect("addr"),
        A.parse().expect("addr"),
    );
    tracker.finish(&mut |r| out.push(r.clone()));
    assert!(!out[0].capture_issues.contains(&CaptureIssue::ReassemblyGap));
}

#[test]
fn record_ids_are_deterministic() {
    // Ids never change across versions: the name hashed is the one `format!` made.
    for at in [0, 5, -1, 1_700_000_000_123_456, i64::MIN, i64::MAX] {
        let name = format!("node\0call@host\0tag\0{at}");
        let namespace = uuid::Uuid::from_u128(0x5b1c_7a3e_2f44_4d0b_9c61_8e2a_d4f0_c7a1);
        assert_eq!(
            record_id("node", "call@host", "tag", at),
            uuid::Uuid::new_v5(&namespace, name.as_bytes())
        );
    }
    let a = record_id("n", "c", "t", 5);
    assert_eq!(a, record_id("n", "c", "t", 5));
    assert_ne!(a, record_id("n2", "c", "t", 5));
    assert_ne!(a, record_id("n", "c", "t", 6));
}

// The leg's own helpers.

#[test]
fn puts_the_user_part_as_a_piece_of_the_uri() {
    let mut to = None;
    put_user(&mut to, "sip:zoë@example.com;transport=tcp");
    assert_eq!(to.as_deref(), Some("zoë"));
    put_user(&mut to, "tel:+1-555-0100;ext=12");
    assert_eq!(to.as_deref(), Some("+1-555-0100"));
    put_user(&mut to, "sips:☎:secret@example.com");
    assert_eq!(to.as_deref(), Some("☎"));
    put_user(&mut to, "sip:example.com");
    assert_eq!(to, None);
}
