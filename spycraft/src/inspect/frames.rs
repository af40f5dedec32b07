// SPDX-License-Identifier: AGPL-3.0-or-later
//! Which frames carried each message, so `dump -w` and `analyze --split-calls` can write the
//! frames behind the messages they pick: the fragments of a reassembled datagram, the segments
//! of a message that spans TCP segments. Built from the pieces the decoder reports.
//!
//! For TCP the frames of a message are those that brought bytes to its direction of the
//! connection since the previous message there ended, the frame where it ended included (the
//! next message may start in it). A written TCP message may so carry the tail of the one
//! before it, which a reader skips when it resynchronises on the next start line.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::decode::{FragmentKey, Piece, Transport};
use crate::parse_stage::SeenMessage;

/// Pieces remembered at most, per datagram or direction and in all; beyond, the oldest go
/// (a flood of fragments that never complete, a connection without a message end).
const MAX_FRAMES_PER_PAYLOAD: usize = 4096;
const MAX_PAYLOADS: usize = 100_000;

/// The frames pending on each datagram and each TCP direction.
#[derive(Debug, Default)]
pub struct FrameTrail {
    fragments: HashMap<FragmentKey, Vec<u64>>,
    segments: HashMap<(SocketAddr, SocketAddr), Vec<u64>>,
    /// The fragment seen last, and in which frame: the one that completed a datagram.
    last_fragment: Option<(u64, FragmentKey)>,
}

fn remember(frames: &mut Vec<u64>, frame: u64) {
    if frames.last() != Some(&frame) {
        if frames.len() == MAX_FRAMES_PER_PAYLOAD {
            frames.remove(0);
        }
        frames.push(frame);
    }
}

impl FrameTrail {
    /// Records that `frame` carried `piece`.
    pub fn piece(&mut self, frame: u64, piece: &Piece) {
        match *piece {
            Piece::Fragment(key) => {
                if self.fragments.len() >= MAX_PAYLOADS && !self.fragments.contains_key(&key) {
                    self.fragments.clear();
                }
                remember(self.fragments.entry(key).or_default(), frame);
                self.last_fragment = Some((frame, key));
            }
            Piece::Segment { src, dst } => {
                let key = (src, dst);
                if self.segments.len() >= MAX_PAYLOADS && !self.segments.contains_key(&key) {
                    self.segments.clear();
                }
                remember(self.segments.entry(key).or_default(), frame);
            }
        }
    }

    /// The frames of a message that ended in `frame`, in capture order. Call it for every
    /// message, picked or not, so the trail stays in step.
    pub fn frames_of(&mut self, frame: u64, m: &SeenMessage<'_, '_, '_>) -> Vec<u64> {
        let (src, dst) = (m.info.src, m.info.dst);
        match m.info.transport {
            Transport::Udp | Transport::Sctp => match self.last_fragment {
                Some((f, key)) if f == frame && key.src == src.ip() && key.dst == dst.ip() => {
                    self.last_fragment = None;
                    let mut frames = self.fragments.remove(&key).unwrap_or_default();
                    remember(&mut frames, frame);
                    frames
                }
                _ => vec![frame],
            },
            Transport::Tcp | Transport::Tls | Transport::Ws => {
                let pending = self.segments.entry((src, dst)).or_default();
                let mut frames = std::mem::take(pending);
                remember(&mut frames, frame);
                pending.push(frame);
                frames
            }
        }
    }
}
