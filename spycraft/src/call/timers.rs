// SPDX-License-Identifier: AGPL-3.0-or-later
//! How long the tracker waits, in capture time, before it gives up on a leg.

/// Timeouts of the call tracker, in seconds of capture time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// No answer to an INVITE (or no 487 after a CANCEL): RFC 3261 Timer B, 64·T1 = 32 s.
    pub transaction_secs: u32,
    /// Wait for the retry after a 401/407 before the challenge counts as the final answer.
    /// Longer than Timer B because a person may be typing the password: captures show
    /// retries 30–60 s after the challenge.
    pub challenge_secs: u32,
    /// Ringing with no final response since the last provisional: RFC 3261 Timer C, which a
    /// proxy must set above 3 minutes.
    pub ringing_secs: u32,
    /// An answered call with no in-dialog message and no BYE for this long is ended as a
    /// timeout (its record says `missing_bye`). Four hours, like common SBC session limits.
    pub call_idle_secs: u32,
    /// How long an ended leg stays to absorb retransmitted BYE, 200 and ACK: Timer D/J, 32 s.
    pub linger_secs: u32,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            transaction_secs: 32,
            challenge_secs: 300,
            ringing_secs: 180,
            call_idle_secs: 4 * 3600,
            linger_secs: 32,
        }
    }
}
