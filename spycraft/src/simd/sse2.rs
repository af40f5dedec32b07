// SPDX-License-Identifier: AGPL-3.0-or-later
//! The scans with SSE2, which every x86_64 has: 16 bytes per compare.

use std::arch::x86_64::{
    __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
    _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_prefetch, _mm_set1_epi8, _MM_HINT_T0,
};

/// See [`super::newline_mask`]: four vector compares.
#[inline]
pub(super) fn newline_mask(block: &[u8; 64]) -> u64 {
    let mut mask = 0;
    for (i, chunk) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of x86_64, and the load reads the 16 bytes of `chunk`
        // (unaligned loads are allowed).
        let hits = unsafe {
            let bytes = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\n' as i8)))
        };
        mask |= u64::from(hits as u16) << (16 * i);
    }
    mask
}

/// See [`super::outside_class_mask`].
#[inline]
pub(super) fn outside_class_mask(block: &[u8; 16], also: &[u8]) -> u32 {
    // SAFETY: SSE2 is part of x86_64; the load reads the 16 bytes of `block` (unaligned
    // loads are allowed). Bytes from 0x80 compare as negative, so fall in no range below.
    unsafe {
        let b = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let within = |v: __m128i, lo: u8, hi: u8| {
            _mm_and_si128(
                _mm_cmpgt_epi8(v, _mm_set1_epi8(lo as i8 - 1)),
                _mm_cmplt_epi8(v, _mm_set1_epi8(hi as i8 + 1)),
            )
        };
        let is = |c: u8| _mm_cmpeq_epi8(b, _mm_set1_epi8(c as i8));
        let letters = within(_mm_or_si128(b, _mm_set1_epi8(0x20)), b'a', b'z');
        let mut class = _mm_or_si128(_mm_or_si128(letters, within(b, b'0', b'9')), is(b'-'));
        for &c in also {
            class = _mm_or_si128(class, is(c));
        }
        !(_mm_movemask_epi8(class) as u32) & 0xffff
    }
}

/// Bit `i` set where `block[i]` is a quote, a backslash or a control character.
#[inline]
pub(super) fn escape_mask(block: &[u8; 16]) -> u32 {
    // SAFETY: SSE2 is part of x86_64; the load reads the 16 bytes of `block` (unaligned
    // loads are allowed).
    unsafe {
        let b = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        // Unsigned b <= 0x1f: the smaller of b and 0x1f is b itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(b, _mm_set1_epi8(0x1f)), b);
        let quote = _mm_cmpeq_epi8(b, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(b, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) as u32
    }
}

/// Asks for the cache line holding `at`.
#[inline]
pub(super) fn prefetch_line(at: *const u8) {
    // SAFETY: SSE is part of x86_64, and a prefetch never faults, wherever it points.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) };
}
