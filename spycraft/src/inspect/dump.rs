// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft dump`: which messages to show, and the owned copy of each one shown.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::Serialize;

use crate::call::Timestamp;
use crate::decode::Transport;
use crate::parse_stage::SeenMessage;
use crate::sip::{uri_user, Field, StartLine};

/// `--host ADDR[:PORT]`: an endpoint, with or without its port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFilter {
    /// The endpoint's address.
    pub ip: IpAddr,
    /// Its port, if given.
    pub port: Option<u16>,
}

impl FromStr for HostFilter {
    type Err = String;

    /// `10.0.0.1`, `10.0.0.1:5060`, `2001:db8::1`, `[2001:db8::1]:5060`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self { ip, port: None });
        }
        match s.parse::<SocketAddr>() {
            Ok(addr) => Ok(Self {
                ip: addr.ip(),
                port: Some(addr.port()),
            }),
            Err(_) => Err(format!(
                "{s:?}: expected an address, ADDR:PORT or [IPv6]:PORT"
            )),
        }
    }
}

impl HostFilter {
    fn matches(&self, a: SocketAddr) -> bool {
        a.ip() == self.ip && self.port.is_none_or(|p| p == a.port())
    }
}

/// What `dump` selects; every criterion given must hold.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Messages to or from this endpoint.
    pub host: Option<HostFilter>,
    /// The Call-IDs asked for, with those of the legs collated with them.
    pub call_ids: Option<HashSet<String>>,
    /// A user part of the From, To or Request-URI.
    pub user: Option<String>,
}

impl Selection {
    /// Whether the message is one of those chosen.
    pub fn matches(&self, m: &SeenMessage<'_, '_, '_>) -> bool {
        if let Some(host) = &self.host {
            if !host.matches(m.info.src) && !host.matches(m.info.dst) {
                return false;
            }
        }
        if let Some(ids) = &self.call_ids {
            if !ids.contains(m.event.call_id()) {
                return false;
            }
        }
        if let Some(user) = &self.user {
            let of = |field| uri_user(m.event.field(field).as_bytes()) == Some(user.as_bytes());
            if !(of(Field::FromUri) || of(Field::ToUri) || of(Field::RequestUri)) {
                return false;
            }
        }
        true
    }
}

/// Collation ids by Call-ID, learnt from INVITEs: the first pass of `dump --call-id`, so
/// that asking for one leg of a B2BUA call shows all of them.
#[derive(Debug, Default)]
pub struct Collation {
    by_call_id: std::collections::HashMap<String, String>,
}

impl Collation {
    /// Learns the collation ids a message links.
    pub fn learn(&mut self, m: &SeenMessage<'_, '_, '_>) {
        if m.event.method() != Some(crate::sip::Method::Invite) {
            return;
        }
        // As the records do: without a collation header, the Call-ID names the group.
        let call_id = m.event.call_id();
        let group = match m.event.field(Field::CollationId) {
            "" => call_id,
            collation => collation,
        };
        self.by_call_id
            .entry(call_id.to_owned())
            .or_insert_with(|| group.to_owned());
    }

    /// The collation group of a Call-ID whose INVITE was seen.
    pub fn group_of(&self, call_id: &str) -> Option<&str> {
        self.by_call_id.get(call_id).map(String::as_str)
    }

    /// `wanted` and every Call-ID sharing a collation id with one of them.
    pub fn expand(&self, wanted: &[String]) -> HashSet<String> {
        let groups: HashSet<&str> = wanted
            .iter()
            .filter_map(|id| self.by_call_id.get(id).map(String::as_str))
            .collect();
        let mut ids: HashSet<String> = wanted.iter().cloned().collect();
        ids.extend(
            self.by_call_id
                .iter()
                .filter(|(_, group)| groups.contains(group.as_str()))
                .map(|(id, _)| id.clone()),
        );
        ids
    }
}

/// One message as `dump` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct DumpedMessage {
    /// When the message was captured.
    pub time: Timestamp,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Transport it came over.
    pub transport: Transport,
    /// Its Call-ID.
    pub call_id: String,
    /// Method, or status code and reason: what an arrow of the ladder says.
    pub label: String,
    /// The whole message as text (bytes that are not UTF-8 replaced).
    pub text: String,
}

impl DumpedMessage {
    /// The message as it is shown.
    pub fn of(m: &SeenMessage<'_, '_, '_>) -> Self {
        let label = match m.message.start {
            StartLine::Request { method_token, .. } => {
                String::from_utf8_lossy(method_token).into_owned()
            }
            StartLine::Response { code, reason } => {
                format!("{code} {}", String::from_utf8_lossy(reason))
            }
        };
        Self {
            time: m.info.time,
            src: m.info.src,
            dst: m.info.dst,
            transport: m.info.transport,
            call_id: m.event.call_id().to_owned(),
            label,
            text: String::from_utf8_lossy(m.raw).replace("\r\n", "\n"),
        }
    }

    /// The message as the text format prints it: a line of time and addresses, the message,
    /// a blank line.
    pub fn to_text(&self, host: Option<&HostFilter>) -> String {
        let direction = match host {
            Some(h) if h.matches(self.dst) && !h.matches(self.src) => "  (in)",
            Some(h) if h.matches(self.src) && !h.matches(self.dst) => "  (out)",
            _ => "",
        };
        let mut text = format!(
            "{}  {} -> {}  {}{direction}\n{}",
            self.time.to_rfc3339(),
            self.src,
            self.dst,
            self.transport.as_str().to_uppercase(),
            self.text
        );
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_host_filters() {
        let f: HostFilter = "10.0.0.1".parse().expect("address");
        assert_eq!(f.port, None);
        let f: HostFilter = "10.0.0.1:5060".parse().expect("address and port");
        assert_eq!(f.port, Some(5060));
        let f: HostFilter = "[2001:db8::1]:5080".parse().expect("IPv6 and port");
        assert_eq!(f.port, Some(5080));
        assert!("pbx.example".parse::<HostFilter>().is_err());
        assert!(f.matches("[2001:db8::1]:5080".parse().expect("addr")));
        assert!(!f.matches("[2001:db8::1]:5060".parse().expect("addr")));
    }

    #[test]
    fn expands_a_call_id_to_its_collated_legs() {
        let mut c = Collation::default();
        c.by_call_id.insert("a-leg".into(), "group-1".into());
        c.by_call_id.insert("b-leg".into(), "group-1".into());
        c.by_call_id.insert("other".into(), "group-2".into());
        let ids = c.expand(&["b-leg".into()]);
        assert_eq!(ids.len(), 2);
        assert!(ids.contains("a-leg") && ids.contains("b-leg"));
        assert_eq!(c.expand(&["unknown".into()]).len(), 1);
    }
}
