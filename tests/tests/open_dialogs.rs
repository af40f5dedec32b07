// SPDX-License-Identifier: AGPL-3.0-or-later
//! Memory per live dialog: a million calls left ringing at once, every one held, measured by
//! this process's resident memory before and after (VmRSS in /proc/self/status). Counts and
//! bytes, never time. Alone in its binary, so nothing else moves the figure.

use spycraft::call::{CaptureIssue, TrackerConfig};
use spycraft_tests::sensor::{memory_kib, xorshift, Sensor};

const DIALOGS: u32 = 1_000_000;
/// The bound the README states for a live dialog, all of its state included: the leg, its
/// text, its index entries.
const MAX_BYTES_PER_DIALOG: u64 = 1024;

/// An INVITE as a carrier sends it: UUID Call-ID, E.164 numbers, P-Asserted-Identity,
/// User-Agent, an SDP offer.
fn invite(n: u32, r: u64) -> String {
    let sdp = format!(
        "v=0\r\no=- {r} 1 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        10_000 + n % 50_000
    );
    format!(
        "INVITE sip:+4930{n:08}@10.0.0.1:5060;user=phone SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK{r:016x}\r\n\
         Max-Forwards: 69\r\n\
         From: \"+1555{n:07}\" <sip:+1555{n:07}@198.51.100.20;user=phone>;tag={:012x}\r\n\
         To: <sip:+4930{n:08}@10.0.0.1;user=phone>\r\n\
         Call-ID: {:08x}-{:04x}-{:04x}-{:04x}-{:012x}@198.51.100.20\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:+1555{n:07}@198.51.100.20:5060>\r\n\
         P-Asserted-Identity: <sip:+1555{n:07}@carrier.example.net;user=phone>\r\n\
         User-Agent: CarrierSBC/7.2\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        r >> 16,
        r >> 32,
        (r >> 16) & 0xffff,
        r & 0xffff,
        n & 0xffff,
        r & 0xffff_ffff_ffff,
        sdp.len()
    )
}

#[test]
fn a_million_open_dialogs_cost_at_most_a_kibibyte_each() {
    let config = TrackerConfig {
        max_live_legs: DIALOGS as usize,
        ..TrackerConfig::default()
    };
    let mut sensor = Sensor::new(config, |_| false);
    let mut rng = 0x0dd0_5eed_1234_5678u64;
    // Warm the stages and the allocator up on one call before the baseline.
    let first = invite(u32::MAX, xorshift(&mut rng));
    sensor.udp(0, [198, 51, 100, 20], 5060, &first);
    let before = memory_kib("VmRSS");

    for n in 0..DIALOGS - 1 {
        // 100,000 new calls a second: all million are ringing within Timer B's 32 s.
        let ts = 10 + i64::from(n) * 10;
        sensor.udp(ts, [198, 51, 100, 20], 5060, &invite(n, xorshift(&mut rng)));
    }
    let after = memory_kib("VmRSS");
    let live = sensor.tracker.live_legs();
    assert_eq!(live, DIALOGS as usize, "every dialog is held at once");
    let counters = sensor.tracker.counters();
    assert_eq!(counters.evicted, 0);
    assert_eq!(counters.records, 0, "none has ended");

    let per_dialog = (after.saturating_sub(before) * 1024) / u64::from(DIALOGS);
    eprintln!(
        "{DIALOGS} open dialogs: resident {before} KiB before, {after} KiB after: \
         {per_dialog} bytes a dialog"
    );
    assert!(
        per_dialog <= MAX_BYTES_PER_DIALOG,
        "{per_dialog} bytes a live dialog"
    );

    // Every one is still written when the input ends, marked as cut off by it.
    let mut ended = 0u32;
    sensor.tracker.finish(&mut |r| {
        assert!(r.capture_issues.contains(&CaptureIssue::CaptureEnded));
        ended += 1;
    });
    assert_eq!(ended, DIALOGS);
}
