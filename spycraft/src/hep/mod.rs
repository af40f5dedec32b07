// SPDX-License-Identifier: AGPL-3.0-or-later
//! HEP v3, the Homer Encapsulation Protocol: the packet codec, where packets go
//! (`udp://`, `tcp://`, `tls://` endpoints), the exporter that sends every SIP message a run
//! parses, and each record, to Homer, sngrep, Kamailio's sipcapture or heplify-server, and the
//! listener that takes HEP from agents as a capture source.

mod codec;
mod datagrams;
pub mod endpoint;
pub mod export;
pub mod listen;

pub use codec::{
    decode, encode, ip_protocol, is_hep, packet_len, transport_of, HepError, HepPacket,
    PROTOCOL_CDR, PROTOCOL_LOG, PROTOCOL_SIP,
};
pub use endpoint::{Endpoint, EndpointError, HepTransport};
pub use export::{ExportConfig, ExportError, HepExport, HepReport};
pub use listen::{HepListener, ListenConfig, ListenCounts, ListenError};
