// SPDX-License-Identifier: AGPL-3.0-or-later
//! The hot path's allocation budget, counted by a global allocator: the parser allocates
//! nothing, and the parse stage allocates exactly once per SIP message (the `SipEvent`).
//! Only the test's own thread is counted: the test harness allocates on its threads too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use spycraft::capture::Frame;
use spycraft::decode::LinkType;
use spycraft::pipeline::{Input, ParseStage, SipPorts};
use spycraft::sip::{parse_datagram, EMPTY_HEADER, MAX_HEADERS};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the thread whose allocations are counted. `const`: no lazy initialisation,
    /// so reading it never allocates inside the allocator.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..1000 {
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let msg = parse_datagram(INVITE, &mut headers).expect("valid");
        assert_eq!(msg.call_id(), Some(&b"00001267-5bd1-4c1e@10.1.0.7"[..]));
        assert!(msg.from().and_then(|f| f.tag()).is_some() && msg.cseq().is_some());
    }
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed) - before,
        0,
        "parser allocations"
    );

    let data = frame(INVITE);
    let mut stage = ParseStage::new(SipPorts::default(), vec!["X-CollateID".into()]);
    let mut events = Vec::with_capacity(1000);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..1000 {
        // A tenth of a second apart, so that no copy is taken for a mirror's duplicate.
        let f = Frame {
            ts_us: i * 100_000,
            link: LinkType::Ethernet,
            original_len: data.len() as u32,
            data: &data,
        };
        stage.on_frame(&f, &mut |input| events.push(input));
    }
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed) - before,
        1000,
        "one allocation per event"
    );
    match &events[999] {
        Input::Event(ev) => assert_eq!(ev.call_id(), "00001267-5bd1-4c1e@10.1.0.7"),
        other => panic!("expected an event, got {other:?}"),
    }
}
