// SPDX-License-Identifier: AGPL-3.0-or-later
//! A SIP message kept after its frame is gone (in memory or in `sip_message`), and the pcap
//! rebuilt from such messages.
//!
//! A kept message has its bytes, addresses, ports, transport and capture time, but not the
//! frames that carried it. The pcap gives each message one UDP datagram between its original
//! addresses and ports at its capture time, whatever transport carried it, as Homer's pcap
//! export does: Wireshark shows the same SIP, and the `transport` of the message list says
//! what it really travelled over.

use std::net::{IpAddr, SocketAddr};

use etherparse::PacketBuilder;

use crate::call::Timestamp;
use crate::decode::Transport;
use crate::inspect::dump::DumpedMessage;
use crate::parse_stage::SeenMessage;

/// One SIP message as it travelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptMessage {
    /// When it was captured.
    pub time: Timestamp,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// What carried it.
    pub transport: Transport,
    /// Its Call-ID.
    pub call_id: String,
    /// Its bytes, head and body.
    pub raw: Vec<u8>,
}

impl KeptMessage {
    /// A copy of a message the parse stage saw.
    pub fn of(m: &SeenMessage<'_, '_, '_>) -> Self {
        Self {
            time: m.info.time,
            src: m.info.src,
            dst: m.info.dst,
            transport: m.info.transport,
            call_id: m.event.call_id().to_owned(),
            raw: m.raw.to_vec(),
        }
    }

    /// Bytes it holds, for memory budgets.
    pub fn size(&self) -> usize {
        // The struct itself and the allocator's share, roughly.
        const OVERHEAD: usize = 96;
        OVERHEAD + self.call_id.len() + self.raw.len()
    }

    /// The message as the message list and the ladder show it.
    pub fn dumped(&self) -> DumpedMessage {
        let text = String::from_utf8_lossy(&self.raw);
        let first = text.lines().next().unwrap_or("");
        let label = match first.strip_prefix("SIP/2.0 ") {
            Some(status) => status.trim().to_owned(),
            None => first.split(' ').next().unwrap_or("").to_owned(),
        };
        DumpedMessage {
            time: self.time,
            src: self.src,
            dst: self.dst,
            transport: self.transport,
            call_id: self.call_id.clone(),
            label,
            text: text.replace("\r\n", "\n"),
        }
    }
}

/// The name a transport is stored under (as records name it), back to the transport.
pub fn transport_named(name: &str) -> Option<Transport> {
    use serde::de::{value::Error, Deserialize, IntoDeserializer};
    Transport::deserialize(IntoDeserializer::<Error>::into_deserializer(name)).ok()
}

/// The largest SIP message a rebuilt UDP datagram carries; longer ones are cut there (a
/// datagram cannot hold more).
const MAX_DATAGRAM_PAYLOAD: usize = 65_000;

/// A pcap file (nanosecond timestamps, Ethernet) with one UDP datagram per message, in the
/// order given.
pub fn pcap_of<'m>(messages: impl IntoIterator<Item = &'m KeptMessage>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(&0xa1b2_3c4d_u32.to_le_bytes()); // nanosecond magic
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // this zone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&262_144u32.to_le_bytes()); // snap length
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    let mut frame = Vec::with_capacity(2048);
    for m in messages {
        frame.clear();
        if !datagram(m, &mut frame) {
            continue;
        }
        let micros = m.time.0;
        let secs = micros.div_euclid(1_000_000);
        let nanos = micros.rem_euclid(1_000_000) * 1000;
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&u32::try_from(secs).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&u32::try_from(nanos).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

/// Writes `m` as an Ethernet frame holding one UDP datagram; false for mixed address
/// families, which no capture gives.
fn datagram(m: &KeptMessage, out: &mut Vec<u8>) -> bool {
    const MAC: [u8; 6] = [0; 6];
    let payload = &m.raw[..m.raw.len().min(MAX_DATAGRAM_PAYLOAD)];
    let ethernet = PacketBuilder::ethernet2(MAC, MAC);
    let ip = match (m.src.ip(), m.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ethernet.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => ethernet.ipv6(s.octets(), d.octets(), 64),
        _ => return false,
    };
    ip.udp(m.src.port(), m.dst.port())
        .write(out, payload)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(src: &str, dst: &str, raw: &str) -> KeptMessage {
        KeptMessage {
            time: Timestamp(1_700_000_000_123_456),
            src: src.parse().expect("address"),
            dst: dst.parse().expect("address"),
            transport: Transport::Tcp,
            call_id: "c1".into(),
            raw: raw.as_bytes().to_vec(),
        }
    }

    #[test]
    fn labels_requests_by_method_and_responses_by_status() {
        let invite = message(
            "10.0.0.1:5060",
            "10.0.0.2:5060",
            "INVITE sip:bob@b SIP/2.0\r\nCall-ID: c1\r\n\r\n",
        );
        assert_eq!(invite.dumped().label, "INVITE");
        assert_eq!(
            invite.dumped().text,
            "INVITE sip:bob@b SIP/2.0\nCall-ID: c1\n\n"
        );
        let ok = message("10.0.0.2:5060", "10.0.0.1:5060", "SIP/2.0 200 OK\r\n\r\n");
        assert_eq!(ok.dumped().label, "200 OK");
    }

    #[test]
    fn rebuilds_one_udp_datagram_per_message_readable_by_etherparse() {
        let v4 = message(
            "10.0.0.1:5060",
            "10.0.0.2:5080",
            "OPTIONS sip:b SIP/2.0\r\n\r\n",
        );
        let v6 = message(
            "[2001:db8::1]:5060",
            "[2001:db8::2]:5060",
            "SIP/2.0 200 OK\r\n\r\n",
        );
        let pcap = pcap_of([&v4, &v6]);
        assert_eq!(&pcap[..4], &0xa1b2_3c4d_u32.to_le_bytes());
        let mut at = 24;
        for m in [&v4, &v6] {
            let secs = u32::from_le_bytes(pcap[at..at + 4].try_into().expect("4 bytes"));
            let nanos = u32::from_le_bytes(pcap[at + 4..at + 8].try_into().expect("4 bytes"));
            assert_eq!((secs, nanos), (1_700_000_000, 123_456_000));
            let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().expect("4 bytes"));
            let frame = &pcap[at + 16..at + 16 + len as usize];
            let parsed = etherparse::SlicedPacket::from_ethernet(frame).expect("a frame");
            let Some(etherparse::TransportSlice::Udp(udp)) = parsed.transport else {
                panic!("not UDP");
            };
            assert_eq!(udp.source_port(), m.src.port());
            assert_eq!(udp.destination_port(), m.dst.port());
            assert_eq!(udp.payload(), &m.raw[..]);
            at += 16 + len as usize;
        }
        assert_eq!(at, pcap.len());
    }

    #[test]
    fn names_transports_as_records_do() {
        for t in [Transport::Udp, Transport::Tls, Transport::Sctp] {
            assert_eq!(transport_named(t.as_str()), Some(t));
        }
        assert_eq!(transport_named("quic"), None);
    }
}
