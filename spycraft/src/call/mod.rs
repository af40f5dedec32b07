// SPDX-License-Identifier: AGPL-3.0-or-later
//! Calls: the INVITE-dialog state machine, the tracker that owns every live leg, and the
//! [`CallRecord`] each finished leg becomes. Knows nothing of capture or wire formats beyond
//! [`SipEvent`](crate::sip::SipEvent).

mod direction;
mod leg;
mod record;
mod timers;
mod tracker;

pub use direction::{BadHost, MonitoredHosts};
pub use leg::record_id;
pub use record::{CallRecord, CaptureIssue, Direction, Disposition, EndReason, EndedBy, Timestamp};
pub use timers::Timers;
pub use tracker::{CallTracker, TrackerConfig, TrackerCounters};

#[cfg(test)]
mod tests {
    use super::leg::Phase;
    use super::*;
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
    }

    fn event(call_id: &str, s: &Step) -> SipEvent {
        let to_tag = if s.to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={}", s.to_tag)
        };
        let raw = format!(
            "{}\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK{}\r\nFrom: <sip:alice@a.example>;tag={}\r\n\
             To: <sip:bob@b.example>{}\r\nCall-ID: {}\r\nCSeq: {}\r\n{}Content-Length: 0\r\n\r\n",
            s.start, s.cseq, s.from_tag, to_tag, call_id, s.cseq, s.extra
        );
        let mut headers = [EMPTY_HEADER; 32];
        let msg = parse_datagram(raw.as_bytes(), &mut headers).expect("test message parses");
        let (src, dst) = if s.from_a { (A, B) } else { (B, A) };
        let meta = PacketInfo {
            ts_us: 1_700_000_000_000_000 + s.at_ms * 1000,
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
            tracker.on_event(&event("call-1", s), &mut |r| out.push(r));
        }
        tracker.finish(&mut |r| out.push(r));
        out
    }

    const INV: &str = "INVITE sip:bob@b.example SIP/2.0";

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
            tracker.on_event(&event("call-1", &s), &mut |r| out.push(r));
        }
        let t0 = 1_700_000_000_000_000;
        tracker.on_clock(t0 + 10_000_000, &mut |r| out.push(r));
        assert!(out.is_empty(), "still lingering for retransmissions");
        tracker.on_clock(t0 + 40_000_000, &mut |r| out.push(r));
        assert_eq!(
            out.len(),
            1,
            "written once the linger is over, with no traffic"
        );
        assert_eq!(out[0].disposition, Disposition::Busy);
        assert_eq!(out[0].end_reason, EndReason::Rejected);
        tracker.on_clock(t0, &mut |r| out.push(r));
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
            tracker.on_event(&event("c", &s), &mut |r| out.push(r));
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
                &mut |r| out.push(r),
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
            out.push(r)
        });
        tracker.on_event(
            &event("second", &step(0, true, INV, "1 INVITE")),
            &mut |r| out.push(r),
        );
        tracker.on_stream_gap(B.parse().expect("addr"), A.parse().expect("addr"));
        tracker.finish(&mut |r| out.push(r));
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
            out.push(r)
        });
        tracker.on_stream_gap(
            "203.0.113.9:5060".parse().expect("addr"),
            A.parse().expect("addr"),
        );
        tracker.finish(&mut |r| out.push(r));
        assert!(!out[0].capture_issues.contains(&CaptureIssue::ReassemblyGap));
    }

    #[test]
    fn record_ids_are_deterministic() {
        let a = record_id("n", "c", "t", 5);
        assert_eq!(a, record_id("n", "c", "t", 5));
        assert_ne!(a, record_id("n2", "c", "t", 5));
        assert_ne!(a, record_id("n", "c", "t", 6));
    }
}
