// SPDX-License-Identifier: AGPL-3.0-or-later
//! Header names: the ones spycraft reads, recognised once per header in any case or compact form.

use crate::simd::first_block;

/// The headers spycraft looks at, plus `Other` for everything else.
///
/// Classifying each header once while parsing lets accessors find a header by comparing a
/// byte-sized tag instead of case-folding names again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HeaderKind {
    /// The Call-ID header.
    CallId,
    /// The From header.
    From,
    /// The To header.
    To,
    /// The Via header.
    Via,
    /// The CSeq header.
    CSeq,
    /// The Contact header.
    Contact,
    /// The Content-Length header.
    ContentLength,
    /// The Content-Type header.
    ContentType,
    /// The Content-Encoding header.
    ContentEncoding,
    /// The User-Agent header.
    UserAgent,
    /// The Server header.
    Server,
    /// The Reason header.
    Reason,
    /// The P-Asserted-Identity header.
    PAssertedIdentity,
    /// The Diversion header.
    Diversion,
    /// The Supported header.
    Supported,
    /// The Subject header.
    Subject,
    /// The Event header.
    Event,
    /// The Refer-To header.
    ReferTo,
    /// The Referred-By header.
    ReferredBy,
    /// The Session-Expires header.
    SessionExpires,
    /// The Allow-Events header.
    AllowEvents,
    /// The Max-Forwards header.
    MaxForwards,
    /// The X-CollateID header.
    XCollateId,
    /// RFC 3891: the dialog an INVITE replaces (attended transfer).
    Replaces,
    /// The header that is `Other`, by any other name.
    #[default]
    Other,
}

impl HeaderKind {
    /// Number of kinds, `Other` included.
    pub const COUNT: usize = Self::Other as usize + 1;

    /// Classifies a header name, case-insensitively, including RFC 3261 §7.3.3 compact forms
    /// and the compact forms registered later (o, r, b, x, u).
    pub fn from_name(name: &[u8]) -> Self {
        if let [c] = name {
            return Self::from_compact(c.to_ascii_lowercase());
        }
        known_of_length(name.len())
            .iter()
            .find(|known| eq_lowercase(name, known.name))
            .map_or(Self::Other, |known| known.kind)
    }

    /// [`HeaderKind::from_name`] for the name (token characters, as the parser finds it) that
    /// makes up the first `name_len` bytes of `line`. The name is compared as one folded
    /// 16-byte word with each known name of its length, rather than byte by byte: it runs for
    /// every header.
    #[inline]
    pub fn from_line(line: &[u8], name_len: usize) -> Self {
        // A line shorter than the word (`CSeq: 1 ACK`) is padded; the mask drops the padding.
        let head = *first_block(line, &mut [0; 16]);
        match name_len {
            2..=16 if name_len <= line.len() => {
                let mask = u128::MAX >> (8 * (16 - name_len));
                let folded = (u128::from_le_bytes(head) | LOWER) & mask;
                known_of_length(name_len)
                    .iter()
                    .find(|known| known.word == folded)
                    .map_or(Self::Other, |known| known.kind)
            }
            _ => Self::from_name(&line[..name_len.min(line.len())]),
        }
    }

    #[inline]
    fn from_compact(c: u8) -> Self {
        match c {
            b'i' => Self::CallId,
            b'f' => Self::From,
            b't' => Self::To,
            b'v' => Self::Via,
            b'm' => Self::Contact,
            b'l' => Self::ContentLength,
            b'c' => Self::ContentType,
            b'e' => Self::ContentEncoding,
            b'k' => Self::Supported,
            b's' => Self::Subject,
            b'o' => Self::Event,
            b'r' => Self::ReferTo,
            b'b' => Self::ReferredBy,
            b'x' => Self::SessionExpires,
            b'u' => Self::AllowEvents,
            _ => Self::Other,
        }
    }
}

/// A header name spycraft reads, in lower case, also as a little-endian word (when it fits
/// in 16 bytes) for [`HeaderKind::from_line`].
struct Known {
    name: &'static [u8],
    word: u128,
    kind: HeaderKind,
}

impl Known {
    const fn new(name: &'static [u8], kind: HeaderKind) -> Self {
        let mut word = 0u128;
        let mut i = 0;
        while i < name.len() && i < 16 {
            word |= (name[i] as u128) << (8 * i);
            i += 1;
        }
        Self { name, word, kind }
    }
}

/// Bit 5 in every byte: lowers a letter and leaves `-` and digits alone (see
/// [`eq_lowercase`]).
const LOWER: u128 = u128::from_ne_bytes([0x20; 16]);

/// The known names of one length: the length leaves one to three candidates to compare.
fn known_of_length(len: usize) -> &'static [Known] {
    use HeaderKind as K;
    const fn k(name: &'static [u8], kind: HeaderKind) -> Known {
        Known::new(name, kind)
    }
    static L2: [Known; 1] = [k(b"to", K::To)];
    static L3: [Known; 1] = [k(b"via", K::Via)];
    static L4: [Known; 2] = [k(b"from", K::From), k(b"cseq", K::CSeq)];
    static L5: [Known; 1] = [k(b"event", K::Event)];
    static L6: [Known; 2] = [k(b"server", K::Server), k(b"reason", K::Reason)];
    static L7: [Known; 3] = [
        k(b"call-id", K::CallId),
        k(b"contact", K::Contact),
        k(b"subject", K::Subject),
    ];
    static L8: [Known; 2] = [k(b"refer-to", K::ReferTo), k(b"replaces", K::Replaces)];
    static L9: [Known; 2] = [k(b"diversion", K::Diversion), k(b"supported", K::Supported)];
    static L10: [Known; 1] = [k(b"user-agent", K::UserAgent)];
    static L11: [Known; 2] = [
        k(b"referred-by", K::ReferredBy),
        k(b"x-collateid", K::XCollateId),
    ];
    static L12: [Known; 3] = [
        k(b"content-type", K::ContentType),
        k(b"max-forwards", K::MaxForwards),
        k(b"allow-events", K::AllowEvents),
    ];
    static L14: [Known; 1] = [k(b"content-length", K::ContentLength)];
    static L15: [Known; 1] = [k(b"session-expires", K::SessionExpires)];
    static L16: [Known; 1] = [k(b"content-encoding", K::ContentEncoding)];
    static L19: [Known; 1] = [k(b"p-asserted-identity", K::PAssertedIdentity)];
    match len {
        2 => &L2,
        3 => &L3,
        4 => &L4,
        5 => &L5,
        6 => &L6,
        7 => &L7,
        8 => &L8,
        9 => &L9,
        10 => &L10,
        11 => &L11,
        12 => &L12,
        14 => &L14,
        15 => &L15,
        16 => &L16,
        19 => &L19,
        _ => &[],
    }
}

/// One header line (folded continuation lines included) as borrowed slices of the message.
/// Whether the token `name` is `known` (lower case letters, digits and `-`) in any case.
/// Setting bit 5 lowers a letter and leaves `-` and digits alone; of the token characters,
/// only upper case letters become lower case letters that way, so the test is exact, and
/// branch-free where `eq_ignore_ascii_case` is not.
#[inline]
fn eq_lowercase(name: &[u8], known: &[u8]) -> bool {
    name.len() == known.len() && name.iter().zip(known).all(|(&n, &k)| n | 0x20 == k)
}

/// One header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header<'b> {
    /// The name as written (a compact form stays compact here; see `kind`).
    pub name: &'b [u8],
    /// The header, when spycraft reads it.
    pub kind: HeaderKind,
    /// The value with leading and trailing whitespace removed. Folded lines keep their CRLF and
    /// leading whitespace inside the slice; the accessors treat them as whitespace.
    pub value: &'b [u8],
}

/// An empty header array to hand to the parser; 64 covers all but hostile messages.
pub const EMPTY_HEADER: Header<'static> = Header {
    name: b"",
    kind: HeaderKind::Other,
    value: b"",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changing_any_byte_of_a_known_name_to_another_token_character_unmatches_it() {
        let known: [&[u8]; 8] = [
            b"call-id",
            b"content-length",
            b"x-collateid",
            b"cseq",
            b"p-asserted-identity",
            b"to",
            b"content-encoding",
            b"session-expires",
        ];
        for name in known {
            let kind = HeaderKind::from_name(name);
            assert_ne!(kind, HeaderKind::Other);
            for at in 0..name.len() {
                for b in (0..=255u8).filter(|&b| crate::sip::syntax::is_token(b)) {
                    let mut changed = name.to_vec();
                    changed[at] = b;
                    let same = b.to_ascii_lowercase() == name[at];
                    assert_eq!(
                        HeaderKind::from_name(&changed) == kind,
                        same,
                        "{}",
                        String::from_utf8_lossy(&changed)
                    );
                    // The word-at-a-time path decides the same, on a line long enough
                    // for it and on one too short.
                    for tail in [&b": x"[..], b": a value long enough to read a word"] {
                        let line = [&changed[..], tail].concat();
                        assert_eq!(
                            HeaderKind::from_line(&line, changed.len()),
                            HeaderKind::from_name(&changed),
                            "{}",
                            String::from_utf8_lossy(&line)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn classifies_full_and_compact_names_in_any_case() {
        let cases: &[(&[u8], HeaderKind)] = &[
            (b"Call-ID", HeaderKind::CallId),
            (b"CALL-ID", HeaderKind::CallId),
            (b"i", HeaderKind::CallId),
            (b"I", HeaderKind::CallId),
            (b"f", HeaderKind::From),
            (b"t", HeaderKind::To),
            (b"v", HeaderKind::Via),
            (b"m", HeaderKind::Contact),
            (b"l", HeaderKind::ContentLength),
            (b"c", HeaderKind::ContentType),
            (b"k", HeaderKind::Supported),
            (b"s", HeaderKind::Subject),
            (b"e", HeaderKind::ContentEncoding),
            (b"o", HeaderKind::Event),
            (b"r", HeaderKind::ReferTo),
            (b"b", HeaderKind::ReferredBy),
            (b"x", HeaderKind::SessionExpires),
            (b"u", HeaderKind::AllowEvents),
            (b"q", HeaderKind::Other),
            (b"cseq", HeaderKind::CSeq),
            (b"X-CollateID", HeaderKind::XCollateId),
            (b"P-Asserted-Identity", HeaderKind::PAssertedIdentity),
            (b"X-Unknown", HeaderKind::Other),
            (b"", HeaderKind::Other),
            (b"REPLACES", HeaderKind::Replaces),
            (b"call_id", HeaderKind::Other),
            (b"Call-Ie", HeaderKind::Other),
        ];
        for (name, kind) in cases {
            assert_eq!(
                HeaderKind::from_name(name),
                *kind,
                "{}",
                String::from_utf8_lossy(name)
            );
            let line = [name, &b": sip:someone@example.com"[..]].concat();
            assert_eq!(HeaderKind::from_line(&line, name.len()), *kind);
        }
    }
}
