// SPDX-License-Identifier: AGPL-3.0-or-later
//! Alerting: scanners, enumeration, password guessing, floods and toll fraud, raised from
//! the messages and records of a run as they come.
//!
//! The rules ([`rules`]) count per offender within windows of capture time ([`episodes`]),
//! so `analyze` of a capture raises what the live sensor raised. State is bounded: at most
//! [`engine::EPISODES`] offenders and [`engine::OPEN_CALLS`] calls are followed, the rest
//! counted as overflow. Alerts are written as JSON lines in the shape of Suricata's EVE
//! ([`log`]) and sent to syslog ([`syslog`]).

pub mod engine;
pub mod episodes;
pub mod log;
pub mod rules;
pub mod syslog;

use std::net::SocketAddr;

use serde_json::{json, Value};

pub use engine::{AlertCounts, AlertEngine};
pub use log::{AlertLog, AlertReport};
pub use rules::{Rule, RuleError, RuleKind, RuleLayer, Rules};
pub use syslog::{Syslog, SyslogTarget};

use crate::packet::{Timestamp, Transport};

/// One alert: a rule fired for an offender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// The rule.
    pub rule: RuleKind,
    /// 1 (high) to 3 (low).
    pub severity: u8,
    /// When (capture time of the event that fired it).
    pub at: Timestamp,
    /// The offender: who sent the requests (for responses, whom they went back to).
    pub offender: SocketAddr,
    /// The party it addressed.
    pub target: SocketAddr,
    /// The transport of the event that fired it.
    pub transport: Transport,
    /// What was counted: in the window that fired, or since the last alert for a repeat.
    pub count: u64,
    /// The rule's window, in seconds.
    pub window_secs: u32,
    /// When the offender's episode began.
    pub first_seen: Timestamp,
    /// Its latest event.
    pub last_seen: Timestamp,
    /// Whether this sums up an attack already reported.
    pub repeat: bool,
    /// The message that fired it (none for a summary at the end of a run).
    pub sip: Option<SipContext>,
}

/// The SIP message behind an alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipContext {
    /// The method (of the request a response answers).
    pub method: String,
    /// Its Call-ID.
    pub call_id: String,
    /// Its User-Agent (or Server).
    pub user_agent: String,
    /// The From user.
    pub from_user: String,
    /// The To user.
    pub to_user: String,
}

impl Alert {
    /// The alert as an EVE JSON object (Suricata's `event_type: "alert"` shape, with a
    /// `sip` object and the counts of the episode).
    pub fn eve(&self) -> Value {
        let sip = self.sip.as_ref().map(|s| {
            json!({
                "method": s.method,
                "call_id": s.call_id,
                "user_agent": s.user_agent,
                "from_user": s.from_user,
                "to_user": s.to_user,
            })
        });
        json!({
            "timestamp": self.at.to_rfc3339(),
            "event_type": "alert",
            "src_ip": self.offender.ip().to_string(),
            "src_port": self.offender.port(),
            "dest_ip": self.target.ip().to_string(),
            "dest_port": self.target.port(),
            "proto": self.transport.as_str().to_ascii_uppercase(),
            "app_proto": "sip",
            "alert": {
                "action": "allowed",
                "signature_id": self.rule.signature_id(),
                "rev": 1,
                "signature": self.rule.signature(),
                "category": self.rule.category(),
                "severity": self.severity,
                "rule": self.rule.name(),
            },
            "sip": sip,
            "count": self.count,
            "window_s": self.window_secs,
            "first_seen": self.first_seen.to_rfc3339(),
            "last_seen": self.last_seen.to_rfc3339(),
            "repeat": self.repeat,
        })
    }

    /// The alert as one line of plain text for syslog, in a fixed order a fail2ban filter
    /// can match: `alert rule=NAME sid=N severity=N src=IP src_port=N dest=IP dest_port=N
    /// count=N repeat=BOOL call_id="…" user_agent="…" signature="…"`.
    pub fn log_line(&self) -> String {
        let quoted = |s: &str| s.replace(['"', '\\'], "'").replace(['\r', '\n'], " ");
        let sip = self.sip.as_ref();
        format!(
            "alert rule={} sid={} severity={} src={} src_port={} dest={} dest_port={} count={} \
             repeat={} call_id=\"{}\" user_agent=\"{}\" signature=\"{}\"",
            self.rule.name(),
            self.rule.signature_id(),
            self.severity,
            self.offender.ip(),
            self.offender.port(),
            self.target.ip(),
            self.target.port(),
            self.count,
            self.repeat,
            quoted(sip.map_or("", |s| &s.call_id)),
            quoted(sip.map_or("", |s| &s.user_agent)),
            self.rule.signature(),
        )
    }
}
