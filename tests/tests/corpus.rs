// SPDX-License-Identifier: AGPL-3.0-or-later
//! The external corpus (`../shared/corpus/`): every capture is analysed without a panic, its
//! calls are asserted as a careful reading of it counts them (over UDP, TCP, WebSocket, SCTP,
//! and inside ERSPAN, GRE and GTP-U), and the negative controls give no call.

use std::path::{Path, PathBuf};

use spycraft::pipeline::PipelineConfig;
use spycraft_tests::{analyze_with, corpus_dir};

/// The 37 INVITE legs of heplify's TCP capture on port 6060.
const TCP_6060: &[&str] = &[
    "answered/200/bye/tcp",
    "answered/200/bye/tcp",
    "answered/200/bye/tcp",
    "answered/200/bye/tcp",
    "answered/200/bye/tcp",
    "answered/200/bye/tcp",
    "answered/200/bye/tcp",
    "answered/200/bye/tcp",
    "answered/200/bye/tcp",
    "answered/200/bye/tcp",
    "answered/200/bye/tcp",
    "answered/200/bye/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "answered/200/incomplete/tcp",
    "cancelled/487/cancel/tcp",
    "failed/-/incomplete/tcp",
    "failed/-/incomplete/tcp",
    "failed/-/timeout/tcp",
    "failed/403/rejected/tcp",
];

/// What one capture must give: records as `disposition/final_status/end_reason/transport`,
/// sorted.
struct Expect {
    file: &'static str,
    calls: &'static [&'static str],
    why: &'static str,
}

const CAPTURES: &[Expect] = &[
    Expect { file: "pcaps/heplify/sip_ipv4_tcp.pcap", calls: &["answered/200/bye/tcp"], why: "one answered call over TCP" },
    Expect { file: "pcaps/heplify/sip_ipv4_tcp_fragmented.pcap", calls: TCP_6060, why: "SIP over TCP on 6060 (found by its start lines), messages split across segments: 70 Call-IDs, 33 of them REGISTER/OPTIONS; of the 37 INVITE legs 32 answered (20 still up at the end), one cancelled, one refused 403, three without a final response" },
    Expect { file: "pcaps/heplify/sip_ipv4_tcp_retrans.pcap", calls: &[], why: "a REGISTER over TCP with TCP retransmissions, relayed over UDP: no call" },
    Expect { file: "pcaps/heplify/sip_sctp.pcap", calls: &["failed/403/rejected/sctp"], why: "INVITE over SCTP split into two DATA chunks, 100, 403, ACK" },
    Expect { file: "pcaps/heplify/erspan_sip_ipv4_udp.pcapng", calls: &["answered/200/bye/udp"; 6], why: "inside ERSPAN: three calls through a B2BUA that keeps the Call-ID but changes the tags, so two legs each; one inner leg is challenged with 407 and retried under a new From tag (one leg)" },
    Expect { file: "pcaps/arkime/gtp-iphone.pcap", calls: &["answered/200/bye/tcp"], why: "IMS call over IPv6 TCP inside GTP-U" },
    Expect { file: "pcaps/ndpi/gre.pcapng", calls: &[], why: "a lone 100 Trying inside VLAN + GRE + PPP" },
    Expect { file: "pcaps/suricata-verify/sip-body-large/sip-body-large.pcap", calls: &["failed/-/incomplete/tcp"], why: "INVITE with a 64 KiB body over TCP, then only 100 Trying" },
    Expect { file: "pcaps/suricata-verify/sip-tcp-method/sip-tcp.pcap", calls: &[], why: "REGISTER/200 over TCP" },
    Expect { file: "pcaps/suricata-verify/sip-tcp-pattern-matching/sip.pcap", calls: &[], why: "REGISTER/401 over TCP" },
    Expect { file: "pcaps/heplify/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap", calls: &["answered/200/bye/udp", "answered/200/bye/udp"], why: "two legs of one fax call through a gateway; the T.38 re-INVITE declined with 488 stays inside the answered dialog" },
    Expect { file: "pcaps/ndpi/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap", calls: &["answered/200/bye/udp", "answered/200/bye/udp"], why: "trimmed copy of the same fax call" },
    Expect { file: "pcaps/heplify/rtp_rtcp_sip_ipv4_udp.pcap", calls: &["answered/200/incomplete/udp", "failed/-/incomplete/udp"], why: "one call answered and still up when the capture ends, one INVITE never answered" },
    Expect { file: "pcaps/suricata-verify/sip-body-frames/public-cloudshark-sip-s0.pcap", calls: &["answered/200/incomplete/udp", "failed/-/incomplete/udp"], why: "same cloudshark capture: answered call without BYE, and an unanswered INVITE" },
    Expect { file: "pcaps/heplify/sip_ipv6_udp.pcap", calls: &["answered/200/bye/udp"], why: "IPv6 INVITE/100/200/ACK/BYE/200 (the capture's clock jumps by years between frames; the dialog still completes)" },
    Expect { file: "pcaps/heplify/sip_tcp_websocket.pcap", calls: &["answered/200/bye/udp", "answered/200/bye/ws"], why: "a WebSocket caller challenged with 407 through a proxy that forwards over UDP (same dialog, one leg), and a call the other way over UDP" },
    Expect { file: "pcaps/suricata-verify/sip-method/sip.pcap", calls: &["failed/403/rejected/udp", "failed/403/rejected/udp", "no_answer/408/rejected/udp", "no_answer/480/rejected/udp"], why: "Wireshark aaa.pcap: 408 after 100; two calls challenged with 407, retried 32 s and 51 s later, refused 403; 407 then 480" },
    Expect { file: "pcaps/ndpi/sip.pcap", calls: &["failed/403/rejected/udp", "failed/403/rejected/udp", "no_answer/408/rejected/udp", "no_answer/480/rejected/udp"], why: "aaa.pcap-derived, same SIP" },
    Expect { file: "pcaps/zeek/wireshark.pcap", calls: &["failed/403/rejected/udp", "failed/403/rejected/udp", "no_answer/408/rejected/udp", "no_answer/480/rejected/udp"], why: "the 81 SIP packets of aaa.pcap" },
    Expect { file: "pcaps/ndpi/fuzz-2006-06-26-2594.pcap", calls: &["failed/-/incomplete/udp", "failed/-/timeout/udp", "failed/403/rejected/udp"], why: "fuzzed aaa.pcap: the 408 call lost every INVITE to corruption; the first 403 call's INVITE has a corrupted Call-ID, so no response matches it (timeout); the second keeps its legible 100 and 403 (its 407 is unreadable); the 480 call's retry has a corrupted From tag, so its 480 matches nothing (incomplete)" },
    Expect { file: "pcaps/suricata-verify/sip-compact-form/sip_compact_form.pcap", calls: &["failed/-/incomplete/udp"], why: "a lone INVITE in compact form" },
    Expect { file: "pcaps/suricata-verify/sip-header-multi-value/sip_header_multi_val.pcap", calls: &["failed/-/incomplete/udp"], why: "a lone INVITE with multi-value headers" },
    Expect { file: "pcaps/suricata-verify/sip-sdp/sdp.pcap", calls: &["answered/200/incomplete/udp"], why: "INVITE and 200, nothing after" },
    Expect { file: "pcaps/zeek/invalid-content-length.pcap", calls: &["answered/200/incomplete/udp"], why: "INVITE and 200 with unreadable Content-Length: the datagram bounds them, so they count" },
    Expect { file: "pcaps/suricata-verify/sip-options-method/input.pcap", calls: &[], why: "OPTIONS/200" },
    Expect { file: "pcaps/suricata-verify/sip-pattern-matching/sip.pcap", calls: &[], why: "REGISTER/401" },
    Expect { file: "pcaps/ndpi/sip_hello.pcapng", calls: &[], why: "REGISTER/401/REGISTER/200 between 'hello' keep-alives" },
    Expect { file: "pcaps/ndpi/webex.pcap", calls: &[], why: "22 unanswered REGISTERs" },
    Expect { file: "pcaps/zeek/sip-long-request-response-paths.pcap", calls: &[], why: "OPTIONS/200 with very many Via headers" },
    Expect { file: "pcaps/zeek/sip-junk-before-request.pcap", calls: &[], why: "junk before a REGISTER" },
    Expect { file: "pcaps/ndpi/http_on_sip_port.pcap", calls: &[], why: "negative control: HTTP on TCP 5060" },
    Expect { file: "pcaps/ndpi/mgcp.pcap", calls: &[], why: "negative control: MGCP" },
    Expect { file: "pcaps/ndpi/synscan.pcap", calls: &[], why: "negative control: SYN scan including 5060" },
    Expect { file: "pcaps/suricata-verify/sip-ssdp-pm/ssdp.pcap", calls: &[], why: "negative control: SSDP's HTTP-over-UDP is not SIP" },
];

fn outcomes(corpus: &Path, file: &str) -> Vec<String> {
    let (records, summary, result) = analyze_with(&[corpus.join(file)], &PipelineConfig::default());
    result.unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(summary.records(), records.len() as u64, "{file}");
    let mut out: Vec<String> = records
        .iter()
        .map(|r| {
            let status = r.final_status.map_or("-".to_owned(), |s| s.to_string());
            format!(
                "{}/{status}/{}/{}",
                r.disposition,
                r.end_reason.as_str(),
                r.transport
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn captures_give_the_calls_a_careful_reading_counts() {
    let Some(corpus) = corpus_dir() else { return };
    for e in CAPTURES {
        assert_eq!(outcomes(&corpus, e.file), e.calls, "{}: {}", e.file, e.why);
    }
}

#[test]
fn every_capture_in_the_corpus_is_read_to_the_end_alike_on_either_thread_plan() {
    let Some(corpus) = corpus_dir() else { return };
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![corpus.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable corpus") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(
        files.len() >= 35,
        "corpus incomplete: {} captures",
        files.len()
    );
    for path in files {
        let relative = path
            .strip_prefix(&corpus)
            .expect("inside")
            .to_string_lossy()
            .into_owned();
        let known =
            CAPTURES.iter().any(|e| e.file == relative) || relative == "torture/rfc4475_udp.pcap";
        assert!(
            known,
            "{relative}: new corpus capture; add its expected calls to this test"
        );
        let (records, summary, result) =
            analyze_with(std::slice::from_ref(&path), &PipelineConfig::default());
        result.unwrap_or_else(|e| panic!("{relative}: {e}"));
        assert!(
            summary.parse.decode.frames > 0,
            "{relative}: no frames read"
        );
        // Parsing on a thread of its own (the default plan) changes nothing that is counted
        // or written: every message and error is seen as on one thread, in the same order.
        let one_thread = PipelineConfig {
            threads: 1,
            ..PipelineConfig::default()
        };
        let (records_1, summary_1, result_1) =
            analyze_with(std::slice::from_ref(&path), &one_thread);
        result_1.unwrap_or_else(|e| panic!("{relative}, one thread: {e}"));
        assert_eq!(summary, summary_1, "{relative}: counters by thread plan");
        assert_eq!(records, records_1, "{relative}: records by thread plan");
    }
}

#[test]
fn negative_controls_hold_no_sip_at_all() {
    let Some(corpus) = corpus_dir() else { return };
    for file in [
        "pcaps/ndpi/mgcp.pcap",
        "pcaps/suricata-verify/sip-ssdp-pm/ssdp.pcap",
        "pcaps/ndpi/synscan.pcap",
    ] {
        let (_, summary, _) = analyze_with(&[corpus.join(file)], &PipelineConfig::default());
        assert_eq!(summary.parse.sip_messages, 0, "{file}");
        assert_eq!(
            summary.parse.total_parse_errors(),
            0,
            "{file}: not SIP, so not a SIP error"
        );
    }
}

#[test]
fn torture_messages_never_stop_the_run() {
    let Some(corpus) = corpus_dir() else { return };
    let (records, summary, result) = analyze_with(
        &[corpus.join("torture/rfc4475_udp.pcap")],
        &PipelineConfig::default(),
    );
    result.expect("read to the end");
    assert_eq!(
        summary.parse.decode.frames, 49,
        "one datagram per torture message"
    );
    assert_eq!(
        summary.parse.sip_messages + summary.parse.total_parse_errors() + summary.parse.keepalives,
        49,
        "every message is either parsed or counted as an error"
    );
    assert!(!records.is_empty());
}

/// Counts a careful reading also gives: every message of the TCP, SCTP, tunnelled and
/// mirrored captures is found, with no parse error.
#[test]
fn reassembly_and_tunnels_find_every_message() {
    let Some(corpus) = corpus_dir() else { return };
    let cases: &[(&str, u64)] = &[
        ("pcaps/heplify/sip_ipv4_tcp.pcap", 7),
        ("pcaps/heplify/sip_ipv4_tcp_fragmented.pcap", 406),
        ("pcaps/heplify/sip_ipv4_tcp_retrans.pcap", 8),
        ("pcaps/heplify/sip_sctp.pcap", 4),
        ("pcaps/heplify/sip_tcp_websocket.pcap", 39),
        ("pcaps/heplify/erspan_sip_ipv4_udp.pcapng", 140),
        ("pcaps/arkime/gtp-iphone.pcap", 17),
        ("pcaps/ndpi/gre.pcapng", 1),
        (
            "pcaps/suricata-verify/sip-body-large/sip-body-large.pcap",
            2,
        ),
        ("pcaps/suricata-verify/sip-tcp-method/sip-tcp.pcap", 2),
        // 92 frames carry SIP, 23 of them a mirror's second copy.
        ("pcaps/heplify/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap", 69),
        ("pcaps/ndpi/http_on_sip_port.pcap", 0),
    ];
    for &(file, messages) in cases {
        let (_, summary, result) = analyze_with(&[corpus.join(file)], &PipelineConfig::default());
        result.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            summary.parse.sip_messages,
            messages,
            "{file}: {}",
            summary.one_line()
        );
        assert_eq!(
            summary.parse.total_parse_errors(),
            0,
            "{file}: {}",
            summary.one_line()
        );
    }
    let (_, fax, _) = analyze_with(
        &[corpus.join("pcaps/heplify/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap")],
        &PipelineConfig::default(),
    );
    assert_eq!(fax.parse.decode.duplicates, 23);
    let (records, gtp, _) = analyze_with(
        &[corpus.join("pcaps/arkime/gtp-iphone.pcap")],
        &PipelineConfig::default(),
    );
    assert_eq!(
        gtp.parse.decode.tunnels.gtp_u, gtp.parse.decode.frames,
        "every frame is GTP-U"
    );
    assert!(
        records[0].caller_ip.is_ipv6(),
        "the record carries the inner addresses"
    );
}
