// SPDX-License-Identifier: AGPL-3.0-or-later
//! The operator's tools that look at SIP messages rather than calls: `dump` (the original
//! sipdump: the messages of one endpoint, call or user, as text, JSON or a ladder diagram)
//! and `find` (the original sipfind: the endpoints seen).

pub mod dump;
pub mod find;
pub mod ladder;

use std::path::PathBuf;

use crate::capture::{CaptureError, FrameSource, OfflineSource, Polled};
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
    let mut sources: Vec<Box<dyn FrameSource>> = Vec::with_capacity(inputs.len());
    for path in inputs {
        sources.push(Box::new(OfflineSource::open(path, filter)?));
    }
    Ok(each_message_of(
        &mut sources,
        ports,
        collation_headers,
        seen,
    ))
}

/// As [`each_message`], over sources already open (a live capture, say).
pub fn each_message_of(
    sources: &mut [Box<dyn FrameSource>],
    ports: &SipPorts,
    collation_headers: &[String],
    seen: &mut dyn FnMut(&SeenMessage<'_, '_, '_>),
) -> (ParseCounters, Option<CaptureError>) {
    let mut stage = ParseStage::new(ports.clone(), collation_headers.to_vec());
    let mut damage = None;
    for source in sources.iter_mut() {
        loop {
            match source.poll() {
                Ok(Polled::Frame(frame)) => stage.on_frame_observed(&frame, &mut |_| {}, seen),
                Ok(Polled::Idle) => {}
                Ok(Polled::End) => break,
                Err(e) => {
                    damage.get_or_insert(e);
                    break;
                }
            }
        }
    }
    (stage.counters(), damage)
}
