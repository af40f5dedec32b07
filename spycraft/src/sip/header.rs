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
    #[default]
    Other,
}

impl HeaderKind {
    /// Classifies a header name, case-insensitively, including RFC 3261 §7.3.3 compact forms
    /// and the compact forms registered later (o, r, b, x, u).
    pub fn from_name(name: &[u8]) -> Self {
        if let [c] = name {
            return Self::from_compact(c.to_ascii_lowercase());
        }
        const NAMES: &[(&[u8], HeaderKind)] = &[
            (b"call-id", HeaderKind::CallId),
            (b"from", HeaderKind::From),
            (b"to", HeaderKind::To),
            (b"via", HeaderKind::Via),
            (b"cseq", HeaderKind::CSeq),
            (b"contact", HeaderKind::Contact),
            (b"content-length", HeaderKind::ContentLength),
            (b"content-type", HeaderKind::ContentType),
            (b"content-encoding", HeaderKind::ContentEncoding),
            (b"user-agent", HeaderKind::UserAgent),
            (b"server", HeaderKind::Server),
            (b"reason", HeaderKind::Reason),
            (b"p-asserted-identity", HeaderKind::PAssertedIdentity),
            (b"diversion", HeaderKind::Diversion),
            (b"supported", HeaderKind::Supported),
            (b"subject", HeaderKind::Subject),
            (b"event", HeaderKind::Event),
            (b"refer-to", HeaderKind::ReferTo),
            (b"referred-by", HeaderKind::ReferredBy),
            (b"session-expires", HeaderKind::SessionExpires),
            (b"allow-events", HeaderKind::AllowEvents),
            (b"max-forwards", HeaderKind::MaxForwards),
            (b"x-collateid", HeaderKind::XCollateId),
        ];
        NAMES
            .iter()
            .find(|(known, _)| known.len() == name.len() && known.eq_ignore_ascii_case(name))
            .map_or(HeaderKind::Other, |&(_, kind)| kind)
    }

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
