// SPDX-License-Identifier: AGPL-3.0-or-later
//! Cache hints: ask for memory a few steps before it is read, so the wait for it overlaps
//! other work. Hints only; nothing here changes what the program computes.

/// How many items ahead a walk over scattered memory asks for the next one: far enough for a
/// load from memory to land, near enough that it is still in the cache when its turn comes.
pub const AHEAD: usize = 4;

/// Asks the cache for every line of `value`.
pub fn value<T>(value: &T) {
    bytes(std::ptr::from_ref(value).cast(), size_of::<T>());
}

/// Asks the cache for the lines of `len` bytes from `start`.
#[inline]
pub fn bytes(start: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for offset in (0..len).step_by(64) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of x86_64, and a prefetch never faults, wherever it points.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, len);
}
