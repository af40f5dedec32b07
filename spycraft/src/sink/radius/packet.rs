// SPDX-License-Identifier: AGPL-3.0-or-later
//! RADIUS packets as accounting needs them (RFC 2865 §3 and §5, RFC 2866 §3 and §4.1–4.2):
//! an Accounting-Request built attribute by attribute with its Request Authenticator, and an
//! Accounting-Response checked against it.

use md5::{Digest, Md5};

/// Accounting-Request (RFC 2866 §4.1).
pub const ACCOUNTING_REQUEST: u8 = 4;
/// Accounting-Response (RFC 2866 §4.2).
pub const ACCOUNTING_RESPONSE: u8 = 5;
/// Code, Identifier, Length and Authenticator.
pub const HEADER_LEN: usize = 20;
/// The largest packet RFC 2865 §3 allows.
pub const MAX_PACKET: usize = 4096;
/// The most an attribute's value can hold (its length octet counts type and length too).
pub const MAX_VALUE: usize = 253;
/// Vendor-Specific (RFC 2865 §5.26).
const VENDOR_SPECIFIC: u8 = 26;

/// Why a packet could not be built or a response not be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The attributes do not fit in 4,096 bytes.
    #[error("the attributes do not fit in a RADIUS packet (4,096 bytes)")]
    TooLarge,
    /// Shorter than a header, or its Length field disagrees with what arrived.
    #[error("a truncated or mis-sized RADIUS packet")]
    Malformed,
    /// Not an Accounting-Response.
    #[error("RADIUS code {0} where an Accounting-Response (5) was expected")]
    UnexpectedCode(u8),
    /// A response to another request.
    #[error("a response for identifier {0}, not the one outstanding")]
    OtherIdentifier(u8),
    /// The Response Authenticator does not match: another secret, or a forgery.
    #[error("the Response Authenticator does not match (a wrong shared secret?)")]
    BadAuthenticator,
}

/// An Accounting-Request being built: attributes appended, then sealed with an identifier
/// and the shared secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    bytes: Vec<u8>,
}

impl Attributes {
    /// No attributes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The encoded attributes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A text or octets attribute; a value longer than 253 bytes is cut (at a character
    /// boundary when it is text).
    pub fn text(&mut self, kind: u8, value: &str) -> &mut Self {
        self.octets(kind, cut(value, MAX_VALUE).as_bytes())
    }

    /// An octets attribute, cut to 253 bytes.
    pub fn octets(&mut self, kind: u8, value: &[u8]) -> &mut Self {
        let value = &value[..value.len().min(MAX_VALUE)];
        self.bytes.push(kind);
        self.bytes.push((value.len() + 2) as u8);
        self.bytes.extend_from_slice(value);
        self
    }

    /// A 32-bit integer, enumeration or time attribute.
    pub fn integer(&mut self, kind: u8, value: u32) -> &mut Self {
        self.octets(kind, &value.to_be_bytes())
    }

    /// A vendor's text attribute inside Vendor-Specific (RFC 2865 §5.26's suggested format:
    /// vendor type, vendor length, value), cut to fit.
    pub fn vendor_text(&mut self, vendor: u32, kind: u8, value: &str) -> &mut Self {
        // Type, length, vendor id, vendor type and vendor length come before the value.
        let value = cut(value, MAX_VALUE - 6);
        self.bytes.push(VENDOR_SPECIFIC);
        self.bytes.push((value.len() + 8) as u8);
        self.bytes.extend_from_slice(&vendor.to_be_bytes());
        self.bytes.push(kind);
        self.bytes.push((value.len() + 2) as u8);
        self.bytes.extend_from_slice(value.as_bytes());
        self
    }

    /// The Accounting-Request with these attributes and `identifier`, its Request
    /// Authenticator the MD5 of code, identifier, length, sixteen zero octets, the attributes
    /// and the secret (RFC 2866 §3).
    pub fn request(&self, identifier: u8, secret: &[u8]) -> Result<Vec<u8>, PacketError> {
        let len = HEADER_LEN + self.bytes.len();
        if len > MAX_PACKET {
            return Err(PacketError::TooLarge);
        }
        let mut packet = Vec::with_capacity(len);
        packet.push(ACCOUNTING_REQUEST);
        packet.push(identifier);
        packet.extend_from_slice(&(len as u16).to_be_bytes());
        packet.extend_from_slice(&[0; 16]);
        packet.extend_from_slice(&self.bytes);
        let authenticator = Md5::new()
            .chain_update(&packet)
            .chain_update(secret)
            .finalize();
        packet[4..20].copy_from_slice(&authenticator);
        Ok(packet)
    }
}

/// `value` cut to at most `max` bytes at a character boundary.
fn cut(value: &str, max: usize) -> &str {
    if value.len() <= max {
        return value;
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// Checks `response` as the Accounting-Response to `request` (RFC 2866 §3: the Response
/// Authenticator is the MD5 of code, identifier, length, the request's authenticator, the
/// response's attributes and the secret).
pub fn check_response(response: &[u8], request: &[u8], secret: &[u8]) -> Result<(), PacketError> {
    if response.len() < HEADER_LEN || request.len() < HEADER_LEN {
        return Err(PacketError::Malformed);
    }
    let len = usize::from(u16::from_be_bytes([response[2], response[3]]));
    // RFC 2865 §3: octets past the Length are padding to ignore; fewer is an error.
    if len < HEADER_LEN || len > response.len() {
        return Err(PacketError::Malformed);
    }
    let response = &response[..len];
    if response[0] != ACCOUNTING_RESPONSE {
        return Err(PacketError::UnexpectedCode(response[0]));
    }
    if response[1] != request[1] {
        return Err(PacketError::OtherIdentifier(response[1]));
    }
    let expected = Md5::new()
        .chain_update(&response[..4])
        .chain_update(&request[4..20])
        .chain_update(&response[20..])
        .chain_update(secret)
        .finalize();
    // Not secret-dependent timing worth hiding: the value is public once sent.
    if expected[..] == response[4..20] {
        Ok(())
    } else {
        Err(PacketError::BadAuthenticator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `request` as a server with `secret` would send it.
    fn response_to(request: &[u8], secret: &[u8]) -> Vec<u8> {
        let mut response = vec![ACCOUNTING_RESPONSE, request[1], 0, 20];
        let authenticator = Md5::new()
            .chain_update(&response)
            .chain_update(&request[4..20])
            .chain_update(secret)
            .finalize();
        response.extend_from_slice(&authenticator);
        response
    }

    #[test]
    fn builds_the_request_authenticator_of_rfc_2866() {
        let mut attributes = Attributes::new();
        attributes
            .integer(40, 1)
            .text(44, "session-1")
            .vendor_text(9, 1, "call-id=abc@host");
        let packet = attributes.request(7, b"s3cret").expect("fits");
        assert_eq!(&packet[..4], &[4, 7, 0, (20 + 6 + 11 + 24) as u8]);
        assert_eq!(&packet[20..26], &[40, 6, 0, 0, 0, 1]);
        assert_eq!(&packet[26..37], b"\x2c\x0bsession-1");
        assert_eq!(&packet[37..45], &[26, 24, 0, 0, 0, 9, 1, 18]);
        let mut zeroed = packet.clone();
        zeroed[4..20].fill(0);
        let want = Md5::new()
            .chain_update(&zeroed)
            .chain_update(b"s3cret")
            .finalize();
        assert_eq!(&packet[4..20], &want[..]);
    }

    #[test]
    fn checks_responses_and_refuses_what_does_not_match() {
        let request = Attributes::new()
            .integer(40, 2)
            .request(9, b"s3cret")
            .expect("fits");
        let good = response_to(&request, b"s3cret");
        assert_eq!(check_response(&good, &request, b"s3cret"), Ok(()));
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 4]);
        assert_eq!(check_response(&padded, &request, b"s3cret"), Ok(()));
        assert_eq!(
            check_response(&response_to(&request, b"other"), &request, b"s3cret"),
            Err(PacketError::BadAuthenticator)
        );
        assert_eq!(
            check_response(&good[..19], &request, b"s3cret"),
            Err(PacketError::Malformed)
        );
        let mut long = good.clone();
        long[3] = 40;
        assert_eq!(
            check_response(&long, &request, b"s3cret"),
            Err(PacketError::Malformed)
        );
        let mut other = good.clone();
        other[1] = 10;
        assert_eq!(
            check_response(&other, &request, b"s3cret"),
            Err(PacketError::OtherIdentifier(10))
        );
        let mut code = good;
        code[0] = 2;
        assert_eq!(
            check_response(&code, &request, b"s3cret"),
            Err(PacketError::UnexpectedCode(2))
        );
    }

    #[test]
    fn cuts_long_values_to_fit_their_length_octet() {
        let long = "é".repeat(200);
        let mut attributes = Attributes::new();
        attributes.text(1, &long).vendor_text(9, 1, &long);
        let bytes = attributes.as_bytes();
        assert_eq!(
            usize::from(bytes[1]),
            2 + 252,
            "cut at a character boundary"
        );
        let vsa = &bytes[254..];
        assert_eq!(usize::from(vsa[1]), vsa.len());
        assert!(vsa.len() <= 255);
        assert!(std::str::from_utf8(&vsa[8..]).is_ok());
    }
}
