// SPDX-License-Identifier: AGPL-3.0-or-later
//! TCP reassembly and SIP stream framing fed arbitrary segment sequences: each input is a list
//! of segments `[flags, seq offset (2 bytes), time step, length, payload…]` on one or two flows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spycraft::capture::Frame;
use spycraft::decode::LinkType;
use spycraft::pipeline::{ParseStage, SipPorts};

fn tcp_packet(src_port: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let total = (40 + payload.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&src_port.to_be_bytes());
    p.extend_from_slice(&5060u16.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0x50, flags & 0x17 | 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(payload);
    p
}

fuzz_target!(|data: &[u8]| {
    let mut stage = ParseStage::new(SipPorts::default(), Vec::new());
    let mut rest = data;
    let mut ts = 0i64;
    while rest.len() >= 5 {
        let (head, tail) = rest.split_at(5);
        let len = usize::from(head[4]).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let flags = head[0];
        let seq = 1_000u32.wrapping_add(u32::from(u16::from_be_bytes([head[1], head[2]])));
        ts += i64::from(head[3]) * 50_000;
        let port = if flags & 0x80 != 0 { 40001 } else { 40000 };
        let packet = tcp_packet(port, seq, flags, payload);
        let frame = Frame { time: spycraft::packet::Timestamp(ts), link: LinkType::RawIp, original_len: packet.len() as u32, data: &packet, interface: 0 };
        stage.on_frame(&frame, &mut |_| {});
    }
    assert!(stage.held_bytes() <= (64 << 20) + (32 << 20));
});
