// SPDX-License-Identifier: AGPL-3.0-or-later
//! The hot path's allocation budget, counted by a global allocator: the parser allocates
//! nothing; the parse stage allocates once per SIP message (the `SipEvent`) unless spent
//! events are handed back, as the pipeline does, and then nothing once warm (also when split
//! in two for the two-core pipeline); the call stage
//! allocates per call (its leg and its record), never per in-dialog message.
//! Only the test's own thread is counted: the test harness allocates on its threads too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use etherparse::PacketBuilder;
use spycraft::call::{CallTracker, TrackerConfig};
use spycraft::capture::Frame;
use spycraft::decode::LinkType;
use spycraft::packet::Timestamp;
use spycraft::pipeline::{Input, MessageStage, ParseStage, SipPorts, Unparsed};
use spycraft::sip::{parse_datagram, SipEvent, EMPTY_HEADER, MAX_HEADERS};

struct Counting;

thread_local! {
    /// Set on the thread whose allocations are counted, and that thread's count. `const`: no
    /// lazy initialisation, so reading them never allocates inside the allocator. Per thread,
    /// so tests running side by side do not count each other's allocations.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// This thread's allocations counted so far.
fn counted() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTED.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const INVITE: &[u8] = b"INVITE sip:+16660100@10.2.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bK1267.1\r\nMax-Forwards: 70\r\n\
From: \"Caller\" <sip:+15550100@10.1.0.7>;tag=ft4711\r\nTo: <sip:+16660100@10.2.0.1>\r\n\
Call-ID: 00001267-5bd1-4c1e@10.1.0.7\r\nCSeq: 1 INVITE\r\nUser-Agent: phone/1.0\r\n\
P-Asserted-Identity: <sip:+15550100@10.1.0.7>\r\nX-CollateID: abc\r\n\
Content-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0\r\ns=-\r\n";

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[10, 1, 0, 7, 10, 2, 0, 1]);
    let total = (28 + payload.len()) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0x13, 0xc4, 0x13, 0xc4]);
    f.extend_from_slice(&(total - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

#[test]
fn parser_allocates_nothing_and_the_parse_stage_once_per_message() {
    COUNTED.with(|c| c.set(true));
    let before = counted();
    for _ in 0..1000 {
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let msg = parse_datagram(INVITE, &mut headers).expect("valid");
        assert_eq!(msg.call_id(), Some(&b"00001267-5bd1-4c1e@10.1.0.7"[..]));
        assert!(msg.from().and_then(|f| f.tag()).is_some() && msg.cseq().is_some());
    }
    assert_eq!(counted() - before, 0, "parser allocations");

    let data = frame(INVITE);
    let mut stage = ParseStage::new(SipPorts::default(), vec!["X-CollateID".into()]);
    let mut events = Vec::with_capacity(1000);
    let before = counted();
    for i in 0..1000 {
        // A tenth of a second apart, so that no copy is taken for a mirror's duplicate.
        let f = Frame::whole(Timestamp(i * 100_000), LinkType::Ethernet, &data);
        stage.on_frame(&f, &mut |input| events.push(input));
    }
    assert_eq!(counted() - before, 1000, "one allocation per event");
    match &events[999] {
        Input::Event(ev) => assert_eq!(ev.call_id(), "00001267-5bd1-4c1e@10.1.0.7"),
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Allocations made by this thread while `f` runs.
fn allocations_in(f: impl FnOnce()) -> u64 {
    COUNTED.with(|c| c.set(true));
    let before = counted();
    f();
    let after = counted();
    COUNTED.with(|c| c.set(false));
    after - before
}

const CALLER: [u8; 4] = [10, 1, 0, 7];
const CALLEE: [u8; 4] = [10, 2, 0, 9];

/// The frames of one answered call with SDP, as (time, frame); with `mid_call`, also a
/// re-INVITE, an UPDATE and an INFO in the dialog, each answered.
fn call(n: u32, start_us: i64, mid_call: bool) -> Vec<(i64, Vec<u8>)> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.1.0.7\r\ns=-\r\nc=IN IP4 10.1.0.7\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
    let message = |first: &str, cseq: &str, to_tag: bool, body: &str| {
        let to_tag = if to_tag { ";tag=callee-77a1" } else { "" };
        let content = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_owned()
        };
        format!(
            "{first}\r\nVia: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bK{n}x{}\r\nMax-Forwards: 70\r\n\
             From: \"Alice\" <sip:+15550001{n:04}@10.1.0.7>;tag=caller-{n}\r\n\
             To: <sip:+16660002{n:04}@10.2.0.9>{to_tag}\r\nCall-ID: {n:08x}-4c1e-9d2a@10.1.0.7\r\n\
             CSeq: {cseq}\r\nContact: <sip:alice@10.1.0.7:5060>\r\nUser-Agent: phone/1.0\r\n\
             {content}Content-Length: {}\r\n\r\n{body}",
            cseq.replace(' ', ""),
            body.len()
        )
    };
    let invite = "INVITE sip:+16660002@10.2.0.9 SIP/2.0";
    let mut script = vec![
        (0, true, message(invite, "1 INVITE", false, sdp)),
        (
            20,
            false,
            message("SIP/2.0 100 Trying", "1 INVITE", false, ""),
        ),
        (
            300,
            false,
            message("SIP/2.0 180 Ringing", "1 INVITE", true, ""),
        ),
        (
            2_000,
            false,
            message("SIP/2.0 200 OK", "1 INVITE", true, sdp),
        ),
        (
            2_010,
            true,
            message("ACK sip:b@10.2.0.9 SIP/2.0", "1 ACK", true, ""),
        ),
    ];
    if mid_call {
        let reinvite = "INVITE sip:b@10.2.0.9 SIP/2.0";
        script.extend([
            (5_000, true, message(reinvite, "2 INVITE", true, sdp)),
            (
                5_050,
                false,
                message("SIP/2.0 200 OK", "2 INVITE", true, sdp),
            ),
            (
                5_060,
                true,
                message("ACK sip:b@10.2.0.9 SIP/2.0", "2 ACK", true, ""),
            ),
            (
                6_000,
                true,
                message("UPDATE sip:b@10.2.0.9 SIP/2.0", "3 UPDATE", true, sdp),
            ),
            (
                6_040,
                false,
                message("SIP/2.0 200 OK", "3 UPDATE", true, sdp),
            ),
            (
                7_000,
                true,
                message("INFO sip:b@10.2.0.9 SIP/2.0", "4 INFO", true, ""),
            ),
            (7_030, false, message("SIP/2.0 200 OK", "4 INFO", true, "")),
        ]);
    }
    // The caller's next CSeq: a gap would be noted as a capture issue.
    let bye = if mid_call { "5 BYE" } else { "2 BYE" };
    script.extend([
        (
            9_000,
            true,
            message("BYE sip:b@10.2.0.9 SIP/2.0", bye, true, ""),
        ),
        (9_030, false, message("SIP/2.0 200 OK", bye, true, "")),
    ]);
    script
        .into_iter()
        .map(|(ms, from_caller, text)| {
            let (src, dst) = if from_caller {
                (CALLER, CALLEE)
            } else {
                (CALLEE, CALLER)
            };
            let mut frame = Vec::new();
            PacketBuilder::ipv4(src, dst, 64)
                .udp(5060, 5060)
                .write(&mut frame, text.as_bytes())
                .expect("build");
            (start_us + ms * 1000, frame)
        })
        .collect()
}

/// `calls` overlapping calls from `first`, one started every 10 ms, frames in time order.
fn traffic(first: u32, calls: u32, mid_call: bool) -> Vec<(i64, Vec<u8>)> {
    let mut frames: Vec<(i64, Vec<u8>)> = (first..first + calls)
        .flat_map(|n| call(n, i64::from(n) * 10_000, mid_call))
        .collect();
    frames.sort_by_key(|(ts, _)| *ts);
    frames
}

/// Runs `frames` through the parse stage as the pipeline does: every input goes to `use_input`
/// and then back to the stage for reuse.
fn parse(
    stage: &mut ParseStage,
    frames: &[(i64, Vec<u8>)],
    spent: &mut Vec<Input>,
    use_input: &mut dyn FnMut(&Input),
) {
    for (ts_us, data) in frames {
        let frame = Frame::whole(Timestamp(*ts_us), LinkType::RawIp, data);
        stage.on_frame(&frame, &mut |input| {
            use_input(&input);
            spent.push(input);
        });
        stage.recycle(spent);
    }
}

#[test]
fn the_parse_stage_allocates_nothing_per_message_once_warm() {
    const CALLS: u32 = 2_000;
    let warm_up = traffic(0, CALLS, true);
    let measured = traffic(CALLS, CALLS, true);
    let mut stage = ParseStage::new(SipPorts::default(), vec!["X-CollateID".into()]);
    let mut spent = Vec::with_capacity(16);
    let mut events = 0u64;
    parse(&mut stage, &warm_up, &mut spent, &mut |_| {});
    let allocations = allocations_in(|| {
        parse(&mut stage, &measured, &mut spent, &mut |input| {
            if matches!(input, Input::Event(_)) {
                events += 1;
            }
        });
    });
    assert_eq!(events, measured.len() as u64, "every frame made an event");
    assert_eq!(stage.counters().total_parse_errors(), 0);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations for {events} messages"
    );
}

/// Runs `frames` through the parse stage split as the two-core pipeline splits it: frames
/// decoded into an [`Unparsed`] batch, the batch parsed by a [`MessageStage`], the events
/// handed back to it. Both halves run here, so both are counted. Returns the events made.
fn parse_deferred(
    stage: &mut ParseStage,
    messages: &mut MessageStage,
    frames: &[(i64, Vec<u8>)],
    unparsed: &mut Unparsed,
    events: &mut Vec<Input>,
) -> u64 {
    let mut made = 0;
    for batch in frames.chunks(64) {
        for (ts_us, data) in batch {
            stage.on_frame_deferred(
                &Frame::whole(Timestamp(*ts_us), LinkType::RawIp, data),
                unparsed,
            );
        }
        messages.parse_all(unparsed, events);
        made += events.len() as u64;
        messages.recycle(events);
    }
    made
}

#[test]
fn the_split_parse_stage_allocates_nothing_per_message_once_warm() {
    const CALLS: u32 = 2_000;
    let warm_up = traffic(0, CALLS, true);
    let measured = traffic(CALLS, CALLS, true);
    let mut stage = ParseStage::new(SipPorts::default(), vec!["X-CollateID".into()]);
    let mut messages = stage.message_stage();
    let mut unparsed = Unparsed::default();
    let mut events = Vec::with_capacity(64);
    parse_deferred(
        &mut stage,
        &mut messages,
        &warm_up,
        &mut unparsed,
        &mut events,
    );
    let mut made = 0;
    let allocations = allocations_in(|| {
        made = parse_deferred(
            &mut stage,
            &mut messages,
            &measured,
            &mut unparsed,
            &mut events,
        );
    });
    assert_eq!(made, measured.len() as u64, "every frame made an event");
    assert_eq!(messages.counters().sip_messages, 2 * made);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations for {made} messages"
    );
}

/// The events of `frames`, made outside any measurement.
fn events(frames: &[(i64, Vec<u8>)]) -> Vec<SipEvent> {
    let mut stage = ParseStage::new(SipPorts::default(), vec![]);
    let mut events = Vec::new();
    let mut spent = Vec::new();
    parse(&mut stage, frames, &mut spent, &mut |input| {
        if let Input::Event(ev) = input {
            events.push(ev.clone());
        }
    });
    events
}

/// Allocations the call stage makes while it takes the calls of `measured`, after `warm_up`:
/// the new calls' legs, and the warm-up calls' records, which the first new event expires.
/// Also the records written.
fn call_stage_allocations(warm_up: &[SipEvent], measured: &[SipEvent]) -> (u64, u64) {
    let mut tracker = CallTracker::new(TrackerConfig::default());
    let mut records = 0;
    for ev in warm_up {
        tracker.on_event(ev, &mut |_| records += 1);
    }
    let allocations = allocations_in(|| {
        for ev in measured {
            tracker.on_event(ev, &mut |_| records += 1);
        }
    });
    (allocations, records)
}

#[test]
fn the_call_stage_allocates_per_call_never_per_in_dialog_message() {
    const CALLS: u32 = 1_000;
    // Each run's warm-up ends an hour before its calls start, so it has been written by then.
    let plain = (
        events(&traffic(0, CALLS, false)),
        events(&traffic(400_000, CALLS, false)),
    );
    let busy = (
        events(&traffic(0, CALLS, true)),
        events(&traffic(400_000, CALLS, true)),
    );
    assert_eq!(busy.1.len(), plain.1.len() + 7 * CALLS as usize);

    let (plain_allocations, plain_records) = call_stage_allocations(&plain.0, &plain.1);
    let (busy_allocations, busy_records) = call_stage_allocations(&busy.0, &busy.1);
    eprintln!(
        "call stage: {plain_allocations} allocations for {CALLS} calls of 9 messages, \
         {busy_allocations} for {CALLS} calls of 16"
    );
    assert_eq!(
        plain_records,
        u64::from(CALLS),
        "the warm-up calls were written"
    );
    assert!(
        plain.1.iter().all(|ev| ev.cseq.number <= 2),
        "the plain calls number their requests without a gap"
    );
    assert_eq!(busy_records, u64::from(CALLS));
    assert_eq!(
        busy_allocations, plain_allocations,
        "seven more messages a call, no more allocations"
    );
    // The leg's text and its later fields: a few a call. Each record is written over the
    // last one, so writing records allocates nothing once the strings have grown.
    assert!(
        plain_allocations <= 5 * u64::from(CALLS),
        "{plain_allocations} allocations for {CALLS} calls"
    );
}
