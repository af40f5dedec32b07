// SPDX-License-Identifier: AGPL-3.0-or-later
//! The scans a byte at a time: what targets without a vector unit here run, and what the
//! tests hold the vector scans to.
#![cfg_attr(target_arch = "x86_64", allow(dead_code))]

/// See [`super::newline_mask`].
pub(super) fn newline_mask(block: &[u8; 64]) -> u64 {
    block
        .iter()
        .enumerate()
        .fold(0, |mask, (i, &b)| mask | (u64::from(b == b'\n') << i))
}

/// See [`super::outside_class_mask`].
pub(super) fn outside_class_mask(block: &[u8; 16], also: &[u8]) -> u32 {
    block.iter().enumerate().fold(0, |mask, (i, &b)| {
        let inside = b.is_ascii_alphanumeric() || b == b'-' || also.contains(&b);
        mask | (u32::from(!inside) << i)
    })
}

/// Bit `i` set where `block[i]` is a quote, a backslash or a control character.
pub(super) fn escape_mask(block: &[u8; 16]) -> u32 {
    block.iter().enumerate().fold(0, |mask, (i, &b)| {
        mask | (u32::from(b < 0x20 || b == b'"' || b == b'\\') << i)
    })
}

/// No hint where there is no portable way to give one.
pub(super) fn prefetch_line(_: *const u8) {}
