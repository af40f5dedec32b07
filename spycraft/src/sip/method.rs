// SPDX-License-Identifier: AGPL-3.0-or-later
//! SIP request methods.

use std::fmt;

/// A SIP method. Methods are case-sensitive (RFC 3261 §7.1): `invite` is an extension method,
/// not INVITE, so it maps to `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE.
    Invite,
    /// ACK.
    Ack,
    /// BYE.
    Bye,
    /// CANCEL.
    Cancel,
    /// REGISTER.
    Register,
    /// OPTIONS.
    Options,
    /// PRACK.
    Prack,
    /// UPDATE.
    Update,
    /// INFO.
    Info,
    /// REFER.
    Refer,
    /// NOTIFY.
    Notify,
    /// SUBSCRIBE.
    Subscribe,
    /// MESSAGE.
    Message,
    /// PUBLISH.
    Publish,
    /// Any other method.
    Other,
}

impl Method {
    /// Every method, in the order counters list them (a method's place is `method as usize`).
    pub const ALL: [Method; 15] = [
        Self::Invite,
        Self::Ack,
        Self::Bye,
        Self::Cancel,
        Self::Register,
        Self::Options,
        Self::Prack,
        Self::Update,
        Self::Info,
        Self::Refer,
        Self::Notify,
        Self::Subscribe,
        Self::Message,
        Self::Publish,
        Self::Other,
    ];

    /// Maps the method token of a request line or CSeq header.
    pub fn from_bytes(token: &[u8]) -> Self {
        match token {
            b"INVITE" => Self::Invite,
            b"ACK" => Self::Ack,
            b"BYE" => Self::Bye,
            b"CANCEL" => Self::Cancel,
            b"REGISTER" => Self::Register,
            b"OPTIONS" => Self::Options,
            b"PRACK" => Self::Prack,
            b"UPDATE" => Self::Update,
            b"INFO" => Self::Info,
            b"REFER" => Self::Refer,
            b"NOTIFY" => Self::Notify,
            b"SUBSCRIBE" => Self::Subscribe,
            b"MESSAGE" => Self::Message,
            b"PUBLISH" => Self::Publish,
            _ => Self::Other,
        }
    }

    /// The method as written on the wire (`OTHER` for extension methods).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Register => "REGISTER",
            Self::Options => "OPTIONS",
            Self::Prack => "PRACK",
            Self::Update => "UPDATE",
            Self::Info => "INFO",
            Self::Refer => "REFER",
            Self::Notify => "NOTIFY",
            Self::Subscribe => "SUBSCRIBE",
            Self::Message => "MESSAGE",
            Self::Publish => "PUBLISH",
            Self::Other => "OTHER",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::from_bytes(b"INVITE"), Method::Invite);
        assert_eq!(Method::from_bytes(b"invite"), Method::Other);
        assert_eq!(Method::from_bytes(b"REGIStER"), Method::Other);
        for m in [Method::Invite, Method::Bye, Method::Cancel, Method::Publish] {
            assert_eq!(Method::from_bytes(m.as_str().as_bytes()), m);
        }
    }
}
