// SPDX-License-Identifier: AGPL-3.0-or-later
//! SIP wire format: a zero-copy message parser, typed accessors, and the compact [`SipEvent`]
//! handed to the call stage. Knows nothing of calls or capture.

mod detect;
mod event;
mod framing;
mod header;
mod lines;
mod method;
mod name_addr;
mod parser;
mod syntax;

pub use detect::looks_like_sip;
pub use event::{CollationHeaders, Field, Media, SipEvent, SipKind};
pub use framing::{find_message_start, is_stream_keepalive};
pub use header::{Header, HeaderKind, EMPTY_HEADER};
pub use method::Method;
pub use name_addr::{uri_user, NameAddr};
pub use parser::{
    is_keepalive, parse, parse_datagram, parse_datagram_uninit, parse_uninit, BodyIssue, CSeq,
    Message, ParseError, StartLine, Status,
};
/// Header-value helpers for the tools that read SIP themselves (`find`).
pub(crate) use syntax::{param, parse_u32, split_values, trim};

/// Headers the parse stage makes room for per message; more is `ParseError::TooManyHeaders`.
pub const MAX_HEADERS: usize = 96;
