// SPDX-License-Identifier: AGPL-3.0-or-later
//! The operator's tools that look at SIP messages rather than calls: `dump` (the original
//! sipdump: the messages of one endpoint, call or user, as text, JSON or a ladder diagram)
//! and `find` (the original sipfind: the endpoints seen).

pub mod dump;
pub mod find;
pub mod ladder;

use std::path::PathBuf;

use crate::capture::{CaptureError, OfflineSource};
use crate::parse_stage::{ParseCounters, ParseStage, SeenMessage, SipPorts};

/// Reads the captures in order as one stream and shows `seen` every SIP message. Returns the
/// counters and, when a capture broke off mid-way, the damage (what was readable was shown).
pub fn each_message(
    inputs: &[PathBuf],
    filter: Option<&str>,
    ports: &SipPorts,
    collation_headers: &[String],
    seen: &mut dyn FnMut(&SeenMessage<'_, '_, '_>),
) -> Result<(ParseCounters, Option<CaptureError>), CaptureError> {
    let sources: Vec<OfflineSource> = inputs
        .iter()
        .map(|path| OfflineSource::open(path, filter))
        .collect::<Result<_, _>>()?;
    let mut stage = ParseStage::new(ports.clone(), collation_headers.to_vec());
    let mut damage = None;
    for mut source in sources {
        loop {
            match source.next_frame() {
                Ok(Some(frame)) => stage.on_frame_observed(&frame, &mut |_| {}, seen),
                Ok(None) => break,
                Err(e) => {
                    damage.get_or_insert(e);
                    break;
                }
            }
        }
    }
    Ok((stage.counters(), damage))
}
