// SPDX-License-Identifier: AGPL-3.0-or-later
//! The packet vocabulary every stage shares: a captured [`Frame`] and its [`LinkType`], and
//! where a payload came from ([`PacketInfo`], [`Transport`]), and when ([`Timestamp`]). It
//! imports nothing else in the crate but the leaf `decimal` digits, so the stages that use it
//! never import each other for it.

use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;

mod timestamp;

pub use timestamp::{Timestamp, RFC3339_LEN};

/// One captured frame, borrowed from the source's buffer until the next read.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// When it was captured.
    pub time: Timestamp,
    /// Its link layer.
    pub link: LinkType,
    /// Length on the wire; more than `data.len()` when the snap length cut the frame.
    pub original_len: u32,
    /// The bytes captured.
    pub data: &'a [u8],
    /// Which of the sensor's interfaces it came from: its place among `-i` (0 for a file
    /// or a single interface). Written into pcapng (`capture -w`) as the frame's interface.
    pub interface: u16,
}

impl<'a> Frame<'a> {
    /// A frame captured whole: its length on the wire is its length.
    pub fn whole(time: Timestamp, link: LinkType, data: &'a [u8]) -> Self {
        Self {
            time,
            link,
            original_len: data.len() as u32,
            data,
            interface: 0,
        }
    }
}

/// The link layer in front of the network header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// DLT_EN10MB; 802.1Q and QinQ tags are handled inside.
    Ethernet,
    /// DLT_NULL: BSD loopback, a 4-byte address family in the capturing host's byte order.
    Null,
    /// DLT_LOOP: as DLT_NULL, but the family is in network byte order.
    Loop,
    /// DLT_RAW and its aliases: the frame starts with an IPv4 or IPv6 header.
    RawIp,
    /// DLT_IPV4: raw IPv4 only.
    Ipv4,
    /// DLT_IPV6: raw IPv6 only.
    Ipv6,
    /// DLT_LINUX_SLL ("cooked" capture on `any`), 16-byte header.
    LinuxSll,
    /// DLT_LINUX_SLL2, 20-byte header with the interface index.
    LinuxSll2,
}

impl LinkType {
    /// Maps a libpcap link-layer header type; `None` for types spycraft cannot decode.
    pub fn from_dlt(dlt: i32) -> Option<Self> {
        Some(match dlt {
            1 => Self::Ethernet,
            0 => Self::Null,
            108 => Self::Loop,
            // LINKTYPE_RAW is 101; DLT_RAW is 12 on most systems and 14 on OpenBSD.
            12 | 14 | 101 => Self::RawIp,
            228 => Self::Ipv4,
            229 => Self::Ipv6,
            113 => Self::LinuxSll,
            276 => Self::LinuxSll2,
            _ => return None,
        })
    }

    /// The libpcap link-layer header type to write into captures.
    pub fn dlt(self) -> i32 {
        match self {
            Self::Ethernet => 1,
            Self::Null => 0,
            Self::Loop => 108,
            Self::RawIp => 101,
            Self::Ipv4 => 228,
            Self::Ipv6 => 229,
            Self::LinuxSll => 113,
            Self::LinuxSll2 => 276,
        }
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ethernet => "EN10MB",
            Self::Null => "NULL",
            Self::Loop => "LOOP",
            Self::RawIp => "RAW",
            Self::Ipv4 => "IPV4",
            Self::Ipv6 => "IPV6",
            Self::LinuxSll => "LINUX_SLL",
            Self::LinuxSll2 => "LINUX_SLL2",
        })
    }
}

/// The transport SIP travelled over, as the CDR names it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// WebSocket (RFC 7118).
    Ws,
    /// SCTP.
    Sctp,
}

impl Transport {
    /// The name records use (`udp`).
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

/// The capture agent that delivered a message over HEP (a switch's siptrace, heplify,
/// another sensor): its HEP capture agent id and node name. Messages captured here have
/// [`Agent::NONE`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Agent<'a> {
    /// HEP chunk 0x0c, the capture agent id.
    pub id: Option<u32>,
    /// HEP chunk 0x13, the node name; empty when the agent gave none.
    pub name: &'a [u8],
}

impl Agent<'_> {
    /// No agent: the message was captured by this sensor.
    pub const NONE: Agent<'static> = Agent {
        id: None,
        name: b"",
    };
}

/// Where a payload came from and went to, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketInfo {
    /// When the frame carrying it (its last, if it took several) was captured.
    pub time: Timestamp,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// The transport that carried it.
    pub transport: Transport,
    /// 802.1Q VLAN id of the innermost tagged Ethernet header, if any.
    pub vlan: Option<u16>,
}
