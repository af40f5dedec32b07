// SPDX-License-Identifier: AGPL-3.0-or-later
//! The call tracker fed arbitrary sequences of SIP events drawn from a small alphabet (so that
//! the events meet in dialogs): each 4 bytes pick the message, the tags, the CSeq and the time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spycraft::call::{CallTracker, Timers, TrackerConfig};
use spycraft::decode::{PacketInfo, Transport};
use spycraft::sip::{parse_datagram, SipEvent, EMPTY_HEADER, MAX_HEADERS};

const STARTS: [&str; 16] = [
    "INVITE sip:b@h SIP/2.0", "ACK sip:b@h SIP/2.0", "BYE sip:b@h SIP/2.0", "CANCEL sip:b@h SIP/2.0",
    "SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 183 Progress", "SIP/2.0 200 OK",
    "SIP/2.0 401 Unauthorized", "SIP/2.0 407 Proxy Auth", "SIP/2.0 486 Busy", "SIP/2.0 487 Terminated",
    "SIP/2.0 503 Unavailable", "UPDATE sip:b@h SIP/2.0", "OPTIONS sip:b@h SIP/2.0", "SIP/2.0 302 Moved",
];
const METHODS: [&str; 5] = ["INVITE", "ACK", "BYE", "CANCEL", "UPDATE"];

fuzz_target!(|data: &[u8]| {
    let config = TrackerConfig {
        timers: Timers { call_idle_secs: 60, ..Timers::default() },
        max_live_legs: 8,
        ..TrackerConfig::default()
    };
    let mut tracker = CallTracker::new(config);
    let mut ts = 0i64;
    let mut records = Vec::new();
    for chunk in data.chunks_exact(4) {
        let start = STARTS[usize::from(chunk[0] & 15)];
        let call = chunk[0] >> 4 & 3;
        let from_tag = ["a", "b", ""][usize::from(chunk[1] & 3).min(2)];
        let to_tag = ["", "x", "y"][usize::from(chunk[1] >> 2 & 3).min(2)];
        // A request's CSeq names its own method; a response's names any.
        let method = match start.split(' ').next() {
            Some(m) if m != "SIP/2.0" => m,
            _ => METHODS[usize::from(chunk[1] >> 4) % METHODS.len()],
        };
        let cseq = chunk[2] & 7;
        ts += i64::from(chunk[3]) * 250_000;
        let to = if to_tag.is_empty() { String::new() } else { format!(";tag={to_tag}") };
        let raw = format!(
            "{start}\r\nFrom: <sip:a@h>;tag={from_tag}\r\nTo: <sip:b@h>{to}\r\nCall-ID: c{call}\r\nCSeq: {cseq} {method}\r\n\r\n"
        );
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let Ok(msg) = parse_datagram(raw.as_bytes(), &mut headers) else { continue };
        let (src, dst) = if chunk[2] & 0x80 == 0 { ("192.0.2.1:5060", "192.0.2.2:5060") } else { ("192.0.2.2:5060", "192.0.2.1:5060") };
        let info = PacketInfo { time: spycraft::packet::Timestamp(ts), src: src.parse().expect("addr"), dst: dst.parse().expect("addr"), transport: Transport::Udp, vlan: None };
        if let Ok(ev) = SipEvent::from_message(info, &msg, &[]) {
            tracker.on_event(&ev, &mut |r| records.push(r.clone()));
        }
        assert!(tracker.live_legs() <= 8);
    }
    tracker.finish(&mut |r| records.push(r.clone()));
    for r in &records {
        if let (Some(d), Some(b)) = (r.duration_ms, r.billable_ms) {
            assert!(b <= d, "billable {b} beyond duration {d}: {r:?}");
        }
    }
});
