// SPDX-License-Identifier: AGPL-3.0-or-later
//! Decimal digits written without the formatting machinery, for the places that write
//! numbers once per record or message.

/// "00" to "99": digits are written two at a time, halving the divisions.
static PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0; 2]; 100];
    let mut n = 0;
    while n < 100 {
        pairs[n] = [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        n += 1;
    }
    pairs
};

/// The two digits of `n` (below 100), with a leading zero.
#[inline]
pub(crate) fn two_digits(n: u64) -> [u8; 2] {
    PAIRS[(n % 100) as usize]
}

/// Appends `n` in decimal.
pub(crate) fn push_u64(n: u64, out: &mut Vec<u8>) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    out.extend_from_slice(u64_digits(n, &mut [0; 20]));
}

/// The decimal digits of `n`, written at the end of `digits`.
pub(crate) fn u64_digits(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    while n >= 100 {
        at -= 2;
        digits[at..at + 2].copy_from_slice(&two_digits(n));
        n /= 100;
    }
    if n >= 10 {
        at -= 2;
        digits[at..at + 2].copy_from_slice(&two_digits(n));
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    &digits[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_display_writes() {
        for n in [0, 1, 9, 10, 99, 100, 101, 1_234_567, 12_345_678, u64::MAX] {
            assert_eq!(u64_digits(n, &mut [0; 20]), n.to_string().as_bytes());
        }
        let mut out = Vec::new();
        push_u64(u64::MAX, &mut out);
        assert_eq!(out, u64::MAX.to_string().into_bytes());
        for n in 0..100_000u64 {
            out.clear();
            push_u64(n, &mut out);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
