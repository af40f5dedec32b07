// SPDX-License-Identifier: AGPL-3.0-or-later
//! The state machine of one call leg: a dialog-forming INVITE transaction from its first INVITE
//! to its BYE (or rejection, cancellation, timeout), with challenge retries folded in.

use sha1::{Digest, Sha1};
use std::net::SocketAddr;

use super::record::{
    CallRecord, CaptureIssue, Direction, Disposition, EndReason, EndedBy, Party, Timestamp,
};
use super::text::{LegField, LegText};
use super::timers::Timers;
use crate::decode::Transport;
use crate::sip::{uri_user, Field, Media, Method, SipEvent, SipKind};

/// Where the leg stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// INVITE sent, nothing heard back.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// Last final response was 401/407: a retry with credentials may follow.
    Challenged,
    /// A 2xx arrived: the dialog is up.
    Answered,
    /// Ended (BYE, rejection, cancellation); kept a little longer to absorb retransmissions.
    Ended,
}

/// Why a leg is being turned into a record now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Its deadline passed (linger after the end, or a timeout).
    Expired,
    /// The input ended or the sensor is stopping.
    InputEnded,
    /// The live-dialog cap was reached and this was the oldest leg.
    Evicted,
}

/// Seconds of a timer as capture-time microseconds.
fn us(secs: u32) -> i64 {
    i64::from(secs) * 1_000_000
}

/// Capture issues as a bit set until the record is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Issues(u16);

impl Issues {
    fn add(&mut self, issue: CaptureIssue) {
        self.0 |= 1 << (issue as u16);
    }

    fn has(self, issue: CaptureIssue) -> bool {
        self.0 & (1 << (issue as u16)) != 0
    }

    fn iter(self) -> impl Iterator<Item = CaptureIssue> {
        CaptureIssue::ALL
            .into_iter()
            .filter(move |&issue| self.0 & (1 << (issue as u16)) != 0)
    }
}

/// The dialogs a forked INVITE created (RFC 3261 §12.1.2, §13.2.2.4): one per To tag of its
/// responses. Kept apart (boxed) because only forked calls need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Forks {
    /// (hash of the To tag, last status on that dialog), in order of first response.
    dialogs: Vec<(u64, u16)>,
    /// The dialog whose status changed last.
    last: u64,
}

/// A call's part in transfers: the REFER it carried, or the transfer that made it. Boxed:
/// most calls have none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Transfers {
    refer: Option<Refer>,
    referred_by: Option<String>,
    from_call: Option<String>,
}

/// The REFER an answered call carried.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Refer {
    /// When it was first seen (a retransmission keeps this).
    at: Timestamp,
    sent_by: Party,
    /// Its Refer-To.
    to: String,
    /// The status in the last NOTIFY's sipfrag: how the transfer went.
    status: Option<u16>,
}

/// FNV-1a: a stable, cheap hash of a tag, so tags need not be stored.
fn tag_hash(tag: &str) -> u64 {
    crate::fnv::fnv1a(crate::fnv::START, tag.as_bytes())
}

/// At most this many dialogs per INVITE are told apart; more are counted as the last.
const MAX_FORKS: usize = 16;

/// A mid-dialog offer or refresh awaiting its final response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    cseq: u32,
    method: Method,
    media: Media,
    /// Sent by the caller; each party numbers its own requests.
    from_caller: bool,
}

/// What the leg has seen of a proxy: the same INVITE relayed between other addresses, and
/// which of its responses reached the caller. The record describes what the caller saw: a
/// response sent to the caller's address outranks one on a hop beyond the proxy, which only
/// stands in until the caller's arrives (a callee's 503 that the proxy relays as 500, RFC 3261
/// 16.7; a 408 the proxy gives after its own timer while it cancels the callee).
#[derive(Clone, Copy, Debug, Default)]
struct Hops {
    /// The INVITE was seen again between other addresses: the next hop through a proxy.
    relayed: bool,
    /// Ringing, the answer and the final status came from responses sent to the caller.
    ring_reached_caller: bool,
    answer_reached_caller: bool,
    final_reached_caller: bool,
    /// The first final status given beyond the caller's hop (to the proxy).
    downstream_final: Option<u16>,
}

/// One call leg in progress.
#[derive(Clone, Debug)]
pub(crate) struct Leg {
    /// Call-ID, tags, URIs, software and final reason, in one allocation.
    text: LegText,
    caller: SocketAddr,
    callee: SocketAddr,
    transport: Transport,
    vlan: Option<u16>,
    /// The capture agent id of the HEP agent that delivered the INVITE.
    agent_id: Option<u32>,

    phase: Phase,
    invite_cseq: u32,
    /// CSeq of the INVITE last challenged, so a retransmitted 401/407 is counted once.
    challenged_cseq: Option<u32>,
    invite_at: Timestamp,
    ring_at: Option<Timestamp>,
    answer_at: Option<Timestamp>,
    final_at: Option<Timestamp>,
    end_at: Option<Timestamp>,
    cancel_at: Option<Timestamp>,
    /// Time of the last message that keeps the leg's current phase alive.
    last_activity: Timestamp,
    final_status: Option<u16>,
    q850_cause: Option<u16>,
    ended_by: EndedBy,
    end_reason: Option<EndReason>,
    auth_challenges: u32,
    invite_retransmissions: u32,
    acked: bool,
    /// When the first BYE's final response arrived (RFC 6076 session disconnect delay).
    bye_answered_at: Option<Timestamp>,
    /// A re-INVITE or UPDATE in progress. Its offer and its session refresh take effect when
    /// its 2xx arrives; a failure (491 glare, 481, anything else) leaves the session as it was.
    pending: Option<Pending>,
    /// When the current hold began, and the holds before it (µs).
    held_since: Option<Timestamp>,
    held_us: i64,
    /// The session timer (RFC 4028): the interval the INVITE asked for, the interval in force,
    /// and when it was last started or refreshed.
    asked_interval: Option<u32>,
    session_interval: Option<u32>,
    session_refreshed_at: Timestamp,
    /// The last deadline given was the session's expiry, not the idle timeout.
    session_deadline: bool,
    /// The highest CSeq of each party's requests so far (the callee's from its first).
    caller_cseq: u32,
    callee_cseq: Option<u32>,
    /// The first dialog's To tag (hashed) and last status; once a second appears, every
    /// dialog is in `forks`.
    first_dialog: Option<(u64, u16)>,
    forks: Option<Box<Forks>>,
    transfers: Option<Box<Transfers>>,
    hops: Hops,
    issues: Issues,
}

/// Overwrites `to` with `from`, keeping its allocation.
fn put(to: &mut String, from: &str) {
    to.clear();
    to.push_str(from);
}

/// [`put`] for an optional field: its string is kept while the field stays present.
fn put_some(to: &mut Option<String>, from: Option<&str>) {
    match (to.as_mut(), from) {
        (Some(to), Some(from)) => put(to, from),
        (_, from) => *to = from.map(str::to_owned),
    }
}

/// The user part of `uri` (see [`uri_user`]) into `to`. It is cut out at ASCII delimiters,
/// so it is a piece of `uri`'s own text, taken as such without checking it again.
fn put_user(to: &mut Option<String>, uri: &str) {
    let user = uri_user(uri.as_bytes()).and_then(|user| {
        let start = user.as_ptr() as usize - uri.as_ptr() as usize;
        uri.get(start..start + user.len())
    });
    put_some(to, user);
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl Leg {
    /// Starts a leg from its first INVITE.
    pub(crate) fn start(ev: &SipEvent) -> Self {
        let collation = ev.field(Field::CollationId);
        let text = LegText::new(&[
            (LegField::CallId, ev.call_id()),
            (LegField::FromTag, ev.from_tag()),
            (
                LegField::CollationId,
                if collation == ev.call_id() {
                    ""
                } else {
                    collation
                },
            ),
            (LegField::FromUri, ev.field(Field::FromUri)),
            (LegField::ToUri, ev.field(Field::ToUri)),
            (LegField::RequestUri, ev.field(Field::RequestUri)),
            (
                LegField::PAssertedIdentity,
                ev.field(Field::PAssertedIdentity),
            ),
            (LegField::Diversion, ev.field(Field::Diversion)),
            (LegField::UserAgent, ev.field(Field::Software)),
            (LegField::AgentName, ev.field(Field::AgentName)),
        ]);
        Self {
            text,
            caller: ev.meta.src,
            callee: ev.meta.dst,
            transport: ev.meta.transport,
            vlan: ev.meta.vlan,
            agent_id: ev.agent_id,
            phase: Phase::Trying,
            invite_cseq: ev.cseq.number,
            challenged_cseq: None,
            invite_at: ev.meta.time,
            ring_at: None,
            answer_at: None,
            final_at: None,
            end_at: None,
            cancel_at: None,
            last_activity: ev.meta.time,
            final_status: None,
            q850_cause: None,
            ended_by: EndedBy::Unknown,
            end_reason: None,
            auth_challenges: 0,
            invite_retransmissions: 0,
            acked: false,
            bye_answered_at: None,
            pending: None,
            held_since: None,
            held_us: 0,
            asked_interval: ev.session_expires,
            session_interval: None,
            session_refreshed_at: ev.meta.time,
            session_deadline: false,
            caller_cseq: ev.cseq.number,
            callee_cseq: None,
            first_dialog: None,
            forks: None,
            transfers: {
                let referred_by = non_empty(ev.field(Field::ReferredBy));
                let from_call = non_empty(ev.field(Field::Replaces));
                (referred_by.is_some() || from_call.is_some()).then(|| {
                    Box::new(Transfers {
                        refer: None,
                        referred_by,
                        from_call,
                    })
                })
            },
            hops: Hops::default(),
            issues: Issues::default(),
        }
    }

    /// Whether this INVITE retries this challenged leg under a new From tag, as some B2BUAs
    /// do: same Call-ID, same caller and callee addresses.
    pub(crate) fn is_retagged_retry(&self, ev: &SipEvent) -> bool {
        self.phase == Phase::Challenged
            && ev.method() == Some(Method::Invite)
            && ev.to_tag().is_empty()
            && ev.call_id() == self.call_id()
            && (ev.meta.src, ev.meta.dst) == (self.caller, self.callee)
    }

    /// Takes the retry's From tag as the leg's, and starts its transaction.
    pub(crate) fn retag(&mut self, ev: &SipEvent) {
        self.text.set(LegField::FromTag, ev.from_tag());
        self.retry(ev, ev.meta.time);
    }

    /// Notes something that may make the record inaccurate.
    pub(crate) fn note(&mut self, issue: CaptureIssue) {
        self.issues.add(issue);
    }

    pub(crate) fn call_id(&self) -> &str {
        self.text.get(LegField::CallId)
    }

    #[allow(clippy::wrong_self_convention)] // SIP's From tag, not a conversion
    pub(crate) fn from_tag(&self) -> &str {
        self.text.get(LegField::FromTag)
    }

    pub(crate) fn invite_at(&self) -> Timestamp {
        self.invite_at
    }

    /// The leg as monitoring shows it while it lasts; `None` once it has ended.
    pub(crate) fn live_view(&self) -> Option<crate::call::LiveCall> {
        use crate::call::LiveState;
        let state = match self.phase {
            Phase::Trying => LiveState::Trying,
            Phase::Proceeding | Phase::Challenged => LiveState::Ringing,
            Phase::Answered if self.held_since.is_some() => LiveState::Held,
            Phase::Answered => LiveState::Answered,
            Phase::Ended => return None,
        };
        let user = |field| {
            let uri: &str = self.text.get(field);
            let user = uri_user(uri.as_bytes())?;
            std::str::from_utf8(user).ok().map(str::to_owned)
        };
        Some(crate::call::LiveCall {
            call_id: self.text.get(LegField::CallId).to_owned(),
            from_tag: self.text.get(LegField::FromTag).to_owned(),
            from_user: user(LegField::FromUri),
            to_user: user(LegField::ToUri),
            caller: self.caller,
            callee: self.callee,
            since: self.invite_at,
            answered_at: self.answer_at,
            state,
        })
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// A fresh INVITE (new CSeq, no To tag) on this Call-ID and From tag after the leg ended
    /// starts a new leg, unless the end invited exactly such a retry: a redirect (3xx) or
    /// 422 Session Interval Too Small.
    pub(crate) fn is_new_call(&self, ev: &SipEvent) -> bool {
        ev.method() == Some(Method::Invite)
            && ev.to_tag().is_empty()
            && ev.cseq.number != self.invite_cseq
            && self.phase == Phase::Ended
            && !self.final_status.is_some_and(is_retry_status)
    }

    /// A new initial INVITE of the same leg: the retry after a challenge (or after a challenge
    /// the capture missed), a redirect or a 422.
    fn is_retry(&self, ev: &SipEvent) -> bool {
        ev.to_tag().is_empty() && ev.cseq.number > self.invite_cseq && self.is_retry_phase()
    }

    /// Whether a new INVITE transaction would still belong to this leg.
    fn is_retry_phase(&self) -> bool {
        self.answer_at.is_none()
            && match self.phase {
                Phase::Trying | Phase::Proceeding | Phase::Challenged => true,
                Phase::Ended => self.final_status.is_some_and(is_retry_status),
                Phase::Answered => false,
            }
    }

    /// Applies one message of this leg's dialog.
    pub(crate) fn on_event(&mut self, ev: &SipEvent) {
        let ts = ev.meta.time;
        match ev.kind {
            SipKind::Request(method) => self.on_request(method, ev, ts),
            SipKind::Response(code) => self.on_response(code, ev, ts),
        }
    }

    fn on_request(&mut self, method: Method, ev: &SipEvent, ts: Timestamp) {
        let from_caller = ev.from_tag() == self.from_tag();
        if !self.in_this_dialog(ev, from_caller) {
            // Another fork's dialog: the caller ACKs and BYEs a second 2xx (RFC 3261
            // §13.2.2.4); none of it is this call's.
            return;
        }
        self.check_cseq(method, ev, from_caller);
        match method {
            // Each party numbers its own requests: only the caller's can repeat the INVITE.
            Method::Invite if from_caller && ev.cseq.number == self.invite_cseq => {
                // The same INVITE between other addresses is the next hop through a proxy,
                // not a retransmission.
                if (ev.meta.src, ev.meta.dst) == (self.caller, self.callee) {
                    self.invite_retransmissions += 1;
                } else {
                    self.hops.relayed = true;
                }
                if matches!(self.phase, Phase::Trying) {
                    self.last_activity = ts;
                }
            }
            Method::Invite if self.is_retry(ev) => self.retry(ev, ts),
            Method::Invite | Method::Update
                if self.phase == Phase::Answered && !ev.to_tag().is_empty() =>
            {
                self.last_activity = ts;
                let request = Pending {
                    cseq: ev.cseq.number,
                    method,
                    media: ev.media,
                    from_caller,
                };
                // A retransmission leaves the pending request as it is.
                if self
                    .pending
                    .is_none_or(|p| (p.cseq, p.from_caller) != (request.cseq, from_caller))
                {
                    self.pending = Some(request);
                }
            }
            Method::Refer if self.phase == Phase::Answered => {
                self.last_activity = ts;
                let to = ev.field(Field::ReferTo).to_owned();
                let transfers = self.transfers.get_or_insert_with(Box::default);
                // A retransmitted REFER keeps the first one's time.
                if transfers.refer.as_ref().is_none_or(|r| r.to != to) {
                    transfers.refer = Some(Refer {
                        at: ts,
                        sent_by: if from_caller {
                            Party::Caller
                        } else {
                            Party::Callee
                        },
                        to,
                        status: None,
                    });
                }
            }
            Method::Notify if self.phase == Phase::Answered && ev.sipfrag_status.is_some() => {
                self.last_activity = ts;
                if let Some(refer) = self.transfers.as_mut().and_then(|t| t.refer.as_mut()) {
                    refer.status = ev.sipfrag_status;
                }
            }
            Method::Invite
            | Method::Update
            | Method::Info
            | Method::Prack
            | Method::Refer
            | Method::Notify
            | Method::Message
            | Method::Options => {
                if self.phase == Phase::Answered {
                    self.last_activity = ts;
                }
            }
            Method::Ack => {
                if ev.cseq.number == self.invite_cseq && self.phase == Phase::Answered {
                    self.acked = true;
                    self.last_activity = ts;
                }
            }
            Method::Bye => {
                if self.phase != Phase::Ended {
                    self.end(
                        ts,
                        EndReason::Bye,
                        if from_caller {
                            EndedBy::Caller
                        } else {
                            EndedBy::Callee
                        },
                    );
                    if ev.q850_cause.is_some() {
                        self.q850_cause = ev.q850_cause;
                    }
                }
            }
            // Beyond a proxy, a CANCEL from elsewhere than the caller is the proxy's own (its
            // timer, another branch answered): the caller cancelled nothing.
            Method::Cancel if self.hops.relayed && ev.meta.src != self.caller => {}
            Method::Cancel => {
                if matches!(self.phase, Phase::Trying | Phase::Proceeding)
                    && self.cancel_at.is_none()
                {
                    self.cancel_at = Some(ts);
                    self.last_activity = ts;
                    if ev.q850_cause.is_some() {
                        self.q850_cause = ev.q850_cause;
                    }
                }
            }
            Method::Register | Method::Subscribe | Method::Publish | Method::Other => {}
        }
    }

    /// Whether an in-dialog message belongs to the dialog this record follows: once answered,
    /// the callee's tag is known, and a message of another fork's dialog carries another.
    fn in_this_dialog(&self, ev: &SipEvent, caller_side: bool) -> bool {
        let Some(dialog) = self.answer_at.and(self.text.non_empty(LegField::ToTag)) else {
            return true;
        };
        let remote = if caller_side {
            ev.to_tag()
        } else {
            ev.from_tag()
        };
        remote.is_empty() || remote == dialog
    }

    /// Counts the dialogs the INVITE created, one per To tag of its responses (100 Trying
    /// has none).
    fn note_dialog(&mut self, to_tag: &str, code: u16) {
        if to_tag.is_empty() {
            return;
        }
        let tag = tag_hash(to_tag);
        let first = self.first_dialog.get_or_insert((tag, code));
        if self.forks.is_none() && first.0 == tag {
            first.1 = code;
            return;
        }
        let first = *first;
        let forks = self.forks.get_or_insert_with(|| {
            Box::new(Forks {
                dialogs: vec![first],
                last: first.0,
            })
        });
        match forks.dialogs.iter().position(|(t, _)| *t == tag) {
            Some(i) => forks.dialogs[i].1 = code,
            None if forks.dialogs.len() < MAX_FORKS => forks.dialogs.push((tag, code)),
            None => {}
        }
        forks.last = tag;
    }

    /// Dialogs other than the record's, and the last status one of them had.
    fn other_dialogs(&self) -> (u32, Option<u16>) {
        let Some(forks) = &self.forks else {
            return (0, None);
        };
        let own = self.text.non_empty(LegField::ToTag).map(tag_hash);
        let others = || forks.dialogs.iter().filter(move |(t, _)| Some(*t) != own);
        // The last one heard from among the others, else the latest of them.
        let last = others()
            .find(|(t, _)| *t == forks.last)
            .or_else(|| others().next_back())
            .map(|(_, code)| *code);
        (others().count() as u32, last)
    }

    /// The target of the REFER this call carried, if any (for linking the call it causes).
    pub(crate) fn refer_target(&self) -> Option<&str> {
        self.transfers
            .as_ref()
            .and_then(|t| t.refer.as_ref())
            .map(|r| r.to.as_str())
    }

    /// Whether this call was asked for by a transfer (Referred-By) without naming the call
    /// it replaces; its Request-URI is then the REFER's target.
    pub(crate) fn awaits_transfer_link(&self) -> Option<&str> {
        let t = self.transfers.as_ref()?;
        (t.referred_by.is_some() && t.from_call.is_none())
            .then_some(self.text.get(LegField::RequestUri))
    }

    /// Links this call to the one whose REFER caused it.
    pub(crate) fn link_transfer(&mut self, call_id: &str) {
        if let Some(t) = self.transfers.as_mut() {
            t.from_call = Some(call_id.to_owned());
        }
    }

    /// Notes a party's CSeq skipping a number: a request the capture never saw. ACK and CANCEL
    /// reuse their INVITE's number; a retransmission repeats its own.
    fn check_cseq(&mut self, method: Method, ev: &SipEvent, from_caller: bool) {
        if matches!(method, Method::Ack | Method::Cancel) {
            return;
        }
        let n = ev.cseq.number;
        let last = if from_caller {
            Some(&mut self.caller_cseq)
        } else {
            self.callee_cseq.as_mut()
        };
        match last {
            Some(last) => {
                if n > last.saturating_add(1) {
                    self.issues.add(CaptureIssue::CseqGap);
                }
                *last = (*last).max(n);
            }
            None => self.callee_cseq = Some(n),
        }
    }

    /// Starts the next INVITE transaction of the same leg.
    fn retry(&mut self, ev: &SipEvent, ts: Timestamp) {
        self.invite_cseq = ev.cseq.number;
        self.phase = Phase::Trying;
        self.final_status = None;
        self.text.set(LegField::FinalReason, "");
        self.final_at = None;
        self.end_at = None;
        self.end_reason = None;
        self.ended_by = EndedBy::Unknown;
        self.last_activity = ts;
        if self.text.get(LegField::PAssertedIdentity).is_empty() {
            self.text.set(
                LegField::PAssertedIdentity,
                ev.field(Field::PAssertedIdentity),
            );
        }
    }

    fn on_response(&mut self, code: u16, ev: &SipEvent, ts: Timestamp) {
        // Responses carry their request's From: this one answers the caller's request or the
        // callee's, whose CSeq numbers are independent.
        let to_caller = ev.from_tag() == self.from_tag();
        if to_caller && ev.cseq.method == Method::Invite && ev.cseq.number == self.invite_cseq {
            self.note_dialog(ev.to_tag(), code);
        }
        let answers_invite = ev.cseq.method == Method::Invite && ev.cseq.number == self.invite_cseq;
        if !answers_invite && !self.in_this_dialog(ev, to_caller) {
            return;
        }
        // A response to a later INVITE of this leg whose request the capture lost.
        if to_caller
            && ev.cseq.method == Method::Invite
            && ev.cseq.number > self.invite_cseq
            && self.is_retry_phase()
        {
            self.retry(ev, ts);
        }
        match ev.cseq.method {
            Method::Invite if to_caller && ev.cseq.number == self.invite_cseq => {
                self.on_invite_response(code, ev, ts)
            }
            Method::Bye if code >= 200 => {
                self.bye_answered_at.get_or_insert(ts);
            }
            Method::Invite | Method::Update
                if code >= 200
                    && self.pending.is_some_and(|p| {
                        (p.cseq, p.method, p.from_caller)
                            == (ev.cseq.number, ev.cseq.method, to_caller)
                    }) =>
            {
                let offered = self.pending.take().map_or(Media::None, |p| p.media);
                if (200..300).contains(&code) && self.phase == Phase::Answered {
                    // The offer was in the request, or (an empty re-INVITE) in this 2xx.
                    self.apply_media(
                        if offered == Media::None {
                            ev.media
                        } else {
                            offered
                        },
                        ts,
                    );
                    self.refresh_session(ev, ts);
                }
                self.last_activity = ts;
            }
            _ => {
                if self.phase == Phase::Answered {
                    self.last_activity = ts;
                }
            }
        }
    }

    fn on_invite_response(&mut self, code: u16, ev: &SipEvent, ts: Timestamp) {
        if self.text.get(LegField::Server).is_empty() {
            self.text.set(LegField::Server, ev.field(Field::Software));
        }
        // Sent to the caller itself, rather than on a hop beyond a proxy.
        let reaches_caller = ev.meta.dst == self.caller;
        match code {
            100..=199 => {
                if matches!(self.phase, Phase::Trying | Phase::Proceeding) {
                    self.phase = Phase::Proceeding;
                    self.last_activity = ts;
                    let first_to_caller = reaches_caller && !self.hops.ring_reached_caller;
                    if code > 100 && (self.ring_at.is_none() || first_to_caller) {
                        self.ring_at = Some(ts);
                        self.hops.ring_reached_caller = reaches_caller;
                    }
                }
            }
            200..=299 => {
                let stand_in_ended = self.ended_on_stand_in();
                let first_to_caller = reaches_caller
                    && self.answer_at.is_some()
                    && !self.hops.answer_reached_caller
                    && self.phase == Phase::Answered;
                if (self.answer_at.is_none() && (self.phase != Phase::Ended || stand_in_ended))
                    || first_to_caller
                {
                    // Also after a CANCEL: the 2xx won the race, so the call was answered.
                    self.answer_at = Some(ts);
                    self.final_at = Some(ts);
                    self.phase = Phase::Answered;
                    self.end_at = None;
                    self.end_reason = None;
                    self.ended_by = EndedBy::Unknown;
                    self.last_activity = ts;
                    self.set_final(code, ev);
                    self.text.set(LegField::ToTag, ev.to_tag());
                    self.refresh_session(ev, ts);
                    self.hops.answer_reached_caller = reaches_caller;
                }
            }
            401 | 407 if self.answer_at.is_none() && self.phase != Phase::Ended => {
                if self.challenged_cseq != Some(ev.cseq.number) {
                    self.challenged_cseq = Some(ev.cseq.number);
                    self.auth_challenges += 1;
                }
                self.phase = Phase::Challenged;
                self.final_at = Some(ts);
                self.last_activity = ts;
                self.set_final(code, ev);
                self.text.set(LegField::ToTag, ev.to_tag());
            }
            _ => self.on_invite_rejection(code, ev, ts, reaches_caller),
        }
    }

    /// Ended by a final status given beyond a proxy, which stands in only until the caller's
    /// own arrives (a 2xx or a rejection sent to the caller replaces it).
    fn ended_on_stand_in(&self) -> bool {
        self.phase == Phase::Ended
            && self.answer_at.is_none()
            && self.hops.downstream_final.is_some()
            && !self.hops.final_reached_caller
    }

    /// A final status of 300 or more to the INVITE.
    fn on_invite_rejection(
        &mut self,
        code: u16,
        ev: &SipEvent,
        ts: Timestamp,
        reaches_caller: bool,
    ) {
        let open = matches!(self.phase, Phase::Trying | Phase::Proceeding);
        let replaces_stand_in = reaches_caller && self.ended_on_stand_in();
        let downstream_final = self.hops.downstream_final;
        if !reaches_caller {
            self.hops.downstream_final.get_or_insert(code);
        }
        if !(open || replaces_stand_in) || (!reaches_caller && self.hops.final_reached_caller) {
            return;
        }
        self.final_at = Some(ts);
        self.set_final(code, ev);
        self.text.set(LegField::ToTag, ev.to_tag());
        if ev.q850_cause.is_some() {
            self.q850_cause = ev.q850_cause;
        }
        self.hops.final_reached_caller = reaches_caller;
        // A proxy that gives up on a ringing callee tells the caller 408 and cancels the
        // callee (RFC 3261 16.8): a timeout, whoever else answers after.
        let proxy_timeout = code == 408
            && self.hops.relayed
            && reaches_caller
            && downstream_final.is_none_or(|c| c == 487);
        if code == 487 && self.cancel_at.is_some() {
            self.end(ts, EndReason::Cancel, EndedBy::Caller);
        } else if proxy_timeout {
            self.end(ts, EndReason::Timeout, EndedBy::Timeout);
        } else {
            self.end(ts, EndReason::Rejected, EndedBy::Callee);
        }
    }

    /// A hold starts with an offer that holds the media and ends with one that does not.
    fn apply_media(&mut self, media: Media, ts: Timestamp) {
        match (media, self.held_since) {
            (Media::Held, None) => self.held_since = Some(ts),
            (Media::Active, Some(since)) => {
                self.held_us += ts - since;
                self.held_since = None;
            }
            _ => {}
        }
    }

    /// A 2xx to an INVITE, re-INVITE or UPDATE (re)starts the session timer with the interval
    /// it carries, or else the one asked for or in force.
    fn refresh_session(&mut self, ev: &SipEvent, ts: Timestamp) {
        self.session_interval = ev
            .session_expires
            .or(self.session_interval)
            .or(self.asked_interval);
        self.session_refreshed_at = ts;
    }

    /// When the session expires without a refresh (RFC 4028 §10), if a timer runs.
    fn session_expiry(&self) -> Option<Timestamp> {
        self.session_interval
            .map(|secs| self.session_refreshed_at + i64::from(secs) * 1_000_000)
    }

    fn set_final(&mut self, code: u16, ev: &SipEvent) {
        self.final_status = Some(code);
        self.text
            .set(LegField::FinalReason, ev.field(Field::ReasonPhrase));
    }

    fn end(&mut self, ts: Timestamp, reason: EndReason, by: EndedBy) {
        if let Some(since) = self.held_since.take() {
            self.held_us += (ts - since).max(0);
        }
        self.phase = Phase::Ended;
        self.end_at = Some(ts);
        self.end_reason = Some(reason);
        self.ended_by = by;
        self.last_activity = ts;
    }

    /// Capture time after which the leg must be finished, and notes the missing ACK when its
    /// wait has passed.
    pub(crate) fn deadline(&mut self, now: Timestamp, t: &Timers) -> Timestamp {
        if let (Phase::Answered, Some(answer)) = (self.phase, self.answer_at) {
            if !self.acked && now > answer + us(t.transaction_secs) {
                self.issues.add(CaptureIssue::MissingAck);
            }
        }
        let (at, by_session) = self.expiry(t);
        self.session_deadline = by_session;
        at
    }

    /// When the tracker must next look at the leg: its deadline, or sooner, when the wait for
    /// the ACK of its answer ends first (the moment [`Leg::deadline`] would note it missing).
    pub(crate) fn next_check(&self, t: &Timers) -> Timestamp {
        let (at, _) = self.expiry(t);
        match (self.phase, self.answer_at) {
            (Phase::Answered, Some(answer))
                if !self.acked && !self.issues.has(CaptureIssue::MissingAck) =>
            {
                at.min(answer + us(t.transaction_secs) + 1)
            }
            _ => at,
        }
    }

    /// The leg's deadline as its state stands, and whether the session timer sets it.
    fn expiry(&self, t: &Timers) -> (Timestamp, bool) {
        let after = |secs: u32| self.last_activity + us(secs);
        match self.phase {
            Phase::Trying => (after(t.transaction_secs), false),
            Phase::Challenged => (after(t.challenge_secs), false),
            Phase::Proceeding if self.cancel_at.is_some() => (after(t.transaction_secs), false),
            Phase::Proceeding => (after(t.ringing_secs), false),
            Phase::Answered => {
                let idle = after(t.call_idle_secs);
                match self.session_expiry().filter(|&e| e < idle) {
                    Some(expiry) => (expiry, true),
                    None => (idle, false),
                }
            }
            Phase::Ended => (after(t.linger_secs), false),
        }
    }

    /// Turns the leg into its record, written over `record` (whose allocations are reused:
    /// a tracker writes hundreds of thousands).
    pub(crate) fn finish(
        &mut self,
        why: Finish,
        node: &str,
        direction: Direction,
        record: &mut CallRecord,
    ) {
        // An ended leg evicted while it lingers loses nothing: its record is complete.
        if why == Finish::Evicted && self.phase != Phase::Ended {
            self.issues.add(CaptureIssue::Evicted);
        }
        match (self.phase, why) {
            (Phase::Ended, _) => {
                if self.end_reason == Some(EndReason::Bye)
                    && self.bye_answered_at.is_none()
                    && why == Finish::Expired
                {
                    self.issues.add(CaptureIssue::ByeWithoutResponse);
                }
            }
            // A challenge nobody retried is the call's final answer.
            (Phase::Challenged, _) => {
                self.end_at = self.final_at;
                self.end_reason = Some(EndReason::Rejected);
                self.ended_by = EndedBy::Callee;
            }
            (Phase::Proceeding, Finish::Expired) if self.cancel_at.is_some() => {
                self.end_at = self.cancel_at;
                self.end_reason = Some(EndReason::Cancel);
                self.ended_by = EndedBy::Caller;
            }
            // The session timer ran out with no refresh: the session ends at its expiry
            // (RFC 4028 §10), which is the protocol working, not a capture gap.
            (Phase::Answered, Finish::Expired) if self.session_deadline => {
                let expiry = self.session_expiry().unwrap_or(self.last_activity);
                self.end(expiry, EndReason::Timeout, EndedBy::Timeout);
            }
            (phase, Finish::Expired | Finish::Evicted) => {
                self.end_at = Some(self.last_activity);
                self.end_reason = Some(EndReason::Timeout);
                self.ended_by = EndedBy::Timeout;
                match phase {
                    Phase::Answered => self.issues.add(CaptureIssue::MissingBye),
                    Phase::Trying if why == Finish::Expired => {
                        self.issues.add(CaptureIssue::NoResponse)
                    }
                    _ => {}
                }
            }
            (_, Finish::InputEnded) => {
                self.end_at = None;
                self.end_reason = Some(EndReason::Incomplete);
                self.ended_by = EndedBy::Unknown;
                self.issues.add(CaptureIssue::CaptureEnded);
            }
        }
        self.record(node, direction, record)
    }

    fn disposition(&self) -> Disposition {
        if self.answer_at.is_some() {
            Disposition::Answered
        } else if self.cancel_at.is_some() && self.final_status.is_none_or(|c| c == 487) {
            Disposition::Cancelled
        } else {
            self.final_status.map_or(Disposition::Failed, |c| {
                Disposition::of_final_status(c, self.cancel_at.is_some())
            })
        }
    }

    /// RFC 6076 session request delay: to the first 18x, else to the final answer; none for a
    /// call the caller cancelled before hearing anything.
    fn pdd_at(&self) -> Option<Timestamp> {
        self.ring_at.or(self.answer_at).or_else(|| {
            let challenge = matches!(self.final_status, Some(401 | 407));
            let cancelled = self.cancel_at.is_some();
            self.final_at.filter(|_| !challenge && !cancelled)
        })
    }

    /// Writes the leg's record over `r`, reusing its strings' allocations; the transfers
    /// it carried move into the record.
    fn record(&mut self, node: &str, direction: Direction, r: &mut CallRecord) {
        self.state(node, direction, r);
        let mut transfers = self.transfers.take();
        let refer = transfers.as_mut().and_then(|t| t.refer.take());
        r.transfer_at = refer.as_ref().map(|refer| refer.at);
        r.transferred_by = refer.as_ref().map(|refer| refer.sent_by);
        r.transfer_status = refer.as_ref().and_then(|refer| refer.status);
        r.transfer_to = refer.map(|refer| refer.to);
        r.referred_by = transfers.as_mut().and_then(|t| t.referred_by.take());
        r.transferred_from = transfers.and_then(|t| t.from_call);
    }

    /// The leg as it stands, written over `r` as a record (no end yet while it lasts), for
    /// outputs that account for a call before it ends: RADIUS's Start and Interim-Update.
    pub(crate) fn snapshot(&self, node: &str, direction: Direction, r: &mut CallRecord) {
        self.state(node, direction, r);
        let transfers = self.transfers.as_deref();
        let refer = transfers.and_then(|t| t.refer.as_ref());
        r.transfer_at = refer.map(|refer| refer.at);
        r.transferred_by = refer.map(|refer| refer.sent_by);
        r.transfer_status = refer.and_then(|refer| refer.status);
        r.transfer_to = refer.map(|refer| refer.to.clone());
        r.referred_by = transfers.and_then(|t| t.referred_by.clone());
        r.transferred_from = transfers.and_then(|t| t.from_call.clone());
    }

    /// Writes everything of the record but the transfers over `r`.
    fn state(&self, node: &str, direction: Direction, r: &mut CallRecord) {
        let disposition = self.disposition();
        let (forked_dialogs, forked_last_status) = self.other_dialogs();
        let pdd_at = self.pdd_at();
        let invite_at = self.invite_at;
        let end_at = self.end_at;
        let answer_at = self.answer_at;
        let text = &self.text;
        r.id = record_id(
            node,
            self.call_id(),
            self.from_tag(),
            self.invite_at.micros(),
        );
        put(&mut r.node, node);
        put_user(&mut r.from_user, text.get(LegField::FromUri));
        put_user(&mut r.to_user, text.get(LegField::ToUri));
        put(&mut r.call_id, text.get(LegField::CallId));
        put(&mut r.from_tag, text.get(LegField::FromTag));
        put_some(&mut r.to_tag, text.non_empty(LegField::ToTag));
        put(
            &mut r.collation_id,
            text.non_empty(LegField::CollationId)
                .unwrap_or_else(|| text.get(LegField::CallId)),
        );
        put(&mut r.from_uri, text.get(LegField::FromUri));
        put(&mut r.to_uri, text.get(LegField::ToUri));
        put(&mut r.request_uri, text.get(LegField::RequestUri));
        put_some(
            &mut r.p_asserted_identity,
            text.non_empty(LegField::PAssertedIdentity),
        );
        put_some(&mut r.diversion, text.non_empty(LegField::Diversion));
        r.caller_ip = self.caller.ip();
        r.caller_port = self.caller.port();
        r.callee_ip = self.callee.ip();
        r.callee_port = self.callee.port();
        r.transport = self.transport;
        r.vlan = self.vlan;
        r.direction = direction;
        put_some(&mut r.user_agent, text.non_empty(LegField::UserAgent));
        put_some(&mut r.server, text.non_empty(LegField::Server));
        r.invite_at = invite_at;
        r.ring_at = self.ring_at;
        r.answer_at = answer_at;
        r.end_at = end_at;
        r.duration_ms = end_at.map(|end| end.millis_since(invite_at));
        r.billable_ms = match (answer_at, end_at) {
            (Some(answer), Some(end)) => Some(end.millis_since(answer)),
            (None, _) => Some(0),
            (Some(_), None) => None,
        };
        r.pdd_ms = pdd_at.map(|at| at.millis_since(invite_at));
        r.sdd_ms = match (self.end_reason, end_at, self.bye_answered_at) {
            (Some(EndReason::Bye), Some(bye), Some(answered)) => Some(answered.millis_since(bye)),
            _ => None,
        };
        r.forked_dialogs = forked_dialogs;
        r.forked_last_status = forked_last_status;
        r.setup_ms = answer_at.map(|answer| answer.millis_since(invite_at));
        r.hold_ms = answer_at.map(|_| {
            // A hold still open when the record is written runs to the call's end.
            let open = match (self.held_since, self.end_at) {
                (Some(since), Some(end)) => (end - since).max(0),
                _ => 0,
            };
            u64::try_from((self.held_us + open) / 1000).unwrap_or(0)
        });
        r.disposition = disposition;
        r.final_status = self.final_status;
        put_some(&mut r.final_reason, text.non_empty(LegField::FinalReason));
        r.q850_cause = self.q850_cause;
        r.ended_by = self.ended_by;
        r.end_reason = self.end_reason.unwrap_or(EndReason::Incomplete);
        r.auth_challenges = self.auth_challenges;
        r.invite_retransmissions = self.invite_retransmissions;
        r.capture_issues.clear();
        r.capture_issues.extend(self.issues.iter());
        r.agent_id = self.agent_id;
        put_some(&mut r.agent_name, text.non_empty(LegField::AgentName));
    }

    /// Caller and callee addresses, for the direction.
    pub(crate) fn endpoints(&self) -> (SocketAddr, SocketAddr) {
        (self.caller, self.callee)
    }
}

/// Final responses after which the caller may retry within the same leg.
fn is_retry_status(code: u16) -> bool {
    matches!(code, 300..=399 | 401 | 407 | 422)
}

/// Namespace of record ids (UUIDv5), fixed forever so ids stay stable across versions.
const RECORD_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5b1c_7a3e_2f44_4d0b_9c61_8e2a_d4f0_c7a1);

/// Deterministic id: the same call seen by the same node always gets the same id, so a
/// replayed capture or a re-delivered record never duplicates.
pub fn record_id(node: &str, call_id: &str, from_tag: &str, invite_at_us: i64) -> uuid::Uuid {
    // UUIDv5 (RFC 9562 §5.5) by hand, with a SHA-1 that uses the CPU's SHA instructions
    // where it has them: the hash was a tenth of the cost of a record. The name,
    // `node \0 call_id \0 from_tag \0 invite_at_us`, is hashed in pieces, never joined.
    let mut sha1 = Sha1::new();
    sha1.update(RECORD_NAMESPACE.as_bytes());
    for part in [node, call_id, from_tag] {
        sha1.update(part.as_bytes());
        sha1.update([0]);
    }
    if invite_at_us < 0 {
        sha1.update(b"-");
    }
    sha1.update(crate::decimal::u64_digits(
        invite_at_us.unsigned_abs(),
        &mut [0; 20],
    ));
    let digest = sha1.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests;
