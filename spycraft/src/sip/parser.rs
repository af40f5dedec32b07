// SPDX-License-Identifier: AGPL-3.0-or-later
//! Zero-copy SIP message parser in the manner of httparse: bytes in, borrowed views out, headers
//! written into a caller-provided array, `Partial` for incomplete input, a small `Copy` error.

use std::mem::MaybeUninit;

use memchr::memchr;

use super::header::{Header, HeaderKind};
use super::lines::Lines;
use super::method::Method;
use super::name_addr::NameAddr;
use super::syntax::{is_token_word, parse_u32, split_values, token_len, trim};

/// Result of parsing input that may not hold a whole message yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status<T> {
    /// The whole message, and what it holds.
    Complete(T),
    /// More bytes are needed; not an error.
    Partial,
}

/// Why a message was rejected. Each kind has its own counter in the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ParseError {
    /// The start line is neither a request nor a status line.
    #[error("malformed start line")]
    StartLine,
    /// The method is not a token.
    #[error("invalid method token")]
    Method,
    /// The Request-URI is missing or malformed.
    #[error("invalid Request-URI")]
    RequestUri,
    /// The version is not SIP/2.0.
    #[error("unsupported SIP version")]
    Version,
    /// The status code is not three digits.
    #[error("invalid status code")]
    StatusCode,
    /// More headers than the parser makes room for.
    #[error("more headers than the parser has room for")]
    TooManyHeaders,
    /// Content-Length is missing on a stream, or not a number.
    #[error("invalid or conflicting Content-Length")]
    ContentLength,
    /// The message ends before its headers or body do.
    #[error("message ends inside its headers")]
    Truncated,
    /// Call-ID, From, To or CSeq is missing.
    #[error("Call-ID, CSeq or From missing or malformed")]
    MissingHeader,
    /// The CSeq method is not the request's.
    #[error("CSeq method differs from the request method")]
    CSeqMismatch,
}

impl ParseError {
    /// Every kind, in counter order.
    pub const ALL: [ParseError; 10] = [
        Self::StartLine,
        Self::Method,
        Self::RequestUri,
        Self::Version,
        Self::StatusCode,
        Self::TooManyHeaders,
        Self::ContentLength,
        Self::Truncated,
        Self::MissingHeader,
        Self::CSeqMismatch,
    ];

    /// Position in [`ParseError::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Short snake_case name for counters and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Self::StartLine => "start_line",
            Self::Method => "method",
            Self::RequestUri => "request_uri",
            Self::Version => "version",
            Self::StatusCode => "status_code",
            Self::TooManyHeaders => "too_many_headers",
            Self::ContentLength => "content_length",
            Self::Truncated => "truncated",
            Self::MissingHeader => "missing_header",
            Self::CSeqMismatch => "cseq_mismatch",
        }
    }
}

/// The first line of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'b> {
    /// A request.
    Request {
        /// Its method.
        method: Method,
        /// The method token as written (extension methods keep their name here).
        method_token: &'b [u8],
        /// Its Request-URI.
        uri: &'b [u8],
    },
    /// A response.
    Response {
        /// Its status code.
        code: u16,
        /// Its reason phrase.
        reason: &'b [u8],
    },
}

/// CSeq header: sequence number and method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number.
    pub number: u32,
    /// The method.
    pub method: Method,
}

/// A parsed message. `headers` is the filled prefix of the caller's array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'h, 'b> {
    /// The start line.
    pub start: StartLine<'b>,
    /// The headers, in order.
    pub headers: &'h [Header<'b>],
    /// The body.
    pub body: &'b [u8],
    /// Bytes of input the message occupies (head plus body).
    pub len: usize,
    /// Set when a datagram's body did not match its Content-Length; the message is still
    /// usable, since its signalling headers are intact.
    pub body_issue: Option<BodyIssue>,
    /// Header lines skipped because they were not `name: value`.
    pub malformed_lines: u16,
    first: FirstOfKind,
}

/// Where the first header of each kind is (its index plus one; 0 when absent), so that a
/// lookup by kind costs one array read instead of a walk over every header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FirstOfKind([u8; HeaderKind::COUNT]);

impl FirstOfKind {
    fn note(&mut self, kind: HeaderKind, index: usize) {
        let slot = &mut self.0[kind as usize];
        if *slot == 0 {
            *slot = u8::try_from(index + 1).unwrap_or(0);
        }
    }

    fn get(&self, kind: HeaderKind) -> Option<usize> {
        usize::from(self.0[kind as usize]).checked_sub(1)
    }
}

/// What was wrong with the body of a message that was kept anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyIssue {
    /// Content-Length promised more than the datagram carried.
    Short,
    /// Content-Length was not a number, or two of them disagreed; the body is the rest of the
    /// datagram.
    BadLength,
    /// The datagram ended inside the headers (cut by the snap length, or damaged); the headers
    /// it held are kept and the body is empty.
    Unterminated,
}

/// Content-Length as found in the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContentLength {
    Absent,
    Bytes(usize),
    Invalid,
}

struct Head<'b> {
    start: StartLine<'b>,
    header_count: usize,
    len: usize,
    content_length: ContentLength,
    malformed_lines: u16,
    unterminated: bool,
    first: FirstOfKind,
}

/// Parses a whole message from a stream-like buffer (TCP): `Partial` until the head and the
/// `Content-Length` bytes of body are all there. A missing Content-Length means no body.
pub fn parse<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
) -> Result<Status<Message<'h, 'b>>, ParseError> {
    parse_uninit(buf, as_uninit(headers))
}

/// As [`parse`], into headers that need no initialising first (saves clearing the array on
/// every message).
pub fn parse_uninit<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<Header<'b>>],
) -> Result<Status<Message<'h, 'b>>, ParseError> {
    let head = match parse_head(buf, headers, false)? {
        Status::Complete(head) => head,
        Status::Partial => return Ok(Status::Partial),
    };
    let body_len = match head.content_length {
        ContentLength::Absent => 0,
        ContentLength::Bytes(n) => n,
        ContentLength::Invalid => return Err(ParseError::ContentLength),
    };
    let Some(end) = head
        .len
        .checked_add(body_len)
        .filter(|&end| end <= buf.len())
    else {
        return Ok(Status::Partial);
    };
    Ok(Status::Complete(Message {
        start: head.start,
        headers: init_prefix(headers, head.header_count),
        body: &buf[head.len..end],
        len: end,
        body_issue: None,
        malformed_lines: head.malformed_lines,
        first: head.first,
    }))
}

/// Parses a message carried whole in one datagram (UDP, SCTP chunk). Without Content-Length
/// the body is the rest of the datagram (RFC 3261 §18.3); with one, the body is cut to it. A
/// body shorter than promised, or an unreadable Content-Length, is kept and flagged rather
/// than dropped, since the datagram bounds the message anyway and its headers are intact.
pub fn parse_datagram<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
) -> Result<Message<'h, 'b>, ParseError> {
    parse_datagram_uninit(buf, as_uninit(headers))
}

/// As [`parse_datagram`], into headers that need no initialising first.
pub fn parse_datagram_uninit<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<Header<'b>>],
) -> Result<Message<'h, 'b>, ParseError> {
    let head = match parse_head(buf, headers, true)? {
        Status::Complete(head) => head,
        Status::Partial => return Err(ParseError::Truncated),
    };
    let available = buf.len() - head.len;
    let (body_len, body_issue) = match head.content_length {
        ContentLength::Bytes(n) if n > available => (available, Some(BodyIssue::Short)),
        ContentLength::Bytes(n) => (n, None),
        ContentLength::Absent => (available, None),
        ContentLength::Invalid => (available, Some(BodyIssue::BadLength)),
    };
    let body_issue = if head.unterminated {
        Some(BodyIssue::Unterminated)
    } else {
        body_issue
    };
    Ok(Message {
        start: head.start,
        headers: init_prefix(headers, head.header_count),
        body: &buf[head.len..head.len + body_len],
        len: head.len + body_len,
        body_issue,
        malformed_lines: head.malformed_lines,
        first: head.first,
    })
}

/// True when `buf` holds only CR/LF (the RFC 5626 §3.5.1 keep-alive), or the spaces and NULs
/// that some phones send to keep NAT bindings open: not a message, and not an error.
pub fn is_keepalive(buf: &[u8]) -> bool {
    !buf.is_empty()
        && buf
            .iter()
            .all(|&b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
}

/// Views initialised headers as possibly-uninitialised slots, to share one parser.
fn as_uninit<'a, 'b>(headers: &'a mut [Header<'b>]) -> &'a mut [MaybeUninit<Header<'b>>] {
    // SAFETY: MaybeUninit<T> has T's layout, and the parser only ever writes initialised
    // values through the view, so the slice stays initialised for its owner.
    unsafe { &mut *(headers as *mut [Header<'b>] as *mut [MaybeUninit<Header<'b>>]) }
}

/// The first `count` slots, which `parse_head` has written.
fn init_prefix<'h, 'b>(headers: &'h [MaybeUninit<Header<'b>>], count: usize) -> &'h [Header<'b>] {
    let count = count.min(headers.len());
    // SAFETY: parse_head initialised slots 0..count (it counts each slot it writes), and
    // MaybeUninit<T> has T's layout.
    unsafe { std::slice::from_raw_parts(headers.as_ptr().cast::<Header<'b>>(), count) }
}

/// Parses the start line and headers. In a datagram, the end of the buffer also ends the
/// head (the blank line may have been lost to the snap length or damage).
fn parse_head<'b>(
    buf: &'b [u8],
    headers: &mut [MaybeUninit<Header<'b>>],
    datagram: bool,
) -> Result<Status<Head<'b>>, ParseError> {
    // In a datagram, a last line without its line end still counts.
    let mut lines = Lines::new(buf);
    let mut line_at = |pos: usize| {
        lines
            .at(pos)
            .or_else(|| (datagram && pos < buf.len()).then(|| (&buf[pos..], buf.len())))
    };
    // RFC 3261 §7.5: CRLFs before the start line are ignored.
    let mut pos = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let Some((line, next)) = line_at(pos) else {
        return Ok(Status::Partial);
    };
    let start = parse_start_line(line)?;
    pos = next;

    let mut count = 0;
    let mut malformed_lines = 0u16;
    let mut unterminated = false;
    let mut content_length = ContentLength::Absent;
    let mut first = FirstOfKind([0; HeaderKind::COUNT]);
    loop {
        let Some((line, mut after)) = line_at(pos) else {
            if datagram {
                unterminated = true;
                break;
            }
            return Ok(Status::Partial);
        };
        if line.is_empty() {
            pos = after;
            break;
        }
        let line_start = pos;
        let mut line_end = pos + line.len();
        // Continuation lines start with whitespace (RFC 3261 §7.3.1); they belong to this value.
        loop {
            match buf.get(after) {
                Some(b' ' | b'\t') => {
                    let Some((cont, next)) = line_at(after) else {
                        return Ok(Status::Partial);
                    };
                    line_end = after + cont.len();
                    after = next;
                }
                Some(_) => break,
                None if datagram => break,
                None => return Ok(Status::Partial),
            }
        }
        pos = after;
        // A damaged header line is skipped and counted, as tolerant stacks do; the message is
        // only lost if a header the call needs is among the damaged ones.
        let Some(header) = parse_header_line(&buf[line_start..line_end]) else {
            malformed_lines = malformed_lines.saturating_add(1);
            continue;
        };
        if header.kind == HeaderKind::ContentLength {
            content_length = match (content_length, parse_u32(header.value, 10)) {
                (ContentLength::Absent, Some(n)) => ContentLength::Bytes(n as usize),
                (ContentLength::Bytes(seen), Some(n)) if seen == n as usize => content_length,
                _ => ContentLength::Invalid,
            };
        }
        let slot = headers.get_mut(count).ok_or(ParseError::TooManyHeaders)?;
        slot.write(header);
        first.note(header.kind, count);
        count += 1;
    }
    Ok(Status::Complete(Head {
        start,
        header_count: count,
        len: pos,
        content_length,
        malformed_lines,
        unterminated,
        first,
    }))
}

fn parse_header_line(line: &[u8]) -> Option<Header<'_>> {
    let name_len = token_len(line);
    if name_len == 0 {
        return None;
    }
    let name = &line[..name_len];
    // HCOLON = *( SP / HTAB ) ":" SWS
    let rest = &line[name_len..];
    let colon = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .filter(|&i| rest[i] == b':')?;
    Some(Header {
        name,
        kind: HeaderKind::from_line(line, name_len),
        value: trim(&rest[colon + 1..]),
    })
}

fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, ParseError> {
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        return parse_status_line(line);
    }
    let sp = memchr(b' ', line).ok_or(ParseError::StartLine)?;
    let method_token = &line[..sp];
    if !is_token_word(method_token) {
        return Err(ParseError::Method);
    }
    let last_sp = line.iter().rposition(|&b| b == b' ').unwrap_or(sp);
    if last_sp == sp {
        return Err(ParseError::StartLine);
    }
    check_version(&line[last_sp + 1..])?;
    let uri = &line[sp + 1..last_sp];
    // RFC 4475 §3.1.2.7: a Request-URI is never enclosed in <>.
    let enclosed = uri.first() == Some(&b'<');
    if uri.is_empty()
        || enclosed
        // Every byte looked at, rather than stopping at the first bad one: the check then
        // runs many bytes at a time.
        || uri.iter().fold(false, |bad, &b| bad | (b <= b' ') | (b == 0x7f))
        || !uri.contains(&b':')
    {
        return Err(ParseError::RequestUri);
    }
    Ok(StartLine::Request {
        method: Method::from_bytes(method_token),
        method_token,
        uri,
    })
}

fn parse_status_line(line: &[u8]) -> Result<StartLine<'_>, ParseError> {
    let sp = memchr(b' ', line).ok_or(ParseError::StartLine)?;
    check_version(&line[..sp])?;
    let rest = &line[sp + 1..];
    let code_end = memchr(b' ', rest).unwrap_or(rest.len());
    let code = &rest[..code_end];
    let code = match code {
        [a, b, c] if code.iter().all(u8::is_ascii_digit) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(ParseError::StatusCode),
    };
    if !(100..=699).contains(&code) {
        return Err(ParseError::StatusCode);
    }
    let reason = rest.get(code_end + 1..).unwrap_or(b"");
    Ok(StartLine::Response { code, reason })
}

fn check_version(version: &[u8]) -> Result<(), ParseError> {
    if version.eq_ignore_ascii_case(b"SIP/2.0") {
        Ok(())
    } else if version.len() >= 4 && version[..4].eq_ignore_ascii_case(b"SIP/") {
        Err(ParseError::Version)
    } else {
        Err(ParseError::StartLine)
    }
}

impl<'h, 'b> Message<'h, 'b> {
    /// Value of the first header of this kind.
    pub fn header(&self, kind: HeaderKind) -> Option<&'b [u8]> {
        if kind == HeaderKind::Other {
            return self
                .headers
                .iter()
                .find(|h| h.kind == kind)
                .map(|h| h.value);
        }
        self.first.get(kind).map(|i| self.headers[i].value)
    }

    /// Values of every header of this kind, in order (not split at commas).
    pub fn headers_of(&self, kind: HeaderKind) -> impl Iterator<Item = &'b [u8]> + 'h {
        let from = match kind {
            HeaderKind::Other => 0,
            _ => self.first.get(kind).unwrap_or(self.headers.len()),
        };
        self.headers[from..]
            .iter()
            .filter(move |h| h.kind == kind)
            .map(|h| h.value)
    }

    /// Value of the first header whose name equals `name`, ignoring case (for configured
    /// extension headers such as X-CID). A name spycraft knows (in any form) is looked up by
    /// its kind.
    pub fn header_named(&self, name: &[u8]) -> Option<&'b [u8]> {
        self.header_named_as(HeaderKind::from_name(name), name)
    }

    /// [`Message::header_named`] for a name already classified as `kind`, which callers that
    /// ask every message for the same names do once.
    pub fn header_named_as(&self, kind: HeaderKind, name: &[u8]) -> Option<&'b [u8]> {
        match kind {
            HeaderKind::Other => self
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value),
            kind => self.header(kind),
        }
    }

    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The Call-ID header's value.
    pub fn call_id(&self) -> Option<&'b [u8]> {
        self.header(HeaderKind::CallId).filter(|v| !v.is_empty())
    }

    /// The CSeq header, parsed.
    pub fn cseq(&self) -> Option<CSeq> {
        self.cseq_as_written().map(|(cseq, _)| cseq)
    }

    /// [`Message::cseq`], with its method token as written (an extension method's name).
    pub fn cseq_as_written(&self) -> Option<(CSeq, &'b [u8])> {
        let value = trim(self.header(HeaderKind::CSeq)?);
        let split = value.iter().position(|&b| b == b' ' || b == b'\t')?;
        let number = parse_u32(&value[..split], 10)?;
        let method = trim(&value[split..]);
        if !is_token_word(method) {
            return None;
        }
        let cseq = CSeq {
            number,
            method: Method::from_bytes(method),
        };
        Some((cseq, method))
    }

    /// The From header, parsed.
    pub fn from(&self) -> Option<NameAddr<'b>> {
        NameAddr::parse(self.header(HeaderKind::From)?)
    }

    /// The To header, parsed.
    pub fn to(&self) -> Option<NameAddr<'b>> {
        NameAddr::parse(self.header(HeaderKind::To)?)
    }

    /// First value of the first header of this kind, parsed as a name-addr.
    pub fn first_name_addr(&self, kind: HeaderKind) -> Option<NameAddr<'b>> {
        // Most of the headers asked for are absent: say so without an iterator's set-up.
        if kind != HeaderKind::Other && self.first.get(kind).is_none() {
            return None;
        }
        self.headers_of(kind)
            .flat_map(split_values)
            .find_map(NameAddr::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::header::EMPTY_HEADER;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    fn headers() -> [Header<'static>; 32] {
        [EMPTY_HEADER; 32]
    }

    #[test]
    fn parses_a_request_with_body() {
        let mut h = headers();
        let msg = parse_datagram(INVITE, &mut h).expect("valid");
        assert_eq!(msg.method(), Some(Method::Invite));
        match msg.start {
            StartLine::Request { uri, .. } => assert_eq!(uri, b"sip:bob@biloxi.example.com"),
            _ => panic!("expected a request"),
        }
        assert_eq!(msg.headers.len(), 9);
        assert_eq!(
            msg.call_id(),
            Some(&b"a84b4c76e66710@pc33.atlanta.example.com"[..])
        );
        assert_eq!(
            msg.cseq(),
            Some(CSeq {
                number: 314159,
                method: Method::Invite
            })
        );
        assert_eq!(msg.from().and_then(|f| f.tag()), Some(&b"1928301774"[..]));
        assert_eq!(msg.to().and_then(|t| t.tag()), None);
        assert_eq!(msg.body, b"v=0\n");
        assert_eq!(msg.len, INVITE.len());
        assert_eq!(msg.body_issue, None);
    }

    #[test]
    fn stream_parse_waits_for_the_whole_body() {
        for cut in 0..INVITE.len() {
            let mut h = headers();
            assert_eq!(
                parse(&INVITE[..cut], &mut h),
                Ok(Status::Partial),
                "cut at {cut}"
            );
        }
        let mut two = INVITE.to_vec();
        two.extend_from_slice(INVITE);
        let mut h = headers();
        match parse(&two, &mut h) {
            Ok(Status::Complete(msg)) => assert_eq!(msg.len, INVITE.len()),
            other => panic!("expected the first message, got {other:?}"),
        }
    }

    #[test]
    fn expands_compact_forms_and_folding() {
        let raw = b"SIP/2.0 180 Ringing\r\n\
v: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
f: <sip:a@h>;tag=1\r\n\
t: <sip:b@h>\r\n\
\x20;tag=2\r\n\
i: abc\r\n\
CSEQ:\t7\r\n\t INVITE\r\n\
l: 0\r\n\r\n";
        let mut h = headers();
        let msg = parse_datagram(raw, &mut h).expect("valid");
        assert_eq!(msg.status(), Some(180));
        assert_eq!(msg.call_id(), Some(&b"abc"[..]));
        assert_eq!(msg.to().and_then(|t| t.tag()), Some(&b"2"[..]));
        assert_eq!(
            msg.cseq(),
            Some(CSeq {
                number: 7,
                method: Method::Invite
            })
        );
        assert_eq!(msg.body, b"");
    }

    #[test]
    fn keeps_a_short_body_in_a_datagram_and_flags_it() {
        let raw = b"SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: 100\r\n\r\nv=0\r\n";
        let mut h = headers();
        let msg = parse_datagram(raw, &mut h).expect("headers are intact");
        assert_eq!(msg.body_issue, Some(BodyIssue::Short));
        assert_eq!(msg.body, b"v=0\r\n");
    }

    #[test]
    fn tolerates_a_bad_content_length_only_in_datagrams() {
        for raw in [
            &b"SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: xyz\r\n\r\nv=0\r\n"[..],
            b"SIP/2.0 200 OK\r\nl: 5\r\nContent-Length: 4\r\n\r\nv=0\r\n",
            b"SIP/2.0 200 OK\r\nl: -3\r\n\r\nv=0\r\n",
            b"SIP/2.0 200 OK\r\nl: 99999999999999999999\r\n\r\nv=0\r\n",
        ] {
            let mut h = headers();
            let msg = parse_datagram(raw, &mut h).expect("the datagram bounds the message");
            assert_eq!(msg.body_issue, Some(BodyIssue::BadLength));
            assert_eq!(msg.body, b"v=0\r\n");
            let mut h = headers();
            assert_eq!(parse(raw, &mut h), Err(ParseError::ContentLength));
        }
    }

    #[test]
    fn rejects_malformed_messages_with_specific_errors() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"INVITE sip:a@b SIP/7.0\r\n\r\n", ParseError::Version),
            (b"INVITE sip:a@b HTTP/1.1\r\n\r\n", ParseError::StartLine),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::StartLine),
            (b"INV@ITE sip:a@b SIP/2.0\r\n\r\n", ParseError::Method),
            (b"INVITE sip:a b@c SIP/2.0\r\n\r\n", ParseError::RequestUri),
            (b"INVITE nocolon SIP/2.0\r\n\r\n", ParseError::RequestUri),
            (b"INVITE <sip:a@b> SIP/2.0\r\n\r\n", ParseError::RequestUri),
            (b"SIP/2.0 4294967301 Big\r\n\r\n", ParseError::StatusCode),
            (b"SIP/2.0 099 Low\r\n\r\n", ParseError::StatusCode),
            (b"SIP/2.0 20 OK\r\n\r\n", ParseError::StatusCode),
            (b"OPTIONS", ParseError::StartLine),
            (b"\r\n\r\n", ParseError::Truncated),
        ];
        for (raw, expected) in cases {
            let mut h = headers();
            assert_eq!(
                parse_datagram(raw, &mut h).map(|m| m.len),
                Err(*expected),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn skips_damaged_header_lines_and_counts_them() {
        let raw = b"OPTIONS sip:a@b SIP/2.0\r\nno colon here\r\n: empty name\r\nHi\xaa(: x\r\nCall-ID: x\r\n\r\n";
        let mut h = headers();
        let msg = parse_datagram(raw, &mut h).expect("tolerated");
        assert_eq!(msg.malformed_lines, 3);
        assert_eq!(msg.call_id(), Some(&b"x"[..]));
    }

    #[test]
    fn keeps_the_headers_of_a_datagram_cut_inside_its_head() {
        for raw in [
            &b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n"[..],
            b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x",
            b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n folded",
        ] {
            let mut h = headers();
            let msg = parse_datagram(raw, &mut h).expect("headers so far are kept");
            assert_eq!(msg.body_issue, Some(BodyIssue::Unterminated));
            assert_eq!(msg.call_id().map(|v| &v[..1]), Some(&b"x"[..]));
            assert_eq!(msg.body, b"");
            let mut h = headers();
            assert_eq!(
                parse(raw, &mut h),
                Ok(Status::Partial),
                "a stream waits for more"
            );
        }
    }

    #[test]
    fn reports_too_many_headers_instead_of_overrunning() {
        let mut raw = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        for i in 0..40 {
            raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let mut h = headers();
        assert_eq!(
            parse_datagram(&raw, &mut h),
            Err(ParseError::TooManyHeaders)
        );
    }

    #[test]
    fn accepts_leading_crlf_bare_lf_and_empty_reason() {
        let mut h = headers();
        let msg = parse_datagram(b"\r\n\r\nSIP/2.0 100 \nCall-ID: q\n\n", &mut h).expect("valid");
        assert_eq!(
            msg.start,
            StartLine::Response {
                code: 100,
                reason: b""
            }
        );
        assert_eq!(msg.call_id(), Some(&b"q"[..]));
        assert!(is_keepalive(b"\r\n\r\n"));
        assert!(is_keepalive(b"     "));
        assert!(!is_keepalive(b"hello"));
        assert!(!is_keepalive(b""));
    }

    #[test]
    fn never_panics_on_any_prefix_or_byte_flip() {
        for cut in 0..=INVITE.len() {
            let mut h = headers();
            let _ = parse_datagram(&INVITE[..cut], &mut h);
        }
        let mut copy = INVITE.to_vec();
        for i in 0..copy.len() {
            for b in [0u8, b' ', b':', b'\r', b'\n', 0xff] {
                let old = copy[i];
                copy[i] = b;
                let mut h = headers();
                let _ = parse_datagram(&copy, &mut h);
                let mut h = headers();
                let _ = parse(&copy, &mut h);
                copy[i] = old;
            }
        }
    }
}
