// SPDX-License-Identifier: AGPL-3.0-or-later
//! A call record as RADIUS accounting (RFC 2866) with the attributes Cisco voice gateways
//! send (vendor 9: the `h323-*` strings and `Cisco-AVPair`), so billing systems built for
//! them take spycraft's records unchanged.

use std::net::IpAddr;

use super::packet::Attributes;
use crate::call::{CallRecord, Direction, Disposition, EndReason, EndedBy, Timestamp};

/// RFC 2865/2866 attribute types.
mod kind {
    pub const USER_NAME: u8 = 1;
    pub const NAS_IP_ADDRESS: u8 = 4;
    pub const CALLED_STATION_ID: u8 = 30;
    pub const CALLING_STATION_ID: u8 = 31;
    pub const NAS_IDENTIFIER: u8 = 32;
    pub const ACCT_STATUS_TYPE: u8 = 40;
    pub const ACCT_DELAY_TIME: u8 = 41;
    pub const ACCT_SESSION_ID: u8 = 44;
    pub const ACCT_SESSION_TIME: u8 = 46;
    pub const ACCT_TERMINATE_CAUSE: u8 = 49;
    pub const ACCT_MULTI_SESSION_ID: u8 = 50;
    pub const EVENT_TIMESTAMP: u8 = 55;
    pub const NAS_IPV6_ADDRESS: u8 = 95;
}

/// Cisco's vendor id and its voice attributes (FreeRADIUS's dictionary.cisco).
mod cisco {
    pub const VENDOR: u32 = 9;
    pub const AVPAIR: u8 = 1;
    pub const CONF_ID: u8 = 24;
    pub const SETUP_TIME: u8 = 25;
    pub const CALL_ORIGIN: u8 = 26;
    pub const CALL_TYPE: u8 = 27;
    pub const CONNECT_TIME: u8 = 28;
    pub const DISCONNECT_TIME: u8 = 29;
    pub const DISCONNECT_CAUSE: u8 = 30;
}

/// Kamailio acc_radius's attributes (FreeRADIUS's dictionary.openser). Their numbers are
/// outside the RFC space's assignments of the day and clash with later ones (RFC 3576's
/// Error-Cause is 101), so they are sent only when asked for.
mod sip {
    pub const SERVICE_TYPE: u8 = 6;
    /// Service-Type's value for a SIP session.
    pub const SIP_SESSION: u32 = 15;
    pub const METHOD: u8 = 101;
    pub const RESPONSE_CODE: u8 = 102;
    pub const TO_TAG: u8 = 104;
    pub const FROM_TAG: u8 = 105;
    pub const TRANSLATED_REQUEST_URI: u8 = 107;
    pub const SRC_IP: u8 = 108;
    pub const SRC_PORT: u8 = 109;
    /// Sip-Method values.
    pub const INVITE: u32 = 1;
    pub const CANCEL: u32 = 2;
    pub const BYE: u32 = 8;
}

/// Which attributes a request carries beside RFC 2866's and Cisco's.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Dictionary {
    /// RFC 2866 and Cisco's voice attributes.
    #[default]
    Cisco,
    /// Also Kamailio acc_radius's `Sip-*` attributes (the server must load FreeRADIUS's
    /// dictionary.openser: their numbers clash with standard ones).
    Kamailio,
}

/// Acct-Status-Type values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The call was answered.
    Start = 1,
    /// The call ended (answered or not).
    Stop = 2,
    /// The call is still up.
    InterimUpdate = 3,
    /// The call was never answered (with `--radius-failed`, instead of a Stop).
    Failed = 15,
}

impl Status {
    /// The name FreeRADIUS's dictionary gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "Start",
            Self::Stop => "Stop",
            Self::InterimUpdate => "Interim-Update",
            Self::Failed => "Failed",
        }
    }
}

/// Who the sensor says it is in each request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nas {
    /// NAS-Identifier.
    pub identifier: String,
    /// NAS-IP-Address or NAS-IPv6-Address: the sensor's address towards the server.
    pub address: Option<IpAddr>,
}

/// What a finished record is sent as: a Start (unless one went out when it was answered)
/// and a Stop when it was answered; a Stop (or, with `failed`, a Failed) alone when not.
pub fn statuses(record: &CallRecord, failed: bool) -> &'static [Status] {
    match (record.answer_at.is_some(), failed) {
        (true, _) => &[Status::Start, Status::Stop],
        (false, false) => &[Status::Stop],
        (false, true) => &[Status::Failed],
    }
}

/// One accounting request: the record it reports on (as the call stands, for a Start or
/// an Interim-Update), what it reports, and when that happened.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The call.
    pub record: &'a CallRecord,
    /// Acct-Status-Type.
    pub status: Status,
    /// Event-Timestamp: the answer for a Start, the time of an Interim-Update, the end (else
    /// the INVITE) for a Stop or a Failed.
    pub at: Timestamp,
}

impl<'a> Request<'a> {
    /// `record`'s Start, Stop or Failed.
    pub fn new(record: &'a CallRecord, status: Status) -> Self {
        let at = match status {
            Status::Start => record.answer_at,
            _ => record.end_at,
        }
        .unwrap_or(record.invite_at);
        Self { record, status, at }
    }

    /// An Interim-Update of the answered call `record` at `at`.
    pub fn interim(record: &'a CallRecord, at: Timestamp) -> Self {
        Self {
            record,
            status: Status::InterimUpdate,
            at,
        }
    }

    /// Acct-Session-Time: whole seconds of billable time at the end, or talked so far.
    fn session_seconds(&self) -> Option<u32> {
        match self.status {
            Status::Start => None,
            Status::InterimUpdate => {
                let answer = self.record.answer_at.unwrap_or(self.at);
                let seconds = self.at.micros_since(answer).max(0) / 1_000_000;
                Some(u32::try_from(seconds).unwrap_or(u32::MAX))
            }
            Status::Stop | Status::Failed => Some(billable_seconds(self.record)),
        }
    }
}

/// The attributes of `request`, sent `delay` seconds after its event.
pub fn attributes(
    request: Request<'_>,
    nas: &Nas,
    delay: u32,
    dictionary: Dictionary,
) -> Attributes {
    let Request { record, status, at } = request;
    let mut a = Attributes::new();
    let id = record.id.to_string();
    a.integer(kind::ACCT_STATUS_TYPE, status as u32)
        .text(kind::ACCT_SESSION_ID, &id)
        .text(kind::ACCT_MULTI_SESSION_ID, &record.collation_id)
        .text(kind::NAS_IDENTIFIER, &nas.identifier);
    match nas.address {
        Some(IpAddr::V4(ip)) => a.octets(kind::NAS_IP_ADDRESS, &ip.octets()),
        Some(IpAddr::V6(ip)) => a.octets(kind::NAS_IPV6_ADDRESS, &ip.octets()),
        None => &mut a,
    };
    let caller = record.from_user.as_deref().unwrap_or(&record.from_uri);
    let callee = record.to_user.as_deref().unwrap_or(&record.to_uri);
    a.text(kind::USER_NAME, caller)
        .text(kind::CALLING_STATION_ID, caller)
        .text(kind::CALLED_STATION_ID, callee);
    a.integer(kind::EVENT_TIMESTAMP, unix_seconds(at))
        .integer(kind::ACCT_DELAY_TIME, delay);
    if let Some(seconds) = request.session_seconds() {
        a.integer(kind::ACCT_SESSION_TIME, seconds);
    }
    if matches!(status, Status::Stop | Status::Failed) {
        a.integer(kind::ACCT_TERMINATE_CAUSE, terminate_cause(record));
    }

    let vsa = |a: &mut Attributes, kind: u8, name: &str, value: &str| {
        a.vendor_text(cisco::VENDOR, kind, &format!("{name}={value}"));
    };
    vsa(&mut a, cisco::CONF_ID, "h323-conf-id", &conf_id(record));
    vsa(
        &mut a,
        cisco::CALL_ORIGIN,
        "h323-call-origin",
        call_origin(record.direction),
    );
    vsa(&mut a, cisco::CALL_TYPE, "h323-call-type", "VoIP");
    vsa(
        &mut a,
        cisco::SETUP_TIME,
        "h323-setup-time",
        &cisco_time(record.invite_at),
    );
    if let Some(answer) = record.answer_at {
        vsa(
            &mut a,
            cisco::CONNECT_TIME,
            "h323-connect-time",
            &cisco_time(answer),
        );
    }
    if matches!(status, Status::Stop | Status::Failed) {
        if let Some(end) = record.end_at {
            vsa(
                &mut a,
                cisco::DISCONNECT_TIME,
                "h323-disconnect-time",
                &cisco_time(end),
            );
        }
        vsa(
            &mut a,
            cisco::DISCONNECT_CAUSE,
            "h323-disconnect-cause",
            &format!("{:X}", q850_cause(record)),
        );
    }
    a.vendor_text(
        cisco::VENDOR,
        cisco::AVPAIR,
        &format!("call-id={}", record.call_id),
    );
    if dictionary == Dictionary::Kamailio {
        kamailio(&mut a, record, status);
    }
    a
}

/// What Kamailio's acc_radius adds: the request accounted (the INVITE's 2xx for a Start, the
/// BYE or CANCEL for a Stop, the INVITE's failure otherwise), its status and the dialog.
fn kamailio(a: &mut Attributes, record: &CallRecord, status: Status) {
    let method = match (status, record.end_reason) {
        (Status::Stop, EndReason::Bye) => sip::BYE,
        (Status::Stop, EndReason::Cancel) => sip::CANCEL,
        _ => sip::INVITE,
    };
    a.integer(sip::SERVICE_TYPE, sip::SIP_SESSION)
        .integer(sip::METHOD, method)
        .integer(
            sip::RESPONSE_CODE,
            u32::from(record.final_status.unwrap_or(0)),
        )
        .text(sip::FROM_TAG, &record.from_tag)
        .text(sip::TO_TAG, record.to_tag.as_deref().unwrap_or(""))
        .text(sip::TRANSLATED_REQUEST_URI, &record.request_uri)
        .text(sip::SRC_IP, &record.caller_ip.to_string())
        .text(sip::SRC_PORT, &record.caller_port.to_string());
}

/// Acct-Session-Time: whole seconds of billable time (rounded down, as billing expects).
pub fn billable_seconds(record: &CallRecord) -> u32 {
    u32::try_from(record.billable_ms.unwrap_or(0) / 1000).unwrap_or(u32::MAX)
}

/// Acct-Terminate-Cause (RFC 2866 §5.10) from how the call ended.
pub fn terminate_cause(record: &CallRecord) -> u32 {
    const USER_REQUEST: u32 = 1;
    const IDLE_TIMEOUT: u32 = 4;
    const NAS_REQUEST: u32 = 10;
    const SERVICE_UNAVAILABLE: u32 = 15;
    const HOST_REQUEST: u32 = 18;
    match (record.end_reason, record.ended_by) {
        (EndReason::Bye | EndReason::Cancel, EndedBy::Caller) => USER_REQUEST,
        (EndReason::Cancel, _) => USER_REQUEST,
        (EndReason::Rejected, _) if record.disposition == Disposition::Congestion => {
            SERVICE_UNAVAILABLE
        }
        (EndReason::Bye | EndReason::Rejected, _) => HOST_REQUEST,
        (EndReason::Timeout, _) => IDLE_TIMEOUT,
        (EndReason::Incomplete, _) => NAS_REQUEST,
    }
}

/// The Q.850 cause: the record's own (a Reason header), else mapped from how it ended by
/// RFC 3398 §8.2.6.1 (SIP status to ISDN cause).
pub fn q850_cause(record: &CallRecord) -> u16 {
    if let Some(cause) = record.q850_cause {
        return cause;
    }
    match (record.disposition, record.final_status) {
        (Disposition::Answered, _) | (Disposition::Cancelled, _) => 16,
        (_, Some(status)) => match status {
            400 | 481 | 500 | 503 => 41,
            401..=403 | 407 | 603 => 21,
            404 | 485 | 604 => 1,
            405 | 406 | 415 | 501 => 79,
            408 | 504 => 102,
            410 => 22,
            480 => 18,
            482 | 483 => 25,
            484 => 28,
            486 | 600 => 17,
            502 => 38,
            606 => 58,
            _ => 127,
        },
        // No final response at all.
        (_, None) => 102,
    }
}

/// h323-conf-id: the record id as Cisco writes a conference id, four groups of eight hex
/// digits.
fn conf_id(record: &CallRecord) -> String {
    let hex = record.id.simple().to_string().to_uppercase();
    format!(
        "{} {} {} {}",
        &hex[..8],
        &hex[8..16],
        &hex[16..24],
        &hex[24..]
    )
}

/// h323-call-origin: `originate` for a call leaving the monitored hosts, `answer` for the
/// rest (the leg a gateway answers).
fn call_origin(direction: Direction) -> &'static str {
    match direction {
        Direction::Outbound => "originate",
        _ => "answer",
    }
}

/// Cisco's time format: `13:04:05.123 UTC Thu Dec 3 2026`.
pub fn cisco_time(t: Timestamp) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.micros()) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let weekday = &at.weekday().to_string()[..3];
    let month = &at.month().to_string()[..3];
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC {weekday} {month} {} {}",
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond(),
        at.day(),
        at.year()
    )
}

/// Event-Timestamp: seconds since the epoch (RFC 2869 §5.3).
fn unix_seconds(t: Timestamp) -> u32 {
    u32::try_from(t.micros().div_euclid(1_000_000)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CallRecord {
        let mut r = CallRecord::blank();
        r.id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        r.call_id = "abc@host".into();
        r.collation_id = "abc@host".into();
        r.from_uri = "sip:alice@a".into();
        r.from_user = Some("alice".into());
        r.to_uri = "sip:+15550100@b".into();
        r.to_user = Some("+15550100".into());
        r.invite_at = Timestamp(1_764_772_800_000_000); // 2025-12-03 14:40:00 UTC
        r.answer_at = Some(Timestamp(1_764_772_802_500_000));
        r.end_at = Some(Timestamp(1_764_772_863_999_000));
        r.billable_ms = Some(61_499);
        r.disposition = Disposition::Answered;
        r.final_status = Some(200);
        r.end_reason = EndReason::Bye;
        r.ended_by = EndedBy::Callee;
        r
    }

    /// The attributes as (type, value) pairs, vendor ones as (26, vendor type, text).
    fn decoded(a: &Attributes) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = a.as_bytes();
        while rest.len() >= 2 {
            let len = usize::from(rest[1]);
            out.push((rest[0], rest[2..len].to_vec()));
            rest = &rest[len..];
        }
        assert!(rest.is_empty(), "whole attributes");
        out
    }

    fn text_of(attrs: &[(u8, Vec<u8>)], kind: u8) -> Option<String> {
        attrs
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| String::from_utf8(v.clone()).expect("text"))
    }

    fn integer_of(attrs: &[(u8, Vec<u8>)], kind: u8) -> Option<u32> {
        attrs
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| u32::from_be_bytes(v[..].try_into().expect("four bytes")))
    }

    fn cisco_of(attrs: &[(u8, Vec<u8>)], vendor_kind: u8) -> Option<String> {
        attrs.iter().find_map(|(k, v)| {
            (*k == 26 && v[..4] == [0, 0, 0, 9] && v[4] == vendor_kind)
                .then(|| String::from_utf8(v[6..].to_vec()).expect("text"))
        })
    }

    #[test]
    fn an_answered_call_is_a_start_and_a_stop_with_its_billable_seconds() {
        let r = record();
        assert_eq!(statuses(&r, false), &[Status::Start, Status::Stop]);
        let nas = Nas {
            identifier: "sensor-1".into(),
            address: Some("192.0.2.7".parse().expect("address")),
        };
        let stop = decoded(&attributes(
            Request::new(&r, Status::Stop),
            &nas,
            3,
            Dictionary::Cisco,
        ));
        assert_eq!(integer_of(&stop, kind::ACCT_STATUS_TYPE), Some(2));
        assert_eq!(
            text_of(&stop, kind::ACCT_SESSION_ID).as_deref(),
            Some("01234567-89ab-cdef-0011-223344556677")
        );
        assert_eq!(integer_of(&stop, kind::ACCT_SESSION_TIME), Some(61));
        assert_eq!(integer_of(&stop, kind::ACCT_DELAY_TIME), Some(3));
        assert_eq!(
            integer_of(&stop, kind::EVENT_TIMESTAMP),
            Some(1_764_772_863)
        );
        assert_eq!(integer_of(&stop, kind::ACCT_TERMINATE_CAUSE), Some(18));
        assert_eq!(
            text_of(&stop, kind::CALLING_STATION_ID).as_deref(),
            Some("alice")
        );
        assert_eq!(
            text_of(&stop, kind::CALLED_STATION_ID).as_deref(),
            Some("+15550100")
        );
        assert_eq!(
            integer_of(&stop, kind::NAS_IP_ADDRESS),
            Some(u32::from_be_bytes([192, 0, 2, 7]))
        );
        assert_eq!(
            cisco_of(&stop, cisco::SETUP_TIME).as_deref(),
            Some("h323-setup-time=14:40:00.000 UTC Wed Dec 3 2025")
        );
        assert_eq!(
            cisco_of(&stop, cisco::CONNECT_TIME).as_deref(),
            Some("h323-connect-time=14:40:02.500 UTC Wed Dec 3 2025")
        );
        assert_eq!(
            cisco_of(&stop, cisco::DISCONNECT_TIME).as_deref(),
            Some("h323-disconnect-time=14:41:03.999 UTC Wed Dec 3 2025")
        );
        assert_eq!(
            cisco_of(&stop, cisco::DISCONNECT_CAUSE).as_deref(),
            Some("h323-disconnect-cause=10")
        );
        assert_eq!(
            cisco_of(&stop, cisco::CONF_ID).as_deref(),
            Some("h323-conf-id=01234567 89ABCDEF 00112233 44556677")
        );
        assert_eq!(
            cisco_of(&stop, cisco::AVPAIR).as_deref(),
            Some("call-id=abc@host")
        );

        let start = decoded(&attributes(
            Request::new(&r, Status::Start),
            &nas,
            0,
            Dictionary::Cisco,
        ));
        assert_eq!(integer_of(&start, kind::ACCT_STATUS_TYPE), Some(1));
        assert_eq!(
            integer_of(&start, kind::EVENT_TIMESTAMP),
            Some(1_764_772_802)
        );
        assert_eq!(integer_of(&start, kind::ACCT_SESSION_TIME), None);
        assert_eq!(cisco_of(&start, cisco::DISCONNECT_TIME), None);
    }

    #[test]
    fn an_interim_update_says_the_time_talked_so_far_and_no_end() {
        // The call as it stands 30.4 s after its answer.
        let mut r = record();
        (r.end_at, r.billable_ms) = (None, None);
        let at = Timestamp(1_764_772_832_900_000);
        let nas = Nas {
            identifier: "n".into(),
            address: None,
        };
        let interim = decoded(&attributes(
            Request::interim(&r, at),
            &nas,
            0,
            Dictionary::Cisco,
        ));
        assert_eq!(integer_of(&interim, kind::ACCT_STATUS_TYPE), Some(3));
        assert_eq!(integer_of(&interim, kind::ACCT_SESSION_TIME), Some(30));
        assert_eq!(
            integer_of(&interim, kind::EVENT_TIMESTAMP),
            Some(1_764_772_832)
        );
        assert_eq!(integer_of(&interim, kind::ACCT_TERMINATE_CAUSE), None);
        assert_eq!(cisco_of(&interim, cisco::DISCONNECT_TIME), None);
        assert_eq!(cisco_of(&interim, cisco::DISCONNECT_CAUSE), None);
        assert_eq!(
            cisco_of(&interim, cisco::CONNECT_TIME).as_deref(),
            Some("h323-connect-time=14:40:02.500 UTC Wed Dec 3 2025")
        );
        // A Start sent with the record at its end says the same as one sent at the answer.
        let mut ended = record();
        ended.id = r.id;
        let at_answer = decoded(&attributes(
            Request::new(&r, Status::Start),
            &nas,
            0,
            Dictionary::Cisco,
        ));
        let at_end = decoded(&attributes(
            Request::new(&ended, Status::Start),
            &nas,
            0,
            Dictionary::Cisco,
        ));
        assert_eq!(at_answer, at_end);
    }

    #[test]
    fn an_unanswered_call_is_a_stop_of_no_time_or_a_failed() {
        let mut r = record();
        r.answer_at = None;
        r.billable_ms = Some(0);
        r.disposition = Disposition::Busy;
        r.final_status = Some(486);
        r.end_reason = EndReason::Rejected;
        assert_eq!(statuses(&r, false), &[Status::Stop]);
        assert_eq!(statuses(&r, true), &[Status::Failed]);
        let nas = Nas {
            identifier: "n".into(),
            address: Some("2001:db8::7".parse().expect("address")),
        };
        let stop = decoded(&attributes(
            Request::new(&r, Status::Failed),
            &nas,
            0,
            Dictionary::Cisco,
        ));
        assert_eq!(integer_of(&stop, kind::ACCT_STATUS_TYPE), Some(15));
        assert_eq!(integer_of(&stop, kind::ACCT_SESSION_TIME), Some(0));
        assert_eq!(
            cisco_of(&stop, cisco::DISCONNECT_CAUSE).as_deref(),
            Some("h323-disconnect-cause=11"),
            "486 is Q.850 17, user busy"
        );
        assert!(stop
            .iter()
            .any(|(k, v)| *k == kind::NAS_IPV6_ADDRESS && v.len() == 16));
        r.q850_cause = Some(34);
        assert_eq!(q850_cause(&r), 34, "the record's own cause wins");
    }

    #[test]
    fn kamailio_attributes_only_when_asked_for() {
        let mut r = record();
        r.from_tag = "f1".into();
        r.to_tag = Some("t1".into());
        r.caller_ip = "192.0.2.1".parse().expect("address");
        r.caller_port = 5062;
        let nas = Nas {
            identifier: "n".into(),
            address: None,
        };
        let plain = decoded(&attributes(
            Request::new(&r, Status::Stop),
            &nas,
            0,
            Dictionary::Cisco,
        ));
        assert!(plain.iter().all(|(k, _)| *k < 100 || *k == 26), "{plain:?}");
        let stop = decoded(&attributes(
            Request::new(&r, Status::Stop),
            &nas,
            0,
            Dictionary::Kamailio,
        ));
        assert_eq!(integer_of(&stop, sip::SERVICE_TYPE), Some(15));
        assert_eq!(integer_of(&stop, sip::METHOD), Some(sip::BYE));
        assert_eq!(integer_of(&stop, sip::RESPONSE_CODE), Some(200));
        assert_eq!(text_of(&stop, sip::FROM_TAG).as_deref(), Some("f1"));
        assert_eq!(text_of(&stop, sip::TO_TAG).as_deref(), Some("t1"));
        assert_eq!(text_of(&stop, sip::SRC_IP).as_deref(), Some("192.0.2.1"));
        assert_eq!(text_of(&stop, sip::SRC_PORT).as_deref(), Some("5062"));
        let start = decoded(&attributes(
            Request::new(&r, Status::Start),
            &nas,
            0,
            Dictionary::Kamailio,
        ));
        assert_eq!(integer_of(&start, sip::METHOD), Some(sip::INVITE));
    }

    #[test]
    fn maps_how_calls_end_to_terminate_causes() {
        let mut r = record();
        let cases = [
            (EndReason::Bye, EndedBy::Caller, Disposition::Answered, 1),
            (EndReason::Bye, EndedBy::Callee, Disposition::Answered, 18),
            (
                EndReason::Cancel,
                EndedBy::Caller,
                Disposition::Cancelled,
                1,
            ),
            (EndReason::Rejected, EndedBy::Callee, Disposition::Busy, 18),
            (
                EndReason::Rejected,
                EndedBy::Callee,
                Disposition::Congestion,
                15,
            ),
            (
                EndReason::Timeout,
                EndedBy::Timeout,
                Disposition::NoAnswer,
                4,
            ),
            (
                EndReason::Incomplete,
                EndedBy::Unknown,
                Disposition::Answered,
                10,
            ),
        ];
        for (reason, by, disposition, want) in cases {
            (r.end_reason, r.ended_by, r.disposition) = (reason, by, disposition);
            assert_eq!(terminate_cause(&r), want, "{reason:?} by {by:?}");
        }
    }
}
