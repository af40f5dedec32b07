// SPDX-License-Identifier: AGPL-3.0-or-later
//! Byte-level helpers for SIP header values: whitespace (folding included), tokens, quoted
//! strings, comma-separated values and `;name=value` parameters. All borrow; none allocate.

use crate::simd;

/// SP, HTAB, and the CR/LF that folded header lines leave inside a value.
#[inline]
pub fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 `token` characters.
#[inline]
pub fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// [`is_token`] as a table: it runs on every byte of every header name.
static TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    table
};

/// How many bytes at the start of `bytes` are [`is_token`] characters: a header name's
/// length. Names are short, so the first 16 bytes are classified at once, with no branch per
/// byte to guess wrong at the name's end; longer runs go on a byte at a time.
#[inline]
pub fn token_len(bytes: &[u8]) -> usize {
    if let Some(block) = bytes.first_chunk::<16>() {
        // Names are nearly always letters, digits and '-': where the first other byte is no
        // token character either (the ':' or blank after a name), that settles it without
        // testing for the rarer token characters.
        let others = simd::outside_class_mask(block, &[]);
        if others != 0 {
            let at = others.trailing_zeros() as usize;
            if !is_token(block[at]) {
                return at;
            }
        }
        let others = simd::outside_class_mask(block, &RARE_TOKEN);
        if others != 0 {
            return others.trailing_zeros() as usize;
        }
    }
    token_len_bytewise(bytes)
}

/// Whether `bytes` is one non-empty run of token characters (a method, a tag).
#[inline]
pub fn is_token_word(bytes: &[u8]) -> bool {
    !bytes.is_empty() && token_len(bytes) == bytes.len()
}

fn token_len_bytewise(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&b| !is_token(b))
        .unwrap_or(bytes.len())
}

/// The token characters other than letters, digits and '-', which header names seldom use.
const RARE_TOKEN: [u8; 9] = [b'.', b'!', b'%', b'*', b'_', b'+', b'`', b'\'', b'~'];

/// Removes linear whitespace (folding included) from both ends.
#[inline]
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_lws(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_lws(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Index just past the closing quote of the quoted string that starts at `s[0] == b'"'`,
/// honouring backslash escapes; `s.len()` if the quote never closes.
pub fn quoted_end(s: &[u8]) -> usize {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    s.len()
}

/// Position of the first `needle` in `s` that is outside quoted strings and `<...>` (a `<`
/// that never closes hides the rest). Jumps from one interesting byte to the next with
/// `memchr3`: header values are walked for every message.
pub fn find_unquoted(s: &[u8], needle: u8) -> Option<usize> {
    let mut i = 0;
    while i < s.len() {
        let at = i + memchr::memchr3(needle, b'"', b'<', &s[i..])?;
        match s[at] {
            b if b == needle => return Some(at),
            b'"' => i = at + quoted_end(&s[at..]),
            // Inside <...> nothing counts, quotes included.
            _ => i = at + 1 + memchr::memchr(b'>', &s[at + 1..])? + 1,
        }
    }
    None
}

/// Iterates over the comma-separated values of a header (RFC 3261 §7.3.1), each trimmed;
/// commas inside quoted strings and angle brackets do not split.
pub fn split_values(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || loop {
        let s = rest?;
        let (item, next) = match find_unquoted(s, b',') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        rest = next;
        let item = trim(item);
        if !item.is_empty() {
            return Some(item);
        }
    })
}

/// Value of parameter `name` (case-insensitive) in a `;a=b;c` parameter list. A parameter
/// without `=` yields an empty value. Quotes around the value are removed.
pub fn param<'b>(params: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
    sole_token_param(params, name).or_else(|| walk_params(params, name))
}

/// The value of `;name=token` when that is the whole list, the usual form (`;tag=1928301774`),
/// found without walking it; `None` for anything else, which [`walk_params`] reads, and
/// would read to the same value here.
fn sole_token_param<'b>(params: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
    let (key, rest) = params.strip_prefix(b";")?.split_at_checked(name.len())?;
    let value = rest.strip_prefix(b"=")?;
    (key.eq_ignore_ascii_case(name) && is_token_word(value)).then_some(value)
}

/// [`param`] by walking the `;`-separated items.
fn walk_params<'b>(params: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
    // Without quotes or angle brackets (the norm: `;tag=1928301774`) every `;` splits.
    if !params.iter().any(|&b| b == b'"' || b == b'<') {
        return params
            .split(|&b| b == b';')
            .skip(1)
            .find_map(|item| param_item(item, name));
    }
    let mut rest = params;
    while let Some(start) = find_unquoted(rest, b';') {
        rest = &rest[start + 1..];
        let end = find_unquoted(rest, b';').unwrap_or(rest.len());
        if let Some(value) = param_item(&rest[..end], name) {
            return Some(value);
        }
        rest = &rest[end..];
    }
    None
}

/// The value of one `name=value` item (empty without `=`), unquoted, if its name is `name`.
fn param_item<'b>(item: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
    let (key, value) = match item.iter().position(|&b| b == b'=') {
        Some(eq) => (trim(&item[..eq]), trim(&item[eq + 1..])),
        None => (trim(item), &b""[..]),
    };
    key.eq_ignore_ascii_case(name).then(|| unquote(value))
}

/// Strips one pair of surrounding double quotes, if present.
pub fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

/// Parses an unsigned decimal number of at most `max_digits` digits, with surrounding LWS.
#[inline]
pub fn parse_u32(s: &[u8], max_digits: usize) -> Option<u32> {
    let s = trim(s);
    if s.is_empty() || s.len() > max_digits || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = s
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    u32::try_from(n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_len_matches_a_byte_by_byte_walk() {
        // Every byte value at every position of a 16-byte block, after a run of token bytes,
        // and runs longer than a block.
        for at in 0..20 {
            for b in 0..=255u8 {
                let mut bytes = b"Record-Route-XYZab".to_vec();
                bytes.resize(20, b'x');
                bytes.insert(at, b);
                assert_eq!(
                    token_len(&bytes),
                    token_len_bytewise(&bytes),
                    "byte {b:#x} at {at}"
                );
                // And with a name's end (a colon) soon after it.
                bytes[(at + 2).min(19)] = b':';
                assert_eq!(
                    token_len(&bytes),
                    token_len_bytewise(&bytes),
                    "byte {b:#x} at {at}, colon after"
                );
            }
        }
        assert_eq!(token_len(b"P-Asserted-Identity: <sip:a@b>"), 19);
        // A rarer token character first, then the end of the name.
        assert_eq!(token_len(b"X.Y-Z: value and more"), 5);
        assert_eq!(token_len(b"a_b~c!d%e*f+g`h'i j"), 17);
        assert_eq!(token_len(b"Via"), 3);
        assert_eq!(token_len(b""), 0);
        assert_eq!(token_len(&[b'a'; 40]), 40);
    }

    #[test]
    fn trims_folding_whitespace() {
        assert_eq!(trim(b" \t a b \r\n "), b"a b");
        assert_eq!(trim(b"   "), b"");
    }

    #[test]
    fn finds_unquoted_bytes_as_a_byte_by_byte_walk_does() {
        /// The plain walk `find_unquoted` replaces.
        fn reference(s: &[u8], needle: u8) -> Option<usize> {
            let (mut i, mut in_angle) = (0, false);
            while i < s.len() {
                match s[i] {
                    b'"' if !in_angle => {
                        i += quoted_end(&s[i..]);
                        continue;
                    }
                    b if b == needle && !in_angle => return Some(i),
                    b'<' => in_angle = true,
                    b'>' => in_angle = false,
                    _ => {}
                }
                i += 1;
            }
            None
        }
        // Every string of up to seven bytes over the bytes that matter.
        let alphabet = b"a;,\"<>\\";
        let mut text = Vec::new();
        for len in 0..=7u32 {
            for mut n in 0..alphabet.len().pow(len) {
                text.clear();
                for _ in 0..len {
                    text.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                for needle in [b';', b',', b'<'] {
                    assert_eq!(
                        find_unquoted(&text, needle),
                        reference(&text, needle),
                        "{} in {}",
                        needle as char,
                        String::from_utf8_lossy(&text)
                    );
                }
            }
        }
    }

    #[test]
    fn splits_values_outside_quotes_and_brackets() {
        let v: Vec<&[u8]> =
            split_values(br#""Doe, John" <sip:a@b;x=1,2>;tag=1 , <sip:c@d>,, sip:e@f"#).collect();
        assert_eq!(
            v,
            vec![
                &br#""Doe, John" <sip:a@b;x=1,2>;tag=1"#[..],
                &b"<sip:c@d>"[..],
                &b"sip:e@f"[..]
            ]
        );
    }

    #[test]
    fn the_short_way_to_a_parameter_finds_what_the_walk_finds() {
        for params in [
            &b";tag=abc"[..],
            b";TAG=a.b-c",
            b";tag=",
            b";tag=a b",
            b";tag=abc;x=1",
            b";tag=\"quoted\"",
            b";tagx=1",
            b"; tag=1",
            b";tag =1",
            b";x=1;tag=2",
            b";tag=\xc3\xa9",
            b";tag",
            b"",
        ] {
            assert_eq!(
                param(params, b"tag"),
                walk_params(params, b"tag"),
                "{}",
                String::from_utf8_lossy(params)
            );
        }
    }

    #[test]
    fn finds_parameters_case_insensitively() {
        let p = b";Tag=abc ; lr;cause=16;text=\"a;b\"";
        assert_eq!(param(p, b"tag"), Some(&b"abc"[..]));
        assert_eq!(param(p, b"lr"), Some(&b""[..]));
        assert_eq!(param(p, b"cause"), Some(&b"16"[..]));
        assert_eq!(param(p, b"text"), Some(&b"a;b"[..]));
        assert_eq!(param(p, b"branch"), None);
    }

    #[test]
    fn parses_bounded_numbers() {
        assert_eq!(parse_u32(b" 42 ", 10), Some(42));
        assert_eq!(parse_u32(b"4294967295", 10), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296", 10), None);
        assert_eq!(parse_u32(b"99999999999999999999", 10), None);
        assert_eq!(parse_u32(b"-1", 10), None);
        assert_eq!(parse_u32(b"", 10), None);
    }
}
