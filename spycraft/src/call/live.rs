// SPDX-License-Identifier: AGPL-3.0-or-later
//! A call in progress as monitoring pages show it: who, since when, and how far it has got.
//! Taken from the tracker at the pipeline's checkpoints (at most twice a second), never per
//! message.

use std::net::SocketAddr;

use serde::Serialize;

use super::record::Timestamp;

/// How far a call in progress has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveState {
    /// The INVITE is out; nothing but 100 Trying back.
    Trying,
    /// The callee is ringing (18x), or the caller is retrying after a challenge.
    Ringing,
    /// Answered and talking.
    Answered,
    /// Answered, with the media on hold.
    Held,
}

impl LiveState {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trying => "trying",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Held => "held",
        }
    }
}

/// One call leg in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LiveCall {
    /// The dialog's Call-ID.
    pub call_id: String,
    /// The caller's From tag (with the Call-ID, what names the leg).
    pub from_tag: String,
    /// The From URI's user.
    pub from_user: Option<String>,
    /// The To URI's user.
    pub to_user: Option<String>,
    /// Where the INVITE came from.
    #[schema(value_type = String)]
    pub caller: SocketAddr,
    /// Where it went.
    #[schema(value_type = String)]
    pub callee: SocketAddr,
    /// When the INVITE was seen.
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    /// When it was answered.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub answered_at: Option<Timestamp>,
    /// How far it has got.
    pub state: LiveState,
}
