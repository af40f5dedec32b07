// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft find`: every SIP endpoint seen (address, port, transport), with its software,
//! the addresses of record it registered, the methods it sent and received, its calls, and
//! when it was first and last seen.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::IpAddr;

use serde::Serialize;

use crate::call::Timestamp;
use crate::decode::Transport;
use crate::parse_stage::SeenMessage;
use crate::sip::{param, parse_u32, split_values, trim};
use crate::sip::{Field, HeaderKind, Method, StartLine};

/// One endpoint, as `find` reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Endpoint {
    /// The endpoint's address.
    pub address: IpAddr,
    /// Its port.
    pub port: u16,
    /// Its transport.
    pub transport: Transport,
    /// User-Agent and Server values it sent.
    pub user_agents: BTreeSet<String>,
    /// Addresses of record it registered, with when the registration expires (a REGISTER
    /// answered 2xx); an unregistration removes the entry.
    pub registrations: BTreeMap<String, Timestamp>,
    /// Requests by method and responses by status code, as sent and as received.
    pub sent: BTreeMap<String, u64>,
    /// Messages received, by method or status.
    pub received: BTreeMap<String, u64>,
    /// Dialog-forming INVITEs it sent or received (retransmissions once).
    pub calls: u64,
    /// When it was first seen.
    pub first_seen: Timestamp,
    /// When it was last seen.
    pub last_seen: Timestamp,
}

type Key = (IpAddr, u16, Transport);

/// Builds the endpoint list from a stream of messages.
#[derive(Debug, Default)]
pub struct EndpointFinder {
    endpoints: HashMap<Key, Endpoint>,
    /// REGISTERs waiting for their final response: (Call-ID, CSeq) → (registrant, AOR,
    /// requested expiry).
    pending: HashMap<(String, u32), (Key, String, Option<u32>)>,
    /// Initial INVITEs already counted, by a hash of Call-ID and From tag.
    invites: HashSet<u64>,
    hasher: std::collections::hash_map::RandomState,
    /// Messages from or to endpoints beyond the first 100,000, not reported.
    pub overflow: u64,
}

/// Bounds that keep a flood (random source addresses, INVITEs never answered) from taking
/// the memory: endpoints listed, INVITEs remembered for retransmission, REGISTERs waiting.
const MAX_ENDPOINTS: usize = 100_000;
const MAX_REMEMBERED: usize = 1_000_000;

/// A REGISTER without any expiry asks for the registrar's default (RFC 3261 §10.2.1.1).
const DEFAULT_EXPIRES: u32 = 3600;

impl EndpointFinder {
    /// Counts one message for both its endpoints.
    pub fn on_message(&mut self, m: &SeenMessage<'_, '_, '_>) {
        let t = m.info.time;
        let src = (m.info.src.ip(), m.info.src.port(), m.info.transport);
        let dst = (m.info.dst.ip(), m.info.dst.port(), m.info.transport);
        let what = match m.message.start {
            StartLine::Request { method_token, .. } => {
                String::from_utf8_lossy(method_token).into_owned()
            }
            StartLine::Response { code, .. } => code.to_string(),
        };
        let software: Vec<String> = [HeaderKind::UserAgent, HeaderKind::Server]
            .into_iter()
            .filter_map(|k| m.message.header(k))
            .map(|v| String::from_utf8_lossy(trim(v)).into_owned())
            .filter(|v| !v.is_empty())
            .collect();
        if !self.has_room(&src) || !self.has_room(&dst) {
            self.overflow += 1;
            return;
        }
        let sender = self.endpoint(src, t);
        *sender.sent.entry(what.clone()).or_default() += 1;
        sender.user_agents.extend(software);
        *self.endpoint(dst, t).received.entry(what).or_default() += 1;

        let ev = m.event;
        match m.message.start {
            StartLine::Request {
                method: Method::Invite,
                ..
            } if ev.to_tag().is_empty() && self.first_sight(ev.call_id(), ev.from_tag()) => {
                self.endpoint(src, t).calls += 1;
                self.endpoint(dst, t).calls += 1;
            }
            StartLine::Request {
                method: Method::Register,
                ..
            } => {
                let aor = ev.field(Field::ToUri).to_owned();
                let requested = contact_expires(m).or_else(|| expires_header(m));
                if self.pending.len() >= MAX_REMEMBERED {
                    // Unanswered REGISTERs: forget them rather than grow.
                    self.pending.clear();
                }
                self.pending.insert(
                    (ev.call_id().to_owned(), ev.cseq.number),
                    (src, aor, requested),
                );
            }
            StartLine::Response { code, .. }
                if ev.cseq.method == Method::Register && code >= 200 =>
            {
                let Some((registrant, aor, requested)) = self
                    .pending
                    .remove(&(ev.call_id().to_owned(), ev.cseq.number))
                else {
                    return;
                };
                if !(200..300).contains(&code) {
                    return;
                }
                let granted = contact_expires(m)
                    .or_else(|| expires_header(m))
                    .or(requested)
                    .unwrap_or(DEFAULT_EXPIRES);
                let endpoint = self.endpoint(registrant, t);
                if granted == 0 {
                    endpoint.registrations.remove(&aor);
                } else {
                    endpoint
                        .registrations
                        .insert(aor, Timestamp(t.0 + i64::from(granted) * 1_000_000));
                }
            }
            _ => {}
        }
    }

    /// The endpoints, by address, port and transport.
    pub fn into_endpoints(self) -> Vec<Endpoint> {
        let mut list: Vec<Endpoint> = self.endpoints.into_values().collect();
        list.sort_by_key(|e| (e.address, e.port, e.transport.as_str()));
        list
    }

    fn has_room(&self, key: &Key) -> bool {
        self.endpoints.len() < MAX_ENDPOINTS || self.endpoints.contains_key(key)
    }

    /// True the first time a dialog-forming INVITE is seen (not for its retransmissions).
    fn first_sight(&mut self, call_id: &str, from_tag: &str) -> bool {
        let h = self.hasher.hash_one((call_id, from_tag));
        if self.invites.len() >= MAX_REMEMBERED {
            self.invites.clear();
        }
        self.invites.insert(h)
    }

    fn endpoint(&mut self, key: Key, t: Timestamp) -> &mut Endpoint {
        let e = self.endpoints.entry(key).or_insert_with(|| Endpoint {
            address: key.0,
            port: key.1,
            transport: key.2,
            user_agents: BTreeSet::new(),
            registrations: BTreeMap::new(),
            sent: BTreeMap::new(),
            received: BTreeMap::new(),
            calls: 0,
            first_seen: t,
            last_seen: t,
        });
        e.first_seen = e.first_seen.min(t);
        e.last_seen = e.last_seen.max(t);
        e
    }
}

/// The largest `expires` parameter among the Contacts (one binding is what a phone makes).
fn contact_expires(m: &SeenMessage<'_, '_, '_>) -> Option<u32> {
    m.message
        .headers_of(HeaderKind::Contact)
        .flat_map(split_values)
        .filter_map(|contact| {
            // Parameters after the URI, outside any <...>.
            let params = match contact.iter().rposition(|&b| b == b'>') {
                Some(end) => &contact[end + 1..],
                None => contact,
            };
            param(params, b"expires").and_then(|v| parse_u32(trim(v), 10))
        })
        .max()
}

fn expires_header(m: &SeenMessage<'_, '_, '_>) -> Option<u32> {
    m.message
        .header_named(b"Expires")
        .and_then(|v| parse_u32(trim(v), 10))
}

/// The endpoints as an aligned table.
pub fn table(endpoints: &[Endpoint]) -> String {
    let counts = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, n)| format!("{k}×{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .map(|e| {
            let endpoint = match e.address {
                IpAddr::V6(a) => format!("[{a}]:{}/{}", e.port, e.transport),
                IpAddr::V4(a) => format!("{a}:{}/{}", e.port, e.transport),
            };
            let aors = e
                .registrations
                .iter()
                .map(|(aor, until)| format!("{aor} until {}", until.to_clock()))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                endpoint,
                e.user_agents.iter().cloned().collect::<Vec<_>>().join(", "),
                aors,
                counts(&e.sent),
                counts(&e.received),
                e.calls.to_string(),
                e.first_seen.to_clock(),
                e.last_seen.to_clock(),
            ]
        })
        .collect();
    let header = [
        "ENDPOINT",
        "USER AGENT",
        "REGISTERED",
        "SENT",
        "RECEIVED",
        "CALLS",
        "FIRST SEEN",
        "LAST SEEN",
    ];
    crate::sink::aligned::aligned(&header, &rows, usize::MAX)
}
