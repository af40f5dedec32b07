// SPDX-License-Identifier: AGPL-3.0-or-later
//! Writing the frames behind chosen messages: `dump -w` (one file) and `analyze
//! --split-calls` (a file per call). Two passes over the captures: the first finds the frames
//! of each message ([`FrameTrail`]), the second copies them, in capture order and once each.
//!
//! A TCP connection carries a byte stream: a file holding only some of its segments would
//! show holes, and a reader would wait on them. So for a call (or a pick) on TCP, every
//! segment of each direction it used is written from its first message's first frame to its
//! last message's last frame; messages of other calls inside that window come along (a
//! reader sees them as other, partial calls), and the stream stays whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::dump::Collation;
use super::frames::FrameTrail;
use super::{each_frame, trace_messages, EachFrameError};
use crate::capture::{CaptureError, CaptureFormat, CaptureWriter, Frame, Rotation};
use std::net::SocketAddr;

use crate::decode::{LinkType, Piece, Transport};
use crate::packet::Timestamp;
use crate::parse_stage::{Observer, SeenMessage, SipPorts};

/// Files kept open at once while splitting; the others are closed and appended to later.
const OPEN_FILES: usize = 128;
/// Snap length declared by written files (frames keep their captured length).
const SNAP_LEN: u32 = 262_144;

/// Why frames could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A capture could not be read.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The frames behind a message could not be traced.
    #[error(transparent)]
    Frames(#[from] EachFrameError),
    /// The output could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The output file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The chosen frames have two link types; one pcap holds one.
    #[error("the captures mix link types ({0} and {1}); a pcap file holds one")]
    MixedLinks(LinkType, LinkType),
}

/// The captures and what of them is SIP: what both passes read.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The captures, read in order.
    pub files: &'a [PathBuf],
    /// pcap-filter expression applied while reading.
    pub filter: Option<&'a str>,
    /// The SIP ports.
    pub ports: &'a SipPorts,
    /// Headers linking B2BUA legs.
    pub collation_headers: &'a [String],
}

/// Every frame that carried TCP bytes, by direction, and the windows to write in each.
#[derive(Debug, Default)]
struct TcpWindows {
    segments: HashMap<(SocketAddr, SocketAddr), Vec<u64>>,
    /// (owner, direction) → (first frame, last frame).
    windows: HashMap<(u32, (SocketAddr, SocketAddr)), (u64, u64)>,
}

/// Segment frames remembered at most (8 bytes each).
const MAX_SEGMENT_FRAMES: usize = 50_000_000;

impl TcpWindows {
    fn piece(&mut self, frame: u64, piece: &Piece) {
        if let Piece::Segment { src, dst } = *piece {
            let frames = self.segments.entry((src, dst)).or_default();
            if frames.last() != Some(&frame) && frames.len() < MAX_SEGMENT_FRAMES {
                frames.push(frame);
            }
        }
    }

    /// Widens `owner`'s window on the message's direction to cover its frames (TCP only).
    fn cover(&mut self, owner: u32, m: &SeenMessage<'_, '_, '_>, frames: &[u64]) {
        if !matches!(
            m.info.transport,
            Transport::Tcp | Transport::Tls | Transport::Ws
        ) {
            return;
        }
        let (Some(&lo), Some(&hi)) = (frames.first(), frames.last()) else {
            return;
        };
        let w = self
            .windows
            .entry((owner, (m.info.src, m.info.dst)))
            .or_insert((lo, hi));
        *w = (w.0.min(lo), w.1.max(hi));
    }

    /// Every segment frame inside each owner's windows.
    fn frames(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.windows.iter().flat_map(|(&(owner, dir), &(lo, hi))| {
            let all = self.segments.get(&dir).map_or(&[][..], Vec::as_slice);
            let start = all.partition_point(|&f| f < lo);
            let end = all.partition_point(|&f| f <= hi);
            all[start..end].iter().map(move |&f| (owner, f))
        })
    }
}

/// Writes the frames of the messages `pick` chooses to `out`; returns how many.
pub fn write_picked(
    inputs: Inputs<'_>,
    pick: &mut dyn FnMut(&SeenMessage<'_, '_, '_>) -> bool,
    out: &Path,
) -> Result<u64, WriteError> {
    struct Picker<'p> {
        trail: FrameTrail,
        tcp: TcpWindows,
        pick: &'p mut dyn FnMut(&SeenMessage<'_, '_, '_>) -> bool,
        frames: BTreeSet<u64>,
    }
    impl Observer for Picker<'_> {
        fn message(&mut self, frame: u64, m: &SeenMessage<'_, '_, '_>) {
            let frames = self.trail.frames_of(frame, m);
            if (self.pick)(m) {
                self.tcp.cover(0, m, &frames);
                self.frames.extend(frames);
            }
        }
        fn piece(&mut self, frame: u64, piece: &Piece) {
            self.trail.piece(frame, piece);
            self.tcp.piece(frame, piece);
        }
    }
    let mut picker = Picker {
        trail: FrameTrail::default(),
        tcp: TcpWindows::default(),
        pick,
        frames: BTreeSet::new(),
    };
    trace_messages(
        inputs.files,
        inputs.filter,
        inputs.ports,
        inputs.collation_headers,
        &mut picker,
    )?;
    let windows: Vec<u64> = picker.tcp.frames().map(|(_, f)| f).collect();
    picker.frames.extend(windows);
    let mut writer: Option<CaptureWriter> = None;
    let mut written = 0;
    each_frame(inputs.files, inputs.filter, &mut |n, frame| {
        if !picker.frames.contains(&n) {
            return Ok(());
        }
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(new_pcap(out, frame.link)?),
        };
        if w.link_type() != frame.link {
            return Err(std::io::Error::other(
                WriteError::MixedLinks(w.link_type(), frame.link).to_string(),
            ));
        }
        w.write(frame)?;
        written += 1;
        Ok(())
    })?;
    match writer {
        Some(mut w) => w.flush().map_err(|source| WriteError::Io {
            path: out.to_owned(),
            source,
        })?,
        // Nothing picked: an empty capture still says so.
        None => drop(
            new_pcap(out, LinkType::Ethernet).map_err(|source| WriteError::Io {
                path: out.to_owned(),
                source,
            })?,
        ),
    }
    Ok(written)
}

/// Writes one file per call into `dir`, named after its collation id (all legs of a call
/// across a B2BUA in one file); returns the number of files.
pub fn split_calls(inputs: Inputs<'_>, dir: &Path) -> Result<usize, WriteError> {
    struct Splitter {
        trail: FrameTrail,
        tcp: TcpWindows,
        collation: Collation,
        call_ids: HashMap<String, u32>,
        /// Frame → the calls (indices into `call_ids`) it carries.
        frames: BTreeMap<u64, Vec<u32>>,
    }
    impl Observer for Splitter {
        fn message(&mut self, frame: u64, m: &SeenMessage<'_, '_, '_>) {
            self.collation.learn(m);
            let next = self.call_ids.len() as u32;
            let call = *self
                .call_ids
                .entry(m.event.call_id().to_owned())
                .or_insert(next);
            let frames = self.trail.frames_of(frame, m);
            self.tcp.cover(call, m, &frames);
            for f in frames {
                add_call(&mut self.frames, f, call);
            }
        }
        fn piece(&mut self, frame: u64, piece: &Piece) {
            self.trail.piece(frame, piece);
            self.tcp.piece(frame, piece);
        }
    }
    fn add_call(frames: &mut BTreeMap<u64, Vec<u32>>, frame: u64, call: u32) {
        let calls = frames.entry(frame).or_default();
        if !calls.contains(&call) {
            calls.push(call);
        }
    }
    let mut s = Splitter {
        trail: FrameTrail::default(),
        tcp: TcpWindows::default(),
        collation: Collation::default(),
        call_ids: HashMap::new(),
        frames: BTreeMap::new(),
    };
    trace_messages(
        inputs.files,
        inputs.filter,
        inputs.ports,
        inputs.collation_headers,
        &mut s,
    )?;
    let windows: Vec<(u32, u64)> = s.tcp.frames().collect();
    for (call, f) in windows {
        add_call(&mut s.frames, f, call);
    }
    std::fs::create_dir_all(dir).map_err(|source| WriteError::Io {
        path: dir.to_owned(),
        source,
    })?;
    // Each call's file: its group's (the collation id), else its own Call-ID.
    let mut file_of_call: Vec<PathBuf> = vec![PathBuf::new(); s.call_ids.len()];
    for (call_id, &i) in &s.call_ids {
        let group = s.collation.group_of(call_id).unwrap_or(call_id);
        file_of_call[i as usize] = dir.join(format!("{}.pcap", file_name(group)));
    }
    let mut open: HashMap<PathBuf, CaptureWriter> = HashMap::new();
    let mut created: BTreeSet<PathBuf> = BTreeSet::new();
    let mut link: Option<LinkType> = None;
    let mut failure = None;
    each_frame(inputs.files, inputs.filter, &mut |n, frame| {
        let Some(calls) = s.frames.get(&n) else {
            return Ok(());
        };
        match link {
            Some(l) if l != frame.link => {
                failure = Some(WriteError::MixedLinks(l, frame.link));
                return Ok(());
            }
            _ => link = Some(frame.link),
        }
        let mut paths: Vec<&PathBuf> = calls.iter().map(|&c| &file_of_call[c as usize]).collect();
        paths.sort();
        paths.dedup();
        for path in paths {
            if !open.contains_key(path) {
                if open.len() >= OPEN_FILES {
                    for (_, mut w) in open.drain() {
                        w.flush()?;
                    }
                }
                let w = if created.insert(path.clone()) {
                    new_pcap(path, frame.link)?
                } else {
                    CaptureWriter::append(path, frame.link, SNAP_LEN)?
                };
                open.insert(path.clone(), w);
            }
            if let Some(w) = open.get_mut(path) {
                w.write(frame)?;
            }
        }
        Ok(())
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    for (path, mut w) in open {
        w.flush()
            .map_err(|source| WriteError::Io { path, source })?;
    }
    Ok(created.len())
}

/// A new pcap for written frames.
fn new_pcap(path: &Path, link: LinkType) -> std::io::Result<CaptureWriter> {
    CaptureWriter::create(
        path,
        CaptureFormat::Pcap,
        Rotation::default(),
        link,
        SNAP_LEN,
    )
}

/// A collation id as a file name: letters, digits and `._-@+` kept, the rest `_`.
fn file_name(id: &str) -> String {
    let mut name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-@+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(150)
        .collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert(0, '_');
    }
    name
}

/// Frames kept for a live `dump -w`, so a message's earlier fragments and segments can still
/// be written when it completes.
const LIVE_RING: usize = 8192;

/// A recent live frame, kept until the messages it carries are known.
struct HeldFrame {
    /// Its number in the capture.
    number: u64,
    time: Timestamp,
    original_len: u32,
    link: LinkType,
    data: Vec<u8>,
}

/// `dump -i IFACE -w FILE`: one pass over a live source, writing the frames of each chosen
/// message as it completes (from a ring of recent frames); returns how many were written.
pub fn write_picked_live(
    source: &mut dyn crate::capture::FrameSource,
    ports: &SipPorts,
    collation_headers: &[String],
    pick: &mut dyn FnMut(&SeenMessage<'_, '_, '_>) -> bool,
    out: &Path,
) -> Result<u64, WriteError> {
    use crate::capture::Polled;
    use crate::parse_stage::ParseStage;
    use std::collections::VecDeque;

    struct Picker<'p> {
        trail: FrameTrail,
        pick: &'p mut dyn FnMut(&SeenMessage<'_, '_, '_>) -> bool,
        due: Vec<u64>,
    }
    impl Observer for Picker<'_> {
        fn message(&mut self, frame: u64, m: &SeenMessage<'_, '_, '_>) {
            let frames = self.trail.frames_of(frame, m);
            if (self.pick)(m) {
                self.due.extend(frames);
            }
        }
        fn piece(&mut self, frame: u64, piece: &Piece) {
            self.trail.piece(frame, piece);
        }
    }
    let io = |source| WriteError::Io {
        path: out.to_owned(),
        source,
    };
    let mut picker = Picker {
        trail: FrameTrail::default(),
        pick,
        due: Vec::new(),
    };
    let mut stage = ParseStage::new(ports.clone(), collation_headers.to_vec());
    let mut ring: VecDeque<HeldFrame> = VecDeque::with_capacity(LIVE_RING);
    let mut written: BTreeSet<u64> = BTreeSet::new();
    let mut writer: Option<CaptureWriter> = None;
    let mut count = 0;
    let mut n = 0u64;
    loop {
        match source.poll()? {
            Polled::Frame(frame) => {
                if ring.len() == LIVE_RING {
                    ring.pop_front();
                }
                ring.push_back(HeldFrame {
                    number: n,
                    time: frame.time,
                    original_len: frame.original_len,
                    link: frame.link,
                    data: frame.data.to_vec(),
                });
                stage.on_frame_traced(&frame, &mut |_| {}, &mut picker);
                n += 1;
            }
            Polled::Idle => {
                if let Some(w) = &mut writer {
                    w.flush().map_err(io)?;
                }
                continue;
            }
            Polled::End => break,
        }
        picker.due.sort_unstable();
        picker.due.dedup();
        for index in picker.due.drain(..) {
            let oldest = ring.front().map_or(0, |f| f.number);
            if index < oldest || !written.insert(index) {
                continue;
            }
            let Some(held) = ring.get((index - oldest) as usize) else {
                continue;
            };
            let frame = Frame {
                time: held.time,
                link: held.link,
                original_len: held.original_len,
                data: &held.data,
                interface: 0,
            };
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(new_pcap(out, frame.link).map_err(io)?),
            };
            w.write(&frame).map_err(io)?;
            count += 1;
        }
        // Forget what the ring no longer holds.
        let oldest = ring.front().map_or(0, |f| f.number);
        written = written.split_off(&oldest);
    }
    if let Some(w) = &mut writer {
        w.flush().map_err(io)?;
    }
    Ok(count)
}
