// SPDX-License-Identifier: AGPL-3.0-or-later
//! `CallRecord`: the CDR contract of DESIGN.md, one per call leg.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decode::Transport;
pub use crate::packet::{Timestamp, RFC3339_LEN};

/// Outcome of the call, as billing understands it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// A 2xx answered it.
    Answered,
    /// Busy: 486 or 600.
    Busy,
    /// No answer: 408 or 480.
    NoAnswer,
    /// The caller cancelled it (CANCEL, 487).
    Cancelled,
    /// The network could not take it: 500, 502, 503 or 504.
    Congestion,
    /// Any other final status of 300 or more, or none at all.
    Failed,
}

impl Disposition {
    /// Every disposition, in the order counters list them.
    pub const ALL: [Disposition; 6] = [
        Self::Answered,
        Self::Busy,
        Self::NoAnswer,
        Self::Cancelled,
        Self::Congestion,
        Self::Failed,
    ];

    /// The disposition of an unanswered call from its final response code (DESIGN.md).
    pub fn of_final_status(code: u16, cancelled: bool) -> Self {
        match code {
            200..=299 => Self::Answered,
            487 if cancelled => Self::Cancelled,
            486 | 600 => Self::Busy,
            408 | 480 => Self::NoAnswer,
            500 | 502 | 503 | 504 => Self::Congestion,
            _ => Self::Failed,
        }
    }

    /// The name records use (`no_answer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Busy => "busy",
            Self::NoAnswer => "no_answer",
            Self::Cancelled => "cancelled",
            Self::Congestion => "congestion",
            Self::Failed => "failed",
        }
    }

    /// Asterisk `cdr.disposition` wording, for billing tools that read Asterisk CDRs.
    pub fn asterisk(self) -> &'static str {
        match self {
            Self::Answered => "ANSWERED",
            Self::Busy => "BUSY",
            Self::NoAnswer | Self::Cancelled => "NO ANSWER",
            Self::Congestion => "CONGESTION",
            Self::Failed => "FAILED",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A party of the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The party that sent the INVITE.
    Caller,
    /// The party it was sent to.
    Callee,
}

impl Party {
    /// The name records use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Callee => "callee",
        }
    }
}

/// Who ended the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// The caller sent the BYE (or the CANCEL).
    Caller,
    /// The callee sent the BYE, or rejected the call.
    Callee,
    /// A timer ended it: no response, no traffic, or a session timer run out.
    Timeout,
    /// The capture does not say.
    Unknown,
}

impl EndedBy {
    /// The name records use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Callee => "callee",
            Self::Timeout => "timeout",
            Self::Unknown => "unknown",
        }
    }
}

/// How the call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// A BYE ended the answered call.
    Bye,
    /// A CANCEL ended it before an answer.
    Cancel,
    /// A final status of 300 or more ended it.
    Rejected,
    /// A timer ended it.
    Timeout,
    /// The capture ended (or the sensor stopped) while the call was still open.
    Incomplete,
}

impl EndReason {
    /// The name records use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bye => "bye",
            Self::Cancel => "cancel",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::Incomplete => "incomplete",
        }
    }
}

/// Where the call went relative to the monitored hosts (`--host`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Towards a monitored host from outside.
    Inbound,
    /// From a monitored host to the outside.
    Outbound,
    /// Between two monitored hosts.
    Internal,
    /// Between two hosts that are not monitored.
    Transit,
    /// No monitored hosts were given.
    Unknown,
}

impl Direction {
    /// Every direction.
    pub const ALL: [Direction; 5] = [
        Self::Inbound,
        Self::Outbound,
        Self::Internal,
        Self::Transit,
        Self::Unknown,
    ];

    /// The name records use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::Internal => "internal",
            Self::Transit => "transit",
            Self::Unknown => "unknown",
        }
    }
}

/// Something seen (or not seen) that may make the record inaccurate.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CaptureIssue {
    /// The INVITE was never answered by any response.
    NoResponse,
    /// A 2xx was never acknowledged within Timer H (64·T1).
    MissingAck,
    /// An answered call saw no BYE before the dialog timed out.
    MissingBye,
    /// A BYE got no response.
    ByeWithoutResponse,
    /// The capture ended while the call was open.
    CaptureEnded,
    /// The tracker hit its live-dialog cap and evicted this call early.
    Evicted,
    /// Bytes were lost on a TCP connection carrying the call's signalling.
    ReassemblyGap,
    /// A party's CSeq skipped a number within the dialog: a request of the call (or more)
    /// never reached the capture (RFC 3261 §12.2.1.1: each new request takes the next).
    CseqGap,
    /// The capture itself lost frames while the call was up (the kernel's ring buffer or
    /// libpcap's buffer was full).
    CaptureLoss,
}

impl CaptureIssue {
    /// Every issue, in the order records list them.
    pub const ALL: [CaptureIssue; 9] = [
        Self::NoResponse,
        Self::MissingAck,
        Self::MissingBye,
        Self::ByeWithoutResponse,
        Self::CaptureEnded,
        Self::Evicted,
        Self::ReassemblyGap,
        Self::CseqGap,
        Self::CaptureLoss,
    ];

    /// What the issue means for the record, in words, for people reading it.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::NoResponse => "The INVITE got no response at all: the callee never answered the signalling, or the capture missed the way back.",
            Self::MissingAck => "The answer (2xx) was never acknowledged within Timer H (64 × T1): the caller may not have got it, or the capture missed the ACK.",
            Self::MissingBye => "The call was answered but no BYE was seen before the dialog timed out: its end time and billable time are the timeout's, not the parties'.",
            Self::ByeWithoutResponse => "A BYE was sent but no response to it was seen.",
            Self::CaptureEnded => "The capture ended while the call was still up: the record is incomplete.",
            Self::Evicted => "The sensor reached its limit of open calls and closed this one early, so later messages were not counted.",
            Self::ReassemblyGap => "Bytes were lost on a TCP connection carrying this call's signalling: some messages may be missing.",
            Self::CseqGap => "A party's CSeq skipped a number: at least one request of this call never reached the capture.",
            Self::CaptureLoss => "The capture itself dropped frames (kernel ring or libpcap buffer full) while this call was up.",
        }
    }

    /// The name records use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoResponse => "no_response",
            Self::MissingAck => "missing_ack",
            Self::MissingBye => "missing_bye",
            Self::ByeWithoutResponse => "bye_without_response",
            Self::CaptureEnded => "capture_ended",
            Self::Evicted => "evicted",
            Self::ReassemblyGap => "reassembly_gap",
            Self::CseqGap => "cseq_gap",
            Self::CaptureLoss => "capture_loss",
        }
    }
}

/// One call detail record: one dialog-forming INVITE transaction, challenge retries and
/// retransmissions folded in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallRecord {
    /// UUIDv5 of node, Call-ID, From tag and INVITE time: stable across runs.
    pub id: Uuid,
    /// The sensor's name.
    pub node: String,
    /// The dialog's Call-ID.
    pub call_id: String,
    /// The caller's From tag.
    pub from_tag: String,
    /// The callee's To tag, from the final response.
    pub to_tag: Option<String>,
    /// The value of the first collation header present, else the Call-ID.
    pub collation_id: String,
    /// The From URI of the INVITE.
    pub from_uri: String,
    /// Its user part.
    pub from_user: Option<String>,
    /// The To URI of the INVITE.
    pub to_uri: String,
    /// Its user part.
    pub to_user: Option<String>,
    /// The INVITE's Request-URI.
    pub request_uri: String,
    /// The first URI of P-Asserted-Identity.
    pub p_asserted_identity: Option<String>,
    /// The first URI of Diversion.
    pub diversion: Option<String>,
    /// Where the first INVITE came from.
    #[schema(value_type = String)]
    pub caller_ip: IpAddr,
    /// Its port.
    pub caller_port: u16,
    /// Where the first INVITE went.
    #[schema(value_type = String)]
    pub callee_ip: IpAddr,
    /// Its port.
    pub callee_port: u16,
    /// The transport the INVITE came over.
    pub transport: Transport,
    /// The innermost 802.1Q VLAN id.
    pub vlan: Option<u16>,
    /// Inbound, outbound, internal or transit, relative to the monitored hosts.
    pub direction: Direction,
    /// User-Agent of the INVITE.
    pub user_agent: Option<String>,
    /// Server (or User-Agent) of the first response.
    pub server: Option<String>,
    /// When the first INVITE was seen.
    #[schema(value_type = String, format = DateTime)]
    pub invite_at: Timestamp,
    /// When the first 18x arrived.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ring_at: Option<Timestamp>,
    /// When the 2xx arrived.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub answer_at: Option<Timestamp>,
    /// When the call ended.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end_at: Option<Timestamp>,
    /// End minus the first INVITE; none if the capture ended first.
    pub duration_ms: Option<u64>,
    /// End minus answer; 0 if never answered.
    pub billable_ms: Option<u64>,
    /// Post-dial delay (RFC 6076 SRD).
    pub pdd_ms: Option<u64>,
    /// RFC 6076 session disconnect delay: the BYE to its final response.
    pub sdd_ms: Option<u64>,
    /// Call setup time: the first INVITE to the answer (answered calls).
    pub setup_ms: Option<u64>,
    /// Time the media was on hold (answered calls; 0 when never held).
    pub hold_ms: Option<u64>,
    /// Dialogs a forked INVITE created besides this record's (other To tags), and the last
    /// status one of them had.
    pub forked_dialogs: u32,
    /// The last status of another fork's dialog.
    pub forked_last_status: Option<u16>,
    /// A transfer asked for in this call (REFER, RFC 3515): when, by which party, to whom,
    /// and the outcome the NOTIFYs reported (the last sipfrag status).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub transfer_at: Option<Timestamp>,
    /// Which party sent the REFER.
    pub transferred_by: Option<Party>,
    /// Its Refer-To.
    pub transfer_to: Option<String>,
    /// The status in the last NOTIFY's sipfrag.
    pub transfer_status: Option<u16>,
    /// A call that a transfer made: who asked for it (Referred-By), and the Call-ID of the
    /// call it came from (the dialog it replaces, or the call whose REFER named its target).
    pub referred_by: Option<String>,
    /// The Call-ID of the call a transfer replaced or came from.
    pub transferred_from: Option<String>,
    /// The outcome, as billing understands it.
    pub disposition: Disposition,
    /// The last final response's status.
    pub final_status: Option<u16>,
    /// Its reason phrase.
    pub final_reason: Option<String>,
    /// From a `Reason: Q.850;cause=N` header.
    pub q850_cause: Option<u16>,
    /// Who ended the call.
    pub ended_by: EndedBy,
    /// How the call ended.
    pub end_reason: EndReason,
    /// 401/407 challenges to the INVITE.
    pub auth_challenges: u32,
    /// Retransmissions of the INVITE.
    pub invite_retransmissions: u32,
    /// What may make the record inaccurate.
    pub capture_issues: Vec<CaptureIssue>,
    /// The HEP capture agent id of the agent that delivered the INVITE (collected with
    /// `--hep-listen`); none when this sensor captured it.
    #[serde(default)]
    pub agent_id: Option<u32>,
    /// That agent's node name, when it gave one.
    #[serde(default)]
    pub agent_name: Option<String>,
}

impl CallRecord {
    /// A record with nothing in it, to be written over (see `Leg::finish`).
    pub(crate) fn blank() -> Self {
        let nowhere = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        Self {
            id: Uuid::nil(),
            node: String::new(),
            call_id: String::new(),
            from_tag: String::new(),
            to_tag: None,
            collation_id: String::new(),
            from_uri: String::new(),
            from_user: None,
            to_uri: String::new(),
            to_user: None,
            request_uri: String::new(),
            p_asserted_identity: None,
            diversion: None,
            caller_ip: nowhere,
            caller_port: 0,
            callee_ip: nowhere,
            callee_port: 0,
            transport: Transport::Udp,
            vlan: None,
            direction: Direction::Unknown,
            user_agent: None,
            server: None,
            invite_at: Timestamp(0),
            ring_at: None,
            answer_at: None,
            end_at: None,
            duration_ms: None,
            billable_ms: None,
            pdd_ms: None,
            sdd_ms: None,
            setup_ms: None,
            hold_ms: None,
            forked_dialogs: 0,
            forked_last_status: None,
            transfer_at: None,
            transferred_by: None,
            transfer_to: None,
            transfer_status: None,
            referred_by: None,
            transferred_from: None,
            disposition: Disposition::Failed,
            final_status: None,
            final_reason: None,
            q850_cause: None,
            ended_by: EndedBy::Unknown,
            end_reason: EndReason::Incomplete,
            auth_challenges: 0,
            invite_retransmissions: 0,
            capture_issues: Vec::new(),
            agent_id: None,
            agent_name: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_match_the_serialised_names() {
        let json = |v: serde_json::Value| v.as_str().map(str::to_owned).expect("a string");
        for d in Disposition::ALL {
            assert_eq!(json(serde_json::to_value(d).expect("ser")), d.as_str());
        }
        for e in [
            EndReason::Bye,
            EndReason::Cancel,
            EndReason::Rejected,
            EndReason::Timeout,
            EndReason::Incomplete,
        ] {
            assert_eq!(json(serde_json::to_value(e).expect("ser")), e.as_str());
        }
        for e in [
            EndedBy::Caller,
            EndedBy::Callee,
            EndedBy::Timeout,
            EndedBy::Unknown,
        ] {
            assert_eq!(json(serde_json::to_value(e).expect("ser")), e.as_str());
        }
        for d in [
            Direction::Inbound,
            Direction::Outbound,
            Direction::Internal,
            Direction::Transit,
            Direction::Unknown,
        ] {
            assert_eq!(json(serde_json::to_value(d).expect("ser")), d.as_str());
        }
        for (n, i) in CaptureIssue::ALL.into_iter().enumerate() {
            assert_eq!(
                i as usize, n,
                "ALL is in declaration order, as the bit set needs"
            );
            assert_eq!(json(serde_json::to_value(i).expect("ser")), i.as_str());
        }
    }

    #[test]
    fn maps_final_codes_to_dispositions() {
        let cases = [
            (200, false, Disposition::Answered),
            (486, false, Disposition::Busy),
            (600, false, Disposition::Busy),
            (480, false, Disposition::NoAnswer),
            (408, false, Disposition::NoAnswer),
            (487, true, Disposition::Cancelled),
            (487, false, Disposition::Failed),
            (503, false, Disposition::Congestion),
            (502, false, Disposition::Congestion),
            (404, false, Disposition::Failed),
            (603, false, Disposition::Failed),
            (407, false, Disposition::Failed),
        ];
        for (code, cancelled, expected) in cases {
            assert_eq!(
                Disposition::of_final_status(code, cancelled),
                expected,
                "{code}"
            );
        }
    }
}
