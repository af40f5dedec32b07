// SPDX-License-Identifier: AGPL-3.0-or-later
//! One question to the kernel's routing netlink: which XDP program holds an interface, so
//! that a refused attach can name it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const RTM_GETLINK: u16 = 18;
const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 1;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
/// Attribute type bits that are flags, not the type (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
const TYPE_MASK: u16 = 0x3fff;

/// The XDP program attached to the interface: its id and how it is attached (`native`,
/// `generic`, `offloaded`), if one is.
pub(crate) fn xdp_program_of(ifindex: u32) -> Option<(u32, &'static str)> {
    // SAFETY: socket(2) with constant arguments; checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a descriptor we just opened and own alone.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // nlmsghdr (16 bytes) then ifinfomsg (16 bytes) asking for one interface.
    let mut request = [0u8; 32];
    request[0..4].copy_from_slice(&32u32.to_ne_bytes());
    request[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    request[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    request[8..12].copy_from_slice(&1u32.to_ne_bytes());
    request[16] = libc::AF_UNSPEC as u8;
    request[20..24].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    // SAFETY: the buffer is valid for its length; the kernel is the default destination.
    let sent = unsafe { libc::send(socket.as_raw_fd(), request.as_ptr().cast(), 32, 0) };
    if sent != 32 {
        return None;
    }
    let mut reply = vec![0u8; 32 * 1024];
    // SAFETY: the buffer is valid for its length.
    let got = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            reply.as_mut_ptr().cast(),
            reply.len(),
            0,
        )
    };
    let reply = reply.get(..usize::try_from(got).ok()?)?;
    let u16_at =
        |b: &[u8], at: usize| Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?));
    let u32_at =
        |b: &[u8], at: usize| Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?));
    if u16_at(reply, 4)? != RTM_NEWLINK {
        return None;
    }
    let length = (u32_at(reply, 0)? as usize).min(reply.len());
    let xdp = attributes(&reply[32..length])
        .find(|(kind, _)| *kind == IFLA_XDP)?
        .1;
    let mut mode = 0u8;
    let mut id = None;
    for (kind, value) in attributes(xdp) {
        match kind {
            IFLA_XDP_ATTACHED => mode = *value.first()?,
            IFLA_XDP_PROG_ID | IFLA_XDP_DRV_PROG_ID | IFLA_XDP_SKB_PROG_ID => {
                id = id.or(u32_at(value, 0));
            }
            _ => {}
        }
    }
    let how = match mode {
        0 => return None,
        1 => "native",
        2 => "generic",
        3 => "offloaded",
        _ => "several modes",
    };
    Some((id.filter(|&id| id > 0)?, how))
}

/// The (type, value) pairs of a run of netlink attributes.
fn attributes(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(bytes.get(0..2)?.try_into().ok()?));
        let kind = u16::from_ne_bytes(bytes.get(2..4)?.try_into().ok()?) & TYPE_MASK;
        let value = bytes.get(4..len)?;
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_no_xdp_program_and_attributes_are_walked() {
        assert_eq!(xdp_program_of(1), None);
        // Two attributes, the first padded to four bytes.
        let bytes = [5, 0, 2, 0, 1, 0, 0, 0, 8, 0, 4, 0x80, 7, 0, 0, 0];
        let got: Vec<(u16, Vec<u8>)> = attributes(&bytes).map(|(k, v)| (k, v.to_vec())).collect();
        assert_eq!(got, vec![(2, vec![1]), (4, 7u32.to_ne_bytes().to_vec())]);
        assert_eq!(
            attributes(&[3, 0, 1]).count(),
            0,
            "a cut attribute ends the walk"
        );
    }
}
