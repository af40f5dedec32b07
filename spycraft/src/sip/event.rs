// SPDX-License-Identifier: AGPL-3.0-or-later
//! `SipEvent`: the compact, owned summary of one SIP message that the call stage consumes.
//!
//! It is the only thing that crosses from the parse stage to the call stage, so it holds just
//! what a call record needs, with all its text in one allocation.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::LazyLock;

use super::header::HeaderKind;
use super::method::Method;
use super::name_addr::NameAddr;
use super::parser::{CSeq, Message, ParseError, StartLine};
use super::syntax::{param, parse_u32, split_values, trim};
use crate::decode::{Agent, PacketInfo, Transport};
use crate::packet::Timestamp;

/// The address of an event not yet filled in.
const UNSPECIFIED: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// Longest text kept per field; longer values are cut (at a character boundary).
const MAX_FIELD: usize = 512;

/// Request or response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipKind {
    /// A request of this method.
    Request(Method),
    /// A response with this status.
    Response(u16),
}

/// Text fields an event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Call-ID.
    CallId,
    /// The From tag.
    FromTag,
    /// The To tag.
    ToTag,
    /// The From URI.
    FromUri,
    /// The To URI.
    ToUri,
    /// The Request-URI.
    RequestUri,
    /// The first URI of P-Asserted-Identity.
    PAssertedIdentity,
    /// The first URI of Diversion.
    Diversion,
    /// User-Agent, or Server when there is no User-Agent.
    Software,
    /// Reason phrase of a response.
    ReasonPhrase,
    /// Value of the first configured collation header present.
    CollationId,
    /// REFER's target (RFC 3515), without the headers part of the URI (`?Replaces=…`).
    ReferTo,
    /// Who asked for the transfer (RFC 3892), in a REFER or the INVITE it causes.
    ReferredBy,
    /// The Call-ID of the dialog an INVITE replaces (RFC 3891: attended transfer).
    Replaces,
    /// The node name of the HEP agent that delivered the message.
    AgentName,
}

const FIELDS: usize = Field::AgentName as usize + 1;
const _: () = assert!(FIELDS * MAX_FIELD <= u16::MAX as usize, "spans fit in u16");

/// The headers whose value ties the legs of one call together (`--collate-header`), in the
/// order they are tried, each name classified once rather than for every message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollationHeaders(Vec<(HeaderKind, String)>);

impl CollationHeaders {
    /// Headers by name, in order of preference.
    pub fn new(names: &[String]) -> Self {
        Self(
            names
                .iter()
                .map(|name| (HeaderKind::from_name(name.as_bytes()), name.clone()))
                .collect(),
        )
    }
}

/// One SIP message, reduced to what call tracking needs.
#[derive(Clone, Debug, PartialEq, Eq)]
// Laid out in field order, every field at its natural alignment: a batch slot is then
// cleared for filling with aligned stores that go straight to it, where the compiler's own
// layout had it built on the stack at odd offsets and copied, the copy's wide loads each
// waiting on those stores.
#[repr(C)]
pub struct SipEvent {
    /// Where and when the message was captured.
    pub meta: PacketInfo,
    /// Request or response.
    pub kind: SipKind,
    /// Its CSeq.
    pub cseq: CSeq,
    /// Q.850 cause from a Reason header.
    pub q850_cause: Option<u16>,
    /// What an SDP body says about the media, if the message carries one.
    pub media: Media,
    /// Session-Expires, in seconds (RFC 4028).
    pub session_expires: Option<u32>,
    /// The capture agent id of the HEP agent that delivered the message.
    pub agent_id: Option<u32>,
    /// The status line of a `message/sipfrag` body (the NOTIFYs of a transfer, RFC 3515).
    pub sipfrag_status: Option<u16>,
    text: String,
    /// (start, length) of each field in `text`; at most `FIELDS * MAX_FIELD` bytes in all.
    spans: [(u16, u16); FIELDS],
}

impl SipEvent {
    /// Builds the event for a parsed message. Call-ID, CSeq and From are required; without them
    /// no dialog can be identified.
    pub fn from_message(
        meta: PacketInfo,
        msg: &Message<'_, '_>,
        collation_headers: &[String],
    ) -> Result<Self, ParseError> {
        let collation_headers = CollationHeaders::new(collation_headers);
        let mut event = Self::with_text(String::new());
        event.fill(&meta, msg, &collation_headers, Agent::NONE)?;
        Ok(event)
    }

    /// An event with nothing in it yet, holding `text` as the buffer for its text.
    pub fn with_text(text: String) -> Self {
        Self {
            meta: PacketInfo {
                time: Timestamp(0),
                src: UNSPECIFIED,
                dst: UNSPECIFIED,
                transport: Transport::Udp,
                vlan: None,
            },
            kind: SipKind::Response(0),
            cseq: CSeq {
                number: 0,
                method: Method::Other,
            },
            q850_cause: None,
            media: Media::None,
            session_expires: None,
            agent_id: None,
            sipfrag_status: None,
            text,
            spans: [(0, 0); FIELDS],
        }
    }

    /// Makes this the event for a parsed message that `agent` delivered (or
    /// [`Agent::NONE`]), in place, reusing its text buffer: built
    /// where it is to stay (in a batch), the event is never copied whole just after being
    /// written field by field, a copy whose wide loads would each wait for the small stores
    /// before them. On an error the event is left holding part of the message.
    pub fn fill(
        &mut self,
        meta: &PacketInfo,
        msg: &Message<'_, '_>,
        collation_headers: &CollationHeaders,
        agent: Agent<'_>,
    ) -> Result<(), ParseError> {
        let call_id = msg.call_id().map(trim).ok_or(ParseError::MissingHeader)?;
        let (cseq, cseq_token) = msg.cseq_as_written().ok_or(ParseError::MissingHeader)?;
        // RFC 3261 §8.1.1.5: a request's CSeq names its own method. A mismatch would make the
        // call stage mistake one transaction for another.
        if let StartLine::Request { method_token, .. } = msg.start {
            if cseq_token != method_token {
                return Err(ParseError::CSeqMismatch);
            }
        }
        let from = msg.from().ok_or(ParseError::MissingHeader)?;
        let to = msg.to();
        let (kind, request_uri, reason) = match msg.start {
            StartLine::Request { method, uri, .. } => (SipKind::Request(method), uri, &b""[..]),
            StartLine::Response { code, reason } => (SipKind::Response(code), &b""[..], reason),
        };
        let software = msg
            .header(HeaderKind::UserAgent)
            .or_else(|| msg.header(HeaderKind::Server))
            .unwrap_or(b"");
        let collation = collation_headers
            .0
            .iter()
            .find_map(|(kind, name)| {
                let value = msg.header_named_as(*kind, name.as_bytes())?;
                Some(collation_value(name.as_bytes(), value)).filter(|v| !v.is_empty())
            })
            .unwrap_or(b"");
        let first_uri = |kind| {
            msg.first_name_addr(kind)
                .map_or(&b""[..], |na: NameAddr<'_>| na.uri)
        };

        let mut values: [&[u8]; FIELDS] = [b""; FIELDS];
        values[Field::CallId as usize] = call_id;
        values[Field::FromTag as usize] = from.tag().unwrap_or(b"");
        values[Field::ToTag as usize] = to.and_then(|t| t.tag()).unwrap_or(b"");
        values[Field::FromUri as usize] = from.uri;
        values[Field::ToUri as usize] = to.map_or(&b""[..], |t| t.uri);
        values[Field::RequestUri as usize] = request_uri;
        values[Field::PAssertedIdentity as usize] = first_uri(HeaderKind::PAssertedIdentity);
        values[Field::Diversion as usize] = first_uri(HeaderKind::Diversion);
        values[Field::Software as usize] = software;
        values[Field::ReasonPhrase as usize] = reason;
        values[Field::CollationId as usize] = collation;
        let refer_to = first_uri(HeaderKind::ReferTo);
        values[Field::ReferTo as usize] = refer_to.split(|&b| b == b'?').next().unwrap_or(refer_to);
        values[Field::ReferredBy as usize] = first_uri(HeaderKind::ReferredBy);
        values[Field::Replaces as usize] = msg
            .header(HeaderKind::Replaces)
            .map(|v| trim(v.split(|&b| b == b';').next().unwrap_or(v)))
            .unwrap_or(b"");
        values[Field::AgentName as usize] = agent.name;

        join_fields(&mut self.text, &mut self.spans, &values);
        self.meta = *meta;
        self.kind = kind;
        self.cseq = cseq;
        self.q850_cause = q850_cause(msg);
        self.media = media(msg);
        self.sipfrag_status = sipfrag_status(msg);
        self.agent_id = agent.id;
        self.session_expires = msg
            .header(HeaderKind::SessionExpires)
            .and_then(|v| parse_u32(trim(v.split(|&b| b == b';').next().unwrap_or(v)), 9));
        Ok(())
    }

    /// Asks the cache for the event's text, ahead of reading it (a cache hint).
    pub fn prefetch_text(&self) {
        crate::simd::prefetch::bytes(self.text.as_ptr(), self.text.len());
    }

    /// Gives up the event's text buffer, for reuse by [`SipEvent::with_text`].
    pub fn into_text(self) -> String {
        self.text
    }

    /// Text of one field; empty when the message did not carry it.
    pub fn field(&self, field: Field) -> &str {
        let (start, len) = self.spans[field as usize];
        &self.text[start as usize..(start + len) as usize]
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        self.field(Field::CallId)
    }

    /// The From tag.
    #[allow(clippy::wrong_self_convention)] // SIP's From tag, not a conversion
    pub fn from_tag(&self) -> &str {
        self.field(Field::FromTag)
    }

    /// The To tag (empty when none).
    pub fn to_tag(&self) -> &str {
        self.field(Field::ToTag)
    }

    /// The method of a request.
    pub fn method(&self) -> Option<Method> {
        match self.kind {
            SipKind::Request(m) => Some(m),
            SipKind::Response(_) => None,
        }
    }

    /// The status of a response.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            SipKind::Response(code) => Some(code),
            SipKind::Request(_) => None,
        }
    }
}

/// The fields, each cut to `MAX_FIELD` bytes, joined into `text` (its buffer reused), their
/// spans into `spans`. The joined bytes are checked as UTF-8 once, not field by field: SIP
/// text is nearly always valid. Otherwise each field is converted on its own, invalid bytes
/// replaced.
fn join_fields(text: &mut String, spans: &mut [(u16, u16); FIELDS], values: &[&[u8]; FIELDS]) {
    let mut bytes = std::mem::take(text).into_bytes();
    bytes.clear();
    bytes.reserve(values.iter().map(|v| v.len().min(MAX_FIELD)).sum());
    let mut ascii = true;
    for (span, value) in spans.iter_mut().zip(values) {
        // Most fields are absent: an empty span at 0 needs no copy.
        if value.is_empty() {
            *span = (0, 0);
            continue;
        }
        let value = &value[..value.len().min(MAX_FIELD)];
        // Checked where it lies in the message, not in the copy: reading bytes just
        // written in small pieces stalls on every wide load.
        ascii &= value.is_ascii();
        *span = (bytes.len() as u16, value.len() as u16);
        bytes.extend_from_slice(value);
    }
    // ASCII, the norm, is valid UTF-8 cut anywhere.
    if ascii {
        // SAFETY: ASCII bytes are valid UTF-8.
        *text = unsafe { String::from_utf8_unchecked(bytes) };
        return;
    }
    let bytes = match String::from_utf8(bytes) {
        Ok(joined)
            if spans.iter().all(|&(start, len)| {
                joined.is_char_boundary(start as usize)
                    && joined.is_char_boundary((start + len) as usize)
            }) =>
        {
            *text = joined;
            return;
        }
        Ok(joined) => joined.into_bytes(),
        Err(e) => e.into_bytes(),
    };
    // Rare: rebuild field by field from the joined copy.
    text.reserve(bytes.len());
    for span in spans.iter_mut() {
        let (start, len) = (span.0 as usize, span.1 as usize);
        let from = text.len();
        push_field(text, &bytes[start..start + len]);
        *span = (from as u16, (text.len() - from) as u16);
    }
}

/// Appends `value` as UTF-8 (invalid bytes replaced), cut to `MAX_FIELD` bytes.
fn push_field(text: &mut String, value: &[u8]) {
    let value = &value[..value.len().min(MAX_FIELD)];
    // The strict check is much faster than the lossy one on the valid text that is the norm.
    if let Ok(text_value) = std::str::from_utf8(value) {
        text.push_str(text_value);
        return;
    }
    let lossy = String::from_utf8_lossy(value);
    let mut end = lossy.len().min(MAX_FIELD);
    while !lossy.is_char_boundary(end) {
        end -= 1;
    }
    text.push_str(&lossy[..end]);
}

/// The media an SDP body offers or answers: held when a stream is `sendonly` or `inactive`,
/// or the connection address is 0.0.0.0 (RFC 3264 §8.4 and the older RFC 2543 way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Media {
    /// No SDP body.
    #[default]
    None,
    /// Media flows.
    Active,
    /// On hold: sendonly, inactive or c=0.0.0.0.
    Held,
}

/// The part of a collation header that names the call: for Session-ID (RFC 7989) the sender's
/// UUID, which a B2BUA passes on unchanged; for P-Charging-Vector (RFC 7315) the icid-value;
/// for any other header its whole value.
fn collation_value<'b>(name: &[u8], value: &'b [u8]) -> &'b [u8] {
    let value = trim(value);
    let mut items = value.split(|&b| b == b';').map(trim);
    if name.eq_ignore_ascii_case(b"session-id") {
        return items.next().unwrap_or(b"");
    }
    if name.eq_ignore_ascii_case(b"p-charging-vector") {
        return items
            .find_map(|item| {
                let (key, v) = item.split_at(item.iter().position(|&b| b == b'=')?);
                key.eq_ignore_ascii_case(b"icid-value")
                    .then(|| trim(&v[1..]))
            })
            .map(|v| {
                v.strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(v)
            })
            .unwrap_or(b"");
    }
    value
}

/// `SIP/2.0 200 OK` at the start of a `message/sipfrag` body → 200.
fn sipfrag_status(msg: &Message<'_, '_>) -> Option<u16> {
    let content_type = trim(msg.header(HeaderKind::ContentType)?);
    if content_type.len() < 15 || !content_type[..15].eq_ignore_ascii_case(b"message/sipfrag") {
        return None;
    }
    let body = trim(msg.body);
    let rest = body.strip_prefix(b"SIP/2.0 ")?;
    let code = parse_u32(rest.get(..3)?, 3)?;
    u16::try_from(code).ok().filter(|c| (100..700).contains(c))
}

/// Text that some line of a held stream's SDP contains (see [`media`]).
static HOLD_MARKS: LazyLock<[memchr::memmem::Finder<'static>; 3]> = LazyLock::new(|| {
    [b"a=sendonly", b"a=inactive", &b"0.0.0.0"[..]].map(memchr::memmem::Finder::new)
});

fn media(msg: &Message<'_, '_>) -> Media {
    let is_sdp = msg.header(HeaderKind::ContentType).is_some_and(|v| {
        let v = trim(v);
        v.len() >= 15 && v[..15].eq_ignore_ascii_case(b"application/sdp")
    });
    if !is_sdp || msg.body.is_empty() {
        return Media::None;
    }
    let body = msg.body;
    // Most bodies hold none of the text a held stream needs: no line-by-line reading then.
    if !HOLD_MARKS.iter().any(|mark| mark.find(body).is_some()) {
        return Media::Active;
    }
    let mut start = 0;
    let held = memchr::memchr_iter(b'\n', body)
        .chain([body.len()])
        .any(|end| {
            let line = trim(&body[start.min(end)..end]);
            start = end + 1;
            match line.first() {
                Some(b'a') => line == b"a=sendonly" || line == b"a=inactive",
                Some(b'c') => {
                    line.starts_with(b"c=IN IP4 ") && trim(&line[9..]).starts_with(b"0.0.0.0")
                }
                _ => false,
            }
        });
    if held {
        Media::Held
    } else {
        Media::Active
    }
}

/// `Reason: Q.850;cause=16;text="Normal call clearing"` → 16 (RFC 3326).
fn q850_cause(msg: &Message<'_, '_>) -> Option<u16> {
    msg.headers_of(HeaderKind::Reason)
        .flat_map(split_values)
        .find_map(|value| {
            let proto_end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
            if !trim(&value[..proto_end]).eq_ignore_ascii_case(b"Q.850") {
                return None;
            }
            let cause = parse_u32(param(&value[proto_end..], b"cause")?, 3)?;
            u16::try_from(cause).ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::header::EMPTY_HEADER;
    use crate::sip::parser::parse_datagram;

    fn meta() -> PacketInfo {
        PacketInfo {
            time: Timestamp(1_000_000),
            src: "192.0.2.1:5060".parse().expect("addr"),
            dst: "192.0.2.2:5060".parse().expect("addr"),
            transport: Transport::Udp,
            vlan: None,
        }
    }

    #[test]
    fn extracts_the_fields_a_record_needs() {
        let raw = b"BYE sip:bob@192.0.2.2 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: <sip:alice@a.example>;tag=aaa\r\n\
To: \"Bob\" <sip:bob@b.example>;tag=bbb\r\n\
Call-ID: cid-1\r\n\
CSeq: 2 BYE\r\n\
User-Agent: phone/1.0\r\n\
X-CID: leg-7\r\n\
P-Asserted-Identity: \"Alice\" <sip:+15550100@a.example>, <tel:+15550100>\r\n\
Reason: SIP;cause=200;text=\"x\", Q.850 ;cause=16;text=\"Normal call clearing\"\r\n\
Content-Length: 0\r\n\r\n";
        let mut h = [EMPTY_HEADER; 32];
        let msg = parse_datagram(raw, &mut h).expect("valid");
        let ev = SipEvent::from_message(meta(), &msg, &["X-CollateID".into(), "x-cid".into()])
            .expect("event");
        assert_eq!(ev.kind, SipKind::Request(Method::Bye));
        assert_eq!(ev.call_id(), "cid-1");
        assert_eq!(ev.from_tag(), "aaa");
        assert_eq!(ev.to_tag(), "bbb");
        assert_eq!(ev.field(Field::ToUri), "sip:bob@b.example");
        assert_eq!(ev.field(Field::RequestUri), "sip:bob@192.0.2.2");
        assert_eq!(ev.field(Field::Software), "phone/1.0");
        assert_eq!(ev.field(Field::CollationId), "leg-7");
        assert_eq!(
            ev.field(Field::PAssertedIdentity),
            "sip:+15550100@a.example"
        );
        assert_eq!(ev.q850_cause, Some(16));
        assert_eq!(
            ev.cseq,
            CSeq {
                number: 2,
                method: Method::Bye
            }
        );
    }

    /// A re-INVITE with `sdp` as its body.
    fn reinvite(sdp: &str, extra: &str) -> SipEvent {
        let raw = format!(
            "INVITE sip:bob@192.0.2.2 SIP/2.0\r\nFrom: <sip:a@x>;tag=a\r\nTo: <sip:b@y>;tag=b\r\n\
             Call-ID: c\r\nCSeq: 2 INVITE\r\n{extra}Content-Type: Application/SDP\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        let mut h = [EMPTY_HEADER; 32];
        let msg = parse_datagram(raw.as_bytes(), &mut h).expect("valid");
        SipEvent::from_message(meta(), &msg, &[]).expect("event")
    }

    #[test]
    fn reads_holds_from_sdp_and_the_session_interval() {
        let sdp = |c: &str, a: &str| {
            format!("v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 {c}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n{a}")
        };
        let cases = [
            (sdp("192.0.2.1", "a=sendrecv\r\n"), Media::Active),
            (sdp("192.0.2.1", ""), Media::Active),
            (sdp("192.0.2.1", "a=sendonly\r\n"), Media::Held),
            (sdp("192.0.2.1", "a=inactive\r\n"), Media::Held),
            (sdp("0.0.0.0", ""), Media::Held),
            (sdp(" 0.0.0.0", ""), Media::Held),
            // The marks of a hold, but not as a hold's lines.
            (
                sdp("192.0.2.1", "a=x-note:0.0.0.0 a=sendonly\r\n"),
                Media::Active,
            ),
            (sdp("10.0.0.0", "a=inactivex\r\n"), Media::Active),
            (String::new(), Media::None),
        ];
        for (body, media) in cases {
            assert_eq!(reinvite(&body, "").media, media, "{body}");
        }
        let ev = reinvite("", "Session-Expires: 1800;refresher=uac\r\n");
        assert_eq!(ev.session_expires, Some(1800));
        assert_eq!(reinvite("", "x: 90\r\n").session_expires, Some(90));
        assert_eq!(reinvite("", "").session_expires, None);
    }

    #[test]
    fn collation_takes_the_session_id_uuid_and_the_icid_value() {
        let event = |extra: &str, headers: &[&str]| {
            let raw = format!(
                "INVITE sip:b@y SIP/2.0\r\nFrom: <sip:a@x>;tag=a\r\nTo: <sip:b@y>\r\n\
                 Call-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
            );
            let mut h = [EMPTY_HEADER; 32];
            let msg = parse_datagram(raw.as_bytes(), &mut h).expect("valid");
            let names: Vec<String> = headers.iter().map(|s| (*s).to_owned()).collect();
            SipEvent::from_message(meta(), &msg, &names).expect("event")
        };
        let configured = ["X-CollateID", "Session-ID", "P-Charging-Vector"];
        let session = "Session-ID: ab30317f1a784dc48ff824d0d3715d86;remote=00000000000000000000000000000000\r\n";
        let pcv = "P-Charging-Vector: icid-value=\"1234bc9876e\";icid-generated-at=192.0.6.8\r\n";
        let cases = [
            (session, "ab30317f1a784dc48ff824d0d3715d86"),
            (pcv, "1234bc9876e"),
            (
                "P-Charging-Vector: orig-ioi=home1.net;icid-value=77\r\n",
                "77",
            ),
            (
                "X-CollateID: leg-7\r\nSession-ID: ab30317f1a784dc48ff824d0d3715d86\r\n",
                "leg-7",
            ),
            // A header without the part that names the call does not count.
            ("P-Charging-Vector: orig-ioi=home1.net\r\n", ""),
        ];
        for (extra, want) in cases {
            assert_eq!(
                event(extra, &configured).field(Field::CollationId),
                want,
                "{extra}"
            );
        }
    }

    #[test]
    fn requires_call_id_cseq_and_from() {
        for raw in [
            &b"OPTIONS sip:x@y SIP/2.0\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a@b>\r\n\r\n"[..],
            b"OPTIONS sip:x@y SIP/2.0\r\nCall-ID: c\r\nFrom: <sip:a@b>\r\n\r\n",
            b"OPTIONS sip:x@y SIP/2.0\r\nCall-ID: c\r\nCSeq: x OPTIONS\r\nFrom: <sip:a@b>\r\n\r\n",
            b"OPTIONS sip:x@y SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        ] {
            let mut h = [EMPTY_HEADER; 32];
            let msg = parse_datagram(raw, &mut h).expect("syntactically valid");
            assert_eq!(
                SipEvent::from_message(meta(), &msg, &[]).map(|_| ()),
                Err(ParseError::MissingHeader),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn cuts_long_fields_at_a_character_boundary() {
        let mut text = String::new();
        let long = "é".repeat(400);
        push_field(&mut text, long.as_bytes());
        assert!(text.len() <= MAX_FIELD && text.chars().all(|c| c == 'é'));
        let mut text = String::new();
        push_field(&mut text, b"ok\xffbad");
        assert_eq!(text, "ok\u{fffd}bad");
    }

    /// `join_fields` into a fresh buffer and spans.
    fn joined(buffer: String, values: &[&[u8]; FIELDS]) -> (String, [(u16, u16); FIELDS]) {
        let (mut text, mut spans) = (buffer, [(9, 9); FIELDS]);
        join_fields(&mut text, &mut spans, values);
        (text, spans)
    }

    #[test]
    fn an_event_filled_again_is_the_event_made_afresh() {
        let invite = b"INVITE sip:+4930123@192.0.2.2;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: \"Alice\" <sip:alice@a.example>;tag=aaa\r\n\
To: <sip:+4930123@b.example>\r\n\
Call-ID: cid-1@a.example\r\n\
CSeq: 1 INVITE\r\n\
User-Agent: phone/1.0\r\n\
P-Asserted-Identity: <sip:+15550100@a.example>\r\n\
Diversion: <sip:+4930999@b.example>;reason=unconditional\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 43\r\n\r\n\
v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let ok = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: <sip:alice@a.example>;tag=aaa\r\n\
To: <sip:bob@b.example>;tag=bbb\r\n\
Call-ID: cid-2\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";
        let collation = CollationHeaders::new(&[]);
        let (mut h1, mut h2) = ([EMPTY_HEADER; 32], [EMPTY_HEADER; 32]);
        let first = parse_datagram(invite, &mut h1).expect("valid");
        let second = parse_datagram(ok, &mut h2).expect("valid");
        let mut later = meta();
        later.time = later.time.plus_micros(1);
        later.vlan = Some(7);

        let mut reused = SipEvent::with_text(String::new());
        reused
            .fill(&meta(), &first, &collation, Agent::NONE)
            .expect("event");
        assert_eq!(reused.media, Media::Held);
        assert_eq!(reused.session_expires, Some(1800));
        reused
            .fill(&later, &second, &collation, Agent::NONE)
            .expect("event");
        let fresh = SipEvent::from_message(later, &second, &[]).expect("event");
        assert_eq!(reused, fresh);
        assert_eq!(reused.field(Field::Diversion), "");
        assert_eq!(reused.to_tag(), "bbb");
    }

    #[test]
    fn joins_fields_checked_once_and_repairs_the_rare_bad_one() {
        let mut values: [&[u8]; FIELDS] = [b""; FIELDS];
        values[Field::CallId as usize] = b"abc@h";
        values[Field::FromTag as usize] = "tag-\u{e9}".as_bytes();
        let (text, spans) = joined(String::from("old contents"), &values);
        assert_eq!(text, "abc@htag-\u{e9}");
        assert_eq!(spans[Field::FromTag as usize], (5, 6));

        // An invalid byte is replaced in its own field only.
        values[Field::Software as usize] = b"ua\xff";
        let (text, spans) = joined(String::new(), &values);
        let (start, len) = spans[Field::Software as usize];
        assert_eq!(&text[start as usize..(start + len) as usize], "ua\u{fffd}");
        assert!(text.starts_with("abc@htag-\u{e9}"));

        // Two fields that are each broken but whole together (a character split between
        // them by the length cut) are repaired, never sliced mid-character.
        let long = format!("{}\u{e9}", "x".repeat(MAX_FIELD - 1));
        let mut values: [&[u8]; FIELDS] = [b""; FIELDS];
        values[Field::CallId as usize] = long.as_bytes();
        values[Field::FromTag as usize] = &[0xa9, b't'];
        let (text, spans) = joined(String::new(), &values);
        let (start, len) = spans[Field::CallId as usize];
        assert_eq!(
            &text[start as usize..(start + len) as usize],
            "x".repeat(MAX_FIELD - 1)
        );
        let (start, len) = spans[Field::FromTag as usize];
        assert_eq!(&text[start as usize..(start + len) as usize], "\u{fffd}t");
    }
}
