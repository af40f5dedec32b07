// SPDX-License-Identifier: AGPL-3.0-or-later
//! Link-layer types spycraft reads, by their libpcap DLT numbers.

use std::fmt;

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
