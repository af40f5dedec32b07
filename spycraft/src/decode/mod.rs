// SPDX-License-Identifier: AGPL-3.0-or-later
//! L2–L4 decoding with etherparse, in place: a frame in, the addresses and the transport
//! payload out as a slice of the same buffer.
//!
//! The lax slicers are used so that snap-length-truncated captures still yield what they hold.

mod link;

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxLinkExtSlice, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use serde::Serialize;

pub use link::LinkType;

/// The transport SIP travelled over, as the CDR names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Sctp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transport payload with where it came from and went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    /// Outermost 802.1Q VLAN id, if the frame was tagged.
    pub vlan: Option<u16>,
    pub payload: &'a [u8],
}

/// Why a frame produced no datagram. Each reason has a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Not IPv4/IPv6 (ARP, LLDP, …) or an unknown loopback family.
    NotIp,
    /// Headers cut short by the snap length or a damaged frame.
    Malformed,
    /// An IP fragment; reassembly arrives with the TCP/fragment work.
    Fragment,
    /// TCP: stream reassembly arrives with the TCP work.
    Tcp,
    /// Another IP protocol (ICMP, SCTP, ESP, GRE, …).
    OtherProtocol,
}

impl Skip {
    pub const ALL: [Skip; 5] = [
        Self::NotIp,
        Self::Malformed,
        Self::Fragment,
        Self::Tcp,
        Self::OtherProtocol,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::NotIp => "not_ip",
            Self::Malformed => "malformed",
            Self::Fragment => "ip_fragment",
            Self::Tcp => "tcp",
            Self::OtherProtocol => "other_protocol",
        }
    }
}

/// Decodes one frame of the given link type down to its UDP payload.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Datagram<'_>, Skip> {
    let packet = match link {
        LinkType::Ethernet => LaxSlicedPacket::from_ethernet(frame).map_err(|_| Skip::Malformed)?,
        LinkType::Null | LinkType::Loop => {
            let family: [u8; 4] = frame
                .get(..4)
                .ok_or(Skip::Malformed)?
                .try_into()
                .unwrap_or_default();
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
                2 | 10 | 24 | 28 | 30 => from_ip(&frame[4..])?,
                _ => return Err(Skip::NotIp),
            }
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => from_ip(frame)?,
        LinkType::LinuxSll => sll(frame, 16, 14)?,
        LinkType::LinuxSll2 => sll(frame, 20, 0)?,
    };
    datagram(&packet)
}

fn from_ip(data: &[u8]) -> Result<LaxSlicedPacket<'_>, Skip> {
    LaxSlicedPacket::from_ip(data).map_err(|_| Skip::Malformed)
}

/// Linux cooked headers carry the EtherType at a fixed offset.
fn sll(frame: &[u8], header_len: usize, proto_at: usize) -> Result<LaxSlicedPacket<'_>, Skip> {
    if frame.len() < header_len {
        return Err(Skip::Malformed);
    }
    let proto = u16::from_be_bytes([frame[proto_at], frame[proto_at + 1]]);
    Ok(LaxSlicedPacket::from_ether_type(
        EtherType(proto),
        &frame[header_len..],
    ))
}

fn datagram<'a>(packet: &LaxSlicedPacket<'a>) -> Result<Datagram<'a>, Skip> {
    let vlan = packet.link_exts.iter().find_map(|ext| match ext {
        LaxLinkExtSlice::Vlan(v) => Some(v.vlan_identifier().value()),
        LaxLinkExtSlice::Macsec(_) => None,
    });
    let (src_ip, dst_ip, fragmented): (IpAddr, IpAddr, bool) = match &packet.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            (
                h.source_addr().into(),
                h.destination_addr().into(),
                ip.is_payload_fragmented(),
            )
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            (
                h.source_addr().into(),
                h.destination_addr().into(),
                ip.is_payload_fragmented(),
            )
        }
        Some(LaxNetSlice::Arp(_)) | None => {
            return Err(if packet.stop_err.is_some() {
                Skip::Malformed
            } else {
                Skip::NotIp
            });
        }
    };
    if fragmented {
        return Err(Skip::Fragment);
    }
    match &packet.transport {
        Some(TransportSlice::Udp(udp)) => Ok(Datagram {
            src: SocketAddr::new(src_ip, udp.source_port()),
            dst: SocketAddr::new(dst_ip, udp.destination_port()),
            transport: Transport::Udp,
            vlan,
            payload: udp.payload(),
        }),
        Some(TransportSlice::Tcp(_)) => Err(Skip::Tcp),
        Some(_) => Err(Skip::OtherProtocol),
        None if packet.stop_err.is_some() => Err(Skip::Malformed),
        None => Err(Skip::OtherProtocol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const PAYLOAD: &[u8] = b"OPTIONS sip:x@y SIP/2.0\r\n\r\n";

    fn ipv4_udp() -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5062, 5060)
            .write(&mut out, PAYLOAD)
            .expect("build");
        out
    }

    fn check(link: LinkType, frame: &[u8], vlan: Option<u16>) {
        let d = decode(link, frame).unwrap_or_else(|e| panic!("{link}: {e:?}"));
        assert_eq!(d.src, "10.0.0.1:5062".parse().expect("addr"), "{link}");
        assert_eq!(d.dst, "10.0.0.2:5060".parse().expect("addr"), "{link}");
        assert_eq!(d.payload, PAYLOAD, "{link}");
        assert_eq!(d.vlan, vlan, "{link}");
        assert_eq!(d.transport, Transport::Udp);
    }

    #[test]
    fn decodes_every_supported_link_type() {
        let ip = ipv4_udp();
        check(LinkType::RawIp, &ip, None);
        check(LinkType::Ipv4, &ip, None);

        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        check(LinkType::Ethernet, &eth, None);

        let mut qinq = vec![0u8; 12];
        qinq.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0xc8, 0x08, 0x00]);
        qinq.extend_from_slice(&ip);
        check(LinkType::Ethernet, &qinq, Some(100));

        for family in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let mut null = family.to_vec();
            null.extend_from_slice(&ip);
            check(LinkType::Null, &null, None);
        }
        let mut lo = 2u32.to_be_bytes().to_vec();
        lo.extend_from_slice(&ip);
        check(LinkType::Loop, &lo, None);

        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        check(LinkType::LinuxSll, &sll, None);

        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ip);
        check(LinkType::LinuxSll2, &sll2, None);
    }

    #[test]
    fn decodes_ipv6() {
        let mut out = Vec::new();
        PacketBuilder::ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .udp(5060, 5060)
        .write(&mut out, PAYLOAD)
        .expect("build");
        let d = decode(LinkType::RawIp, &out).expect("ipv6");
        assert_eq!(d.src, "[2001:db8::1]:5060".parse().expect("addr"));
        assert_eq!(d.payload, PAYLOAD);
    }

    #[test]
    fn skips_what_it_cannot_use() {
        assert_eq!(decode(LinkType::Ethernet, &[0u8; 5]), Err(Skip::Malformed));
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[0u8; 28]);
        assert!(matches!(
            decode(LinkType::Ethernet, &arp),
            Err(Skip::NotIp | Skip::Malformed)
        ));
        let mut null = 99u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ipv4_udp());
        assert_eq!(decode(LinkType::Null, &null), Err(Skip::NotIp));
        let ip = ipv4_udp();
        assert_eq!(decode(LinkType::RawIp, &ip[..10]), Err(Skip::Malformed));
        // Every prefix of a valid frame decodes or is skipped; none panics.
        for cut in 0..ip.len() {
            let _ = decode(LinkType::RawIp, &ip[..cut]);
        }
    }

    #[test]
    fn recognises_fragments() {
        let mut ip = ipv4_udp();
        ip[6] = 0x20; // more-fragments flag
        ip[10] = 0;
        ip[11] = 0; // checksum is not verified by the lax slicer
        assert_eq!(decode(LinkType::RawIp, &ip), Err(Skip::Fragment));
    }
}
