// SPDX-License-Identifier: AGPL-3.0-or-later
//! Every vector scan against its portable twin.

use super::*;

/// Bytes with line feeds at varied gaps, and bytes that differ from a line feed in one bit
/// (so a compare that is off by a bit, or a lane, shows).
pub(crate) fn varied(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            match (x >> 33) % 7 {
                0 => b'\n',
                1 => b'\n' ^ 1,
                2 => b'\n' | 0x80,
                3 => b'\r',
                _ => b'a' + ((x >> 40) % 26) as u8,
            }
        })
        .collect()
}

#[test]
fn the_newline_mask_matches_its_twin() {
    for seed in 0..200 {
        let bytes = varied(64, seed);
        let block: &[u8; 64] = bytes.as_slice().try_into().expect("64 bytes");
        assert_eq!(
            newline_mask(block),
            portable::newline_mask(block),
            "{bytes:?}"
        );
    }
    assert_eq!(newline_mask(&[b'\n'; 64]), u64::MAX);
    assert_eq!(newline_mask(&[0; 64]), 0);
}

/// Every byte value in every lane, beside neighbours that border the classes.
#[test]
fn the_class_mask_matches_its_twin() {
    let rare = [b'.', b'!', b'%', b'*', b'_', b'+', b'`', b'\'', b'~'];
    for also in [&[][..], &rare[..]] {
        for at in 0..16 {
            for byte in 0..=255u8 {
                let mut block = *b"Az09-az/:@[`{ \x7f\x80";
                block[at] = byte;
                assert_eq!(
                    outside_class_mask(&block, also),
                    portable::outside_class_mask(&block, also),
                    "byte {byte:#x} at {at}, also {also:?}"
                );
            }
        }
    }
}

#[test]
fn the_escape_mask_matches_its_twin() {
    for at in 0..16 {
        for byte in 0..=255u8 {
            let mut block = [b'a'; 16];
            block[at] = byte;
            block[(at + 1) % 16] = byte.wrapping_add(1);
            assert_eq!(
                arch::escape_mask(&block),
                portable::escape_mask(&block),
                "byte {byte:#x} at {at}"
            );
        }
    }
}

#[test]
fn the_block_at_a_time_escape_check_agrees_with_the_byte_by_byte_one() {
    let naive = |b: &[u8]| b.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    // One block, two, and every tail length beside them.
    for len in 0..=40 {
        for at in 0..len {
            for byte in 0..=255u8 {
                let mut text = vec![b'a'; len];
                text[at] = byte;
                // A neighbour that borrows or carries into the tested byte.
                if at + 1 < len {
                    text[at + 1] = byte.wrapping_add(1);
                }
                assert_eq!(needs_escape(&text), naive(&text), "{text:?}");
            }
        }
    }
}

#[test]
fn a_short_slice_is_padded_into_a_block() {
    let mut spare = [0u8; 4];
    assert_eq!(first_block(b"ab", &mut spare), b"ab\0\0");
    assert_eq!(first_block(b"abcdef", &mut [0u8; 4]), b"abcd");
}
