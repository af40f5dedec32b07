// SPDX-License-Identifier: AGPL-3.0-or-later
//! spycraft: a passive SIP call-accounting sensor.
//!
//! Data flows one way, and no module imports one above it:
//! [`capture`] → [`decode`] → [`sip`] → [`call`] → [`sink`], wired by [`parse_stage`] and
//! [`pipeline`].

pub mod call;
pub mod capture;
pub mod config;
mod decimal;
pub mod decode;
pub mod filter;
pub mod inspect;
pub mod parse_stage;
pub mod pipeline;
mod prefetch;
pub mod sink;
pub mod sip;
pub mod stats;

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
