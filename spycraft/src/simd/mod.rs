// SPDX-License-Identifier: AGPL-3.0-or-later
//! The byte scans the hot path runs a block at a time, and its cache hints, behind one
//! architecture dispatch: [`sse2`] (part of every x86_64) where there is one, the portable
//! twins in [`portable`] elsewhere. Both have the same functions with the same meaning; the
//! tests hold every vector scan to its twin.
//!
//! Callers ask questions of blocks (where are the line feeds, which bytes are not token
//! characters, does this text need a JSON escape) and never see an intrinsic.

mod portable;
#[cfg(target_arch = "x86_64")]
mod sse2;

#[cfg(not(target_arch = "x86_64"))]
use portable as arch;
#[cfg(target_arch = "x86_64")]
use sse2 as arch;

/// Bit `i` set where `block[i]` is a line feed.
#[inline]
pub(crate) fn newline_mask(block: &[u8; 64]) -> u64 {
    arch::newline_mask(block)
}

/// Bit `i` set where `block[i]` is none of: an ASCII letter, a digit, '-', a byte of `also`.
#[inline]
pub(crate) fn outside_class_mask(block: &[u8; 16], also: &[u8]) -> u32 {
    arch::outside_class_mask(block, also)
}

/// Whether any byte is a quote, a backslash or a control character: whether a JSON string
/// of these bytes needs escaping.
#[inline]
pub(crate) fn needs_escape(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(16);
    if blocks
        .by_ref()
        .any(|block| arch::escape_mask(block.try_into().expect("16 bytes")) != 0)
    {
        return true;
    }
    let tail = blocks.remainder();
    if tail.is_empty() {
        return false;
    }
    // The last 16 bytes once more, overlapping, when there are that many; a shorter string
    // is padded with a letter, which needs no escape.
    let mut padded = [b'a'; 16];
    let last = match bytes.last_chunk::<16>() {
        Some(last) => last,
        None => first_block(tail, &mut padded),
    };
    arch::escape_mask(last) != 0
}

/// The first `N` bytes of `bytes` as a block; a shorter slice is copied into `spare` over
/// its padding, for the block-at-a-time scans.
#[inline]
pub(crate) fn first_block<'a, const N: usize>(
    bytes: &'a [u8],
    spare: &'a mut [u8; N],
) -> &'a [u8; N] {
    match bytes.first_chunk::<N>() {
        Some(whole) => whole,
        None => {
            spare[..bytes.len()].copy_from_slice(bytes);
            spare
        }
    }
}

/// Cache hints: ask for memory a few steps before it is read, so the wait for it overlaps
/// other work. Hints only; nothing here changes what the program computes.
pub(crate) mod prefetch {
    /// How many items ahead a walk over scattered memory asks for the next one: far enough
    /// for a load from memory to land, near enough that it is still in the cache when its
    /// turn comes.
    pub(crate) const AHEAD: usize = 4;

    /// Asks the cache for every line of `value`.
    pub(crate) fn value<T>(value: &T) {
        bytes(std::ptr::from_ref(value).cast(), size_of::<T>());
    }

    /// Asks the cache for the lines of `len` bytes from `start`.
    #[inline]
    pub(crate) fn bytes(start: *const u8, len: usize) {
        for offset in (0..len).step_by(64) {
            super::arch::prefetch_line(start.wrapping_add(offset));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
