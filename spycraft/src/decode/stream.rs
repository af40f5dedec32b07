// SPDX-License-Identifier: AGPL-3.0-or-later
//! What a TCP flow carries, decided from its first bytes: TLS (counted, not decoded), an HTTP
//! upgrade to WebSocket (frames unmasked, each message handed on whole), or plain bytes for the
//! SIP framing upstream.

use super::tcp::{Consumed, Continuity, FlowKey, FlowKind, FlowState, StreamConsumer};
use super::websocket::{frame_header, is_upgrade, unmask_into};
use super::{PacketInfo, PayloadSink, Transport};
use crate::packet::Timestamp;

/// Longest HTTP upgrade head waited for; a longer one is not an upgrade worth following.
const MAX_HTTP_HEAD: usize = 8 * 1024;
/// Largest WebSocket message assembled; SIP messages are far smaller.
const MAX_WS_MESSAGE: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct RouterCounters {
    pub websocket_messages: u64,
}

/// Routes one flow's bytes by what the flow carries.
pub(super) struct StreamRouter<'s> {
    sink: &'s mut dyn PayloadSink,
    counters: &'s mut RouterCounters,
    time: Timestamp,
    vlan: Option<u16>,
}

impl<'s> StreamRouter<'s> {
    pub fn new(
        sink: &'s mut dyn PayloadSink,
        counters: &'s mut RouterCounters,
        time: Timestamp,
        vlan: Option<u16>,
    ) -> Self {
        Self {
            sink,
            counters,
            time,
            vlan,
        }
    }

    fn info(&self, key: &FlowKey, transport: Transport) -> PacketInfo {
        PacketInfo {
            time: self.time,
            src: key.src,
            dst: key.dst,
            transport,
            vlan: self.vlan,
        }
    }

    /// Unmasks complete WebSocket frames and hands each finished message on.
    fn websocket(&mut self, key: &FlowKey, state: &mut FlowState, data: &[u8]) -> Consumed {
        let mut used = 0;
        while let Some(h) = frame_header(&data[used..]) {
            let Some(end) = used
                .checked_add(h.header_len)
                .and_then(|s| s.checked_add(h.payload_len))
            else {
                return Consumed::Ignore;
            };
            if h.payload_len > MAX_WS_MESSAGE {
                return Consumed::Ignore;
            }
            if end > data.len() {
                break;
            }
            let payload = &data[used + h.header_len..end];
            used = end;
            // Continuation, text and binary frames carry SIP; close, ping and pong do not.
            if h.opcode > 2 {
                continue;
            }
            if state.message.len() + payload.len() > MAX_WS_MESSAGE {
                state.message.clear();
                continue;
            }
            unmask_into(&mut state.message, payload, h.mask);
            if h.fin {
                self.counters.websocket_messages += 1;
                let info = self.info(key, Transport::Ws);
                self.sink.datagram(&info, &state.message);
                state.message.clear();
            }
        }
        Consumed::Bytes(used)
    }
}

impl StreamConsumer for StreamRouter<'_> {
    fn bytes(
        &mut self,
        key: &FlowKey,
        state: &mut FlowState,
        data: &[u8],
        continuity: Continuity,
    ) -> Consumed {
        if state.kind == FlowKind::Unknown {
            // A TLS record header: ContentType handshake (22), version 3.x.
            if data.len() >= 2 && data[0] == 0x16 && data[1] == 0x03 {
                let info = self.info(key, Transport::Tls);
                self.sink.tls_flow(&info);
                return Consumed::Ignore;
            }
            if data.starts_with(b"GET ") || data.starts_with(b"HTTP/1.1 101") {
                let Some(end) = memchr::memmem::find(data, b"\r\n\r\n") else {
                    return if data.len() > MAX_HTTP_HEAD {
                        Consumed::Ignore
                    } else {
                        Consumed::Bytes(0)
                    };
                };
                if !is_upgrade(&data[..end]) {
                    return Consumed::Ignore;
                }
                state.kind = FlowKind::WebSocket;
                let rest = &data[end + 4..];
                return match self.websocket(key, state, rest) {
                    Consumed::Bytes(n) => Consumed::Bytes(end + 4 + n),
                    Consumed::Ignore => Consumed::Ignore,
                };
            }
            state.kind = FlowKind::Sip;
        }
        match state.kind {
            FlowKind::WebSocket
                if matches!(continuity, Continuity::Continuing | Continuity::Start) =>
            {
                self.websocket(key, state, data)
            }
            // Frame boundaries are lost with the bytes; the flow cannot be followed further.
            FlowKind::WebSocket => Consumed::Ignore,
            _ => {
                let info = self.info(key, Transport::Tcp);
                self.sink.stream(&info, data, continuity)
            }
        }
    }
}
