// SPDX-License-Identifier: AGPL-3.0-or-later
//! The text a live leg keeps, in the leg itself.
//!
//! A sensor may hold a million open dialogs; a dozen `String`s each would cost a dozen heap
//! blocks (and their allocator overhead) per dialog. Here every field is a span of one buffer,
//! held inside the leg while it fits, as a typical call's text does: finding a leg by its
//! Call-ID then reads the leg's own memory rather than a heap block elsewhere, and setting a
//! field (a To tag, a server, a final reason) rewrites that buffer in place, allocating nothing.

use smallvec::SmallVec;

/// Text fields of a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LegField {
    CallId,
    FromTag,
    ToTag,
    /// Empty when it is the Call-ID, so the common case stores it once.
    CollationId,
    FromUri,
    ToUri,
    RequestUri,
    PAssertedIdentity,
    Diversion,
    UserAgent,
    Server,
    FinalReason,
    /// The node name of the HEP agent that delivered the INVITE.
    AgentName,
}

const FIELDS: usize = LegField::AgentName as usize + 1;

/// Bytes of text kept inside the leg: a carrier's INVITE (UUID Call-ID, E.164 URIs with
/// parameters, P-Asserted-Identity, User-Agent) fits, with room for the To tag, server and
/// reason that come later. Longer text moves to the heap, exactly sized.
const INLINE: usize = 256;

/// All text fields of a leg, each a span of `text`. Fields are cut to 512 bytes by the
/// event that supplies them, so spans fit in `u16`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LegText {
    /// UTF-8: only ever extended with whole `&str` values, and cut at span boundaries.
    text: SmallVec<[u8; INLINE]>,
    /// (start, length) of each field in `text`.
    spans: [(u16, u16); FIELDS],
}

impl LegText {
    /// Builds the text from its first values.
    pub(crate) fn new(values: &[(LegField, &str)]) -> Self {
        let len: usize = values.iter().map(|(_, v)| v.len()).sum();
        let mut text = SmallVec::new();
        text.reserve_exact(len);
        let mut spans = [(0u16, 0u16); FIELDS];
        for &(field, value) in values {
            spans[field as usize] = (span_u16(text.len()), span_u16(value.len()));
            text.extend_from_slice(value.as_bytes());
        }
        Self { text, spans }
    }

    pub(crate) fn get(&self, field: LegField) -> &str {
        let (start, len) = self.spans[field as usize];
        let start = usize::from(start);
        let bytes = &self.text[start..start + usize::from(len)];
        // SAFETY: `text` holds whole `&str` values one after another (see `new` and `set`),
        // and each span covers exactly one of them, so its bytes are valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// The field, or `None` when empty.
    pub(crate) fn non_empty(&self, field: LegField) -> Option<&str> {
        Some(self.get(field)).filter(|v| !v.is_empty())
    }

    /// Replaces a field's value: the old value's bytes are closed up, and the new value goes
    /// at the end.
    pub(crate) fn set(&mut self, field: LegField, value: &str) {
        if self.get(field) == value {
            return;
        }
        let (old_start, old_len) = self.spans[field as usize];
        let (old_start, old_len) = (usize::from(old_start), usize::from(old_len));
        // An empty field (a To tag, a server, a reason not yet seen) has nothing to close up:
        // its span may point anywhere, and moving the text after it would only copy it onto
        // itself.
        if old_len > 0 {
            self.text.copy_within(old_start + old_len.., old_start);
            self.text.truncate(self.text.len() - old_len);
            for span in &mut self.spans {
                if usize::from(span.0) > old_start {
                    span.0 -= span_u16(old_len);
                }
            }
        }
        self.spans[field as usize] = (span_u16(self.text.len()), span_u16(value.len()));
        self.text.reserve_exact(value.len());
        self.text.extend_from_slice(value.as_bytes());
        // Back inside the leg if it fits again; otherwise exactly sized on the heap.
        self.text.shrink_to_fit();
    }

    /// Heap bytes held (for the memory accounting in tests and docs).
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        if self.text.spilled() {
            self.text.capacity()
        } else {
            0
        }
    }

    /// Bytes of text held, wherever they are.
    #[cfg(test)]
    pub(crate) fn text_bytes(&self) -> usize {
        self.text.len()
    }
}

fn span_u16(n: usize) -> u16 {
    u16::try_from(n).expect("leg text fields are cut to 512 bytes each")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_field_apart_through_replacements() {
        let mut text = LegText::new(&[
            (LegField::CallId, "abc@host"),
            (LegField::FromTag, "f1"),
            (LegField::FromUri, "sip:alice@a"),
        ]);
        assert_eq!(text.get(LegField::CallId), "abc@host");
        assert_eq!(text.get(LegField::FromTag), "f1");
        assert_eq!(text.non_empty(LegField::ToTag), None);
        assert_eq!(text.text_bytes(), 8 + 2 + 11);
        assert_eq!(text.heap_bytes(), 0, "short text stays inside the leg");

        text.set(LegField::FinalReason, "Proxy Authentication Required");
        text.set(LegField::ToTag, "t9");
        text.set(LegField::FromTag, "retagged");
        text.set(LegField::FinalReason, "OK");
        assert_eq!(text.get(LegField::CallId), "abc@host");
        assert_eq!(text.get(LegField::FromTag), "retagged");
        assert_eq!(text.get(LegField::FromUri), "sip:alice@a");
        assert_eq!(text.get(LegField::ToTag), "t9");
        assert_eq!(text.get(LegField::FinalReason), "OK");
        assert_eq!(text.non_empty(LegField::Server), None);
        // Replaced values leave nothing behind.
        assert_eq!(text.text_bytes(), 8 + 8 + 11 + 2 + 2);

        text.set(LegField::ToTag, "");
        assert_eq!(text.non_empty(LegField::ToTag), None);
        assert_eq!(text.get(LegField::FinalReason), "OK");
    }

    #[test]
    fn holds_fields_at_their_longest() {
        let long = "x".repeat(512);
        let values: Vec<(LegField, &str)> = [
            LegField::CallId,
            LegField::FromTag,
            LegField::ToTag,
            LegField::CollationId,
            LegField::FromUri,
            LegField::ToUri,
            LegField::RequestUri,
            LegField::PAssertedIdentity,
            LegField::Diversion,
            LegField::UserAgent,
            LegField::Server,
            LegField::FinalReason,
            LegField::AgentName,
        ]
        .into_iter()
        .map(|f| (f, long.as_str()))
        .collect();
        let mut text = LegText::new(&values);
        assert_eq!(text.heap_bytes(), 13 * 512, "on the heap, exactly sized");
        text.set(LegField::CallId, "short");
        assert_eq!(text.get(LegField::FinalReason), long);
        assert_eq!(text.get(LegField::CallId), "short");
        assert_eq!(text.heap_bytes(), 12 * 512 + 5, "still exactly sized");

        // Cut back to a call's usual size, the text returns inside the leg.
        for &(field, _) in &values[1..] {
            text.set(field, "y");
        }
        assert_eq!(text.heap_bytes(), 0);
        assert_eq!(text.get(LegField::CallId), "short");
        assert_eq!(text.get(LegField::FinalReason), "y");
        // And grows out again from there.
        text.set(LegField::UserAgent, &long);
        assert_eq!(text.heap_bytes(), 5 + 11 + 512);
        assert_eq!(text.get(LegField::UserAgent), long);
        assert_eq!(text.get(LegField::Server), "y");
    }
}
