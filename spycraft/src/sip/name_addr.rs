// SPDX-License-Identifier: AGPL-3.0-or-later
//! `name-addr` / `addr-spec` values of From, To, Contact, P-Asserted-Identity and Diversion.

use super::syntax::{find_unquoted, is_lws, param, quoted_end, trim, unquote};

/// A parsed `[display-name] <uri> *(;param)` or `uri *(;param)`, borrowing from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'b> {
    /// Display name without surrounding quotes (escapes left as written); may be empty.
    pub display: &'b [u8],
    /// The URI, without angle brackets.
    pub uri: &'b [u8],
    /// Header parameters, starting at the first `;` (e.g. `;tag=abc`), or empty.
    pub params: &'b [u8],
}

impl<'b> NameAddr<'b> {
    /// Parses one value. Without angle brackets, everything after the first `;` is a header
    /// parameter (RFC 3261 §20.10), so `sip:a@b;tag=1` has the tag as a header parameter.
    pub fn parse(value: &'b [u8]) -> Option<Self> {
        let value = trim(value);
        if value.is_empty() {
            return None;
        }
        let mut display_end = 0;
        if value[0] == b'"' {
            display_end = quoted_end(value);
        }
        // `<uri>` right at the start, or right after a quoted display name, is the common
        // case: no search needed.
        let after_display = display_end
            + value[display_end..]
                .iter()
                .take_while(|&&b| is_lws(b))
                .count();
        let open = if value.get(after_display) == Some(&b'<') {
            Some(after_display)
        } else {
            find_unquoted(&value[display_end..], b'<').map(|i| i + display_end)
        };
        match open {
            Some(open) => {
                let close = memchr::memchr(b'>', &value[open..])? + open;
                Some(Self {
                    display: unquote(trim(&value[..open])),
                    uri: trim(&value[open + 1..close]),
                    params: trim(&value[close + 1..]),
                })
            }
            None => {
                let semi = find_unquoted(value, b';').unwrap_or(value.len());
                let uri = trim(&value[..semi]);
                if uri.is_empty() {
                    return None;
                }
                Some(Self {
                    display: b"",
                    uri,
                    params: &value[semi..],
                })
            }
        }
    }

    /// The `tag` parameter, if present and non-empty.
    pub fn tag(&self) -> Option<&'b [u8]> {
        param(self.params, b"tag").filter(|t| !t.is_empty())
    }
}

/// The user part of a SIP/SIPS URI (`sip:alice:pw@host` → `alice`) or the number of a `tel:`
/// URI (`tel:+1-555;ext=1` → `+1-555`). `None` for URIs without a user.
pub fn uri_user(uri: &[u8]) -> Option<&[u8]> {
    let colon = uri.iter().position(|&b| b == b':')?;
    let scheme = &uri[..colon];
    let rest = &uri[colon + 1..];
    if scheme.eq_ignore_ascii_case(b"tel") {
        let end = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
        return Some(&rest[..end]).filter(|u| !u.is_empty());
    }
    let at = rest.iter().position(|&b| b == b'@')?;
    let userinfo = &rest[..at];
    let end = userinfo
        .iter()
        .position(|&b| b == b':' || b == b';')
        .unwrap_or(userinfo.len());
    Some(&userinfo[..end]).filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_addr_forms() {
        // (value, display name, URI, tag)
        type Case = (
            &'static [u8],
            &'static [u8],
            &'static [u8],
            Option<&'static [u8]>,
        );
        let cases: &[Case] = &[
            (
                br#""Alice, A." <sip:alice@example.com;transport=udp>;tag=1928"#,
                b"Alice, A.",
                b"sip:alice@example.com;transport=udp",
                Some(b"1928"),
            ),
            (
                b"Bob <sip:bob@b.example>",
                b"Bob",
                b"sip:bob@b.example",
                None,
            ),
            (b"<sip:c@d>;TAG=xyz", b"", b"sip:c@d", Some(b"xyz")),
            (b"sip:e@f;tag=77", b"", b"sip:e@f", Some(b"77")),
            (b"  tel:+15551234 ;tag=9", b"", b"tel:+15551234", Some(b"9")),
            (
                br#""<not a uri>" <sip:g@h>"#,
                b"<not a uri>",
                b"sip:g@h",
                None,
            ),
            (b"sip:x@y;tag=", b"", b"sip:x@y", None),
            // `<` straight after the display name, with or without blanks between.
            (br#""A"<sip:a@b>;tag=1"#, b"A", b"sip:a@b", Some(b"1")),
            (b"\"A\" \t <sip:a@b>", b"A", b"sip:a@b", None),
            // After the quotes something else comes first: the search finds the `<`.
            (br#""A" x <sip:a@b>"#, b"\"A\" x", b"sip:a@b", None),
        ];
        for (input, display, uri, tag) in cases {
            let na = NameAddr::parse(input).expect("parses");
            assert_eq!(na.display, *display, "{}", String::from_utf8_lossy(input));
            assert_eq!(na.uri, *uri, "{}", String::from_utf8_lossy(input));
            assert_eq!(na.tag(), *tag, "{}", String::from_utf8_lossy(input));
        }
        assert!(NameAddr::parse(b"  ").is_none());
        assert!(NameAddr::parse(b"<sip:unclosed").is_none());
    }

    #[test]
    fn extracts_uri_users() {
        assert_eq!(uri_user(b"sip:alice@example.com"), Some(&b"alice"[..]));
        assert_eq!(
            uri_user(b"sips:alice:secret@example.com"),
            Some(&b"alice"[..])
        );
        assert_eq!(
            uri_user(b"sip:+4930123;user=phone@gw"),
            Some(&b"+4930123"[..])
        );
        assert_eq!(
            uri_user(b"tel:+1-555-0100;ext=12"),
            Some(&b"+1-555-0100"[..])
        );
        assert_eq!(uri_user(b"sip:example.com"), None);
        assert_eq!(uri_user(b"garbage"), None);
    }
}
