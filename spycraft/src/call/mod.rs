// SPDX-License-Identifier: AGPL-3.0-or-later
//! Calls: the INVITE-dialog state machine, the tracker that owns every live leg, and the
//! [`CallRecord`] each finished leg becomes. Knows nothing of capture or wire formats beyond
//! [`SipEvent`](crate::sip::SipEvent).

mod checks;
mod direction;
mod leg;
mod live;
mod record;
mod text;
mod timers;
mod tracker;

pub use direction::{BadHost, HostPrefix, MonitoredHosts};
pub use leg::record_id;
pub use live::{LiveCall, LiveState};
pub use record::{
    CallRecord, CaptureIssue, Direction, Disposition, EndReason, EndedBy, Party, Timestamp,
    RFC3339_LEN,
};
pub use timers::Timers;
pub use tracker::{
    CallProgress, CallTracker, LegKey, ProgressReports, TrackerConfig, TrackerCounters,
};
