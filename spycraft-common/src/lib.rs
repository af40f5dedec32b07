// SPDX-License-Identifier: AGPL-3.0-or-later
//! Types that both sides of spycraft agree on, byte for byte.
//!
//! The kernel programs (XDP, socket filter) and the userspace pipeline exchange these through
//! BPF maps and a ring buffer, so every type here is `#[repr(C)]`, `Copy`, padded explicitly and
//! free of `bool` (whose bit patterns the verifier and userspace may disagree on).
#![cfg_attr(not(feature = "settings"), no_std)]

#[cfg(feature = "settings")]
mod settings;
#[cfg(feature = "settings")]
pub use settings::BadPortRange;

/// UDP/TCP ports on which SIP is expected when the operator configures nothing else.
///
/// 5060 is SIP over UDP/TCP (RFC 3261), 5061 SIP over TLS, 5080 the common second listener of
/// SBCs and FreeSWITCH external profiles.
pub const DEFAULT_SIP_PORTS: [u16; 3] = [5060, 5061, 5080];

/// Most port ranges the kernel filter map holds; userspace refuses configurations beyond it.
pub const MAX_PORT_RANGES: usize = 16;

/// Bytes of each frame copied into the ring buffer by default (a full Ethernet MTU plus tags).
pub const DEFAULT_SNAP_LEN: u32 = 1536;

/// Most bytes of a frame the kernel programs copy (a jumbo frame). Each copy is sized to its
/// frame, so a large bound costs ring space only for large frames.
pub const MAX_KERNEL_SNAP_LEN: u32 = 9216;

/// Most host prefixes per address family in the kernel's LPM tries.
pub const MAX_HOST_PREFIXES: u32 = 256;

/// Datagrams whose first fragment matched, remembered so their later fragments follow (LRU).
pub const FRAGMENT_FLOWS: u32 = 4096;

/// Bytes of the kernel's frame ring buffer by default (a power of two of pages).
pub const DEFAULT_RING_BYTES: u32 = 16 << 20;

/// Records waiting in the ring before the programs wake the reader (about 60 SIP frames);
/// below it the reader finds them when it next looks, within [`READER_LOOKS_EVERY_MS`].
pub const WAKE_READER_BYTES: u64 = 64 << 10;

/// How often the ring's reader looks without being woken.
pub const READER_LOOKS_EVERY_MS: u64 = 5;

/// What the kernel programs select, filled by userspace before it attaches them (the one
/// entry of the `SETTINGS` array map). All zero selects nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterSettings {
    /// The SIP port ranges; the first `port_ranges` are used. A frame matches when its
    /// source or destination port lies in one.
    pub ports: [PortRange; MAX_PORT_RANGES],
    pub port_ranges: u32,
    /// Prefixes in the `HOSTS_V4` and `HOSTS_V6` tries. When either is non-zero, a frame must
    /// also have its source or destination in the trie of its family (none given: any host).
    pub host_prefixes_v4: u32,
    pub host_prefixes_v6: u32,
    /// Bytes of each selected frame copied (at most [`MAX_KERNEL_SNAP_LEN`]).
    pub snap_len: u32,
    /// An [`XdpAction`] as `u32`: what XDP returns for every frame.
    pub xdp_action: u32,
    /// Non-zero: the socket filter ignores outgoing frames (on loopback every frame is seen
    /// leaving and again arriving; libpcap drops the first copy the same way).
    pub skip_outgoing: u32,
    /// Non-zero: the interface has no link-layer header (WireGuard, tun, ipip): frames start
    /// with their IPv4 or IPv6 header.
    pub raw_ip: u32,
}

impl FilterSettings {
    /// Settings that select nothing.
    pub const EMPTY: Self = Self {
        ports: [PortRange { first: 0, last: 0 }; MAX_PORT_RANGES],
        port_ranges: 0,
        host_prefixes_v4: 0,
        host_prefixes_v6: 0,
        snap_len: 0,
        xdp_action: XdpAction::Pass as u32,
        skip_outgoing: 0,
        raw_ip: 0,
    };

    /// Whether `port` lies in one of the used ranges.
    #[inline(always)]
    pub fn port_selected(&self, port: u16) -> bool {
        let mut i = 0;
        // A fixed bound the verifier can see; `port_ranges` ends it early.
        while i < MAX_PORT_RANGES {
            if i as u32 >= self.port_ranges {
                return false;
            }
            if self.ports[i].contains(port) {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// What the XDP program returns once it has copied what it selected.
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "settings",
    derive(clap::ValueEnum, serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum XdpAction {
    /// Fail open: the frame goes on up the stack (the default everywhere).
    #[default]
    Pass = 0,
    /// A dedicated mirror port whose frames nothing else on the box needs: drop every frame
    /// after the copy, saving the stack's work.
    Drop = 1,
}

/// Key of the fragment map: the fields that tie the fragments of one datagram together
/// (RFC 791: addresses, protocol and identification; RFC 8200: addresses and identification).
/// IPv4 addresses sit in the first four bytes of each address field, the rest zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FragmentKey {
    pub source: [u8; 16],
    pub destination: [u8; 16],
    pub identification: u32,
    /// 4 or 6.
    pub version: u8,
    /// The IPv4 protocol; 0 for IPv6.
    pub protocol: u8,
    pub _pad: [u8; 2],
}

/// An inclusive range of transport ports, as held in the kernel's filter map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// A range holding one port.
    pub const fn single(port: u16) -> Self {
        Self {
            first: port,
            last: port,
        }
    }

    /// Whether `port` lies in the range (both ends included).
    pub const fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

/// Direction of a captured frame relative to the capturing interface.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameDirection {
    Unknown = 0,
    Ingress = 1,
    Egress = 2,
}

/// Fixed header that precedes every frame the kernel copies into the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingRecordHeader {
    /// `bpf_ktime_get_ns` converted by userspace to wall-clock time.
    pub timestamp_ns: u64,
    pub ifindex: u32,
    /// Length of the frame on the wire.
    pub original_len: u32,
    /// Bytes that follow this header (at most the snap length).
    pub captured_len: u32,
    /// A [`FrameDirection`] as `u8`.
    pub direction: u8,
    /// Bit set of `RING_FLAG_*`.
    pub flags: u8,
    /// Explicit padding so the layout has no implicit holes.
    pub _pad: [u8; 2],
}

/// The frame was selected only because an earlier fragment of its datagram matched.
pub const RING_FLAG_FRAGMENT_FOLLOW: u8 = 1;

/// Indices of the per-CPU counters the kernel programs keep.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelCounter {
    /// Frames the program ran on.
    Seen = 0,
    /// Frames selected and copied into the ring.
    Selected = 1,
    /// Frames selected but lost because the ring was full (the reader fell behind).
    RingFull = 2,
    /// Of the selected, later fragments let through because their first fragment matched.
    FragmentsFollowed = 3,
    /// Bytes (as on the wire) of the frames the program ran on.
    SeenBytes = 4,
    /// Bytes (as on the wire) of the frames selected and copied into the ring.
    SelectedBytes = 5,
}

impl KernelCounter {
    /// Every counter, in index order.
    pub const ALL: [KernelCounter; KERNEL_COUNTERS as usize] = [
        KernelCounter::Seen,
        KernelCounter::Selected,
        KernelCounter::RingFull,
        KernelCounter::FragmentsFollowed,
        KernelCounter::SeenBytes,
        KernelCounter::SelectedBytes,
    ];
}

/// Number of [`KernelCounter`] slots.
pub const KERNEL_COUNTERS: u32 = 6;

#[cfg(feature = "user")]
// SAFETY: plain `#[repr(C)]` data, padded explicitly, every bit pattern valid.
unsafe impl aya::Pod for FilterSettings {}
#[cfg(feature = "user")]
// SAFETY: plain `#[repr(C)]` data, padded explicitly, every bit pattern valid.
unsafe impl aya::Pod for FragmentKey {}
#[cfg(feature = "user")]
// SAFETY: plain `#[repr(C)]` data, padded explicitly, every bit pattern valid.
unsafe impl aya::Pod for PortRange {}
#[cfg(feature = "user")]
// SAFETY: plain `#[repr(C)]` data, padded explicitly, every bit pattern valid.
unsafe impl aya::Pod for RingRecordHeader {}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of};

    #[test]
    fn ring_header_layout_is_fixed() {
        assert_eq!(
            size_of::<RingRecordHeader>(),
            24,
            "kernel and userspace share this layout"
        );
        assert_eq!(align_of::<RingRecordHeader>(), 8);
        assert_eq!(size_of::<PortRange>(), 4);
        assert_eq!(size_of::<FilterSettings>(), 4 * MAX_PORT_RANGES + 28);
        assert_eq!(size_of::<FragmentKey>(), 40);
    }

    #[test]
    fn only_the_used_port_ranges_select() {
        let mut s = FilterSettings::EMPTY;
        assert!(!s.port_selected(0), "empty settings select nothing");
        s.ports[0] = PortRange::single(5060);
        s.ports[1] = PortRange {
            first: 5080,
            last: 5090,
        };
        s.port_ranges = 1;
        assert!(s.port_selected(5060) && !s.port_selected(5085));
        s.port_ranges = 2;
        assert!(s.port_selected(5085) && !s.port_selected(5091));
    }

    #[test]
    fn port_range_bounds_are_inclusive() {
        let r = PortRange {
            first: 5060,
            last: 5080,
        };
        assert!(r.contains(5060) && r.contains(5080) && !r.contains(5081) && !r.contains(5059));
        assert!(PortRange::single(5060).contains(5060));
    }
}
