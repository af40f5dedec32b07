// SPDX-License-Identifier: AGPL-3.0-or-later
//! Decimal digits appended to a byte buffer without the formatting machinery, for the places
//! that write numbers once per record or message.

/// Appends `n` in decimal.
pub(crate) fn push_u64(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
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
        for n in [0, 1, -1, 9, 10, -10, 99, 1_234_567, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_i64(n, &mut out);
            assert_eq!(out, n.to_string().into_bytes());
        }
        let mut out = Vec::new();
        push_u64(u64::MAX, &mut out);
        assert_eq!(out, u64::MAX.to_string().into_bytes());
    }
}
