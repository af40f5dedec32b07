// SPDX-License-Identifier: AGPL-3.0-or-later
//! Decimal digits appended to a byte buffer without the formatting machinery, for the places
//! that write numbers once per record or message.

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
pub(crate) fn push_u64(mut n: u64, out: &mut Vec<u8>) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut digits = [0u8; 20];
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
    out.extend_from_slice(&digits[at..]);
}

/// Appends `n` in decimal, with a minus sign when negative.
pub(crate) fn push_i64(n: i64, out: &mut Vec<u8>) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(n.unsigned_abs(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_display_writes() {
        for n in [
            0,
            1,
            -1,
            9,
            10,
            -10,
            99,
            100,
            101,
            1_234_567,
            12_345_678,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            push_i64(n, &mut out);
            assert_eq!(out, n.to_string().into_bytes());
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
