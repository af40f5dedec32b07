// SPDX-License-Identifier: AGPL-3.0-or-later
//! Encapsulations, each a pure function from the outer payload to what it carries:
//! GRE (with ERSPAN I/II/III and PPP), VXLAN, GTP-U, PPPoE, MPLS.

/// What a tunnel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner<'a> {
    Ethernet(&'a [u8]),
    Ip(&'a [u8]),
    /// Something else (a GRE keepalive, an unknown protocol): nothing to decode.
    Other,
}

const ETH_TRANSPARENT: u16 = 0x6558;
const ERSPAN_I_II: u16 = 0x88be;
const ERSPAN_III: u16 = 0x22eb;
const PPP_IN_GRE: u16 = 0x880b;

/// Generic Routing Encapsulation (RFC 2784, RFC 2890; version 1 is PPTP's enhanced GRE).
pub fn gre(data: &[u8]) -> Option<Inner<'_>> {
    let flags = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
    let protocol = u16::from_be_bytes([*data.get(2)?, *data.get(3)?]);
    let checksum = flags & 0x8000 != 0;
    let routing = flags & 0x4000 != 0;
    let key = flags & 0x2000 != 0;
    let sequence = flags & 0x1000 != 0;
    let ack = flags & 0x0080 != 0;
    let version = flags & 0x0007;
    if routing || version > 1 {
        return None;
    }
    let len = 4
        + 4 * usize::from(checksum || routing)
        + 4 * usize::from(key)
        + 4 * usize::from(sequence)
        + 4 * usize::from(version == 1 && ack);
    let payload = data.get(len..)?;
    Some(match protocol {
        0x0800 | 0x86dd => Inner::Ip(payload),
        ETH_TRANSPARENT => Inner::Ethernet(payload),
        // ERSPAN type I has no header (and no sequence number); type II an 8-byte one.
        ERSPAN_I_II if !sequence => Inner::Ethernet(payload),
        ERSPAN_I_II => Inner::Ethernet(payload.get(8..)?),
        ERSPAN_III => {
            // 12-byte header; the O flag (last bit) adds an 8-byte platform sub-header.
            let optional = payload.get(11)? & 0x01 != 0;
            Inner::Ethernet(payload.get(12 + 8 * usize::from(optional)..)?)
        }
        PPP_IN_GRE => ppp(payload)?,
        _ => Inner::Other,
    })
}

/// A PPP frame: optional address/control bytes, then a 1- or 2-byte protocol (RFC 1661).
pub fn ppp(data: &[u8]) -> Option<Inner<'_>> {
    let data = data.strip_prefix(&[0xff, 0x03]).unwrap_or(data);
    let first = *data.first()?;
    // Protocol-field compression: an odd first byte is a 1-byte protocol.
    let (protocol, rest) = if first & 1 == 1 {
        (u16::from(first), &data[1..])
    } else {
        (u16::from_be_bytes([first, *data.get(1)?]), &data[2..])
    };
    Some(match protocol {
        0x0021 | 0x0057 => Inner::Ip(rest),
        _ => Inner::Other,
    })
}

/// PPPoE session stage (RFC 2516): 6-byte header, then PPP.
pub fn pppoe_session(data: &[u8]) -> Option<Inner<'_>> {
    if data.first()? != &0x11 || data.get(1)? != &0x00 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*data.get(4)?, *data.get(5)?]));
    let payload = data.get(6..)?;
    ppp(&payload[..len.min(payload.len())])
}

/// VXLAN (RFC 7348): 8-byte header with the I flag, then Ethernet.
pub fn vxlan(data: &[u8]) -> Option<Inner<'_>> {
    if data.first()? & 0x08 == 0 {
        return None;
    }
    Some(Inner::Ethernet(data.get(8..)?))
}

/// GTP-U version 1 (3GPP TS 29.281): a G-PDU carries an IP packet.
pub fn gtp_u(data: &[u8]) -> Option<Inner<'_>> {
    let flags = *data.first()?;
    if flags >> 5 != 1 || flags & 0x10 == 0 {
        return None;
    }
    if *data.get(1)? != 0xff {
        return Some(Inner::Other);
    }
    let mut at = 8;
    if flags & 0x07 != 0 {
        // Sequence number, N-PDU number and next extension type; then the extension chain.
        let mut next = *data.get(11)?;
        at = 12;
        let mut hops = 0;
        while next != 0 {
            hops += 1;
            let len = usize::from(*data.get(at)?) * 4;
            if len == 0 || hops > 8 {
                return None;
            }
            next = *data.get(at + len - 1)?;
            at += len;
        }
    }
    Some(Inner::Ip(data.get(at..)?))
}

/// An MPLS label stack (RFC 3032): labels until the bottom-of-stack bit, then IPv4 or IPv6
/// by the version nibble, or an Ethernet pseudowire behind a zero control word.
pub fn mpls(data: &[u8]) -> Option<Inner<'_>> {
    let mut at = 0;
    for _ in 0..16 {
        let bottom = data.get(at + 2)? & 0x01 != 0;
        at += 4;
        if bottom {
            let payload = data.get(at..)?;
            return Some(match payload.first()? >> 4 {
                4 | 6 => Inner::Ip(payload),
                0 => Inner::Ethernet(payload.get(4..)?),
                _ => Inner::Other,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: &[u8] = &[0x45, 0, 0, 20];
    const ETH: &[u8] = &[0xaa; 14];

    #[test]
    fn gre_variants() {
        assert_eq!(gre(&[0, 0, 0x08, 0, 0x45, 0]), Some(Inner::Ip(&[0x45, 0])));
        let mut keyed = vec![0x20, 0, 0x65, 0x58, 1, 2, 3, 4];
        keyed.extend_from_slice(ETH);
        assert_eq!(gre(&keyed), Some(Inner::Ethernet(ETH)));
        let mut erspan2 = vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 1];
        erspan2.extend_from_slice(&[0x10, 0, 0, 1, 0, 0, 0, 0]);
        erspan2.extend_from_slice(ETH);
        assert_eq!(gre(&erspan2), Some(Inner::Ethernet(ETH)));
        let mut erspan3 = vec![0x10, 0, 0x22, 0xeb, 0, 0, 0, 1];
        erspan3.extend_from_slice(&[0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x01]);
        erspan3.extend_from_slice(&[0; 8]);
        erspan3.extend_from_slice(ETH);
        assert_eq!(gre(&erspan3), Some(Inner::Ethernet(ETH)));
        let mut pptp = vec![
            0x30, 0x81, 0x88, 0x0b, 0, 4, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0x03, 0x00, 0x21,
        ];
        pptp.extend_from_slice(IP);
        assert_eq!(gre(&pptp), Some(Inner::Ip(IP)));
        assert_eq!(gre(&[0x40, 0, 0x08, 0]), None, "source routing is obsolete");
        assert_eq!(gre(&[0x80]), None);
    }

    #[test]
    fn ppp_pppoe_vxlan_gtp_mpls() {
        assert_eq!(ppp(&[0x21, 0x45]), Some(Inner::Ip(&[0x45])));
        assert_eq!(ppp(&[0x00, 0x57, 0x60]), Some(Inner::Ip(&[0x60])));
        assert_eq!(ppp(&[0xc0, 0x21, 1]), Some(Inner::Other), "LCP");
        let mut pppoe = vec![0x11, 0, 0, 1, 0, 6, 0x00, 0x21];
        pppoe.extend_from_slice(IP);
        pppoe.extend_from_slice(&[0xee; 4]); // Ethernet padding beyond the PPPoE length
        assert_eq!(pppoe_session(&pppoe), Some(Inner::Ip(IP)));
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        vx.extend_from_slice(ETH);
        assert_eq!(vxlan(&vx), Some(Inner::Ethernet(ETH)));
        let mut g = vec![0x30, 0xff, 0, 4, 0, 0, 0, 1];
        g.extend_from_slice(IP);
        assert_eq!(gtp_u(&g), Some(Inner::Ip(IP)));
        let mut g_ext = vec![0x34, 0xff, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0, 0, 0];
        g_ext.extend_from_slice(IP);
        assert_eq!(gtp_u(&g_ext), Some(Inner::Ip(IP)));
        assert_eq!(
            gtp_u(&[0x30, 0x01, 0, 0, 0, 0, 0, 0]),
            Some(Inner::Other),
            "echo request"
        );
        let mut m = vec![0, 0, 0x10, 64, 0, 0, 0x21, 64];
        m.extend_from_slice(IP);
        assert_eq!(mpls(&m), Some(Inner::Ip(IP)));
        assert_eq!(mpls(&[0, 0, 0, 64]), None, "no bottom of stack");
    }
}
