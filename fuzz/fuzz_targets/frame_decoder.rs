// SPDX-License-Identifier: AGPL-3.0-or-later
//! The whole parse stage from the link layer up, one frame per input: the first byte picks
//! the link type. State carries over between inputs, as it does across frames.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use spycraft::capture::Frame;
use spycraft::decode::LinkType;
use spycraft::pipeline::{ParseStage, SipPorts};

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::Null,
    LinkType::Loop,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

thread_local! {
    static STAGE: RefCell<(ParseStage, i64)> =
        RefCell::new((ParseStage::new(SipPorts::default(), vec!["X-CollateID".into()]), 0));
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else { return };
    STAGE.with(|stage| {
        let (stage, ts) = &mut *stage.borrow_mut();
        *ts += 1_000 * i64::from(pick >> 3);
        let frame = Frame { time: spycraft::packet::Timestamp(*ts), link: LINKS[usize::from(pick & 7)], original_len: frame.len() as u32, data: frame, interface: 0 };
        stage.on_frame(&frame, &mut |_| {});
    });
});
