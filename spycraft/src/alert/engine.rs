// SPDX-License-Identifier: AGPL-3.0-or-later
//! The rules applied to the messages and records of a run, in capture order, on the
//! recording thread: the same capture raises the same alerts live and from a file.

use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};

use hashbrown::HashMap;

use super::episodes::{Episodes, Fired, Measure, Parties, Subject};
use super::rules::{RuleKind, Rules};
use super::{Alert, SipContext};
use crate::call::CallRecord;
use crate::packet::{Timestamp, Transport};
use crate::sip::{uri_user, Field, Method, SipEvent, SipKind};

/// Episodes followed at once, across all rules (about 150 bytes each).
pub const EPISODES: usize = 65_536;

/// Calls followed at once for the per-account call rules.
pub const OPEN_CALLS: usize = 65_536;

/// What the engine has done, for the summary and `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertCounts {
    /// Alerts raised per rule, in [`RuleKind::ALL`] order.
    pub raised: [u64; RuleKind::ALL.len()],
    /// Offenders or calls not followed because the tables were full.
    pub overflow: u64,
}

/// The calls of each account in progress, for `concurrent_calls`.
#[derive(Debug, Default)]
struct OpenCalls {
    /// Call (Call-ID and From tag) → account.
    calls: HashMap<u64, u64, foldhash::fast::FixedState>,
    /// Account → calls in progress.
    per_account: HashMap<u64, u64, foldhash::fast::FixedState>,
}

/// Applies the rules to each message and record it is shown; the alerts go to `out`.
#[derive(Debug)]
pub struct AlertEngine {
    rules: Rules,
    episodes: Episodes,
    open: OpenCalls,
    open_overflow: u64,
    guessing: SourceBits,
    scanners: Scanners,
    /// The latest capture time seen.
    now: Timestamp,
    raised: [u64; RuleKind::ALL.len()],
}

impl AlertEngine {
    /// An engine applying `rules`.
    pub fn new(rules: Rules) -> Self {
        Self {
            scanners: Scanners::new(&rules.get(RuleKind::Scanner).patterns),
            rules,
            episodes: Episodes::new(EPISODES),
            open: OpenCalls::default(),
            open_overflow: 0,
            guessing: SourceBits::default(),
            now: Timestamp::MIN,
            raised: [0; RuleKind::ALL.len()],
        }
    }

    /// What has been raised and overflowed so far.
    pub fn counts(&self) -> AlertCounts {
        AlertCounts {
            raised: self.raised,
            overflow: self.episodes.overflow + self.open_overflow,
        }
    }

    /// Applies the rules to one message.
    pub fn event(&mut self, event: &SipEvent, out: &mut Vec<Alert>) {
        self.now = self.now.max(event.meta.time);
        match event.kind {
            SipKind::Request(method) => self.request(event, method, out),
            SipKind::Response(code) if code >= 200 => self.final_response(event, code, out),
            SipKind::Response(_) => {}
        }
    }

    /// Applies the rules to a message from `from` that was not SIP.
    pub fn malformed(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        time: Timestamp,
        transport: Transport,
        out: &mut Vec<Alert>,
    ) {
        self.now = self.now.max(time);
        let Some(rule) = self.rules.enabled(RuleKind::Malformed) else {
            return;
        };
        let subject = Subject {
            rule: RuleKind::Malformed,
            who: address(from.ip()),
            user: 0,
        };
        let parties = Parties {
            offender: from,
            target: to,
        };
        if let Some(fired) = self
            .episodes
            .add(rule, subject, time, Measure::Count, parties)
        {
            self.raise(RuleKind::Malformed, fired, None, transport, out);
        }
    }

    /// Applies the rules to a finished call.
    pub fn record(&mut self, record: &CallRecord, out: &mut Vec<Alert>) {
        let call = call_hash(&record.call_id, &record.from_tag);
        if let Some(account) = self.open.calls.remove(&call) {
            if let Some(n) = self.open.per_account.get_mut(&account) {
                *n -= 1;
                if *n == 0 {
                    self.open.per_account.remove(&account);
                }
            }
        }
        let Some(rule) = self.rules.enabled(RuleKind::LongCall) else {
            return;
        };
        let seconds = record.billable_ms.unwrap_or(0) / 1000;
        let Some(account) = record.from_user.as_deref() else {
            return;
        };
        if seconds >= u64::from(rule.threshold) {
            let subject = Subject {
                rule: RuleKind::LongCall,
                who: u128::from(hash(account)),
                user: 0,
            };
            let parties = Parties {
                offender: SocketAddr::new(record.caller_ip, record.caller_port),
                target: SocketAddr::new(record.callee_ip, record.callee_port),
            };
            let rule = rule.clone();
            if let Some(fired) =
                self.episodes
                    .add(&rule, subject, self.now, Measure::Level(seconds), parties)
            {
                let sip = SipContext {
                    method: Method::Invite.as_str().to_owned(),
                    call_id: record.call_id.clone(),
                    user_agent: record.user_agent.clone().unwrap_or_default(),
                    from_user: account.to_owned(),
                    to_user: record.to_user.clone().unwrap_or_default(),
                };
                self.raise(RuleKind::LongCall, fired, Some(sip), record.transport, out);
            }
        }
    }

    /// The summaries owed at the end of a run: attacks still going on when it ended.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        let owed: Vec<(Subject, Fired)> = self.episodes.owed().collect();
        for (subject, fired) in owed {
            self.raise(subject.rule, fired, None, Transport::Udp, out);
        }
    }

    fn request(&mut self, event: &SipEvent, method: Method, out: &mut Vec<Alert>) {
        let parties = Parties {
            offender: event.meta.src,
            target: event.meta.dst,
        };
        let source = address(event.meta.src.ip());
        let scanner = self.rules.enabled(RuleKind::Scanner).is_some()
            && self.scanners.matches(event.field(Field::Software));
        if scanner {
            self.count(
                RuleKind::Scanner,
                source,
                Measure::Count,
                event,
                parties,
                out,
            );
        }
        let flood = match method {
            Method::Register => Some(RuleKind::RegisterFlood),
            Method::Invite => Some(RuleKind::InviteFlood),
            Method::Options => Some(RuleKind::OptionsFlood),
            _ => None,
        };
        if let Some(flood) = flood {
            self.count(flood, source, Measure::Count, event, parties, out);
        }
        let per_account = [
            RuleKind::ConcurrentCalls,
            RuleKind::CallsPerMinute,
            RuleKind::PremiumCalls,
        ];
        let counts_calls = per_account.iter().any(|k| self.rules.enabled(*k).is_some());
        if counts_calls && method == Method::Invite && event.to_tag().is_empty() {
            self.new_call(event, parties, out);
        }
    }

    /// An initial INVITE: a call of its From user's account, counted once per dialog.
    fn new_call(&mut self, event: &SipEvent, parties: Parties, out: &mut Vec<Alert>) {
        let Some(account) = user_of(event.field(Field::FromUri)) else {
            return;
        };
        let account = hash(account);
        let call = call_hash(event.call_id(), event.from_tag());
        if self.open.calls.contains_key(&call) {
            return; // A retransmission, or a new CSeq after a challenge.
        }
        if self.open.calls.len() >= OPEN_CALLS {
            self.open_overflow += 1;
            return;
        }
        self.open.calls.insert(call, account);
        let level = self.open.per_account.entry(account).or_insert(0);
        *level += 1;
        let level = *level;
        let who = u128::from(account);
        // Below the limit there is nothing to follow: the episode starts at the limit.
        if level >= u64::from(self.rules.get(RuleKind::ConcurrentCalls).threshold) {
            self.count(
                RuleKind::ConcurrentCalls,
                who,
                Measure::Level(level),
                event,
                parties,
                out,
            );
        }
        self.count(
            RuleKind::CallsPerMinute,
            who,
            Measure::Count,
            event,
            parties,
            out,
        );
        let dialled = user_of(event.field(Field::RequestUri))
            .or_else(|| user_of(event.field(Field::ToUri)))
            .unwrap_or_default();
        let premium = &self.rules.get(RuleKind::PremiumCalls).patterns;
        if premium
            .iter()
            .any(|p| starts_with_ignoring_case(dialled, p))
        {
            self.count(
                RuleKind::PremiumCalls,
                who,
                Measure::Count,
                event,
                parties,
                out,
            );
        }
    }

    fn final_response(&mut self, event: &SipEvent, code: u16, out: &mut Vec<Alert>) {
        // A response goes back to whoever asked: that is the party to watch.
        let parties = Parties {
            offender: event.meta.dst,
            target: event.meta.src,
        };
        let source = address(event.meta.dst.ip());
        let auth_failure = matches!(code, 401 | 403 | 407);
        // Challenges are not counted: an office behind one address registering fifty
        // phones at once gets fifty of them, each followed by a 200.
        if matches!(code, 403 | 404 | 484 | 604) {
            let user = hash(user_of(event.field(Field::ToUri)).unwrap_or_default());
            self.count(
                RuleKind::Enumeration,
                source,
                Measure::Distinct(user),
                event,
                parties,
                out,
            );
        }
        if !auth_failure && !self.guessing.may_hold(source) {
            return;
        }
        let user = hash(user_of(event.field(Field::FromUri)).unwrap_or_default());
        let guessing = Subject {
            rule: RuleKind::BruteForce,
            who: source,
            user,
        };
        if !auth_failure {
            // Any other final answer means the credentials (if any) were good.
            self.episodes.end(&guessing);
            return;
        }
        self.guessing.add(source);
        self.count_user(guessing, Measure::Count, event, parties, out);
        // Failing twice in a row (a challenge, then credentials refused) is an attempt.
        if self.episodes.count(&guessing) == 2 {
            self.count(
                RuleKind::Spraying,
                source,
                Measure::Distinct(user),
                event,
                parties,
                out,
            );
        }
    }

    /// Counts an event for a rule of the offender `who`, raising what fires.
    fn count(
        &mut self,
        kind: RuleKind,
        who: u128,
        measure: Measure,
        event: &SipEvent,
        parties: Parties,
        out: &mut Vec<Alert>,
    ) {
        let subject = Subject {
            rule: kind,
            who,
            user: 0,
        };
        self.count_user(subject, measure, event, parties, out);
    }

    fn count_user(
        &mut self,
        subject: Subject,
        measure: Measure,
        event: &SipEvent,
        parties: Parties,
        out: &mut Vec<Alert>,
    ) {
        let Some(rule) = self.rules.enabled(subject.rule) else {
            return;
        };
        if let Some(fired) = self
            .episodes
            .add(rule, subject, event.meta.time, measure, parties)
        {
            let sip = SipContext::of(event);
            self.raise(subject.rule, fired, Some(sip), event.meta.transport, out);
        }
    }

    fn raise(
        &mut self,
        kind: RuleKind,
        fired: Fired,
        sip: Option<SipContext>,
        transport: Transport,
        out: &mut Vec<Alert>,
    ) {
        let rule = self.rules.get(kind);
        self.raised[kind as usize] += 1;
        out.push(Alert {
            rule: kind,
            severity: rule.severity,
            at: fired.last_seen,
            offender: fired.parties.offender,
            target: fired.parties.target,
            transport,
            count: fired.count,
            window_secs: rule.window_secs,
            first_seen: fired.first_seen,
            last_seen: fired.last_seen,
            repeat: fired.repeat,
            sip,
        });
    }
}

impl SipContext {
    fn of(event: &SipEvent) -> Self {
        let method = match event.kind {
            SipKind::Request(method) => method,
            SipKind::Response(_) => event.cseq.method,
        };
        Self {
            method: method.as_str().to_owned(),
            call_id: event.call_id().to_owned(),
            user_agent: event.field(Field::Software).to_owned(),
            from_user: user_of(event.field(Field::FromUri))
                .unwrap_or_default()
                .to_owned(),
            to_user: user_of(event.field(Field::ToUri))
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// An address as one number, IPv4 mapped into IPv6.
fn address(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A hash for the tables here (kept in memory only, so not FNV: faster, and fixed-seeded
/// so runs agree).
fn hash(text: &str) -> u64 {
    foldhash::fast::FixedState::default().hash_one(text)
}

fn call_hash(call_id: &str, from_tag: &str) -> u64 {
    foldhash::fast::FixedState::default().hash_one((call_id, from_tag))
}

/// Sources that may have a password-guessing episode: a bit per hash bucket, set when one
/// starts, so the final answers of everyday calls skip looking for one. Bits stay set
/// (a stale bit only costs a look).
#[derive(Debug)]
struct SourceBits(Box<[u64; 1024]>);

impl Default for SourceBits {
    fn default() -> Self {
        Self(Box::new([0; 1024]))
    }
}

impl SourceBits {
    fn slot(source: u128) -> (usize, u64) {
        let h = foldhash::fast::FixedState::default().hash_one(source);
        (((h >> 6) & 1023) as usize, 1 << (h & 63))
    }

    fn add(&mut self, source: u128) {
        let (word, bit) = Self::slot(source);
        self.0[word] |= bit;
    }

    fn may_hold(&self, source: u128) -> bool {
        let (word, bit) = Self::slot(source);
        self.0[word] & bit != 0
    }
}

fn user_of(uri: &str) -> Option<&str> {
    uri_user(uri.as_bytes())
        .and_then(|u| std::str::from_utf8(u).ok())
        .filter(|u| !u.is_empty())
}

/// The scanner rule's patterns, each searched for with memchr's SIMD substring search in
/// a lowercased copy of the User-Agent (a buffer kept, not allocated per message).
#[derive(Debug)]
struct Scanners {
    finders: Vec<memchr::memmem::Finder<'static>>,
    lowered: Vec<u8>,
}

impl Scanners {
    fn new(patterns: &[String]) -> Self {
        Self {
            finders: patterns
                .iter()
                .map(|p| memchr::memmem::Finder::new(p.as_bytes()).into_owned())
                .collect(),
            lowered: Vec::new(),
        }
    }

    fn matches(&mut self, software: &str) -> bool {
        if software.is_empty() {
            return false;
        }
        self.lowered.clear();
        self.lowered
            .extend(software.bytes().map(|b| b.to_ascii_lowercase()));
        self.finders.iter().any(|f| f.find(&self.lowered).is_some())
    }
}

fn starts_with_ignoring_case(text: &str, lowercase: &str) -> bool {
    text.len() >= lowercase.len()
        && text.as_bytes()[..lowercase.len()].eq_ignore_ascii_case(lowercase.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::PacketInfo;
    use crate::sip::{parse_datagram, EMPTY_HEADER};

    const SERVER: &str = "198.51.100.1:5060";

    /// A message from `from` to `to` at `ms`: a request (`REGISTER`) or a response (`401`)
    /// to a request of `method`, From and To `user`.
    fn message(ms: i64, from: &str, to: &str, start: &str, method: &str, user: &str) -> SipEvent {
        message_with(ms, from, to, start, method, user, user, "")
    }

    #[allow(clippy::too_many_arguments)]
    fn message_with(
        ms: i64,
        from: &str,
        to: &str,
        start: &str,
        method: &str,
        from_user: &str,
        to_user: &str,
        extra: &str,
    ) -> SipEvent {
        let request = !start.starts_with(|c: char| c.is_ascii_digit());
        let start_line = if request {
            format!("{start} sip:{to_user}@example.com SIP/2.0")
        } else {
            format!("SIP/2.0 {start} Whatever")
        };
        let raw = format!(
            "{start_line}\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK{ms}\r\n\
             From: <sip:{from_user}@example.com>;tag=f{ms}\r\nTo: <sip:{to_user}@example.com>\r\n\
             Call-ID: c{ms}-{from_user}-{to_user}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        let mut headers = [EMPTY_HEADER; 16];
        let msg = parse_datagram(raw.as_bytes(), &mut headers).expect("parses");
        let meta = PacketInfo {
            time: Timestamp(1_700_000_000_000_000 + ms * 1000),
            src: from.parse().expect("address"),
            dst: to.parse().expect("address"),
            transport: Transport::Udp,
            vlan: None,
        };
        SipEvent::from_message(meta, &msg, &[]).expect("an event")
    }

    fn fired(engine: &mut AlertEngine, events: &[SipEvent]) -> Vec<(RuleKind, String, u64)> {
        let mut out = Vec::new();
        for e in events {
            engine.event(e, &mut out);
        }
        out.iter()
            .map(|a| (a.rule, a.offender.ip().to_string(), a.count))
            .collect()
    }

    #[test]
    fn fifty_phones_registering_behind_one_address_raise_nothing() {
        let office = "203.0.113.7:5060";
        let mut events = Vec::new();
        for n in 0..50 {
            let user = format!("{}", 200 + n);
            let t = i64::from(n) * 100;
            events.push(message(t, office, SERVER, "REGISTER", "REGISTER", &user));
            events.push(message(t + 1, SERVER, office, "401", "REGISTER", &user));
            events.push(message(
                t + 2,
                office,
                SERVER,
                "REGISTER",
                "REGISTER",
                &user,
            ));
            events.push(message(t + 3, SERVER, office, "200", "REGISTER", &user));
        }
        let mut engine = AlertEngine::new(Rules::default());
        assert_eq!(fired(&mut engine, &events), []);
    }

    #[test]
    fn guessing_one_password_and_spraying_many_are_told_apart() {
        let guesser = "192.0.2.66:5060";
        let mut events = Vec::new();
        // One user, a challenge and a refusal per guess: the tenth failure fires.
        for n in 0..6 {
            events.push(message(n * 10, SERVER, guesser, "401", "REGISTER", "100"));
            events.push(message(
                n * 10 + 5,
                SERVER,
                guesser,
                "403",
                "REGISTER",
                "100",
            ));
        }
        let mut engine = AlertEngine::new(Rules::default());
        let got = fired(&mut engine, &events);
        // The 403s also count toward enumeration, but one user is not many.
        assert_eq!(got, [(RuleKind::BruteForce, "192.0.2.66".into(), 10)]);

        // A success ends the run of failures.
        let mut events = Vec::new();
        for n in 0..20 {
            let code = if n == 8 { "200" } else { "401" };
            events.push(message(n * 10, SERVER, guesser, code, "REGISTER", "100"));
        }
        let mut engine = AlertEngine::new(Rules::default());
        assert_eq!(
            fired(&mut engine, &events),
            [(RuleKind::BruteForce, "192.0.2.66".into(), 10)],
            "fires at the tenth failure after the success, not before"
        );

        // One guess each (challenge, refusal) at five users: spraying.
        let mut events = Vec::new();
        for n in 0..5 {
            let user = format!("{}", 300 + n);
            events.push(message(n * 10, SERVER, guesser, "401", "REGISTER", &user));
            events.push(message(
                n * 10 + 5,
                SERVER,
                guesser,
                "401",
                "REGISTER",
                &user,
            ));
        }
        let mut engine = AlertEngine::new(Rules::default());
        assert_eq!(
            fired(&mut engine, &events),
            [(RuleKind::Spraying, "192.0.2.66".into(), 5)]
        );
    }

    #[test]
    fn challenges_to_calls_are_not_enumeration_but_unknown_numbers_are() {
        let pbx = "192.0.2.10:5060";
        let mut events = Vec::new();
        for n in 0..40 {
            let number = format!("5550{n:03}");
            events.push(message_with(
                n * 10,
                SERVER,
                pbx,
                "407",
                "INVITE",
                "pbx",
                &number,
                "",
            ));
            // The call with credentials is answered, or busy: either way they were good.
            let code = if n % 2 == 0 { "200" } else { "486" };
            events.push(message_with(
                n * 10 + 5,
                SERVER,
                pbx,
                code,
                "INVITE",
                "pbx",
                &number,
                "",
            ));
        }
        let mut engine = AlertEngine::new(Rules::default());
        assert_eq!(fired(&mut engine, &events), []);
        let mut events = Vec::new();
        for n in 0..40 {
            let number = format!("5550{n:03}");
            events.push(message_with(
                n * 10,
                SERVER,
                pbx,
                "404",
                "INVITE",
                "pbx",
                &number,
                "",
            ));
        }
        assert_eq!(
            fired(&mut engine, &events),
            [(RuleKind::Enumeration, "192.0.2.10".into(), 20)]
        );
    }

    #[test]
    fn scanners_are_known_by_their_user_agent_and_alerts_are_rate_limited() {
        let scanner = "192.0.2.99:5070";
        let events: Vec<SipEvent> = (0..100)
            .map(|n| {
                message_with(
                    n * 100,
                    scanner,
                    SERVER,
                    "OPTIONS",
                    "OPTIONS",
                    "100",
                    "100",
                    "User-Agent: Friendly-Scanner\r\n",
                )
            })
            .collect();
        let mut engine = AlertEngine::new(Rules::default());
        let got = fired(&mut engine, &events);
        assert_eq!(got, [(RuleKind::Scanner, "192.0.2.99".into(), 1)]);
        let mut out = Vec::new();
        engine.finish(&mut out);
        assert_eq!(out.len(), 1, "one summary at the end");
        assert_eq!((out[0].count, out[0].repeat), (99, true));
        assert_eq!(engine.counts().raised[RuleKind::Scanner as usize], 2);
    }

    #[test]
    fn an_account_calling_premium_numbers_and_many_at_once_is_flagged() {
        let pbx = "192.0.2.10:5060";
        let invite =
            |n: i64, to: &str| message_with(n, pbx, SERVER, "INVITE", "INVITE", "acct7", to, "");
        let premium: Vec<SipEvent> = (0..12)
            .map(|n| invite(n, &format!("00882{n:04}")))
            .collect();
        let mut engine = AlertEngine::new(Rules::default());
        assert_eq!(
            fired(&mut engine, &premium),
            [(RuleKind::PremiumCalls, "192.0.2.10".into(), 10)]
        );
        // A retransmitted INVITE is the same call.
        assert_eq!(fired(&mut engine, &premium[..1]), []);
        let domestic: Vec<SipEvent> = (100..130)
            .map(|n| invite(n, &format!("5550{n:03}")))
            .collect();
        let got = fired(&mut engine, &domestic);
        assert_eq!(
            got,
            [(RuleKind::ConcurrentCalls, "192.0.2.10".into(), 40)],
            "12 + 28 calls up at once"
        );
    }
}
