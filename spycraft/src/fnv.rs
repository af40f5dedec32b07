// SPDX-License-Identifier: AGPL-3.0-or-later
//! FNV-1a, 64 bits: a cheap hash that stays the same across runs, machines and releases
//! (std's hasher promises none of that), for identities that are stored or compared later.

/// The hash of no bytes: where a hash starts.
pub const START: u64 = 0xcbf2_9ce4_8422_2325;

/// `hash` carried on over `bytes`.
pub fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_the_published_fnv1a_values() {
        assert_eq!(fnv1a(START, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(START, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(fnv1a(START, b"foo"), b"bar"), fnv1a(START, b"foobar"));
    }
}
