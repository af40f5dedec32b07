// SPDX-License-Identifier: AGPL-3.0-or-later
//! The parse stage: frames in, [`Input`]s for the call stage out. It runs the decoder, picks
//! the payloads that carry SIP, frames TCP streams into messages, parses each message in place
//! and reduces it to a [`SipEvent`].

use std::mem::MaybeUninit;
use std::net::SocketAddr;

use spycraft_common::PortRange;

use crate::capture::Frame;
use crate::decode::{
    Agent, Consumed, Continuity, DecodeCounters, DecodeLimits, Decoder, PacketInfo, PayloadSink,
    Piece,
};
use crate::packet::{Timestamp, Transport};
use crate::sip::{
    find_message_start, is_keepalive, is_stream_keepalive, looks_like_sip, parse_datagram_uninit,
    parse_uninit, CollationHeaders, Message, Method, ParseError, SipEvent, SipKind, Status,
    MAX_HEADERS,
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
    /// A SIP message, as the tracker needs it.
    Event(SipEvent),
    /// Bytes were lost on the TCP connection between these two addresses: the calls it carries
    /// may miss a message.
    StreamGap {
        /// One end of the connection.
        a: SocketAddr,
        /// The other end.
        b: SocketAddr,
        /// When the loss was found.
        time: Timestamp,
    },
    /// A live source is idle at this wall-clock time: calls due to end by then end.
    Clock {
        /// The wall-clock time now.
        time: Timestamp,
    },
    /// The capture lost frames (its buffer was full): the calls up now may miss messages.
    CaptureLoss,
    /// A message on a SIP port that is not SIP as RFC 3261 has it (counted in
    /// [`ParseCounters::parse_errors`]), for whoever watches senders of such messages.
    Malformed {
        /// Who sent it.
        from: SocketAddr,
        /// To whom.
        to: SocketAddr,
        /// When it was captured.
        time: Timestamp,
        /// How it travelled.
        transport: Transport,
    },
    /// Time for the outputs to write what they buffer and retry what they hold (sent every
    /// 4,096 frames and whenever a live source idles).
    Flush,
}

/// Where the parse stage puts what it makes: handed on one at a time ([`EachTo`]), or kept
/// in a batch (`Vec<Input>`), where each event is made in the slot it keeps.
pub trait Inputs {
    /// Takes an input that is not a parsed message (a clock tick, a stream gap).
    fn input(&mut self, input: Input);

    /// A cleared event, holding `text` as its text buffer, where the next event is made.
    fn slot(&mut self, text: String) -> &mut SipEvent;

    /// The event in the slot is made: it is taken.
    fn keep(&mut self);

    /// The event in the slot came to nothing (the message lacked what an event needs): it is
    /// dropped, and its text buffer comes back.
    fn discard(&mut self) -> String;
}

/// A batch: each event is filled in where it stays, never copied whole right after being
/// written field by field (such a copy waits on the stores it reads).
impl Inputs for Vec<Input> {
    fn input(&mut self, input: Input) {
        self.push(input);
    }

    fn slot(&mut self, text: String) -> &mut SipEvent {
        self.push(Input::Event(SipEvent::with_text(text)));
        match self.last_mut() {
            Some(Input::Event(event)) => event,
            _ => unreachable!("an event was pushed just now"),
        }
    }

    fn keep(&mut self) {}

    fn discard(&mut self) -> String {
        match self.pop() {
            Some(Input::Event(event)) => event.into_text(),
            _ => unreachable!("the slot is the last input"),
        }
    }
}

/// Inputs handed one at a time to a closure.
#[derive(Debug)]
pub struct EachTo<F> {
    to: F,
    /// The slot: the event being made.
    making: Option<SipEvent>,
}

impl<F: FnMut(Input)> EachTo<F> {
    /// A stage handing what it parses to `to`.
    pub fn new(to: F) -> Self {
        Self { to, making: None }
    }
}

impl<F: FnMut(Input)> Inputs for EachTo<F> {
    fn input(&mut self, input: Input) {
        (self.to)(input);
    }

    fn slot(&mut self, text: String) -> &mut SipEvent {
        self.making.insert(SipEvent::with_text(text))
    }

    fn keep(&mut self) {
        if let Some(event) = self.making.take() {
            (self.to)(Input::Event(event));
        }
    }

    fn discard(&mut self) -> String {
        self.making
            .take()
            .map(SipEvent::into_text)
            .unwrap_or_default()
    }
}

/// One SIP message as the parse stage saw it, for the tools that show messages rather than
/// calls (`dump`, `find`).
#[derive(Debug)]
pub struct SeenMessage<'a, 'h, 'b> {
    /// Where and when it was captured.
    pub info: &'a PacketInfo,
    /// The message's bytes as they travelled (head and body).
    pub raw: &'a [u8],
    /// The parsed message.
    pub message: &'a Message<'h, 'b>,
    /// What the tracker takes from it.
    pub event: &'a SipEvent,
}

/// What the tools that show messages watch: each message and, for those that write the frames
/// behind a message, each piece of a payload that spans frames. `frame` numbers the frames
/// given to the stage, from 0.
pub trait Observer {
    /// Called for every SIP message, with the number of the frame that completed it.
    fn message(&mut self, frame: u64, message: &SeenMessage<'_, '_, '_>);
    /// Called for every piece of a message a frame carried (fragments, segments).
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
    /// The decoder's counters.
    pub decode: DecodeCounters,
    /// Datagrams on non-SIP ports that did not look like SIP.
    pub not_sip: u64,
    /// Keep-alives, and payloads on SIP ports too short to be any SIP message.
    pub keepalives: u64,
    /// SIP messages parsed.
    pub sip_messages: u64,
    /// Requests parsed, by method (in [`Method::ALL`] order).
    pub requests: [u64; Method::ALL.len()],
    /// Responses parsed, by class: 1xx to 6xx.
    pub responses: [u64; 6],
    /// Messages that did not parse, by reason.
    pub parse_errors: [u64; ParseError::ALL.len()],
    /// Messages kept although their body did not match their Content-Length.
    pub body_issues: u64,
    /// Header lines skipped inside otherwise usable messages.
    pub malformed_header_lines: u64,
    /// Times a TCP stream was searched for the next start line, and the bytes skipped.
    pub stream_resyncs: u64,
    /// Bytes skipped on SIP streams to find the next message.
    pub stream_skipped_bytes: u64,
    /// Stream messages larger than the framing bound.
    pub oversize_messages: u64,
    /// TCP flows on SIP ports (or 5061) that opened with a TLS handshake: signalling that
    /// cannot be accounted without the keys.
    pub tls_flows: u64,
}

impl ParseCounters {
    /// Messages that did not parse, all reasons together.
    pub fn total_parse_errors(&self) -> u64 {
        self.parse_errors.iter().sum()
    }

    /// Adds the counts a [`MessageStage`] keeps (messages, parse errors, body issues,
    /// malformed lines), for a run whose messages were parsed on another thread.
    pub fn add_message_counts(&mut self, other: &ParseCounters) {
        self.sip_messages += other.sip_messages;
        for (mine, theirs) in self.requests.iter_mut().zip(other.requests) {
            *mine += theirs;
        }
        for (mine, theirs) in self.responses.iter_mut().zip(other.responses) {
            *mine += theirs;
        }
        for (mine, theirs) in self.parse_errors.iter_mut().zip(other.parse_errors) {
            *mine += theirs;
        }
        self.body_issues += other.body_issues;
        self.malformed_header_lines += other.malformed_header_lines;
    }
}

/// Turns frames into inputs for the call stage.
#[derive(Debug)]
pub struct ParseStage {
    decoder: Decoder,
    sip: SipStage,
    /// Parses the messages found, unless the caller defers them to a [`MessageStage`] of its
    /// own (on another thread).
    messages: MessageStage,
    /// Frames given so far: the number of the next one.
    frames: u64,
}

/// Picks the payloads that carry SIP and frames stream bytes into messages.
#[derive(Debug)]
struct SipStage {
    ports: SipPorts,
    counters: ParseCounters,
}

/// Turns framed SIP messages into events: the half of the parse stage that needs no state
/// from earlier frames, so another thread can do it ([`ParseStage::on_frame_deferred`]).
#[derive(Debug)]
pub struct MessageStage {
    collation_headers: CollationHeaders,
    /// Only the message counts: `sip_messages`, `parse_errors`, `body_issues`,
    /// `malformed_header_lines` (see [`ParseCounters::add_message_counts`]).
    counters: ParseCounters,
    /// Text buffers of spent events, handed back through [`MessageStage::recycle`], so that
    /// building an event allocates nothing once the pipeline is warm.
    spare_text: Vec<String>,
}

/// Spare event buffers kept at most: more than the events in flight between the threads
/// (a few batches of 256), so none is dropped in a steady run.
const MAX_SPARE_TEXTS: usize = 12 * 1024;
/// Buffers grown beyond this by an unusually long message are dropped, not kept, so the
/// spares stay small (at most 12 MiB, a few hundred KiB in practice).
const MAX_SPARE_TEXT_BYTES: usize = 1024;

impl ParseStage {
    /// A stage reading SIP on `ports`, collating by `collation_headers`.
    pub fn new(ports: SipPorts, collation_headers: Vec<String>) -> Self {
        Self::with_limits(ports, collation_headers, DecodeLimits::default())
    }

    /// [`ParseStage::new`] with the decoder's bounds given.
    pub fn with_limits(
        ports: SipPorts,
        collation_headers: Vec<String>,
        limits: DecodeLimits,
    ) -> Self {
        Self {
            decoder: Decoder::new(limits),
            sip: SipStage {
                ports,
                counters: ParseCounters::default(),
            },
            messages: MessageStage::new(CollationHeaders::new(&collation_headers)),
            frames: 0,
        }
    }

    /// Reads SIP on `ports` and links legs by `collation_headers` from now on (a reload);
    /// streams and fragments held stay.
    pub fn reconfigure(&mut self, ports: SipPorts, collation_headers: &[String]) {
        self.sip.ports = ports;
        self.messages.set_collation_headers(collation_headers);
    }

    /// A message stage like this one's, for parsing deferred messages elsewhere.
    pub fn message_stage(&self) -> MessageStage {
        MessageStage::new(self.messages.collation_headers.clone())
    }

    /// Everything counted so far (by this stage's own message stage too).
    pub fn counters(&self) -> ParseCounters {
        let mut c = self.sip.counters.clone();
        c.add_message_counts(&self.messages.counters);
        c.decode = self.decoder.counters();
        c
    }

    /// Takes back spent inputs (emptying `inputs`): their events' text buffers are reused
    /// for the next events.
    pub fn recycle(&mut self, inputs: &mut Vec<Input>) {
        self.messages.recycle(inputs);
    }

    /// Parses deferred messages here after all (see [`MessageStage::parse_all`]), counting
    /// them with this stage's own and showing `observer` each.
    pub fn parse_unparsed(
        &mut self,
        unparsed: &mut Unparsed,
        out: &mut impl Inputs,
        observer: &mut dyn Observer,
    ) {
        self.messages.parse_all_observed(unparsed, out, observer);
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
            to: Target::Events {
                messages: &mut self.messages,
                out,
                observer,
            },
            frame: self.frames,
        };
        self.frames += 1;
        self.decoder.on_frame(frame, &mut emit);
    }

    /// Decodes one frame and frames its SIP messages, but leaves parsing them to a
    /// [`MessageStage`]: the messages are copied into `unparsed`, in order with the other
    /// inputs, so that parsing can run on another thread.
    pub fn on_frame_deferred(&mut self, frame: &Frame<'_>, unparsed: &mut Unparsed) {
        let mut emit = Emit {
            sip: &mut self.sip,
            to: Target::Deferred(unparsed),
            frame: self.frames,
        };
        self.frames += 1;
        self.decoder.on_frame(frame, &mut emit);
    }
}

/// SIP messages copied out of frames for a [`MessageStage`] to parse, in capture order with
/// the other inputs met among them. Emptied by [`MessageStage::parse_all`] and reused.
#[derive(Debug, Default)]
pub struct Unparsed {
    /// The messages' bytes, back to back.
    bytes: Vec<u8>,
    items: Vec<Pending>,
}

#[derive(Debug)]
enum Pending {
    /// A datagram taken for SIP: `bytes[previous end..end]`, after the name of the agent
    /// that delivered it when one did (`agent_name` bytes).
    Datagram {
        info: PacketInfo,
        end: usize,
        agent_id: Option<u32>,
        agent_name: u16,
    },
    /// A whole message framed from a stream.
    StreamMessage { info: PacketInfo, end: usize },
    /// Boxed: rare, and far larger than the rest.
    Input(Box<Input>),
}

impl Unparsed {
    /// Messages and inputs held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes of the messages held.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Adds an input that is not a message (a clock tick, a capture loss) after those held.
    pub fn push_input(&mut self, input: Input) {
        self.items.push(Pending::Input(Box::new(input)));
    }

    fn push_datagram(&mut self, info: &PacketInfo, payload: &[u8], agent: Agent<'_>) {
        // Names are cut to a field's length later anyway.
        let name = &agent.name[..agent.name.len().min(usize::from(u16::MAX))];
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(payload);
        self.items.push(Pending::Datagram {
            info: *info,
            end: self.bytes.len(),
            agent_id: agent.id,
            agent_name: name.len() as u16,
        });
    }

    fn push_stream_message(&mut self, info: &PacketInfo, message: &[u8]) {
        self.bytes.extend_from_slice(message);
        self.items.push(Pending::StreamMessage {
            info: *info,
            end: self.bytes.len(),
        });
    }
}

/// Watches nothing.
struct Unobserved;

impl Observer for Unobserved {
    fn message(&mut self, _: u64, _: &SeenMessage<'_, '_, '_>) {}
}

impl MessageStage {
    /// Links legs by these headers from now on (a reload).
    pub fn set_collation_headers(&mut self, headers: &[String]) {
        self.collation_headers = CollationHeaders::new(headers);
    }

    /// A stage turning messages into events with these collation headers.
    pub fn new(collation_headers: CollationHeaders) -> Self {
        Self {
            collation_headers,
            counters: ParseCounters::default(),
            spare_text: Vec::new(),
        }
    }

    /// What this stage counted: messages, parse errors, body issues, malformed lines.
    pub fn counters(&self) -> &ParseCounters {
        &self.counters
    }

    /// Takes back spent inputs (emptying `inputs`): their events' text buffers are reused
    /// for the next events.
    pub fn recycle(&mut self, inputs: &mut Vec<Input>) {
        let spare = &mut self.spare_text;
        for input in inputs.drain(..) {
            if let Input::Event(event) = input {
                let text = event.into_text();
                if spare.len() < MAX_SPARE_TEXTS && text.capacity() <= MAX_SPARE_TEXT_BYTES {
                    spare.push(text);
                }
            }
        }
    }

    /// Parses everything `unparsed` holds, in order, emptying it; events and the other inputs
    /// go to `out`.
    pub fn parse_all(&mut self, unparsed: &mut Unparsed, out: &mut impl Inputs) {
        self.parse_all_observed(unparsed, out, &mut Unobserved);
    }

    /// As [`MessageStage::parse_all`], showing `observer` each message (its frame number 0:
    /// deferred messages no longer know it).
    pub fn parse_all_observed(
        &mut self,
        unparsed: &mut Unparsed,
        out: &mut impl Inputs,
        observer: &mut dyn Observer,
    ) {
        let mut start = 0;
        // Items are read where they lie, not moved out one by one: each move would copy an
        // item just to read it back.
        for item in &mut unparsed.items {
            match item {
                Pending::Datagram {
                    info,
                    end,
                    agent_id,
                    agent_name,
                } => {
                    let (name, payload) =
                        unparsed.bytes[start..*end].split_at(usize::from(*agent_name));
                    start = *end;
                    let agent = Agent {
                        id: *agent_id,
                        name,
                    };
                    self.datagram(Origin::new(info, agent, 0), payload, out, observer);
                }
                Pending::StreamMessage { info, end } => {
                    let message = &unparsed.bytes[start..*end];
                    start = *end;
                    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
                    // Framed whole by the same parser, so it parses whole again.
                    match parse_uninit(message, &mut headers) {
                        Ok(Status::Complete(msg)) => {
                            let origin = Origin::new(info, Agent::NONE, 0);
                            self.accept(origin, &msg, message, out, observer);
                        }
                        Ok(Status::Partial) => self.reject(info, ParseError::Truncated, out),
                        Err(e) => self.reject(info, e, out),
                    }
                }
                // Taken, leaving a stand-in that the clearing below drops.
                Pending::Input(input) => out.input(std::mem::replace(input, Input::CaptureLoss)),
            }
        }
        unparsed.items.clear();
        unparsed.bytes.clear();
    }

    /// Parses a datagram already taken for SIP.
    fn datagram(
        &mut self,
        origin: Origin<'_>,
        payload: &[u8],
        out: &mut impl Inputs,
        observer: &mut dyn Observer,
    ) {
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        match parse_datagram_uninit(payload, &mut headers) {
            Ok(msg) => {
                let raw = &payload[..msg.len.min(payload.len())];
                self.accept(origin, &msg, raw, out, observer);
            }
            Err(e) => self.reject(origin.info, e, out),
        }
    }

    /// Counts a message that is not SIP and tells the call stage who sent it.
    fn reject(&mut self, info: &PacketInfo, e: ParseError, out: &mut impl Inputs) {
        self.counters.parse_errors[e.index()] += 1;
        out.input(Input::Malformed {
            from: info.src,
            to: info.dst,
            time: info.time,
            transport: info.transport,
        });
    }

    /// Turns a parsed message (`raw` its bytes) into an event.
    fn accept(
        &mut self,
        origin: Origin<'_>,
        msg: &Message<'_, '_>,
        raw: &[u8],
        out: &mut impl Inputs,
        observer: &mut dyn Observer,
    ) {
        let Origin { info, agent, frame } = origin;
        let c = &mut self.counters;
        if msg.body_issue.is_some() {
            c.body_issues += 1;
        }
        c.malformed_header_lines += u64::from(msg.malformed_lines);
        let event = out.slot(self.spare_text.pop().unwrap_or_default());
        match event.fill(info, msg, &self.collation_headers, agent) {
            Ok(()) => {
                c.sip_messages += 1;
                match event.kind {
                    SipKind::Request(method) => c.requests[method as usize] += 1,
                    // The parser takes status codes of three digits only: 100 to 699.
                    SipKind::Response(code) => {
                        c.responses[usize::from(code / 100).clamp(1, 6) - 1] += 1;
                    }
                }
                let seen = SeenMessage {
                    info,
                    raw,
                    message: msg,
                    event,
                };
                observer.message(frame, &seen);
                out.keep();
            }
            Err(e) => {
                self.spare_text.push(out.discard());
                self.reject(info, e, out);
            }
        }
    }
}

/// Where a message came from: its packet, the HEP agent that delivered it (if one did),
/// and the number of the frame that carried it (0 once deferred).
#[derive(Clone, Copy)]
struct Origin<'a> {
    info: &'a PacketInfo,
    agent: Agent<'a>,
    frame: u64,
}

impl<'a> Origin<'a> {
    fn new(info: &'a PacketInfo, agent: Agent<'a>, frame: u64) -> Self {
        Self { info, agent, frame }
    }
}

/// The SIP half of the stage, as the decoder's payload sink for one frame.
struct Emit<'a> {
    sip: &'a mut SipStage,
    to: Target<'a>,
    frame: u64,
}

/// Where the messages of a frame go.
enum Target<'a> {
    /// Parsed here, their events (and the other inputs) to `out`.
    Events {
        messages: &'a mut MessageStage,
        out: &'a mut dyn FnMut(Input),
        observer: &'a mut dyn Observer,
    },
    /// Copied, for a message stage elsewhere.
    Deferred(&'a mut Unparsed),
}

impl Target<'_> {
    fn input(&mut self, input: Input) {
        match self {
            Self::Events { out, .. } => out(input),
            Self::Deferred(unparsed) => unparsed.push_input(input),
        }
    }
}

impl Emit<'_> {
    /// A whole message taken for SIP: parsed here or deferred.
    fn message(&mut self, info: &PacketInfo, payload: &[u8], agent: Agent<'_>) {
        if payload.len() < MIN_SIP_MESSAGE || is_keepalive(payload) {
            self.sip.counters.keepalives += 1;
            return;
        }
        match &mut self.to {
            Target::Events {
                messages,
                out,
                observer,
            } => messages.datagram(
                Origin::new(info, agent, self.frame),
                payload,
                &mut EachTo::new(&mut *out),
                *observer,
            ),
            Target::Deferred(unparsed) => unparsed.push_datagram(info, payload, agent),
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
        if let Target::Events { observer, .. } = &mut self.to {
            observer.piece(self.frame, piece);
        }
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
        self.message(info, payload, Agent::NONE);
    }

    fn agent_message(&mut self, info: &PacketInfo, payload: &[u8], agent: Agent<'_>) {
        self.message(info, payload, agent);
    }

    fn stream(&mut self, info: &PacketInfo, data: &[u8], continuity: Continuity) -> Consumed {
        if continuity == Continuity::AfterLoss {
            self.to.input(Input::StreamGap {
                a: info.src,
                b: info.dst,
                time: info.time,
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
                    let raw = &rest[..msg.len];
                    match &mut self.to {
                        Target::Events {
                            messages,
                            out,
                            observer,
                        } => {
                            let out = &mut EachTo::new(&mut **out);
                            let origin = Origin::new(info, Agent::NONE, self.frame);
                            messages.accept(origin, &msg, raw, out, *observer)
                        }
                        Target::Deferred(unparsed) => unparsed.push_stream_message(info, raw),
                    }
                    continue;
                }
                Ok(Status::Partial) if rest.len() <= MAX_STREAM_MESSAGE => break,
                Ok(Status::Partial) => {
                    self.sip.counters.oversize_messages += 1;
                    true
                }
                Err(e) => {
                    self.sip.counters.parse_errors[e.index()] += 1;
                    self.to.input(Input::Malformed {
                        from: info.src,
                        to: info.dst,
                        time: info.time,
                        transport: info.transport,
                    });
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

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;
    use crate::hep::{HepPacket, PROTOCOL_SIP};
    use crate::packet::LinkType;
    use crate::sip::Field;

    /// An INVITE sent to `port`.
    fn invite(port: u16) -> Vec<u8> {
        format!(
            "INVITE sip:bob@192.0.2.2:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:{port};branch=z9hG4bK1\r\n\
             From: <sip:alice@192.0.2.1>;tag=a1\r\nTo: <sip:bob@192.0.2.2>\r\n\
             Call-ID: agent-test@192.0.2.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    /// A frame holding `payload` in UDP from port `from` to port `to`.
    fn udp_frame(from: u16, to: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 0, 2, 9], [192, 0, 2, 10], 64)
            .udp(from, to)
            .write(&mut frame, payload)
            .expect("a frame");
        frame
    }

    /// The INVITE, on port 5080, as agent 7 "kam-1" delivers it over HEP.
    fn hep_frame(name: &[u8]) -> Vec<u8> {
        let mut hep = Vec::new();
        crate::hep::encode(
            &HepPacket {
                ip_protocol: 17,
                src: "192.0.2.1:5080".parse().expect("address"),
                dst: "192.0.2.2:5080".parse().expect("address"),
                time: Timestamp(1_000_000),
                protocol_type: PROTOCOL_SIP,
                agent_id: Some(7),
                auth_key: None,
                correlation_id: None,
                vlan: None,
                node_name: Some(name),
                payload: &invite(5080),
            },
            &mut hep,
        )
        .expect("encoded");
        udp_frame(40_000, 9060, &hep)
    }

    /// Events of `frames`, parsed in the stage or deferred to a message stage.
    fn events(frames: &[Vec<u8>], deferred: bool) -> Vec<SipEvent> {
        // Port 5060 only, no detection: HEP says what it carries is SIP.
        let ports = SipPorts {
            ports: vec![PortRange::single(5060)],
            detect_elsewhere: false,
        };
        let mut stage = ParseStage::new(ports, Vec::new());
        let mut inputs = Vec::new();
        let mut unparsed = Unparsed::default();
        for data in frames {
            let frame = Frame::whole(Timestamp(2_000_000), LinkType::Ethernet, data);
            if deferred {
                stage.on_frame_deferred(&frame, &mut unparsed);
            } else {
                stage.on_frame(&frame, &mut |input| inputs.push(input));
            }
        }
        stage.message_stage().parse_all(&mut unparsed, &mut inputs);
        inputs
            .into_iter()
            .filter_map(|input| match input {
                Input::Event(event) => Some(event),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn events_name_the_hep_agent_that_delivered_them_on_any_port() {
        let frames = [hep_frame(b"kam-1"), udp_frame(5060, 5060, &invite(5060))];
        for deferred in [false, true] {
            let got = events(&frames, deferred);
            assert_eq!(got.len(), 2, "deferred: {deferred}");
            assert_eq!(got[0].agent_id, Some(7));
            assert_eq!(got[0].field(Field::AgentName), "kam-1");
            assert_eq!(got[0].meta.time, Timestamp(1_000_000), "the agent's time");
            assert_eq!(got[1].agent_id, None, "captured here");
            assert_eq!(got[1].field(Field::AgentName), "");
        }
    }

    #[test]
    fn an_agent_name_that_is_not_utf8_is_kept_readable() {
        let got = events(&[hep_frame(b"kam\xff-2")], true);
        assert_eq!(got[0].field(Field::AgentName), "kam\u{FFFD}-2");
    }
}
