// SPDX-License-Identifier: AGPL-3.0-or-later
//! pcapng files read directly, each interface with its own link type.
//!
//! libpcap refuses a pcapng file whose interfaces have different link types (`mergecap` of an
//! Ethernet and a Linux SLL capture), though each part reads alone; tshark reads them. This
//! reader keeps every interface's link type, time resolution and time offset, and walks the
//! blocks: Section Header, Interface Description, Enhanced, Simple and the obsolete Packet
//! block carry what it needs; every other block is skipped.

use std::io::Read;

use super::pcap_file::MAX_SNAPLEN;
use super::window::Window;
use crate::packet::Timestamp;

const SECTION_HEADER: u32 = 0x0A0D_0D0A;
const INTERFACE: u32 = 1;
const PACKET: u32 = 2;
const SIMPLE_PACKET: u32 = 3;
const ENHANCED_PACKET: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Blocks larger than this are damage, not data: it bounds what a hostile length can make
/// the reader allocate (packets are bounded by libpcap's largest snap length besides).
const MAX_BLOCK: usize = 16 << 20;

/// The first four bytes of every pcapng file.
pub(crate) const MAGIC: [u8; 4] = SECTION_HEADER.to_le_bytes();

/// One capture interface of the current section.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link_type: u16,
    snaplen: u32,
    /// Timestamp units per second (`if_tsresol`; microseconds unless it says otherwise).
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

/// One packet: capture time, length on the wire, its interface's link type, and where its
/// bytes lie in the reader's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Packet {
    pub(crate) time: Timestamp,
    pub(crate) original_len: u32,
    pub(crate) link_type: u16,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// The packets of a pcapng file, from its first byte.
#[derive(Debug)]
pub(crate) struct PcapngReader<R> {
    window: Window<R>,
    big_endian: bool,
    interfaces: Vec<Interface>,
}

impl<R: Read> PcapngReader<R> {
    pub(crate) fn new(input: R) -> Self {
        Self {
            window: Window::new(input),
            big_endian: false,
            interfaces: Vec::new(),
        }
    }

    /// The packet's bytes.
    pub(crate) fn data(&self, packet: &Packet) -> &[u8] {
        self.window.slice(packet.start, packet.len)
    }

    /// The link types of the interfaces described so far.
    pub(crate) fn link_types(&self) -> impl Iterator<Item = u16> + '_ {
        self.interfaces.iter().map(|i| i.link_type)
    }

    /// Reads blocks up to the first packet and leaves it unread: the interfaces it needs are
    /// then known. `Ok(false)` when the file holds no packet.
    pub(crate) fn read_head(&mut self) -> Result<bool, String> {
        loop {
            if !self.window.fill(8)? {
                return Ok(false);
            }
            let kind = self.u32_at(0);
            if matches!(kind, PACKET | SIMPLE_PACKET | ENHANCED_PACKET) {
                return Ok(true);
            }
            // Not a packet block, so it gives no packet.
            let _ = self.next_block()?;
        }
    }

    /// The next packet, `Ok(None)` at a clean end, or why the file breaks off.
    pub(crate) fn next_packet(&mut self) -> Result<Option<Packet>, String> {
        loop {
            if !self.window.fill(8)? {
                return match self.window.available() {
                    0 => Ok(None),
                    got => Err(format!("truncated block header: {got} of 8 bytes")),
                };
            }
            if let Some(packet) = self.next_block()? {
                return Ok(Some(packet));
            }
        }
    }

    /// Reads one whole block; a packet block gives its packet.
    fn next_block(&mut self) -> Result<Option<Packet>, String> {
        let kind = self.u32_at(0);
        if kind == SECTION_HEADER {
            // The byte order is the section's own, read from its magic.
            if !self.window.fill(12)? {
                return Err("truncated section header".into());
            }
            let magic: [u8; 4] = self.window.ahead()[8..12].try_into().unwrap_or_default();
            self.big_endian = match magic {
                m if u32::from_le_bytes(m) == BYTE_ORDER_MAGIC => false,
                m if u32::from_be_bytes(m) == BYTE_ORDER_MAGIC => true,
                _ => return Err("section header with an unknown byte-order magic".into()),
            };
            self.interfaces.clear();
        }
        let total = self.u32_at(4) as usize;
        if total < 12 || total % 4 != 0 || total > MAX_BLOCK {
            return Err(format!("block of type {kind:#x} claims {total} bytes"));
        }
        if !self.window.fill(total)? {
            return Err(format!(
                "truncated block: {} of its {total} bytes",
                self.window.available()
            ));
        }
        let body_end = total - 4;
        let packet = match kind {
            INTERFACE => {
                self.interface(body_end)?;
                None
            }
            ENHANCED_PACKET | PACKET => Some(self.packet(kind, body_end)?),
            SIMPLE_PACKET => Some(self.simple_packet(body_end)?),
            _ => None,
        };
        self.window.consume(total);
        Ok(packet)
    }

    fn interface(&mut self, body_end: usize) -> Result<(), String> {
        if body_end < 16 {
            return Err("interface description too short".into());
        }
        let mut interface = Interface {
            link_type: self.u16_at(8),
            snaplen: self.u32_at(12),
            units_per_sec: 1_000_000,
            offset_secs: 0,
        };
        // Options: code, length, value padded to 4 bytes; code 0 ends them.
        let mut at = 16;
        while at + 4 <= body_end {
            let (code, len) = (self.u16_at(at), usize::from(self.u16_at(at + 2)));
            let value = at + 4;
            if code == 0 || value + len > body_end {
                break;
            }
            match (code, len) {
                // if_tsresol: 10^-n, or 2^-n with the high bit set.
                (9, 1) => {
                    let v = self.window.ahead()[value];
                    let exponent = u32::from(v & 0x7f);
                    interface.units_per_sec = if v & 0x80 == 0 {
                        10u64.checked_pow(exponent)
                    } else {
                        1u64.checked_shl(exponent)
                    }
                    .filter(|&u| u > 0)
                    .ok_or_else(|| format!("interface time resolution {v:#x} out of range"))?;
                }
                // if_tsoffset: seconds.
                (14, 8) => interface.offset_secs = self.u64_at(value) as i64,
                _ => {}
            }
            at = value + len.next_multiple_of(4);
        }
        self.interfaces.push(interface);
        Ok(())
    }

    /// An Enhanced Packet Block, or the obsolete Packet Block (a 16-bit interface id).
    fn packet(&self, kind: u32, body_end: usize) -> Result<Packet, String> {
        if body_end < 28 {
            return Err("packet block too short".into());
        }
        let id = if kind == PACKET {
            u32::from(self.u16_at(8))
        } else {
            self.u32_at(8)
        };
        let interface = self.interface_of(id)?;
        let ticks = (u64::from(self.u32_at(12)) << 32) | u64::from(self.u32_at(16));
        let (caplen, original_len) = (self.u32_at(20) as usize, self.u32_at(24));
        if caplen > MAX_SNAPLEN as usize {
            return Err(format!(
                "invalid packet capture length {caplen}, bigger than maximum of {MAX_SNAPLEN}"
            ));
        }
        if 28 + caplen > body_end {
            return Err(format!(
                "packet of {caplen} bytes in a block of {} bytes",
                body_end + 4
            ));
        }
        Ok(Packet {
            time: Timestamp(micros(ticks, interface)),
            original_len,
            link_type: interface.link_type,
            start: self.window.pos() + 28,
            len: caplen,
        })
    }

    /// A Simple Packet Block: interface 0, no time (0), as much as the block and the
    /// interface's snap length hold.
    fn simple_packet(&self, body_end: usize) -> Result<Packet, String> {
        if body_end < 12 {
            return Err("simple packet block too short".into());
        }
        let interface = self.interface_of(0)?;
        let original_len = self.u32_at(8);
        let mut len = (body_end - 12).min(original_len as usize);
        if interface.snaplen > 0 {
            len = len.min(interface.snaplen as usize);
        }
        Ok(Packet {
            time: Timestamp(0),
            original_len,
            link_type: interface.link_type,
            start: self.window.pos() + 12,
            len,
        })
    }

    fn interface_of(&self, id: u32) -> Result<Interface, String> {
        self.interfaces
            .get(id as usize)
            .copied()
            .ok_or_else(|| format!("packet of interface {id}, which no block describes"))
    }

    fn bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        self.window.ahead()[at..at + N].try_into().unwrap_or([0; N])
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = self.bytes(at);
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = self.bytes(at);
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn u64_at(&self, at: usize) -> u64 {
        let b = self.bytes(at);
        if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        }
    }
}

/// A timestamp in the interface's units as microseconds since the epoch.
fn micros(ticks: u64, interface: Interface) -> i64 {
    let us = u128::from(ticks) * 1_000_000 / u128::from(interface.units_per_sec);
    i64::try_from(us)
        .unwrap_or(i64::MAX)
        .saturating_add(interface.offset_secs.saturating_mul(1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block of `kind` with `body` (padded to 4 bytes), in the given byte order.
    fn block(kind: u32, body: &[u8], big: bool) -> Vec<u8> {
        let u32s = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let padded = body.len().next_multiple_of(4);
        let total = (12 + padded) as u32;
        let mut out = u32s(kind).to_vec();
        out.extend_from_slice(&u32s(total));
        out.extend_from_slice(body);
        out.resize(8 + padded, 0);
        out.extend_from_slice(&u32s(total));
        out
    }

    fn section(big: bool) -> Vec<u8> {
        let mut body = if big {
            BYTE_ORDER_MAGIC.to_be_bytes().to_vec()
        } else {
            BYTE_ORDER_MAGIC.to_le_bytes().to_vec()
        };
        body.extend_from_slice(&[0, 1, 0, 0]); // version 1.0 (either order: unread)
        body.extend_from_slice(&[0xff; 8]); // section length unknown
        block(SECTION_HEADER, &body, big)
    }

    fn interface(link: u16, tsresol: Option<u8>, big: bool) -> Vec<u8> {
        let u16s = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u32s = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut body = u16s(link).to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&u32s(65535));
        if let Some(r) = tsresol {
            body.extend_from_slice(&u16s(9));
            body.extend_from_slice(&u16s(1));
            body.extend_from_slice(&[r, 0, 0, 0]);
            body.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        }
        block(INTERFACE, &body, big)
    }

    fn enhanced(id: u32, ticks: u64, data: &[u8], big: bool) -> Vec<u8> {
        let u32s = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut body = u32s(id).to_vec();
        body.extend_from_slice(&u32s((ticks >> 32) as u32));
        body.extend_from_slice(&u32s(ticks as u32));
        body.extend_from_slice(&u32s(data.len() as u32));
        body.extend_from_slice(&u32s(data.len() as u32 + 10));
        body.extend_from_slice(data);
        block(ENHANCED_PACKET, &body, big)
    }

    /// A packet as the tests compare it: time, link type, length on the wire, bytes.
    type Seen = (i64, u16, u32, Vec<u8>);

    fn packets(file: &[u8]) -> Result<Vec<Seen>, String> {
        let mut reader = PcapngReader::new(file);
        let mut out = Vec::new();
        while let Some(p) = reader.next_packet()? {
            out.push((
                p.time.micros(),
                p.link_type,
                p.original_len,
                reader.data(&p).to_vec(),
            ));
        }
        Ok(out)
    }

    #[test]
    fn keeps_each_interfaces_link_type_and_time_resolution_in_either_byte_order() {
        for big in [false, true] {
            let mut file = section(big);
            file.extend(interface(1, None, big)); // Ethernet, microseconds
            file.extend(interface(113, Some(9), big)); // Linux SLL, nanoseconds
            file.extend(block(0x8000_0001, b"custom", big)); // skipped
            file.extend(enhanced(0, 1_500_000, b"ether", big));
            file.extend(enhanced(1, 2_500_000_000, b"sll frame", big));
            let got = packets(&file).expect("reads");
            assert_eq!(
                got,
                vec![
                    (1_500_000, 1, 15, b"ether".to_vec()),
                    (2_500_000, 113, 19, b"sll frame".to_vec()),
                ],
                "big endian: {big}"
            );
        }
    }

    #[test]
    fn a_new_section_starts_its_own_interfaces_and_byte_order() {
        let mut file = section(false);
        file.extend(interface(1, None, false));
        file.extend(enhanced(0, 1, b"a", false));
        file.extend(section(true));
        file.extend(interface(101, Some(3), true)); // raw IP, milliseconds
        file.extend(enhanced(0, 7, b"b", true));
        let got = packets(&file).expect("reads");
        assert_eq!(got[1], (7_000, 101, 11, b"b".to_vec()));
    }

    #[test]
    fn damage_is_named_never_a_panic() {
        let mut file = section(false);
        file.extend(interface(1, None, false));
        file.extend(enhanced(0, 1, b"whole", false));
        let whole = file.len();
        file.extend(enhanced(3, 1, b"no such interface", false));
        let err = packets(&file).expect_err("interface 3 is not described");
        assert!(err.contains("interface 3"), "{err}");
        // Every cut and every flipped byte: an error or packets, never a panic.
        let file = file[..whole].to_vec();
        for cut in 0..file.len() {
            let _ = packets(&file[..cut]);
        }
        for at in 0..file.len() {
            let mut bad = file.clone();
            bad[at] ^= 0xff;
            let _ = packets(&bad);
        }
    }
}
