// SPDX-License-Identifier: AGPL-3.0-or-later
//! Decoder tests on frames built by hand: link types, IPv6, fragments, tunnels, TCP,
//! WebSocket, TLS, SCTP and duplicate frames.

use super::*;
use crate::packet::Timestamp;
use etherparse::PacketBuilder;

const PAYLOAD: &[u8] = b"OPTIONS sip:x@y SIP/2.0\r\n\r\n";

/// Records what the decoder hands out; consumes every stream byte.
#[derive(Default)]
struct Collect {
    datagrams: Vec<(PacketInfo, Vec<u8>)>,
    stream: Vec<u8>,
    continuity: Vec<Continuity>,
    tls: usize,
}

impl PayloadSink for Collect {
    fn datagram(&mut self, info: &PacketInfo, payload: &[u8]) {
        self.datagrams.push((*info, payload.to_vec()));
    }

    fn stream(&mut self, _: &PacketInfo, data: &[u8], continuity: Continuity) -> Consumed {
        self.stream.extend_from_slice(data);
        self.continuity.push(continuity);
        Consumed::Bytes(data.len())
    }

    fn tls_flow(&mut self, info: &PacketInfo) {
        assert_eq!(info.transport, Transport::Tls);
        self.tls += 1;
    }
}

fn decode_all(link: LinkType, frames: &[Vec<u8>]) -> (Collect, DecodeCounters) {
    let mut decoder = Decoder::new(DecodeLimits::default());
    let mut sink = Collect::default();
    for (i, data) in frames.iter().enumerate() {
        let frame = Frame {
            time: Timestamp(i as i64 * 1000),
            link,
            original_len: data.len() as u32,
            data,
            interface: 0,
        };
        decoder.on_frame(&frame, &mut sink);
    }
    let counters = decoder.counters();
    (sink, counters)
}

fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5062, 5060)
        .write(&mut out, payload)
        .expect("build");
    out
}

fn ethernet(ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn one_datagram(link: LinkType, frame: Vec<u8>, vlan: Option<u16>) {
    let (sink, counters) = decode_all(link, &[frame]);
    assert_eq!(sink.datagrams.len(), 1, "{link}: {counters:?}");
    let (info, payload) = &sink.datagrams[0];
    assert_eq!(info.src, "10.0.0.1:5062".parse().expect("addr"), "{link}");
    assert_eq!(info.dst, "10.0.0.2:5060".parse().expect("addr"), "{link}");
    assert_eq!(payload, PAYLOAD, "{link}");
    assert_eq!(info.vlan, vlan, "{link}");
    assert_eq!(info.transport, Transport::Udp);
}

#[test]
fn decodes_every_supported_link_type() {
    let ip = ipv4_udp(PAYLOAD);
    one_datagram(LinkType::RawIp, ip.clone(), None);
    one_datagram(LinkType::Ipv4, ip.clone(), None);
    one_datagram(LinkType::Ethernet, ethernet(0x0800, &ip), None);
    let mut qinq = vec![0x00, 0x64, 0x81, 0x00, 0x00, 0xc8, 0x08, 0x00];
    qinq.extend_from_slice(&ip);
    one_datagram(LinkType::Ethernet, ethernet(0x88a8, &qinq), Some(100));
    for family in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
        one_datagram(LinkType::Null, [&family[..], &ip].concat(), None);
    }
    one_datagram(
        LinkType::Loop,
        [&2u32.to_be_bytes()[..], &ip].concat(),
        None,
    );
    let mut sll = vec![0u8; 14];
    sll.extend_from_slice(&[0x08, 0x00]);
    one_datagram(LinkType::LinuxSll, [&sll[..], &ip].concat(), None);
    let mut sll2 = vec![0x08, 0x00];
    sll2.extend_from_slice(&[0u8; 18]);
    one_datagram(LinkType::LinuxSll2, [&sll2[..], &ip].concat(), None);
}

fn ipv6_udp() -> Vec<u8> {
    let mut out = Vec::new();
    let a = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut b = a;
    b[15] = 2;
    PacketBuilder::ipv6(a, b, 64)
        .udp(5062, 5060)
        .write(&mut out, PAYLOAD)
        .expect("build");
    out
}

#[test]
fn decodes_ipv6() {
    let (sink, _) = decode_all(LinkType::RawIp, &[ipv6_udp()]);
    assert_eq!(
        sink.datagrams[0].0.src,
        "[2001:db8::1]:5062".parse().expect("addr")
    );
    assert_eq!(sink.datagrams[0].1, PAYLOAD);
}

#[test]
fn skips_what_it_cannot_use_and_never_panics_on_prefixes() {
    let (_, c) = decode_all(LinkType::Ethernet, &[vec![0u8; 5]]);
    assert_eq!(c.skipped[Skip::Malformed.index()], 1);
    let (_, c) = decode_all(LinkType::Ethernet, &[ethernet(0x0806, &[0u8; 28])]);
    assert_eq!(c.skipped[Skip::NotIp.index()], 1);
    let (_, c) = decode_all(
        LinkType::Null,
        &[[&99u32.to_le_bytes()[..], &ipv4_udp(PAYLOAD)].concat()],
    );
    assert_eq!(c.skipped[Skip::NotIp.index()], 1);
    let ip = ipv4_udp(PAYLOAD);
    let prefixes: Vec<Vec<u8>> = (0..ip.len()).map(|cut| ip[..cut].to_vec()).collect();
    let (_, c) = decode_all(LinkType::RawIp, &prefixes);
    assert_eq!(c.frames, ip.len() as u64);
}

/// IPv4 fragments of a UDP datagram carrying `payload`, `size` bytes of IP payload each.
fn ipv4_fragments(payload: &[u8], size: usize, id: u16) -> Vec<Vec<u8>> {
    let whole = ipv4_udp(payload);
    let body = &whole[20..];
    body.chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let mut h = whole[..20].to_vec();
            let total = (20 + chunk.len()) as u16;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[4..6].copy_from_slice(&id.to_be_bytes());
            let more = (i + 1) * size < body.len();
            let offset = ((i * size) / 8) as u16 | if more { 0x2000 } else { 0 };
            h[6..8].copy_from_slice(&offset.to_be_bytes());
            h.extend_from_slice(chunk);
            h
        })
        .collect()
}

#[test]
fn reassembles_ipv4_fragments_in_any_order() {
    let big: Vec<u8> = PAYLOAD.iter().copied().cycle().take(3000).collect();
    let mut frags = ipv4_fragments(&big, 552, 7);
    frags.reverse();
    let (sink, c) = decode_all(LinkType::RawIp, &frags);
    assert_eq!(sink.datagrams.len(), 1, "{c:?}");
    assert_eq!(sink.datagrams[0].1, big);
    assert_eq!(c.fragments.reassembled, 1);
}

#[test]
fn reassembles_ipv6_fragments() {
    let big: Vec<u8> = PAYLOAD.iter().copied().cycle().take(2000).collect();
    let mut whole = Vec::new();
    let a = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let b = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    PacketBuilder::ipv6(a, b, 64)
        .udp(5060, 5060)
        .write(&mut whole, &big)
        .expect("build");
    let body = &whole[40..];
    let frames: Vec<Vec<u8>> = body
        .chunks(1232)
        .enumerate()
        .map(|(i, chunk)| {
            let mut h = whole[..40].to_vec();
            h[6] = 44; // next header: fragment
            h[4..6].copy_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
            let more = (i + 1) * 1232 < body.len();
            let off = (((i * 1232) / 8) as u16) << 3 | u16::from(more);
            h.extend_from_slice(&[17, 0]);
            h.extend_from_slice(&off.to_be_bytes());
            h.extend_from_slice(&0xdead_beefu32.to_be_bytes());
            h.extend_from_slice(chunk);
            h
        })
        .collect();
    let (sink, c) = decode_all(LinkType::RawIp, &frames);
    assert_eq!(sink.datagrams.len(), 1, "{c:?}");
    assert_eq!(sink.datagrams[0].1, big);
}

#[test]
fn follows_tunnels_to_the_inner_addresses() {
    let ip = ipv4_udp(PAYLOAD);
    let outer = |protocol: u8, payload: &[u8]| {
        let mut h = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        h.extend_from_slice(payload);
        h
    };
    let udp_outer = |port: u16, payload: &[u8]| {
        let mut out = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .udp(40000, port)
            .write(&mut out, payload)
            .expect("build");
        out
    };
    let inner_eth = ethernet(0x8100, &[&[0x00, 0x2a, 0x08, 0x00][..], &ip].concat());
    let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        (
            "gre-ip",
            outer(47, &[&[0, 0, 0x08, 0x00][..], &ip].concat()),
            None,
        ),
        (
            "gre-eth",
            outer(47, &[&[0, 0, 0x65, 0x58][..], &inner_eth].concat()),
            Some(42),
        ),
        (
            "erspan-ii",
            outer(
                47,
                &[
                    &[0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0, 0, 1, 0, 0, 0, 0][..],
                    &inner_eth,
                ]
                .concat(),
            ),
            Some(42),
        ),
        ("ipip", outer(4, &ip), None),
        ("ipv6-in-ipv4", outer(41, &ipv6_udp()), None),
        (
            "vxlan",
            udp_outer(
                4789,
                &[&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &inner_eth].concat(),
            ),
            Some(42),
        ),
        (
            "gtp-u",
            udp_outer(
                2152,
                &[&[0x30, 0xff, 0, ip.len() as u8, 0, 0, 0, 1][..], &ip].concat(),
            ),
            None,
        ),
    ];
    for (name, packet, vlan) in cases {
        let (sink, c) = decode_all(LinkType::RawIp, &[packet]);
        assert_eq!(sink.datagrams.len(), 1, "{name}: {c:?}");
        let expected_src = if name == "ipv6-in-ipv4" {
            "[2001:db8::1]:5062"
        } else {
            "10.0.0.1:5062"
        };
        assert_eq!(
            sink.datagrams[0].0.src,
            expected_src.parse().expect("addr"),
            "{name}"
        );
        assert_eq!(sink.datagrams[0].0.vlan, vlan, "{name}");
    }
    let pppoe = ethernet(
        0x8864,
        &[&[0x11, 0, 0, 1, 0, (ip.len() + 2) as u8, 0, 0x21][..], &ip].concat(),
    );
    let mpls = ethernet(0x8847, &[&[0, 0, 0x11, 64][..], &ip].concat());
    for (name, frame) in [("pppoe", pppoe), ("mpls", mpls)] {
        let (sink, c) = decode_all(LinkType::Ethernet, &[frame]);
        assert_eq!(sink.datagrams.len(), 1, "{name}: {c:?}");
    }
    // A tunnel nested beyond the depth bound is skipped, not followed forever.
    let mut nested = ip.clone();
    for _ in 0..=MAX_DEPTH {
        nested = outer(4, &nested);
    }
    let (sink, c) = decode_all(LinkType::RawIp, &[nested]);
    assert!(sink.datagrams.is_empty());
    assert_eq!(c.skipped[Skip::TooDeep.index()], 1);
}

fn tcp_frame(seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(40000, 5060, seq, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    b.write(&mut out, payload).expect("build");
    out
}

#[test]
fn tcp_segments_become_one_stream() {
    let text = b"INVITE sip:a@b SIP/2.0\r\nCall-ID: 1\r\n\r\n";
    let frames = vec![
        tcp_frame(99, true, b""),
        tcp_frame(110, false, &text[10..]),
        tcp_frame(100, false, &text[..10]),
        tcp_frame(100, false, &text[..10]),
    ];
    let (sink, c) = decode_all(LinkType::RawIp, &frames);
    assert_eq!(sink.stream, text);
    assert_eq!(
        sink.continuity,
        vec![Continuity::Start, Continuity::Continuing]
    );
    assert_eq!(c.tcp.out_of_order_segments, 1);
}

#[test]
fn websocket_messages_are_unmasked_whole() {
    let upgrade = b"GET /sip HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: sip\r\n\r\n";
    let key = [9, 8, 7, 6];
    let mut frame = vec![0x81, 0x80 | PAYLOAD.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(PAYLOAD.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    let mut seq = 1u32;
    let mut frames = vec![tcp_frame(0, true, b"")];
    for part in [&upgrade[..], &frame[..5], &frame[5..]] {
        frames.push(tcp_frame(seq, false, part));
        seq += part.len() as u32;
    }
    let (sink, c) = decode_all(LinkType::RawIp, &frames);
    assert_eq!(sink.datagrams.len(), 1, "{c:?}");
    assert_eq!(sink.datagrams[0].0.transport, Transport::Ws);
    assert_eq!(sink.datagrams[0].1, PAYLOAD);
    assert!(sink.stream.is_empty());
}

#[test]
fn tls_flows_are_counted_not_decoded() {
    let hello = [0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0];
    let (sink, c) = decode_all(
        LinkType::RawIp,
        &[
            tcp_frame(0, true, b""),
            tcp_frame(1, false, &hello),
            tcp_frame(11, false, &hello),
        ],
    );
    assert_eq!(sink.tls, 1, "{c:?}");
    assert!(sink.stream.is_empty() && sink.datagrams.is_empty());
}

#[test]
fn sctp_data_chunks_are_messages() {
    let mut sctp = vec![0x13, 0xc4, 0x13, 0xc4, 0, 0, 0, 1, 0, 0, 0, 0];
    let len = 16 + PAYLOAD.len();
    sctp.extend_from_slice(&[0, 0x03]);
    sctp.extend_from_slice(&(len as u16).to_be_bytes());
    sctp.extend_from_slice(&[0; 12]);
    sctp.extend_from_slice(PAYLOAD);
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 132, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    ip[2..4].copy_from_slice(&((20 + sctp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&sctp);
    let (sink, _) = decode_all(LinkType::RawIp, &[ip]);
    assert_eq!(sink.datagrams.len(), 1);
    assert_eq!(sink.datagrams[0].0.transport, Transport::Sctp);
    assert_eq!(sink.datagrams[0].1, PAYLOAD);
}

#[test]
fn a_frame_captured_twice_counts_once() {
    let ip = ipv4_udp(PAYLOAD);
    let (sink, c) = decode_all(LinkType::RawIp, &[ip.clone(), ip]);
    assert_eq!(sink.datagrams.len(), 1);
    assert_eq!(c.duplicates, 1);
}
