// SPDX-License-Identifier: AGPL-3.0-or-later
//! The parse stage: frames in, [`Input`]s for the call stage out. It runs the decoder, picks
//! the payloads that carry SIP, frames TCP streams into messages, parses each message in place
//! and reduces it to a [`SipEvent`].

use std::mem::MaybeUninit;
use std::net::SocketAddr;

use spycraft_common::PortRange;

use crate::capture::Frame;
use crate::decode::{
    Consumed, Continuity, DecodeCounters, DecodeLimits, Decoder, PacketInfo, PayloadSink, Piece,
};
use crate::sip::{
    find_message_start, is_keepalive, is_stream_keepalive, looks_like_sip, parse_datagram_uninit,
    parse_uninit, Message, ParseError, SipEvent, Status, MAX_HEADERS,
};

/// Shorter than `ACK sip:a SIP/2.0\r\n\r\n`: a keep-alive ("hello", "jaK") or junk, never SIP.
const MIN_SIP_MESSAGE: usize = 20;
/// Largest SIP message framed from a stream; beyond it the stream is resynchronised.
const MAX_STREAM_MESSAGE: usize = 256 * 1024;
/// Bytes kept when no start line is found yet: a start line may straddle two segments.
const START_LINE_TAIL: usize = 2048;

/// Which ports carry SIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipPorts {
    /// Payloads to or from these ports are parsed as SIP (errors counted).
    pub ports: Vec<PortRange>,
    /// Also take payloads (and TCP streams) on any other port that begin with a SIP start line.
    pub detect_elsewhere: bool,
}

impl Default for SipPorts {
    fn default() -> Self {
        Self {
            ports: spycraft_common::DEFAULT_SIP_PORTS
                .map(PortRange::single)
                .to_vec(),
            detect_elsewhere: true,
        }
    }
}

impl SipPorts {
    fn configured(&self, info: &PacketInfo) -> bool {
        let (src, dst) = (info.src.port(), info.dst.port());
        self.ports
            .iter()
            .any(|r| r.contains(src) || r.contains(dst))
    }
}

/// What the parse stage hands to the call stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Event(SipEvent),
    /// Bytes were lost on the TCP connection between these two addresses: the calls it carries
    /// may miss a message.
    StreamGap {
        a: SocketAddr,
        b: SocketAddr,
        ts_us: i64,
    },
    /// A live source is idle at this wall-clock time: calls due to end by then end.
    Clock {
        ts_us: i64,
    },
    /// The capture lost frames (its buffer was full): the calls up now may miss messages.
    CaptureLoss,
}

/// One SIP message as the parse stage saw it, for the tools that show messages rather than
/// calls (`dump`, `find`).
#[derive(Debug)]
pub struct SeenMessage<'a, 'h, 'b> {
    pub info: &'a PacketInfo,
    /// The message's bytes as they travelled (head and body).
    pub raw: &'a [u8],
    pub message: &'a Message<'h, 'b>,
    pub event: &'a SipEvent,
}

/// What the tools that show messages watch: each message and, for those that write the frames
/// behind a message, each piece of a payload that spans frames. `frame` numbers the frames
/// given to the stage, from 0.
pub trait Observer {
    fn message(&mut self, frame: u64, message: &SeenMessage<'_, '_, '_>);
    fn piece(&mut self, _frame: u64, _piece: &Piece) {}
}

/// A closure watching messages only.
struct Messages<'a>(&'a mut dyn FnMut(&SeenMessage<'_, '_, '_>));

impl Observer for Messages<'_> {
    fn message(&mut self, _frame: u64, message: &SeenMessage<'_, '_, '_>) {
        (self.0)(message);
    }
}

/// Counters of the capture, decode and parse stages.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ParseCounters {
    pub decode: DecodeCounters,
    /// Datagrams on non-SIP ports that did not look like SIP.
    pub not_sip: u64,
    /// Keep-alives, and payloads on SIP ports too short to be any SIP message.
    pub keepalives: u64,
    pub sip_messages: u64,
    pub parse_errors: [u64; ParseError::ALL.len()],
    /// Messages kept although their body did not match their Content-Length.
    pub body_issues: u64,
    /// Header lines skipped inside otherwise usable messages.
    pub malformed_header_lines: u64,
    /// Times a TCP stream was searched for the next start line, and the bytes skipped.
    pub stream_resyncs: u64,
    pub stream_skipped_bytes: u64,
    /// Stream messages larger than the framing bound.
    pub oversize_messages: u64,
    /// TCP flows on SIP ports (or 5061) that opened with a TLS handshake: signalling that
    /// cannot be accounted without the keys.
    pub tls_flows: u64,
}

impl ParseCounters {
    pub fn total_parse_errors(&self) -> u64 {
        self.parse_errors.iter().sum()
    }
}

/// Turns frames into inputs for the call stage.
#[derive(Debug)]
pub struct ParseStage {
    decoder: Decoder,
    sip: SipStage,
    /// Frames given so far: the number of the next one.
    frames: u64,
}

#[derive(Debug)]
struct SipStage {
    ports: SipPorts,
    collation_headers: Vec<String>,
    counters: ParseCounters,
    /// Text buffers of spent events, handed back through [`ParseStage::recycle`], so that
    /// building an event allocates nothing once the pipeline is warm.
    spare_text: Vec<String>,
}

/// Spare event buffers kept at most: more than the events in flight between the threads
/// (16 queued batches of 512), so none is dropped in a steady run.
const MAX_SPARE_TEXTS: usize = 12 * 1024;
/// Buffers grown beyond this by an unusually long message are dropped, not kept, so the
/// spares stay small (at most 12 MiB, a few hundred KiB in practice).
const MAX_SPARE_TEXT_BYTES: usize = 1024;

impl ParseStage {
    pub fn new(ports: SipPorts, collation_headers: Vec<String>) -> Self {
        Self::with_limits(ports, collation_headers, DecodeLimits::default())
    }

    pub fn with_limits(
        ports: SipPorts,
        collation_headers: Vec<String>,
        limits: DecodeLimits,
    ) -> Self {
        Self {
            decoder: Decoder::new(limits),
            sip: SipStage {
                ports,
                collation_headers,
                counters: ParseCounters::default(),
                spare_text: Vec::new(),
            },
            frames: 0,
        }
    }

    /// Everything counted so far.
    pub fn counters(&self) -> ParseCounters {
        let mut c = self.sip.counters.clone();
        c.decode = self.decoder.counters();
        c
    }

    /// Takes back spent inputs (emptying `inputs`): their events' text buffers are reused
    /// for the next events.
    pub fn recycle(&mut self, inputs: &mut Vec<Input>) {
        let spare = &mut self.sip.spare_text;
        for input in inputs.drain(..) {
            if let Input::Event(event) = input {
                let text = event.into_text();
                if spare.len() < MAX_SPARE_TEXTS && text.capacity() <= MAX_SPARE_TEXT_BYTES {
                    spare.push(text);
                }
            }
        }
    }

    /// Bytes held for reassembly.
    pub fn held_bytes(&self) -> usize {
        self.decoder.held_bytes()
    }

    /// Decodes and parses one frame; what it yields goes to `out`.
    pub fn on_frame(&mut self, frame: &Frame<'_>, out: &mut dyn FnMut(Input)) {
        self.on_frame_observed(frame, out, &mut |_| {});
    }

    /// As [`ParseStage::on_frame`], also showing `seen` each message before its event goes out.
    pub fn on_frame_observed(
        &mut self,
        frame: &Frame<'_>,
        out: &mut dyn FnMut(Input),
        seen: &mut dyn FnMut(&SeenMessage<'_, '_, '_>),
    ) {
        self.on_frame_traced(frame, out, &mut Messages(seen));
    }

    /// As [`ParseStage::on_frame`], with an observer that also sees the pieces.
    pub fn on_frame_traced(
        &mut self,
        frame: &Frame<'_>,
        out: &mut dyn FnMut(Input),
        observer: &mut dyn Observer,
    ) {
        let mut emit = Emit {
            sip: &mut self.sip,
            out,
            observer,
            frame: self.frames,
        };
        self.frames += 1;
        self.decoder.on_frame(frame, &mut emit);
    }
}

/// The SIP half of the stage, as the decoder's payload sink for one frame.
struct Emit<'a> {
    sip: &'a mut SipStage,
    out: &'a mut dyn FnMut(Input),
    observer: &'a mut dyn Observer,
    frame: u64,
}

impl Emit<'_> {
    /// Turns a parsed message (`raw` its bytes) into an event.
    fn accept(&mut self, info: &PacketInfo, msg: &Message<'_, '_>, raw: &[u8]) {
        let c = &mut self.sip.counters;
        if msg.body_issue.is_some() {
            c.body_issues += 1;
        }
        c.malformed_header_lines += u64::from(msg.malformed_lines);
        let text = self.sip.spare_text.pop().unwrap_or_default();
        match SipEvent::from_message_in(*info, msg, &self.sip.collation_headers, text) {
            Ok(event) => {
                c.sip_messages += 1;
                self.observer.message(
                    self.frame,
                    &SeenMessage {
                        info,
                        raw,
                        message: msg,
                        event: &event,
                    },
                );
                (self.out)(Input::Event(event));
            }
            Err(e) => c.parse_errors[e.index()] += 1,
        }
    }

    /// Moves `pos` past the next start line after it (or near the end when there is none).
    fn resync(&mut self, data: &[u8], from: usize) -> Option<usize> {
        let c = &mut self.sip.counters;
        c.stream_resyncs += 1;
        match find_message_start(&data[from..]) {
            Some(at) => {
                c.stream_skipped_bytes += at as u64;
                Some(from + at)
            }
            None => None,
        }
    }
}

/// SIP over TLS (RFC 3261 §26.2).
const SIPS_PORT: u16 = 5061;

impl PayloadSink for Emit<'_> {
    fn piece(&mut self, piece: &Piece) {
        self.observer.piece(self.frame, piece);
    }

    fn tls_flow(&mut self, info: &PacketInfo) {
        let sips = info.src.port() == SIPS_PORT || info.dst.port() == SIPS_PORT;
        if sips || self.sip.ports.configured(info) {
            self.sip.counters.tls_flows += 1;
        }
    }

    fn datagram(&mut self, info: &PacketInfo, payload: &[u8]) {
        let sip = &mut *self.sip;
        let is_sip =
            sip.ports.configured(info) || (sip.ports.detect_elsewhere && looks_like_sip(payload));
        if !is_sip {
            sip.counters.not_sip += 1;
            return;
        }
        if payload.len() < MIN_SIP_MESSAGE || is_keepalive(payload) {
            sip.counters.keepalives += 1;
            return;
        }
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        match parse_datagram_uninit(payload, &mut headers) {
            Ok(msg) => self.accept(info, &msg, &payload[..msg.len.min(payload.len())]),
            Err(e) => sip.counters.parse_errors[e.index()] += 1,
        }
    }

    fn stream(&mut self, info: &PacketInfo, data: &[u8], continuity: Continuity) -> Consumed {
        if continuity == Continuity::AfterLoss {
            (self.out)(Input::StreamGap {
                a: info.src,
                b: info.dst,
                ts_us: info.ts_us,
            });
        }
        let configured = self.sip.ports.configured(info);
        if !configured && !self.sip.ports.detect_elsewhere {
            return Consumed::Ignore;
        }
        let mut pos = 0;
        if continuity != Continuity::Continuing {
            // A flow's first bytes, or bytes after a loss: find where a message starts.
            match find_message_start(data) {
                Some(at) => {
                    if at > 0 {
                        self.sip.counters.stream_resyncs += 1;
                        self.sip.counters.stream_skipped_bytes += at as u64;
                    }
                    pos = at;
                }
                // On a port nobody named, a flow that does not open with SIP is not SIP.
                None if !configured && continuity != Continuity::AfterLoss => {
                    let undecided = data.len() < START_LINE_TAIL && !data.contains(&b'\n');
                    return if undecided {
                        Consumed::Bytes(0)
                    } else {
                        Consumed::Ignore
                    };
                }
                None => return Consumed::Bytes(data.len().saturating_sub(START_LINE_TAIL)),
            }
        }
        while pos < data.len() {
            let rest = &data[pos..];
            if is_stream_keepalive(rest) {
                self.sip.counters.keepalives += 1;
                pos = data.len();
                break;
            }
            let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let failed = match parse_uninit(rest, &mut headers) {
                Ok(Status::Complete(msg)) => {
                    pos += msg.len;
                    self.accept(info, &msg, &rest[..msg.len]);
                    continue;
                }
                Ok(Status::Partial) if rest.len() <= MAX_STREAM_MESSAGE => break,
                Ok(Status::Partial) => {
                    self.sip.counters.oversize_messages += 1;
                    true
                }
                Err(e) => {
                    self.sip.counters.parse_errors[e.index()] += 1;
                    true
                }
            };
            debug_assert!(failed);
            match self.resync(data, pos + 1) {
                Some(next) => pos = next,
                None => {
                    let keep_from = data.len().saturating_sub(START_LINE_TAIL).max(pos + 1);
                    self.sip.counters.stream_skipped_bytes += (keep_from - pos) as u64;
                    pos = keep_from;
                    break;
                }
            }
        }
        Consumed::Bytes(pos)
    }
}
