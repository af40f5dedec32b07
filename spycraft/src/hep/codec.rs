// SPDX-License-Identifier: AGPL-3.0-or-later
//! The HEP v3 packet (rev. 37 of the sipcapture specification): one captured message with its
//! addresses, ports and capture time, as Homer, heplify, Kamailio's siptrace and sngrep
//! exchange them.
//!
//! A packet is `HEP3`, its total length (u16), then chunks: vendor (u16), type (u16), length
//! (u16, counting its own six header octets) and payload, all in network order. Decoding
//! borrows from the packet and skips chunks it does not know; every length is checked
//! against what is there, so a bad packet is an error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::packet::{Timestamp, Transport};

/// `HEP3`.
const MAGIC: &[u8; 4] = b"HEP3";
/// `EEP3`, which the specification accepts as the same.
const MAGIC_ALIAS: &[u8; 4] = b"EEP3";
/// The packet header: magic and total length.
const HEADER: usize = 6;
/// A chunk's header: vendor, type, length.
const CHUNK_HEADER: usize = 6;

/// The generic chunk types spycraft reads and writes (vendor 0).
mod chunk {
    pub const IP_FAMILY: u16 = 0x0001;
    pub const IP_PROTOCOL: u16 = 0x0002;
    pub const IPV4_SRC: u16 = 0x0003;
    pub const IPV4_DST: u16 = 0x0004;
    pub const IPV6_SRC: u16 = 0x0005;
    pub const IPV6_DST: u16 = 0x0006;
    pub const SRC_PORT: u16 = 0x0007;
    pub const DST_PORT: u16 = 0x0008;
    pub const SECONDS: u16 = 0x0009;
    pub const MICROSECONDS: u16 = 0x000a;
    pub const PROTOCOL_TYPE: u16 = 0x000b;
    pub const AGENT_ID: u16 = 0x000c;
    pub const AUTH_KEY: u16 = 0x000e;
    pub const PAYLOAD: u16 = 0x000f;
    pub const CORRELATION_ID: u16 = 0x0011;
    pub const VLAN: u16 = 0x0012;
    pub const NODE_NAME: u16 = 0x0013;
}

/// IP families as HEP numbers them.
const FAMILY_V4: u8 = 2;
const FAMILY_V6: u8 = 10;

/// Protocol type of a SIP message.
pub const PROTOCOL_SIP: u8 = 0x01;
/// Protocol type of a call detail record (JSON).
pub const PROTOCOL_CDR: u8 = 0x3c;
/// Protocol type of a log line (Homer shows it with the call of its correlation id).
pub const PROTOCOL_LOG: u8 = 100;

/// What makes bytes not a HEP v3 packet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HepError {
    /// Fewer bytes than a packet header.
    #[error("{0} bytes: too short for a HEP packet")]
    TooShort(usize),
    /// Not `HEP3` (or `EEP3`): another version or not HEP.
    #[error("not HEP version 3 (starts {0:02x?})")]
    NotHep3([u8; 4]),
    /// The total length disagrees with the bytes.
    #[error("the packet says {declared} bytes, {actual} are there")]
    Length {
        /// What the header says.
        declared: usize,
        /// What there is.
        actual: usize,
    },
    /// A chunk shorter than its header, or running past the packet.
    #[error("chunk {kind:#06x} at byte {at}: length {length} does not fit")]
    Chunk {
        /// Its type.
        kind: u16,
        /// Where it starts.
        at: usize,
        /// The length it says.
        length: usize,
    },
    /// A known chunk whose payload has the wrong size.
    #[error("chunk {kind:#06x}: {length} bytes of payload, expected {expected}")]
    ChunkSize {
        /// Its type.
        kind: u16,
        /// Its payload's length.
        length: usize,
        /// The length its type has.
        expected: usize,
    },
    /// A chunk every packet needs is missing, or the addresses are of two families.
    #[error("no {0}")]
    Missing(&'static str),
    /// A capture time HEP cannot carry (before 1970 or past 2106).
    #[error("capture time {0} µs: outside HEP's seconds")]
    Time(i64),
    /// A packet to encode would pass 65,535 bytes.
    #[error("{0} bytes: more than a HEP packet holds")]
    Oversize(usize),
}

/// One captured message as HEP carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HepPacket<'a> {
    /// IP protocol number (17 UDP, 6 TCP, 132 SCTP).
    pub ip_protocol: u8,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Capture time (microseconds).
    pub time: Timestamp,
    /// What the payload is ([`PROTOCOL_SIP`], [`PROTOCOL_CDR`], …).
    pub protocol_type: u8,
    /// The capture agent's id.
    pub agent_id: Option<u32>,
    /// The shared password, if the sender gives one.
    pub auth_key: Option<&'a [u8]>,
    /// What Homer joins RTCP and logs to calls by (the Call-ID, for SIP).
    pub correlation_id: Option<&'a [u8]>,
    /// VLAN id.
    pub vlan: Option<u16>,
    /// The capture agent's name.
    pub node_name: Option<&'a [u8]>,
    /// The captured message.
    pub payload: &'a [u8],
}

/// The IP protocol number HEP names `transport` by (TLS and WebSocket ride on TCP).
pub fn ip_protocol(transport: Transport) -> u8 {
    match transport {
        Transport::Udp => 17,
        Transport::Tcp | Transport::Tls | Transport::Ws => 6,
        Transport::Sctp => 132,
    }
}

/// The transport an IP protocol number names; anything but TCP and SCTP is taken as UDP.
pub fn transport_of(ip_protocol: u8) -> Transport {
    match ip_protocol {
        6 => Transport::Tcp,
        132 => Transport::Sctp,
        _ => Transport::Udp,
    }
}

/// Whether `bytes` start as a HEP v3 packet: cheap enough for every UDP datagram.
pub fn is_hep(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER && (bytes[..4] == *MAGIC || bytes[..4] == *MAGIC_ALIAS)
}

/// The length of the HEP packet `bytes` start with, once its header is there: how a
/// stream (TCP, TLS) is cut into packets.
pub fn packet_len(bytes: &[u8]) -> Result<Option<usize>, HepError> {
    if bytes.len() < HEADER {
        return Ok(None);
    }
    let magic: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if &magic != MAGIC && &magic != MAGIC_ALIAS {
        return Err(HepError::NotHep3(magic));
    }
    let declared = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    if declared < HEADER {
        return Err(HepError::Length {
            declared,
            actual: bytes.len(),
        });
    }
    Ok(Some(declared))
}

/// Reads one packet: all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<HepPacket<'_>, HepError> {
    let declared = packet_len(bytes)?.ok_or(HepError::TooShort(bytes.len()))?;
    if declared != bytes.len() {
        return Err(HepError::Length {
            declared,
            actual: bytes.len(),
        });
    }
    let mut fields = Fields::default();
    let mut at = HEADER;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < CHUNK_HEADER {
            return Err(HepError::Chunk {
                kind: 0,
                at,
                length: rest.len(),
            });
        }
        let vendor = u16::from_be_bytes([rest[0], rest[1]]);
        let kind = u16::from_be_bytes([rest[2], rest[3]]);
        let length = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
        if length < CHUNK_HEADER || length > rest.len() {
            return Err(HepError::Chunk { kind, at, length });
        }
        if vendor == 0 {
            fields.take(kind, &rest[CHUNK_HEADER..length])?;
        }
        at += length;
    }
    fields.packet()
}

/// The chunks met so far.
#[derive(Default)]
struct Fields<'a> {
    ip_protocol: Option<u8>,
    src_ip: Option<IpAddr>,
    dst_ip: Option<IpAddr>,
    src_port: Option<u16>,
    dst_port: Option<u16>,
    seconds: Option<u32>,
    micros: Option<u32>,
    protocol_type: Option<u8>,
    agent_id: Option<u32>,
    auth_key: Option<&'a [u8]>,
    correlation_id: Option<&'a [u8]>,
    vlan: Option<u16>,
    node_name: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
}

/// The payload as an array of `N` bytes, or why not.
fn exact<const N: usize>(kind: u16, value: &[u8]) -> Result<[u8; N], HepError> {
    value.try_into().map_err(|_| HepError::ChunkSize {
        kind,
        length: value.len(),
        expected: N,
    })
}

impl<'a> Fields<'a> {
    fn take(&mut self, kind: u16, value: &'a [u8]) -> Result<(), HepError> {
        match kind {
            // The family follows from the addresses.
            chunk::IP_FAMILY => {
                exact::<1>(kind, value)?;
            }
            chunk::IP_PROTOCOL => self.ip_protocol = Some(exact::<1>(kind, value)?[0]),
            chunk::IPV4_SRC => self.src_ip = Some(Ipv4Addr::from(exact::<4>(kind, value)?).into()),
            chunk::IPV4_DST => self.dst_ip = Some(Ipv4Addr::from(exact::<4>(kind, value)?).into()),
            chunk::IPV6_SRC => {
                self.src_ip = Some(Ipv6Addr::from(exact::<16>(kind, value)?).into());
            }
            chunk::IPV6_DST => {
                self.dst_ip = Some(Ipv6Addr::from(exact::<16>(kind, value)?).into());
            }
            chunk::SRC_PORT => self.src_port = Some(u16::from_be_bytes(exact(kind, value)?)),
            chunk::DST_PORT => self.dst_port = Some(u16::from_be_bytes(exact(kind, value)?)),
            chunk::SECONDS => self.seconds = Some(u32::from_be_bytes(exact(kind, value)?)),
            chunk::MICROSECONDS => self.micros = Some(u32::from_be_bytes(exact(kind, value)?)),
            chunk::PROTOCOL_TYPE => self.protocol_type = Some(exact::<1>(kind, value)?[0]),
            chunk::AGENT_ID => self.agent_id = Some(u32::from_be_bytes(exact(kind, value)?)),
            chunk::AUTH_KEY => self.auth_key = Some(value),
            chunk::PAYLOAD => self.payload = Some(value),
            chunk::CORRELATION_ID => self.correlation_id = Some(value),
            chunk::VLAN => self.vlan = Some(u16::from_be_bytes(exact(kind, value)?)),
            chunk::NODE_NAME => self.node_name = Some(value),
            _ => {}
        }
        Ok(())
    }

    fn packet(self) -> Result<HepPacket<'a>, HepError> {
        let src_ip = self.src_ip.ok_or(HepError::Missing("source address"))?;
        let dst_ip = self
            .dst_ip
            .ok_or(HepError::Missing("destination address"))?;
        if src_ip.is_ipv4() != dst_ip.is_ipv4() {
            return Err(HepError::Missing("one address family for both addresses"));
        }
        let seconds = self.seconds.ok_or(HepError::Missing("capture time"))?;
        Ok(HepPacket {
            ip_protocol: self.ip_protocol.ok_or(HepError::Missing("IP protocol"))?,
            src: SocketAddr::new(
                src_ip,
                self.src_port.ok_or(HepError::Missing("source port"))?,
            ),
            dst: SocketAddr::new(
                dst_ip,
                self.dst_port.ok_or(HepError::Missing("destination port"))?,
            ),
            time: Timestamp(i64::from(seconds) * 1_000_000 + i64::from(self.micros.unwrap_or(0))),
            protocol_type: self
                .protocol_type
                .ok_or(HepError::Missing("protocol type"))?,
            agent_id: self.agent_id,
            auth_key: self.auth_key,
            correlation_id: self.correlation_id,
            vlan: self.vlan,
            node_name: self.node_name,
            payload: self.payload.ok_or(HepError::Missing("payload"))?,
        })
    }
}

/// Writes `packet` to `out` (appending), in the specification's chunk order; the optional
/// chunks go before the payload.
pub fn encode(packet: &HepPacket<'_>, out: &mut Vec<u8>) -> Result<(), HepError> {
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[0, 0]);
    let family = if packet.src.is_ipv4() && packet.dst.is_ipv4() {
        FAMILY_V4
    } else if packet.src.is_ipv6() && packet.dst.is_ipv6() {
        FAMILY_V6
    } else {
        out.truncate(start);
        return Err(HepError::Missing("one address family for both addresses"));
    };
    put(out, chunk::IP_FAMILY, &[family]);
    put(out, chunk::IP_PROTOCOL, &[packet.ip_protocol]);
    for (v4, v6, ip) in [
        (chunk::IPV4_SRC, chunk::IPV6_SRC, packet.src.ip()),
        (chunk::IPV4_DST, chunk::IPV6_DST, packet.dst.ip()),
    ] {
        match ip {
            IpAddr::V4(a) => put(out, v4, &a.octets()),
            IpAddr::V6(a) => put(out, v6, &a.octets()),
        }
    }
    put(out, chunk::SRC_PORT, &packet.src.port().to_be_bytes());
    put(out, chunk::DST_PORT, &packet.dst.port().to_be_bytes());
    let micros = packet.time.0;
    let Ok(seconds) = u32::try_from(micros.div_euclid(1_000_000)) else {
        out.truncate(start);
        return Err(HepError::Time(micros));
    };
    // Below a million: it fits.
    let fraction = micros.rem_euclid(1_000_000) as u32;
    put(out, chunk::SECONDS, &seconds.to_be_bytes());
    put(out, chunk::MICROSECONDS, &fraction.to_be_bytes());
    put(out, chunk::PROTOCOL_TYPE, &[packet.protocol_type]);
    if let Some(id) = packet.agent_id {
        put(out, chunk::AGENT_ID, &id.to_be_bytes());
    }
    if let Some(key) = packet.auth_key {
        put(out, chunk::AUTH_KEY, key);
    }
    if let Some(id) = packet.correlation_id {
        put(out, chunk::CORRELATION_ID, id);
    }
    if let Some(vlan) = packet.vlan {
        put(out, chunk::VLAN, &vlan.to_be_bytes());
    }
    if let Some(name) = packet.node_name {
        put(out, chunk::NODE_NAME, name);
    }
    put(out, chunk::PAYLOAD, packet.payload);
    let length = out.len() - start;
    let Ok(declared) = u16::try_from(length) else {
        out.truncate(start);
        return Err(HepError::Oversize(length));
    };
    out[start + 4..start + HEADER].copy_from_slice(&declared.to_be_bytes());
    Ok(())
}

/// Appends one generic chunk. A value too long for a chunk makes the packet too long too,
/// which [`encode`] refuses; its length is written saturated meanwhile.
fn put(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let length = u16::try_from(CHUNK_HEADER + value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's example packet (rev. 37), its payload shortened as there.
    const EXAMPLE: [u8; 113] = [
        0x48, 0x45, 0x50, 0x33, 0x00, 0x71, // HEP3, 113
        0x00, 0x00, 0x00, 0x01, 0x00, 0x07, 0x02, // IPv4
        0x00, 0x00, 0x00, 0x02, 0x00, 0x07, 0x11, // UDP
        0x00, 0x00, 0x00, 0x03, 0x00, 0x0a, 0xd4, 0xca, 0x00, 0x01, // 212.202.0.1
        0x00, 0x00, 0x00, 0x04, 0x00, 0x0a, 0x52, 0x74, 0x00, 0xd3, // 82.116.0.211
        0x00, 0x00, 0x00, 0x07, 0x00, 0x08, 0x2e, 0xea, // 12010
        0x00, 0x00, 0x00, 0x08, 0x00, 0x08, 0x13, 0xc4, // 5060
        0x00, 0x00, 0x00, 0x09, 0x00, 0x0a, 0x4e, 0x49, 0x82, 0xcb, // 1313440459 s
        0x00, 0x00, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x01, 0xd4, 0xc0, // 120000 µs
        0x00, 0x00, 0x00, 0x0b, 0x00, 0x07, 0x01, // SIP
        0x00, 0x00, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x00, 0x00, 0xe4, // agent 228
        0x00, 0x00, 0x00, 0x0f, 0x00, 0x14, // payload, 14 bytes
        b'I', b'N', b'V', b'I', b'T', b'E', b' ', b's', b'i', b'p', b':', b'b', b'o', b'b',
    ];

    fn example() -> HepPacket<'static> {
        HepPacket {
            ip_protocol: 17,
            src: "212.202.0.1:12010".parse().expect("address"),
            dst: "82.116.0.211:5060".parse().expect("address"),
            time: Timestamp(1_313_440_459 * 1_000_000 + 120_000),
            protocol_type: PROTOCOL_SIP,
            agent_id: Some(228),
            auth_key: None,
            correlation_id: None,
            vlan: None,
            node_name: None,
            payload: b"INVITE sip:bob",
        }
    }

    #[test]
    fn encodes_the_specification_example_byte_for_byte() {
        let mut out = Vec::new();
        encode(&example(), &mut out).expect("encoded");
        assert_eq!(out, EXAMPLE);
    }

    #[test]
    fn decodes_the_specification_example() {
        assert_eq!(decode(&EXAMPLE), Ok(example()));
        assert_eq!(packet_len(&EXAMPLE[..6]), Ok(Some(113)));
        assert_eq!(packet_len(&EXAMPLE[..5]), Ok(None));
        let mut alias = EXAMPLE;
        alias[..4].copy_from_slice(b"EEP3");
        assert_eq!(decode(&alias), Ok(example()));
    }

    #[test]
    fn round_trips_ipv6_and_the_chunks_homer_adds() {
        let packet = HepPacket {
            ip_protocol: 6,
            src: "[2001:db8::1]:5061".parse().expect("address"),
            dst: "[2001:db8::2]:5060".parse().expect("address"),
            auth_key: Some(b"secret"),
            correlation_id: Some(b"call-1@example"),
            vlan: Some(42),
            node_name: Some(b"sbc-east"),
            ..example()
        };
        let mut out = Vec::new();
        encode(&packet, &mut out).expect("encoded");
        assert_eq!(decode(&out), Ok(packet));
    }

    #[test]
    fn skips_chunks_it_does_not_know() {
        let mut with_vendor = EXAMPLE[..HEADER].to_vec();
        // A Kamailio chunk and a generic one this decoder does not read, first.
        with_vendor.extend_from_slice(&[0x00, 0x02, 0x00, 0x01, 0x00, 0x08, 0xaa, 0xbb]);
        with_vendor
            .extend_from_slice(&[0x00, 0x00, 0x00, 0x24, 0x00, 0x0a, b'c', b'a', b'l', b'l']);
        with_vendor.extend_from_slice(&EXAMPLE[HEADER..]);
        let length = u16::try_from(with_vendor.len()).expect("short");
        with_vendor[4..6].copy_from_slice(&length.to_be_bytes());
        assert_eq!(decode(&with_vendor), Ok(example()));
    }

    #[test]
    fn refuses_what_is_not_a_whole_hep3_packet() {
        assert_eq!(decode(&EXAMPLE[..4]), Err(HepError::TooShort(4)));
        let mut v2 = EXAMPLE;
        v2[..4].copy_from_slice(b"HEP2");
        assert!(matches!(decode(&v2), Err(HepError::NotHep3(_))));
        assert!(matches!(
            decode(&EXAMPLE[..100]),
            Err(HepError::Length {
                declared: 113,
                actual: 100
            })
        ));
        // A chunk claiming more than is left.
        let mut past = EXAMPLE;
        past[HEADER + 5] = 0xff;
        assert!(matches!(
            decode(&past),
            Err(HepError::Chunk { kind: 1, .. })
        ));
        // A chunk shorter than its own header.
        let mut short = EXAMPLE;
        short[HEADER + 5] = 3;
        assert!(matches!(
            decode(&short),
            Err(HepError::Chunk { length: 3, .. })
        ));
        // A port chunk of the wrong size: 0x0007 given three bytes.
        let mut port = EXAMPLE[..40].to_vec();
        port.extend_from_slice(&[0x00, 0x00, 0x00, 0x07, 0x00, 0x09, 0x2e, 0xea, 0x00]);
        port.extend_from_slice(&EXAMPLE[48..]);
        let length = u16::try_from(port.len()).expect("short");
        port[4..6].copy_from_slice(&length.to_be_bytes());
        assert!(matches!(
            decode(&port),
            Err(HepError::ChunkSize {
                kind: 7,
                length: 3,
                expected: 2
            })
        ));
        // Without its payload.
        let mut bare = EXAMPLE[..93].to_vec();
        bare[4..6].copy_from_slice(&93u16.to_be_bytes());
        assert_eq!(decode(&bare), Err(HepError::Missing("payload")));
    }

    /// xorshift64*: random enough for varied packets, the same every run.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn bytes(&mut self, most: u64) -> Vec<u8> {
            (0..self.below(most + 1))
                .map(|_| self.next() as u8)
                .collect()
        }

        fn address(&mut self, v6: bool) -> SocketAddr {
            let ip: IpAddr = if v6 {
                Ipv6Addr::from(u128::from(self.next()) << 64 | u128::from(self.next())).into()
            } else {
                Ipv4Addr::from(self.next() as u32).into()
            };
            SocketAddr::new(ip, self.next() as u16)
        }
    }

    #[test]
    fn encoding_then_decoding_random_packets_gives_them_back() {
        let mut random = Random(0x5eed_2026_1204);
        let mut out = Vec::new();
        for _ in 0..5_000 {
            let v6 = random.below(2) == 1;
            let (key, correlation, node, payload) = (
                random.bytes(40),
                random.bytes(80),
                random.bytes(30),
                random.bytes(3_000),
            );
            let seconds = random.below(1 << 32) as i64;
            let packet = HepPacket {
                ip_protocol: random.next() as u8,
                src: random.address(v6),
                dst: random.address(v6),
                time: Timestamp(seconds * 1_000_000 + random.below(1_000_000) as i64),
                protocol_type: random.next() as u8,
                agent_id: (random.below(2) == 1).then(|| random.next() as u32),
                auth_key: (random.below(2) == 1).then_some(&key[..]),
                correlation_id: (random.below(2) == 1).then_some(&correlation[..]),
                vlan: (random.below(2) == 1).then(|| random.next() as u16),
                node_name: (random.below(2) == 1).then_some(&node[..]),
                payload: &payload,
            };
            out.clear();
            encode(&packet, &mut out).expect("encoded");
            assert_eq!(packet_len(&out), Ok(Some(out.len())));
            assert_eq!(decode(&out), Ok(packet));
        }
    }

    #[test]
    fn refuses_to_encode_a_packet_too_long_for_its_length_field() {
        let payload = vec![b'x'; 70_000];
        let packet = HepPacket {
            payload: &payload,
            ..example()
        };
        let mut out = b"kept".to_vec();
        assert!(matches!(
            encode(&packet, &mut out),
            Err(HepError::Oversize(_))
        ));
        assert_eq!(out, b"kept", "nothing half-written");
    }
}
