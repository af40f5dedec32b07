// SPDX-License-Identifier: AGPL-3.0-or-later
//! Types that both sides of spycraft agree on, byte for byte.
//!
//! The kernel programs (XDP, socket filter) and the userspace pipeline exchange these through
//! BPF maps and a ring buffer, so every type here is `#[repr(C)]`, `Copy`, padded explicitly and
//! free of `bool` (whose bit patterns the verifier and userspace may disagree on).
#![no_std]

/// UDP/TCP ports on which SIP is expected when the operator configures nothing else.
///
/// 5060 is SIP over UDP/TCP (RFC 3261), 5061 SIP over TLS, 5080 the common second listener of
/// SBCs and FreeSWITCH external profiles.
pub const DEFAULT_SIP_PORTS: [u16; 3] = [5060, 5061, 5080];

/// Most port ranges the kernel filter map holds; userspace refuses configurations beyond it.
pub const MAX_PORT_RANGES: usize = 16;

/// Bytes of each frame copied into the ring buffer by default (a full Ethernet MTU plus tags).
pub const DEFAULT_SNAP_LEN: u32 = 1536;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    Seen = 0,
    Selected = 1,
    RingFull = 2,
}

/// Number of [`KernelCounter`] slots.
pub const KERNEL_COUNTERS: u32 = 3;

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
