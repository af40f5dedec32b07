// SPDX-License-Identifier: AGPL-3.0-or-later
//! The SIP parser, datagram and stream, and every accessor and the event built on it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spycraft::decode::{PacketInfo, Transport};
use spycraft::sip::{find_message_start, parse, parse_datagram, SipEvent, Status, EMPTY_HEADER, MAX_HEADERS};

fuzz_target!(|data: &[u8]| {
    let info = PacketInfo {
        time: spycraft::packet::Timestamp(0),
        src: "192.0.2.1:5060".parse().expect("addr"),
        dst: "192.0.2.2:5060".parse().expect("addr"),
        transport: Transport::Udp,
        vlan: None,
    };
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    if let Ok(msg) = parse_datagram(data, &mut headers) {
        assert!(msg.len <= data.len());
        let _ = (msg.from(), msg.to(), msg.cseq(), msg.call_id());
        let _ = SipEvent::from_message(info, &msg, &["X-CollateID".to_owned()]);
    }
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    if let Ok(Status::Complete(msg)) = parse(data, &mut headers) {
        assert!(msg.len <= data.len());
    }
    if let Some(at) = find_message_start(data) {
        assert!(at < data.len());
    }
});
