// SPDX-License-Identifier: AGPL-3.0-or-later
//! The operator's tools that look at SIP messages rather than calls: `dump` (the original
//! sipdump: the messages of one endpoint, call or user, as text, JSON or a ladder diagram)
//! and `find` (the original sipfind: the endpoints seen).

pub mod dump;
pub mod find;
pub mod frames;
pub mod ladder;
pub mod write;

use std::path::PathBuf;

use crate::capture::{CaptureError, Frame, FrameSource, OfflineSource, Polled};
use crate::parse_stage::{Observer, ParseCounters, ParseStage, SeenMessage, SipPorts};

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

/// As [`each_message`], with an observer that also sees the pieces of payloads spanning
/// frames, and the number of each frame.
pub fn trace_messages(
    inputs: &[PathBuf],
    filter: Option<&str>,
    ports: &SipPorts,
    collation_headers: &[String],
    observer: &mut dyn Observer,
) -> Result<(ParseCounters, Option<CaptureError>), CaptureError> {
    let mut stage = ParseStage::new(ports.clone(), collation_headers.to_vec());
    let mut damage = None;
    for path in inputs {
        let mut source = OfflineSource::open(path, filter)?;
        loop {
            match source.next_frame() {
                Ok(Some(frame)) => stage.on_frame_traced(&frame, &mut |_| {}, observer),
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

/// Reads the captures again and hands over every frame, numbered as [`trace_messages`]
/// numbered them.
pub fn each_frame(
    inputs: &[PathBuf],
    filter: Option<&str>,
    frame_fn: &mut dyn FnMut(u64, &Frame<'_>) -> std::io::Result<()>,
) -> Result<(), EachFrameError> {
    let mut n = 0;
    for path in inputs {
        let mut source = OfflineSource::open(path, filter)?;
        loop {
            match source.next_frame() {
                Ok(Some(frame)) => {
                    frame_fn(n, &frame)?;
                    n += 1;
                }
                Ok(None) | Err(CaptureError::Damaged { .. }) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Why frames could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum EachFrameError {
    /// A capture could not be read.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Writing the output failed.
    #[error("writing frames: {0}")]
    Write(#[from] std::io::Error),
}
