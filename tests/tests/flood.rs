// SPDX-License-Identifier: AGPL-3.0-or-later
//! Floods with bounded memory, measured by counts and by this process's peak RSS (VmHWM in
//! /proc/self/status), never by time: a million INVITEs with random Call-IDs and no answer,
//! a million REGISTERs, and a million half-open TCP flows, each with real calls mixed in that
//! must still be recorded correctly. One test per flood, run one after another in this
//! process (the peaks only grow, so each bound holds for all that ran before it too).

use std::sync::Mutex;

use etherparse::PacketBuilder;
use spycraft::call::{CallRecord, Disposition, TrackerConfig};
use spycraft_tests::sensor::{memory_kib, xorshift, Sensor};

/// The documented bound (README, "Robustness") on the sensor's peak RSS under a flood.
const RSS_CAP_MIB: u64 = 512;
const FLOOD: u32 = 1_000_000;

/// Floods run one at a time, so that each measures its own peak on top of the last.
static SERIAL: Mutex<()> = Mutex::new(());

fn peak_rss_mib() -> u64 {
    memory_kib("VmHWM") / 1024
}

/// A sensor with the default bounds that keeps only the real calls' records; the flood's
/// are counted.
fn sensor() -> Sensor {
    Sensor::new(TrackerConfig::default(), |r| r.call_id.starts_with("real-"))
}

/// Real calls mixed into a flood.
trait RealCalls {
    fn real_call(&mut self, ts_us: i64, n: u32);
}

impl RealCalls for Sensor {
    /// A complete answered call of 5 s, seen from the PBX at 10.0.0.1.
    fn real_call(&mut self, ts_us: i64, n: u32) {
        let dialog = |first: &str, cseq: &str, to_tag: &str| {
            format!(
                "{first}\r\nVia: SIP/2.0/UDP 10.9.0.1;branch=z9hG4bKr{n}{cseq}\r\nFrom: <sip:alice@10.9.0.1>;tag=ra{n}\r\n\
                 To: <sip:bob@10.0.0.1>{to_tag}\r\nCall-ID: real-{n}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let tag = format!(";tag=rb{n}");
        self.udp(
            ts_us,
            [10, 9, 0, 1],
            5060,
            &dialog("INVITE sip:bob@10.0.0.1 SIP/2.0", "1 INVITE", ""),
        );
        let reply = |s: &mut Self, at: i64, text: String| {
            let mut out = Vec::new();
            PacketBuilder::ipv4([10, 0, 0, 1], [10, 9, 0, 1], 64)
                .udp(5060, 5060)
                .write(&mut out, text.as_bytes())
                .expect("build");
            s.frame(at, &out);
        };
        reply(
            self,
            ts_us + 100_000,
            dialog("SIP/2.0 180 Ringing", "1 INVITE", &tag),
        );
        reply(
            self,
            ts_us + 1_000_000,
            dialog("SIP/2.0 200 OK", "1 INVITE", &tag),
        );
        self.udp(
            ts_us + 1_010_000,
            [10, 9, 0, 1],
            5060,
            &dialog("ACK sip:bob@10.0.0.1 SIP/2.0", "1 ACK", &tag),
        );
        self.udp(
            ts_us + 6_000_000,
            [10, 9, 0, 1],
            5060,
            &dialog("BYE sip:bob@10.0.0.1 SIP/2.0", "2 BYE", &tag),
        );
        reply(
            self,
            ts_us + 6_010_000,
            dialog("SIP/2.0 200 OK", "2 BYE", &tag),
        );
    }
}

fn check_real_calls(records: &[CallRecord], expected: usize) {
    assert_eq!(records.len(), expected, "every real call is recorded");
    for r in records {
        assert_eq!(r.disposition, Disposition::Answered, "{r:?}");
        assert_eq!(r.billable_ms, Some(5_000), "{r:?}");
        assert!(r.capture_issues.is_empty(), "{r:?}");
    }
}

#[test]
fn a_million_unanswered_invites() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut sensor = sensor();
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut real = 0;
    for i in 0..FLOOD {
        // 20,000 INVITEs a second from many sources: 640,000 would be waiting on Timer B.
        let ts = i64::from(i) * 50;
        let r = xorshift(&mut rng);
        let text = format!(
            "INVITE sip:{}@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.7;branch=z9hG4bK{r:x}\r\n\
             From: <sip:scan@203.0.113.7>;tag={r:x}\r\nTo: <sip:{}@10.0.0.1>\r\nCall-ID: {r:016x}@flood\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            r % 10_000,
            r % 10_000
        );
        sensor.udp(ts, [203, 0, 113, (r >> 56) as u8], 5060, &text);
        if i % 100_000 == 50_000 {
            sensor.real_call(ts, real);
            real += 1;
        }
    }
    let (records, tracker, _) = sensor.finish();
    check_real_calls(&records, real as usize);
    let c = tracker.counters();
    assert_eq!(c.legs_started, u64::from(FLOOD) + u64::from(real));
    assert!(c.evicted > 0, "the live-dialog cap was reached: {c:?}");
    assert!(c.peak_live_legs <= TrackerConfig::default().max_live_legs as u64);
    let rss = peak_rss_mib();
    eprintln!(
        "INVITE flood: peak RSS {rss} MiB, {} legs evicted, peak {} live",
        c.evicted, c.peak_live_legs
    );
    assert!(rss < RSS_CAP_MIB, "peak RSS {rss} MiB");
}

#[test]
fn a_million_registers() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut sensor = sensor();
    let mut rng = 0xfeed_face_cafe_beefu64;
    for i in 0..FLOOD {
        let r = xorshift(&mut rng);
        let text = format!(
            "REGISTER sip:10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.9;branch=z9hG4bK{r:x}\r\n\
             From: <sip:{}@10.0.0.1>;tag={r:x}\r\nTo: <sip:{}@10.0.0.1>\r\nCall-ID: {r:016x}@reg\r\n\
             CSeq: 1 REGISTER\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n",
            r % 100_000,
            r % 100_000
        );
        sensor.udp(
            i64::from(i) * 50,
            [198, 51, 100, (r >> 56) as u8],
            5060,
            &text,
        );
        if i == FLOOD / 2 {
            sensor.real_call(i64::from(i) * 50, 0);
        }
    }
    let (records, tracker, parse) = sensor.finish();
    check_real_calls(&records, 1);
    assert_eq!(tracker.counters().legs_started, 1, "REGISTERs make no leg");
    assert_eq!(parse.counters().sip_messages, u64::from(FLOOD) + 6);
    let rss = peak_rss_mib();
    eprintln!("REGISTER flood: peak RSS {rss} MiB");
    assert!(rss < RSS_CAP_MIB, "peak RSS {rss} MiB");
}

#[test]
fn a_million_half_open_tcp_flows() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut sensor = sensor();
    let partial = "INVITE sip:bob@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKx\r\nContent-Length: 900\r\n\r\n";
    for i in 0..FLOOD {
        // A SYN and the start of a message that never completes, from a new source each time.
        let src = [192, 0, (i >> 16) as u8 | 0x80, (i >> 8) as u8];
        let sport = 1024 + (i & 0xff) as u16 * 200;
        let ts = i64::from(i) * 50;
        for (seq, syn, payload) in [(0u32, true, ""), (1, false, partial)] {
            let mut out = Vec::new();
            let b = PacketBuilder::ipv4(src, [10, 0, 0, 1], 64).tcp(sport, 5060, seq, 65535);
            let b = if syn { b.syn() } else { b.ack(1) };
            b.write(&mut out, payload.as_bytes()).expect("build");
            sensor.frame(ts, &out);
        }
        if i % 250_000 == 1000 {
            sensor.real_call(ts, i);
        }
    }
    let held = sensor.parse.held_bytes();
    let (records, _, parse) = sensor.finish();
    check_real_calls(&records, 4);
    let tcp = parse.counters().decode.tcp;
    assert!(tcp.evicted_flows > 0, "{tcp:?}");
    assert!(held <= 64 << 20, "held {held} bytes");
    let rss = peak_rss_mib();
    eprintln!(
        "half-open TCP flood: peak RSS {rss} MiB, {} flows evicted",
        tcp.evicted_flows
    );
    assert!(rss < RSS_CAP_MIB, "peak RSS {rss} MiB");
}
