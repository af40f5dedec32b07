// SPDX-License-Identifier: AGPL-3.0-or-later
//! The one parser both programs share: is this frame SIP signalling the sensor wants?
//!
//! It walks Ethernet (unless the interface has no link-layer header: then the frame starts
//! with IP), up to two VLAN tags (802.1Q, 802.1ad QinQ), IPv4 or IPv6 (extension
//! headers within a fixed bound), then UDP or TCP, and matches the ports (and, when configured,
//! the hosts) that userspace put in the maps. Later IP fragments carry no ports: they follow
//! when their datagram's first fragment matched, which the fragment map remembers.
//!
//! Every read goes through [`Packet::bytes`], a bounds-checked copy the kernel performs, so the
//! same code verifies for XDP (`bpf_xdp_load_bytes`) and socket filters (`bpf_skb_load_bytes`).

use aya_ebpf::maps::lpm_trie::Key;
use spycraft_common::{FilterSettings, FragmentKey, RING_FLAG_FRAGMENT_FOLLOW};

use crate::{FRAGMENTS, HOSTS_V4, HOSTS_V6};

/// A frame the parser can read from.
pub trait Packet {
    /// Length of the whole frame.
    fn len(&self) -> u32;
    /// `N` bytes at `offset`, or `None` when the frame ends first.
    fn bytes<const N: usize>(&self, offset: u32) -> Option<[u8; N]>;
}

const ETH_HEADER: u32 = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AUTH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;

/// Most IPv6 extension headers walked before giving up on a frame.
const MAX_IPV6_EXTENSIONS: usize = 6;

/// The ring flags of a selected frame, or `None` to leave it.
#[inline(always)]
pub fn select<P: Packet>(packet: &P, settings: &FilterSettings) -> Option<u8> {
    if settings.raw_ip != 0 {
        let version: [u8; 1] = packet.bytes(0)?;
        return match version[0] >> 4 {
            4 => ipv4(packet, 0, settings),
            6 => ipv6(packet, 0, settings),
            _ => None,
        };
    }
    let ethernet: [u8; 14] = packet.bytes(0)?;
    let mut ethertype = u16::from_be_bytes([ethernet[12], ethernet[13]]);
    let mut offset = ETH_HEADER;
    // Two tags at most: an 802.1ad outer tag and an 802.1Q inner one.
    if is_vlan(ethertype) {
        let tag: [u8; 4] = packet.bytes(offset)?;
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        offset += 4;
    }
    if is_vlan(ethertype) {
        let tag: [u8; 4] = packet.bytes(offset)?;
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        offset += 4;
    }
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(packet, offset, settings),
        ETHERTYPE_IPV6 => ipv6(packet, offset, settings),
        _ => None,
    }
}

#[inline(always)]
fn is_vlan(ethertype: u16) -> bool {
    ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ || ethertype == ETHERTYPE_QINQ_OLD
}

#[inline(always)]
fn hosts_configured(settings: &FilterSettings) -> bool {
    settings.host_prefixes_v4 != 0 || settings.host_prefixes_v6 != 0
}

#[inline(always)]
fn ipv4<P: Packet>(packet: &P, offset: u32, settings: &FilterSettings) -> Option<u8> {
    let h: [u8; 20] = packet.bytes(offset)?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let header_len = u32::from(h[0] & 0x0f) * 4;
    if header_len < 20 {
        return None;
    }
    let source = [h[12], h[13], h[14], h[15]];
    let destination = [h[16], h[17], h[18], h[19]];
    if hosts_configured(settings) && !(host_v4(source) || host_v4(destination)) {
        return None;
    }
    let mut key = FragmentKey {
        identification: u32::from(u16::from_be_bytes([h[4], h[5]])),
        version: 4,
        protocol: h[9],
        ..FragmentKey::default()
    };
    key.source[0] = source[0];
    key.source[1] = source[1];
    key.source[2] = source[2];
    key.source[3] = source[3];
    key.destination[0] = destination[0];
    key.destination[1] = destination[1];
    key.destination[2] = destination[2];
    key.destination[3] = destination[3];
    let fragment = u16::from_be_bytes([h[6], h[7]]);
    if fragment & 0x1fff != 0 {
        return follows(&key);
    }
    transport(packet, offset + header_len, h[9], settings)?;
    if fragment & 0x2000 != 0 {
        remember(&key);
    }
    Some(0)
}

#[inline(always)]
fn ipv6<P: Packet>(packet: &P, offset: u32, settings: &FilterSettings) -> Option<u8> {
    let h: [u8; 40] = packet.bytes(offset)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let mut key = FragmentKey {
        version: 6,
        ..FragmentKey::default()
    };
    let mut i = 0;
    while i < 16 {
        key.source[i] = h[8 + i];
        key.destination[i] = h[24 + i];
        i += 1;
    }
    if hosts_configured(settings) && !(host_v6(key.source) || host_v6(key.destination)) {
        return None;
    }
    let mut next = h[6];
    let mut offset = offset + 40;
    let mut first_fragment = false;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        match next {
            PROTO_UDP | PROTO_TCP => {
                transport(packet, offset, next, settings)?;
                if first_fragment {
                    remember(&key);
                }
                return Some(0);
            }
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let e: [u8; 2] = packet.bytes(offset)?;
                next = e[0];
                offset += (u32::from(e[1]) + 1) * 8;
            }
            IPV6_AUTH => {
                let e: [u8; 2] = packet.bytes(offset)?;
                next = e[0];
                offset += (u32::from(e[1]) + 2) * 4;
            }
            IPV6_FRAGMENT => {
                let f: [u8; 8] = packet.bytes(offset)?;
                key.identification = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
                let fragment = u16::from_be_bytes([f[2], f[3]]);
                if fragment & 0xfff8 != 0 {
                    return follows(&key);
                }
                first_fragment = fragment & 1 != 0;
                next = f[0];
                offset += 8;
            }
            _ => return None,
        }
    }
    None
}

/// `Some` when the UDP or TCP ports at `offset` are SIP's.
#[inline(always)]
fn transport<P: Packet>(
    packet: &P,
    offset: u32,
    protocol: u8,
    settings: &FilterSettings,
) -> Option<()> {
    if protocol != PROTO_UDP && protocol != PROTO_TCP {
        return None;
    }
    let ports: [u8; 4] = packet.bytes(offset)?;
    let source = u16::from_be_bytes([ports[0], ports[1]]);
    let destination = u16::from_be_bytes([ports[2], ports[3]]);
    if settings.port_selected(source) || settings.port_selected(destination) {
        Some(())
    } else {
        None
    }
}

#[inline(always)]
fn host_v4(address: [u8; 4]) -> bool {
    HOSTS_V4.get(Key::new(32, address)).is_some()
}

#[inline(always)]
fn host_v6(address: [u8; 16]) -> bool {
    HOSTS_V6.get(Key::new(128, address)).is_some()
}

/// A first fragment matched: let the rest of its datagram through.
#[inline(always)]
fn remember(key: &FragmentKey) {
    // A full map evicts the least recently used flow; nothing to handle.
    let _ = FRAGMENTS.insert(key, 1u8, 0);
}

#[inline(always)]
fn follows(key: &FragmentKey) -> Option<u8> {
    // SAFETY: the value is a plain u8 only compared for presence, never held across calls.
    let known = unsafe { FRAGMENTS.get(key) }.is_some();
    known.then_some(RING_FLAG_FRAGMENT_FOLLOW)
}
