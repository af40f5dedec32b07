// SPDX-License-Identifier: AGPL-3.0-or-later
//! spycraft: a passive SIP call-accounting sensor.
//!
//! Data flows one way, and no module imports one above it:
//! [`capture`] → [`decode`] → [`sip`] → [`call`] → [`sink`], wired by [`parse_stage`] and
//! [`pipeline`]; [`packet`] holds the vocabulary they share and imports none of them.

#![warn(missing_docs)]

pub mod accounting;
pub mod alert;
#[cfg(test)]
mod bundled;
pub mod call;
pub mod capture;
mod decimal;
pub mod decode;
pub mod filter;
mod fnv;
pub mod handoff;
pub mod hep;
pub mod http;
pub mod inspect;
pub mod monitor;
pub mod packet;
pub mod parse_stage;
pub mod pipeline;
pub mod privilege;
pub mod regress;
pub mod secret;
pub mod settings;
mod simd;
pub mod sink;
pub mod sip;
pub mod stats;
pub mod store;
pub mod trust;

/// An error and its causes on one line, each said once: many errors already end with their
/// cause's text ("spool /x: No space left on device (os error 28)").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// This machine's host name, the default sensor node name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for writes of its full length, and gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "spycraft".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if !name.is_empty() => name.to_owned(),
        _ => "spycraft".into(),
    }
}
