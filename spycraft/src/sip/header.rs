// SPDX-License-Identifier: AGPL-3.0-or-later
//! Header names: the ones spycraft reads, recognised once per header in any case or compact form.

/// The headers spycraft looks at, plus `Other` for everything else.
///
/// Classifying each header once while parsing lets accessors find a header by comparing a
/// byte-sized tag instead of case-folding names again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HeaderKind {
    CallId,
    From,
    To,
    Via,
    CSeq,
    Contact,
    ContentLength,
    ContentType,
    ContentEncoding,
    UserAgent,
    Server,
    Reason,
    PAssertedIdentity,
    Diversion,
    Supported,
    Subject,
    Event,
    ReferTo,
    ReferredBy,
    SessionExpires,
    AllowEvents,
    MaxForwards,
    XCollateId,
    /// RFC 3891: the dialog an INVITE replaces (attended transfer).
    Replaces,
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
        // Dispatch on the length first: it leaves one to three candidates to compare.
        let candidates: &[(&[u8], HeaderKind)] = match name.len() {
            2 => &[(b"to", Self::To)],
            3 => &[(b"via", Self::Via)],
            4 => &[(b"from", Self::From), (b"cseq", Self::CSeq)],
            5 => &[(b"event", Self::Event)],
            6 => &[(b"server", Self::Server), (b"reason", Self::Reason)],
            7 => &[
                (b"call-id", Self::CallId),
                (b"contact", Self::Contact),
                (b"subject", Self::Subject),
            ],
            8 => &[(b"refer-to", Self::ReferTo), (b"replaces", Self::Replaces)],
            9 => &[
                (b"diversion", Self::Diversion),
                (b"supported", Self::Supported),
            ],
            10 => &[(b"user-agent", Self::UserAgent)],
            11 => &[
                (b"referred-by", Self::ReferredBy),
                (b"x-collateid", Self::XCollateId),
            ],
            12 => &[
                (b"content-type", Self::ContentType),
                (b"max-forwards", Self::MaxForwards),
                (b"allow-events", Self::AllowEvents),
            ],
            14 => &[(b"content-length", Self::ContentLength)],
            15 => &[(b"session-expires", Self::SessionExpires)],
            16 => &[(b"content-encoding", Self::ContentEncoding)],
            19 => &[(b"p-asserted-identity", Self::PAssertedIdentity)],
            _ => &[],
        };
        candidates
            .iter()
            .find(|(known, _)| eq_lowercase(name, known))
            .map_or(Self::Other, |&(_, kind)| kind)
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

/// One header line (folded continuation lines included) as borrowed slices of the message.
/// Whether the token `name` is `known` (lower case letters, digits and `-`) in any case.
/// Setting bit 5 lowers a letter and leaves `-` and digits alone; of the token characters,
/// only upper case letters become lower case letters that way, so the test is exact, and
/// branch-free where `eq_ignore_ascii_case` is not.
#[inline]
fn eq_lowercase(name: &[u8], known: &[u8]) -> bool {
    name.len() == known.len() && name.iter().zip(known).all(|(&n, &k)| n | 0x20 == k)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header<'b> {
    /// The name as written (a compact form stays compact here; see `kind`).
    pub name: &'b [u8],
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
        let known: [&[u8]; 5] = [
            b"call-id",
            b"content-length",
            b"x-collateid",
            b"cseq",
            b"p-asserted-identity",
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
        }
    }
}
