// SPDX-License-Identifier: AGPL-3.0-or-later
//! Many simple calls, made here: as a capture file, or sent over loopback for a live sensor.
//! For tests that need more records than the bundled cases hold.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// The five messages of answered call `n` from `caller` to `callee`: INVITE, 200, ACK, BYE,
/// 200; each with whether the caller sends it and its offset from the INVITE in ms.
pub fn answered_call(n: u32, caller: SocketAddr, callee: SocketAddr) -> [(bool, u32, String); 5] {
    answered_call_to(n, caller, callee, &format!("bob{n}"))
}

/// As [`answered_call`], to the user `callee_user` (a number, say).
pub fn answered_call_to(
    n: u32,
    caller: SocketAddr,
    callee: SocketAddr,
    callee_user: &str,
) -> [(bool, u32, String); 5] {
    answered_call_of(n, caller, callee, &format!("alice{n}"), callee_user)
}

/// As [`answered_call_to`], from the user `caller_user` (an account).
pub fn answered_call_of(
    n: u32,
    caller: SocketAddr,
    callee: SocketAddr,
    caller_user: &str,
    callee_user: &str,
) -> [(bool, u32, String); 5] {
    let dialog = |cseq: &str, branch: u32, to_tag: bool| {
        format!(
            "Via: SIP/2.0/UDP {caller};branch=z9hG4bK-{n}-{branch}\r\n\
             From: <sip:{caller_user}@{caller}>;tag=a{n}\r\n\
             To: <sip:{callee_user}@{callee}>{}\r\n\
             Call-ID: call-{n}@spycraft.test\r\n\
             CSeq: {cseq}\r\n",
            if to_tag {
                format!(";tag=b{n}")
            } else {
                String::new()
            }
        )
    };
    let request = |method: &str, cseq: &str, branch: u32, to_tag: bool| {
        format!(
            "{method} sip:{callee_user}@{callee} SIP/2.0\r\n{}Max-Forwards: 70\r\n\
             Contact: <sip:{caller_user}@{caller}>\r\nContent-Length: 0\r\n\r\n",
            dialog(cseq, branch, to_tag)
        )
    };
    let ok = |cseq: &str, branch: u32| {
        format!(
            "SIP/2.0 200 OK\r\n{}Contact: <sip:{callee_user}@{callee}>\r\nContent-Length: 0\r\n\r\n",
            dialog(cseq, branch, true)
        )
    };
    [
        (true, 0, request("INVITE", "1 INVITE", 1, false)),
        (false, 100, ok("1 INVITE", 1)),
        (true, 150, request("ACK", "1 ACK", 2, true)),
        (true, 2000, request("BYE", "2 BYE", 3, true)),
        (false, 2050, ok("2 BYE", 3)),
    ]
}

/// A classic pcap (Ethernet, IPv4, UDP; microsecond times) of `calls` answered calls between
/// 10.0.0.1:5060 and 10.0.0.2:5060, one starting every 10 ms from 2026-01-01T00:00:00Z.
pub fn pcap_of_calls(calls: u32) -> Vec<u8> {
    let caller: SocketAddr = "10.0.0.1:5060".parse().expect("address");
    let callee: SocketAddr = "10.0.0.2:5060".parse().expect("address");
    pcap_of_calls_between(calls, &|_| (caller, callee))
}

/// As [`pcap_of_calls`], call `n` between the (caller, callee) `addresses(n)` gives.
pub fn pcap_of_calls_between(
    calls: u32,
    addresses: &dyn Fn(u32) -> (SocketAddr, SocketAddr),
) -> Vec<u8> {
    pcap_of_calls_dialling(calls, addresses, &|n| format!("bob{n}"))
}

/// As [`pcap_of_calls_between`], call `n` to the user `callee_user(n)`.
pub fn pcap_of_calls_dialling(
    calls: u32,
    addresses: &dyn Fn(u32) -> (SocketAddr, SocketAddr),
    callee_user: &dyn Fn(u32) -> String,
) -> Vec<u8> {
    pcap_of_account_calls(calls, addresses, &|n| format!("alice{n}"), callee_user)
}

/// As [`pcap_of_calls_dialling`], call `n` from the user `caller_user(n)`.
pub fn pcap_of_account_calls(
    calls: u32,
    addresses: &dyn Fn(u32) -> (SocketAddr, SocketAddr),
    caller_user: &dyn Fn(u32) -> String,
    callee_user: &dyn Fn(u32) -> String,
) -> Vec<u8> {
    let mut frames: Vec<(u64, Vec<u8>)> = Vec::new();
    for n in 0..calls {
        let (caller, callee) = addresses(n);
        let start_ms = u64::from(n) * 10;
        let messages = answered_call_of(n, caller, callee, &caller_user(n), &callee_user(n));
        for (from_caller, at_ms, text) in messages {
            let (src, dst) = if from_caller {
                (caller, callee)
            } else {
                (callee, caller)
            };
            frames.push((
                (start_ms + u64::from(at_ms)) * 1000,
                udp_frame(src, dst, text.as_bytes()),
            ));
        }
    }
    pcap_of_frames(frames)
}

/// A classic pcap of UDP datagrams, each `(µs after 2026-01-01T00:00:00Z, from, to, text)`.
pub fn pcap_of_datagrams(datagrams: &[(u64, SocketAddr, SocketAddr, &[u8])]) -> Vec<u8> {
    pcap_of_frames(
        datagrams
            .iter()
            .map(|(t, src, dst, payload)| (*t, udp_frame(*src, *dst, payload)))
            .collect(),
    )
}

/// A classic pcap (Ethernet, microsecond times) of `frames`, each at its µs after
/// 2026-01-01T00:00:00Z, in time order.
fn pcap_of_frames(mut frames: Vec<(u64, Vec<u8>)>) -> Vec<u8> {
    frames.sort_by_key(|(t, _)| *t);
    let base_us: u64 = 1_767_225_600 * 1_000_000;
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    pcap.extend_from_slice(&2u16.to_le_bytes());
    pcap.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65535, 1] {
        pcap.extend_from_slice(&v.to_le_bytes());
    }
    for (t, frame) in frames {
        let t = base_us + t;
        let len = frame.len() as u32;
        for v in [(t / 1_000_000) as u32, (t % 1_000_000) as u32, len, len] {
            pcap.extend_from_slice(&v.to_le_bytes());
        }
        pcap.extend_from_slice(&frame);
    }
    pcap
}

fn udp_frame(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        panic!("IPv4 only");
    };
    let mut out = Vec::with_capacity(payload.len() + 42);
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .udp(src.port(), dst.port())
        .write(&mut out, payload)
        .expect("a frame");
    out
}

/// Sends `calls` answered calls over loopback, caller on 127.0.0.1:`caller_port`, callee on
/// `callee_port`, one after another (each takes about 2 s of its own; they overlap).
pub fn send_calls(calls: u32, caller_port: u16, callee_port: u16) {
    send_calls_numbered(0..calls, caller_port, callee_port);
}

/// As [`send_calls`], the calls numbered `numbers` (Call-IDs `call-N@spycraft.test`).
pub fn send_calls_numbered(numbers: std::ops::Range<u32>, caller_port: u16, callee_port: u16) {
    let first = numbers.start;
    let caller = UdpSocket::bind(("127.0.0.1", caller_port)).expect("caller socket");
    let callee = UdpSocket::bind(("127.0.0.1", callee_port)).expect("callee socket");
    let (a, b) = (
        caller.local_addr().expect("address"),
        callee.local_addr().expect("address"),
    );
    let mut messages: Vec<(u32, bool, String)> = Vec::new();
    for n in numbers {
        for (from_caller, at_ms, text) in answered_call(n, a, b) {
            messages.push(((n - first) * 20 + at_ms, from_caller, text));
        }
    }
    messages.sort_by_key(|(t, ..)| *t);
    let mut now = 0;
    for (at, from_caller, text) in messages {
        std::thread::sleep(Duration::from_millis(u64::from(at - now)));
        now = at;
        let (socket, to) = if from_caller {
            (&caller, b)
        } else {
            (&callee, a)
        };
        socket
            .send_to(text.as_bytes(), to)
            .expect("sent on loopback");
    }
}
