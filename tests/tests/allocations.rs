// SPDX-License-Identifier: AGPL-3.0-or-later
//! No allocation per message on the hot path, shown by a counting allocator: once warm, the
//! parse stage turns frames into events without allocating, and the call stage allocates per
//! call (its leg and its record), never per in-dialog message.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use etherparse::PacketBuilder;
use spycraft::call::{CallTracker, TrackerConfig};
use spycraft::capture::Frame;
use spycraft::decode::LinkType;
use spycraft::pipeline::{Input, ParseStage, SipPorts};
use spycraft::sip::SipEvent;

/// Counts the allocations (and reallocations) of the thread that asked for counting.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is passed to the system allocator unchanged; counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn allocations_in(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
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
        let frame = Frame {
            ts_us: *ts_us,
            link: LinkType::RawIp,
            original_len: data.len() as u32,
            data,
        };
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
    // The leg's text and its later fields, the record's strings: a few dozen a call.
    assert!(
        plain_allocations <= 40 * u64::from(CALLS),
        "{plain_allocations} allocations for {CALLS} calls"
    );
}
