// SPDX-License-Identifier: AGPL-3.0-or-later
//! L2–L4 decoding: a frame in, transport payloads out — UDP datagrams and SCTP messages as
//! slices of the frame, TCP as reassembled byte streams, WebSocket messages unmasked.
//!
//! Tunnels (GRE with ERSPAN and PPP, VXLAN, GTP-U, IP-in-IP, IPv6-in-IPv4, PPPoE, MPLS) are
//! walked recursively up to [`MAX_DEPTH`]; IP fragments are reassembled; frames captured twice
//! on a mirror are dropped. The only bytes copied are those of fragments and of TCP segments
//! that cannot be handed over in place. Everything held is bounded, and counted when dropped.

mod dedup;
mod defrag;
mod sctp;
mod stream;
mod tcp;
mod tunnel;
mod websocket;

use std::net::{IpAddr, SocketAddr};

use etherparse::{LaxIpSlice, TcpSlice, UdpSlice};

pub use crate::packet::{Agent, LinkType, PacketInfo, Transport};
pub use defrag::{DefragCounters, DefragLimits, Defragmenter, Fragment, FragmentKey};
pub use tcp::{
    Consumed, Continuity, FlowKey, FlowKind, FlowState, Segment, StreamConsumer, TcpCounters,
    TcpLimits, TcpReassembler,
};

use crate::packet::{Frame, Timestamp};
use dedup::Dedup;
use stream::StreamRouter;
use tunnel::Inner;

/// Tunnels inside tunnels are followed this deep, no deeper.
pub const MAX_DEPTH: u8 = 4;

/// UDP port of VXLAN (RFC 7348) and of GTP-U (3GPP TS 29.281).
const VXLAN_PORT: u16 = 4789;
const GTP_U_PORT: u16 = 2152;

/// Receives what the decoder finds.
pub trait PayloadSink {
    /// One whole message: a UDP datagram, an SCTP DATA chunk, a WebSocket message.
    fn datagram(&mut self, info: &PacketInfo, payload: &[u8]);
    /// One whole SIP message a capture agent delivered over HEP, as the agent captured it.
    /// HEP says it is SIP, so the sink need not judge by ports.
    fn agent_message(&mut self, info: &PacketInfo, payload: &[u8], agent: Agent<'_>) {
        let _ = agent;
        self.datagram(info, payload);
    }
    /// Bytes of a TCP stream that continue its previous bytes as `continuity` says; returns
    /// how many were used (the rest is offered again with more) or that the flow is of no
    /// interest.
    fn stream(&mut self, info: &PacketInfo, data: &[u8], continuity: Continuity) -> Consumed;
    /// A TCP flow opened with a TLS handshake: encrypted, so never decoded.
    fn tls_flow(&mut self, info: &PacketInfo);
    /// A piece of a larger payload went by in this frame (an IP fragment, a TCP segment with
    /// bytes): for consumers that write the frames behind a message. Most ignore it.
    fn piece(&mut self, _piece: &Piece) {}
}

/// One frame's part of a payload that spans frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Piece {
    /// A fragment of the IP datagram with this key.
    Fragment(FragmentKey),
    /// Bytes of this direction of a TCP connection.
    Segment {
        /// Sender.
        src: SocketAddr,
        /// Receiver.
        dst: SocketAddr,
    },
}

/// Why a frame (or a layer inside it) yielded nothing. Each reason has a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Not IP (ARP, LLDP, …), an unknown loopback family, or an unknown tunnel payload.
    NotIp,
    /// Headers cut short by the snap length, or a damaged frame.
    Malformed,
    /// Another IP protocol (ICMP, ESP, OSPF, …).
    OtherProtocol,
    /// Tunnels nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl Skip {
    /// Every reason, in counter order.
    pub const ALL: [Skip; 4] = [
        Self::NotIp,
        Self::Malformed,
        Self::OtherProtocol,
        Self::TooDeep,
    ];

    /// Its position in the counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name in the counters.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotIp => "not_ip",
            Self::Malformed => "malformed",
            Self::OtherProtocol => "other_protocol",
            Self::TooDeep => "too_deep",
        }
    }
}

/// Bounds of everything the decoder holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Bounds of TCP reassembly.
    pub tcp: TcpLimits,
    /// Bounds of IP reassembly.
    pub defrag: DefragLimits,
}

/// What the decoder counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecodeCounters {
    /// Frames decoded.
    pub frames: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Frames cut by the snap length.
    pub snapped_frames: u64,
    /// Frames skipped, by reason ([`Skip`]).
    pub skipped: [u64; Skip::ALL.len()],
    /// The same datagram captured twice within a few milliseconds (a mirror seeing it on
    /// two ports), dropped.
    pub duplicates: u64,
    /// UDP datagrams handed on.
    pub udp_datagrams: u64,
    /// TCP reassembly's counters.
    pub tcp: TcpCounters,
    /// IP reassembly's counters.
    pub fragments: DefragCounters,
    /// Frames that arrived inside each kind of tunnel.
    pub tunnels: TunnelCounters,
    /// SCTP DATA chunks handed on.
    pub sctp_messages: u64,
    /// SCTP DATA chunks that were fragments of a larger message, and those dropped (out of
    /// sequence or over a bound).
    pub sctp_fragments: u64,
    /// SCTP fragments dropped (fragmented messages are not reassembled).
    pub sctp_dropped_fragments: u64,
    /// WebSocket messages handed on.
    pub websocket_messages: u64,
    /// HEP packets found in UDP datagrams, by what became of them.
    pub hep: HepCounters,
}

/// HEP packets met in UDP datagrams (a collector's input, or a capture of a HEP stream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HepCounters {
    /// SIP messages taken out of HEP and handed on (each with the sender's addresses and
    /// capture time).
    pub sip: u64,
    /// Well-formed packets carrying something else (RTCP, logs, records), skipped.
    pub other: u64,
    /// Packets starting `HEP3` that do not decode (short chunks, lengths past the end,
    /// missing chunks), dropped.
    pub malformed: u64,
}

/// Frames decapsulated, per tunnel kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TunnelCounters {
    /// Frames carried in GRE.
    pub gre: u64,
    /// Frames carried in VXLAN.
    pub vxlan: u64,
    /// Frames carried in GTP-U.
    pub gtp_u: u64,
    /// IP carried in IP.
    pub ip_in_ip: u64,
    /// Frames carried in PPPoE.
    pub pppoe: u64,
    /// Frames under MPLS labels.
    pub mpls: u64,
}

/// Decodes frames; owns the fragment and TCP reassembly state.
#[derive(Debug)]
pub struct Decoder {
    tcp: TcpReassembler,
    defrag: Defragmenter,
    sctp: sctp::SctpReassembler,
    dedup: Dedup,
    counters: DecodeCounters,
    router_counters: stream::RouterCounters,
    now: Timestamp,
    next_expiry: Timestamp,
}

/// Expiry of reassembly state runs at most this often (capture time).
const EXPIRY_INTERVAL_US: i64 = 1_000_000;

/// Per-layer context while walking a frame inward.
#[derive(Clone, Copy, Debug)]
struct Layer {
    time: Timestamp,
    vlan: Option<u16>,
    depth: u8,
}

impl Decoder {
    /// A decoder with nothing held.
    pub fn new(limits: DecodeLimits) -> Self {
        Self {
            tcp: TcpReassembler::new(limits.tcp),
            defrag: Defragmenter::new(limits.defrag),
            sctp: sctp::SctpReassembler::default(),
            dedup: Dedup::default(),
            counters: DecodeCounters::default(),
            router_counters: stream::RouterCounters::default(),
            now: Timestamp::MIN,
            next_expiry: Timestamp::MIN,
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> DecodeCounters {
        let mut c = self.counters.clone();
        c.tcp = self.tcp.counters();
        c.fragments = self.defrag.counters();
        c.websocket_messages = self.router_counters.websocket_messages;
        c.sctp_dropped_fragments = self.sctp.dropped;
        c
    }

    /// Bytes held for reassembly (TCP and fragments).
    pub fn held_bytes(&self) -> usize {
        self.tcp.held_bytes() + self.defrag.held_bytes()
    }

    /// Decodes one frame; payloads go to `sink`.
    pub fn on_frame(&mut self, frame: &Frame<'_>, sink: &mut dyn PayloadSink) {
        let c = &mut self.counters;
        c.frames += 1;
        c.bytes += frame.data.len() as u64;
        if (frame.data.len() as u64) < u64::from(frame.original_len) {
            c.snapped_frames += 1;
        }
        if frame.time > self.now {
            self.now = frame.time;
        }
        if self.now >= self.next_expiry {
            self.expire(sink);
            self.next_expiry = self.now.plus_micros(EXPIRY_INTERVAL_US);
        }
        let layer = Layer {
            time: frame.time,
            vlan: None,
            depth: 0,
        };
        if let Err(skip) = self.link(frame.link, frame.data, layer, sink) {
            self.counters.skipped[skip.index()] += 1;
        }
    }

    /// Lets reassembly give up on what will not complete (holes, idle flows, fragments).
    fn expire(&mut self, sink: &mut dyn PayloadSink) {
        self.defrag.expire(self.now.micros());
        let mut router = StreamRouter::new(sink, &mut self.router_counters, self.now, None);
        self.tcp.expire(self.now.micros(), &mut router);
    }

    fn link(
        &mut self,
        link: LinkType,
        data: &[u8],
        layer: Layer,
        sink: &mut dyn PayloadSink,
    ) -> Result<(), Skip> {
        match link {
            LinkType::Ethernet => self.ethernet(data, layer, sink),
            LinkType::Null | LinkType::Loop => {
                let family: [u8; 4] = data
                    .get(..4)
                    .ok_or(Skip::Malformed)?
                    .try_into()
                    .map_err(|_| Skip::Malformed)?;
                let family = if link == LinkType::Loop {
                    u32::from_be_bytes(family)
                } else {
                    // DLT_NULL uses the byte order of the machine that captured; accept either.
                    let le = u32::from_le_bytes(family);
                    if le < 0x1_0000 {
                        le
                    } else {
                        u32::from_be_bytes(family)
                    }
                };
                match family {
                    // AF_INET; AF_INET6 on Linux, OpenBSD/NetBSD, FreeBSD, macOS.
                    2 | 10 | 24 | 28 | 30 => self.ip(&data[4..], layer, sink),
                    _ => Err(Skip::NotIp),
                }
            }
            LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => self.ip(data, layer, sink),
            LinkType::LinuxSll => {
                let proto = data.get(14..16).ok_or(Skip::Malformed)?;
                self.ether_type(
                    u16::from_be_bytes([proto[0], proto[1]]),
                    &data[16..],
                    layer,
                    sink,
                )
            }
            LinkType::LinuxSll2 => {
                let proto = data.get(..2).ok_or(Skip::Malformed)?;
                let payload = data.get(20..).ok_or(Skip::Malformed)?;
                self.ether_type(
                    u16::from_be_bytes([proto[0], proto[1]]),
                    payload,
                    layer,
                    sink,
                )
            }
        }
    }

    fn ethernet(
        &mut self,
        data: &[u8],
        layer: Layer,
        sink: &mut dyn PayloadSink,
    ) -> Result<(), Skip> {
        let header = data.get(..14).ok_or(Skip::Malformed)?;
        self.ether_type(
            u16::from_be_bytes([header[12], header[13]]),
            &data[14..],
            layer,
            sink,
        )
    }

    /// Follows VLAN tags, MPLS and PPPoE to the IP header.
    fn ether_type(
        &mut self,
        mut ether_type: u16,
        mut data: &[u8],
        mut layer: Layer,
        sink: &mut dyn PayloadSink,
    ) -> Result<(), Skip> {
        let mut tagged = false;
        for _ in 0..8 {
            match ether_type {
                0x8100 | 0x88a8 | 0x9100 => {
                    let tag = data.get(..4).ok_or(Skip::Malformed)?;
                    if !tagged {
                        // The outer tag of this Ethernet header; inner headers override.
                        layer.vlan = Some(u16::from_be_bytes([tag[0], tag[1]]) & 0x0fff);
                        tagged = true;
                    }
                    ether_type = u16::from_be_bytes([tag[2], tag[3]]);
                    data = &data[4..];
                }
                0x0800 | 0x86dd => return self.ip(data, layer, sink),
                0x8847 | 0x8848 => {
                    self.counters.tunnels.mpls += 1;
                    let inner = tunnel::mpls(data).ok_or(Skip::Malformed)?;
                    return self.inner(inner, layer, sink);
                }
                0x8864 => {
                    self.counters.tunnels.pppoe += 1;
                    let inner = tunnel::pppoe_session(data).ok_or(Skip::Malformed)?;
                    return self.inner(inner, layer, sink);
                }
                _ => return Err(Skip::NotIp),
            }
        }
        Err(Skip::Malformed)
    }

    /// Decodes what a tunnel carried, one level deeper.
    fn inner(
        &mut self,
        inner: Inner<'_>,
        mut layer: Layer,
        sink: &mut dyn PayloadSink,
    ) -> Result<(), Skip> {
        layer.depth += 1;
        if layer.depth > MAX_DEPTH {
            return Err(Skip::TooDeep);
        }
        match inner {
            Inner::Ethernet(frame) => self.ethernet(frame, layer, sink),
            Inner::Ip(packet) => self.ip(packet, layer, sink),
            Inner::Other => Err(Skip::NotIp),
        }
    }

    /// A HEP packet: the SIP message it carries goes on as if captured where the agent
    /// captured it (its addresses, ports, transport and time), through the same duplicate
    /// check, so the same message delivered by two agents counts once.
    fn hep(&mut self, packet: &[u8], layer: Layer, sink: &mut dyn PayloadSink) {
        let c = &mut self.counters.hep;
        let packet = match crate::hep::decode(packet) {
            Ok(p) if p.protocol_type == crate::hep::PROTOCOL_SIP => p,
            Ok(_) => {
                c.other += 1;
                return;
            }
            Err(_) => {
                c.malformed += 1;
                return;
            }
        };
        c.sip += 1;
        let info = PacketInfo {
            time: packet.time,
            src: packet.src,
            dst: packet.dst,
            transport: crate::hep::transport_of(packet.ip_protocol),
            vlan: packet.vlan.or(layer.vlan),
        };
        if self.dedup.is_duplicate(&info, packet.payload) {
            self.counters.duplicates += 1;
            return;
        }
        let agent = Agent {
            id: packet.agent_id,
            name: packet.node_name.unwrap_or(b""),
        };
        sink.agent_message(&info, packet.payload, agent);
    }

    fn ip(&mut self, data: &[u8], layer: Layer, sink: &mut dyn PayloadSink) -> Result<(), Skip> {
        let (ip, _) = LaxIpSlice::from_slice(data).map_err(|_| Skip::Malformed)?;
        let (src, dst) = (ip.source_addr(), ip.destination_addr());
        let payload = ip.payload();
        let protocol = payload.ip_number.0;
        if !payload.fragmented {
            return self.transport(protocol, payload.payload, src, dst, layer, sink);
        }
        let (id, offset, more) = match &ip {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                (
                    u32::from(h.identification()),
                    usize::from(h.fragments_offset().byte_offset()),
                    h.more_fragments(),
                )
            }
            LaxIpSlice::Ipv6(v6) => {
                let fragment = v6
                    .extensions()
                    .clone()
                    .into_iter()
                    .find_map(|ext| match ext {
                        etherparse::Ipv6ExtensionSlice::Fragment(f) => Some(f),
                        _ => None,
                    });
                let f = fragment.ok_or(Skip::Malformed)?;
                (
                    f.identification(),
                    usize::from(f.fragment_offset().byte_offset()),
                    f.more_fragments(),
                )
            }
        };
        let key = FragmentKey {
            src,
            dst,
            protocol,
            id,
        };
        let fragment = Fragment {
            offset,
            more,
            payload: payload.payload,
        };
        sink.piece(&Piece::Fragment(key));
        match self.defrag.add(layer.time.micros(), key, fragment) {
            Some(whole) => self.transport(protocol, &whole, src, dst, layer, sink),
            None => Ok(()),
        }
    }

    fn transport(
        &mut self,
        protocol: u8,
        payload: &[u8],
        src: IpAddr,
        dst: IpAddr,
        layer: Layer,
        sink: &mut dyn PayloadSink,
    ) -> Result<(), Skip> {
        match protocol {
            17 => {
                let udp = UdpSlice::from_slice_lax(payload).map_err(|_| Skip::Malformed)?;
                let (sport, dport) = (udp.source_port(), udp.destination_port());
                if dport == VXLAN_PORT || sport == VXLAN_PORT {
                    if let Some(inner) = tunnel::vxlan(udp.payload()) {
                        self.counters.tunnels.vxlan += 1;
                        return self.inner(inner, layer, sink);
                    }
                }
                if dport == GTP_U_PORT || sport == GTP_U_PORT {
                    if let Some(inner) = tunnel::gtp_u(udp.payload()) {
                        self.counters.tunnels.gtp_u += 1;
                        return self.inner(inner, layer, sink);
                    }
                }
                if crate::hep::is_hep(udp.payload()) {
                    self.hep(udp.payload(), layer, sink);
                    return Ok(());
                }
                self.counters.udp_datagrams += 1;
                let info = PacketInfo {
                    time: layer.time,
                    src: SocketAddr::new(src, sport),
                    dst: SocketAddr::new(dst, dport),
                    transport: Transport::Udp,
                    vlan: layer.vlan,
                };
                if self.dedup.is_duplicate(&info, udp.payload()) {
                    self.counters.duplicates += 1;
                    return Ok(());
                }
                sink.datagram(&info, udp.payload());
                Ok(())
            }
            6 => {
                let tcp = TcpSlice::from_slice(payload).map_err(|_| Skip::Malformed)?;
                let key = FlowKey {
                    src: SocketAddr::new(src, tcp.source_port()),
                    dst: SocketAddr::new(dst, tcp.destination_port()),
                };
                let segment = Segment {
                    seq: tcp.sequence_number(),
                    syn: tcp.syn(),
                    fin: tcp.fin(),
                    rst: tcp.rst(),
                    payload: tcp.payload(),
                };
                if !segment.payload.is_empty() {
                    sink.piece(&Piece::Segment {
                        src: key.src,
                        dst: key.dst,
                    });
                }
                let mut router =
                    StreamRouter::new(sink, &mut self.router_counters, layer.time, layer.vlan);
                self.tcp
                    .segment(layer.time.micros(), key, segment, &mut router);
                Ok(())
            }
            132 => {
                let sctp = sctp::SctpPacket::parse(payload).ok_or(Skip::Malformed)?;
                let info = PacketInfo {
                    time: layer.time,
                    src: SocketAddr::new(src, sctp.src_port),
                    dst: SocketAddr::new(dst, sctp.dst_port),
                    transport: Transport::Sctp,
                    vlan: layer.vlan,
                };
                for chunk in sctp.data_chunks() {
                    if chunk.begin && chunk.end {
                        self.counters.sctp_messages += 1;
                        sink.datagram(&info, chunk.data);
                    } else {
                        self.counters.sctp_fragments += 1;
                        if let Some(message) = self.sctp.add(info.src, info.dst, &chunk) {
                            self.counters.sctp_messages += 1;
                            sink.datagram(&info, &message);
                        }
                    }
                }
                Ok(())
            }
            47 => {
                self.counters.tunnels.gre += 1;
                let inner = tunnel::gre(payload).ok_or(Skip::Malformed)?;
                self.inner(inner, layer, sink)
            }
            4 | 41 => {
                self.counters.tunnels.ip_in_ip += 1;
                self.inner(Inner::Ip(payload), layer, sink)
            }
            _ => Err(Skip::OtherProtocol),
        }
    }
}

#[cfg(test)]
mod tests;
