// SPDX-License-Identifier: AGPL-3.0-or-later
//! RFC 4475, one check per torture message (`../shared/corpus/torture/rfc4475/`, verdicts in
//! `INDEX.tsv`). Valid messages parse with their key fields asserted; invalid ones are
//! rejected with a specific error, or — where a tolerant element may accept them, as a passive
//! sensor should rather than lose a call — accepted with the behaviour written here. None
//! panics, whether parsed as a datagram or as a stream.

use spycraft::decode::{PacketInfo, Transport};
use spycraft::packet::Timestamp;
use spycraft::sip::{
    parse, parse_datagram, BodyIssue, ParseError, SipEvent, StartLine, EMPTY_HEADER, MAX_HEADERS,
};
use spycraft_tests::corpus_dir;

/// What spycraft does with one message.
#[derive(Debug)]
enum Expect {
    /// Parsed: start-line token (method or status code), CSeq number, body length, and the
    /// event for the call stage built.
    Parsed {
        start: &'static str,
        cseq: u32,
        body: usize,
    },
    /// Parsed, but with something written down: the body issue flagged, or the event refused.
    Tolerated {
        start: &'static str,
        body_issue: Option<BodyIssue>,
        event: Result<u32, ParseError>,
        why: &'static str,
    },
    /// Rejected with this error.
    Rejected(ParseError),
}

use Expect::*;

const TABLE: &[(&str, Expect)] = &[
    ("wsinv.dat", Parsed { start: "INVITE", cseq: 9, body: 150 }),
    ("intmeth.dat", Parsed { start: "!interesting-Method0123456789_*+`.%indeed'~", cseq: 139122385, body: 0 }),
    ("esc01.dat", Parsed { start: "INVITE", cseq: 234234, body: 150 }),
    ("escnull.dat", Parsed { start: "REGISTER", cseq: 14398234, body: 0 }),
    ("esc02.dat", Parsed { start: "RE%47IST%45R", cseq: 29344, body: 0 }),
    ("lwsdisp.dat", Parsed { start: "OPTIONS", cseq: 60, body: 0 }),
    ("longreq.dat", Parsed { start: "INVITE", cseq: 3882340, body: 150 }),
    // The second request in the datagram is ignored: the message ends at its Content-Length.
    ("dblreq.dat", Parsed { start: "REGISTER", cseq: 8, body: 0 }),
    ("semiuri.dat", Parsed { start: "OPTIONS", cseq: 8, body: 0 }),
    ("transports.dat", Parsed { start: "OPTIONS", cseq: 60, body: 0 }),
    ("mpart01.dat", Parsed { start: "MESSAGE", cseq: 1, body: 553 }),
    ("unreason.dat", Parsed { start: "200", cseq: 35, body: 154 }),
    ("noreason.dat", Parsed { start: "100", cseq: 35, body: 0 }),
    ("badinv01.dat", Tolerated { start: "INVITE", body_issue: None, event: Ok(8), why: "extra ';' and ',' separators only matter to header grammar a sensor does not need" }),
    ("clerr.dat", Tolerated { start: "INVITE", body_issue: Some(BodyIssue::Short), event: Ok(8), why: "Content-Length beyond the datagram: the signalling headers are intact, the short body is flagged and counted" }),
    ("ncl.dat", Tolerated { start: "INVITE", body_issue: Some(BodyIssue::BadLength), event: Ok(0), why: "negative Content-Length: the datagram bounds the message; flagged" }),
    ("scalar02.dat", Tolerated { start: "REGISTER", body_issue: None, event: Err(ParseError::MissingHeader), why: "CSeq beyond 2^32-1 cannot identify a transaction: no event" }),
    ("scalarlg.dat", Tolerated { start: "503", body_issue: None, event: Err(ParseError::MissingHeader), why: "CSeq beyond 2^32-1: no event" }),
    ("quotbal.dat", Tolerated { start: "INVITE", body_issue: None, event: Ok(8), why: "an unterminated quote in a display name: the URI and tag are still found" }),
    ("ltgtruri.dat", Rejected(ParseError::RequestUri)),
    ("lwsruri.dat", Rejected(ParseError::RequestUri)),
    ("lwsstart.dat", Rejected(ParseError::RequestUri)),
    ("trws.dat", Rejected(ParseError::StartLine)),
    ("escruri.dat", Tolerated { start: "INVITE", body_issue: None, event: Ok(149209342), why: "escaped headers in the Request-URI are kept as written" }),
    ("baddate.dat", Tolerated { start: "INVITE", body_issue: None, event: Ok(1392934), why: "the Date header is not read" }),
    ("regbadct.dat", Tolerated { start: "REGISTER", body_issue: None, event: Ok(1), why: "Contact is not read for REGISTER accounting" }),
    ("badaspec.dat", Tolerated { start: "OPTIONS", body_issue: None, event: Ok(3923239), why: "spaces inside an addr-spec are kept in the URI" }),
    ("baddn.dat", Tolerated { start: "OPTIONS", body_issue: Some(BodyIssue::Unterminated), event: Ok(3923239), why: "non-token display name accepted; the datagram lacks its final blank line" }),
    ("badvers.dat", Rejected(ParseError::Version)),
    ("mismatch01.dat", Tolerated { start: "OPTIONS", body_issue: None, event: Err(ParseError::CSeqMismatch), why: "parsed, but a CSeq naming another method is refused before it can confuse a call" }),
    ("mismatch02.dat", Tolerated { start: "NEWMETHOD", body_issue: None, event: Err(ParseError::CSeqMismatch), why: "as mismatch01" }),
    ("bigcode.dat", Rejected(ParseError::StatusCode)),
    ("badbranch.dat", Parsed { start: "OPTIONS", cseq: 8, body: 0 }),
    ("insuf.dat", Tolerated { start: "INVITE", body_issue: None, event: Err(ParseError::MissingHeader), why: "no Call-ID: nothing to track" }),
    ("unkscm.dat", Parsed { start: "OPTIONS", cseq: 3923423, body: 0 }),
    ("novelsc.dat", Parsed { start: "OPTIONS", cseq: 3923423, body: 0 }),
    ("unksm2.dat", Parsed { start: "REGISTER", cseq: 234902, body: 0 }),
    ("bext01.dat", Parsed { start: "OPTIONS", cseq: 8, body: 0 }),
    ("invut.dat", Parsed { start: "INVITE", cseq: 235448, body: 40 }),
    ("regaut01.dat", Parsed { start: "REGISTER", cseq: 9338, body: 0 }),
    ("multi01.dat", Tolerated { start: "INVITE", body_issue: None, event: Ok(5), why: "several values where one is allowed: the first is used" }),
    ("mcl01.dat", Tolerated { start: "OPTIONS", body_issue: Some(BodyIssue::BadLength), event: Ok(15932), why: "conflicting Content-Lengths: the datagram bounds the message; flagged" }),
    ("bcast.dat", Parsed { start: "200", cseq: 35, body: 154 }),
    ("zeromf.dat", Parsed { start: "OPTIONS", cseq: 39234321, body: 0 }),
    ("cparam01.dat", Parsed { start: "REGISTER", cseq: 2, body: 0 }),
    ("cparam02.dat", Parsed { start: "REGISTER", cseq: 3, body: 0 }),
    ("regescrt.dat", Parsed { start: "REGISTER", cseq: 14398234, body: 0 }),
    ("sdp01.dat", Parsed { start: "INVITE", cseq: 8, body: 150 }),
    ("inv2543.dat", Parsed { start: "INVITE", cseq: 56, body: 105 }),
];

fn info() -> PacketInfo {
    PacketInfo {
        time: Timestamp(0),
        src: "192.0.2.1:5060".parse().expect("addr"),
        dst: "192.0.2.2:5060".parse().expect("addr"),
        transport: Transport::Udp,
        vlan: None,
    }
}

fn check(file: &str, raw: &[u8], expect: &Expect) {
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    let parsed = parse_datagram(raw, &mut headers);
    let msg = match (parsed, expect) {
        (Err(e), Rejected(want)) => return assert_eq!(e, *want, "{file}"),
        (Err(e), _) => panic!("{file}: rejected with {e:?}, expected {expect:?}"),
        (Ok(_), Rejected(want)) => panic!("{file}: accepted, expected rejection with {want:?}"),
        (Ok(msg), _) => msg,
    };
    let start = match msg.start {
        StartLine::Request { method_token, .. } => {
            String::from_utf8_lossy(method_token).into_owned()
        }
        StartLine::Response { code, .. } => code.to_string(),
    };
    let event = SipEvent::from_message(info(), &msg, &[]);
    match expect {
        Parsed {
            start: want,
            cseq,
            body,
        } => {
            assert_eq!(start, *want, "{file}");
            assert_eq!(msg.body.len(), *body, "{file}: body");
            assert_eq!(msg.body_issue, None, "{file}");
            let ev = event.unwrap_or_else(|e| panic!("{file}: no event: {e:?}"));
            assert_eq!(ev.cseq.number, *cseq, "{file}");
            assert!(!ev.call_id().is_empty(), "{file}");
            let stem = file.trim_end_matches(".dat");
            if !matches!(stem, "mpart01" | "inv2543") {
                assert!(
                    ev.call_id().starts_with(stem),
                    "{file}: Call-ID {}",
                    ev.call_id()
                );
            }
            if !matches!(stem, "inv2543") {
                assert!(!ev.from_tag().is_empty(), "{file}: From tag");
            }
        }
        Tolerated {
            start: want,
            body_issue,
            event: want_event,
            why,
        } => {
            assert_eq!(start, *want, "{file}: {why}");
            assert_eq!(msg.body_issue, *body_issue, "{file}: {why}");
            assert_eq!(event.map(|ev| ev.cseq.number), *want_event, "{file}: {why}");
        }
        Rejected(_) => unreachable!("handled above"),
    }
}

#[test]
fn every_torture_message_gets_its_written_verdict() {
    let Some(corpus) = corpus_dir() else { return };
    let dir = corpus.join("torture/rfc4475");
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).expect("INDEX.tsv");
    let files: Vec<&str> = index
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(files.len(), 49);
    for file in files {
        let expect = TABLE
            .iter()
            .find(|(f, _)| *f == file)
            .map(|(_, e)| e)
            .unwrap_or_else(|| panic!("{file}: not in the table"));
        let raw = std::fs::read(dir.join(file)).expect("readable");
        check(file, &raw, expect);
        // As a stream, too: complete, partial or rejected, never a panic; and every prefix.
        for cut in (0..=raw.len()).step_by(7) {
            let mut headers = [EMPTY_HEADER; MAX_HEADERS];
            let _ = parse(&raw[..cut], &mut headers);
        }
    }
}

#[test]
fn valid_messages_carry_their_key_fields() {
    let Some(corpus) = corpus_dir() else { return };
    let raw = std::fs::read(corpus.join("torture/rfc4475/wsinv.dat")).expect("wsinv");
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    let msg = parse_datagram(&raw, &mut headers).expect("valid");
    let ev = SipEvent::from_message(info(), &msg, &[]).expect("event");
    assert_eq!(ev.call_id(), "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(ev.from_tag(), "98asjd8");
    assert_eq!(ev.to_tag(), "1918181833n", "folded, with spaces around =");
    assert_eq!(
        ev.field(spycraft::sip::Field::ToUri),
        "sip:vivekg@chair-dnrc.example.com"
    );
    match msg.start {
        StartLine::Request { uri, .. } => {
            assert!(uri.starts_with(b"sip:vivekg@chair-dnrc.example.com;unknownparam"))
        }
        StartLine::Response { .. } => panic!("a request"),
    }
}
