// SPDX-License-Identifier: AGPL-3.0-or-later
//! SCTP (RFC 9260): the user data of DATA chunks, each a whole SIP message (RFC 4168).

use std::collections::HashMap;
use std::net::SocketAddr;

/// Ports of the association and the DATA chunks of one packet.
#[derive(Debug)]
pub struct SctpPacket<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    data: &'a [u8],
}

/// One DATA chunk's user data and where it belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataChunk<'a> {
    pub tsn: u32,
    pub stream: u16,
    /// First fragment of a user message (B flag).
    pub begin: bool,
    /// Last fragment of a user message (E flag).
    pub end: bool,
    pub data: &'a [u8],
}

impl<'a> SctpPacket<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        if data.len() < 12 {
            return None;
        }
        Some(Self {
            src_port: u16::from_be_bytes([data[0], data[1]]),
            dst_port: u16::from_be_bytes([data[2], data[3]]),
            data: &data[12..],
        })
    }

    /// The DATA chunks, in order; other chunks (SACK, INIT, …) are passed over.
    pub fn data_chunks(&self) -> impl Iterator<Item = DataChunk<'a>> {
        let mut rest = self.data;
        std::iter::from_fn(move || loop {
            if rest.len() < 4 {
                return None;
            }
            let (kind, flags) = (rest[0], rest[1]);
            let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            if len < 4 || len > rest.len() {
                return None;
            }
            let chunk = &rest[..len];
            rest = rest.get((len + 3) & !3..).unwrap_or(&[]);
            if kind == 0 && len > 16 {
                return Some(DataChunk {
                    tsn: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
                    stream: u16::from_be_bytes([chunk[8], chunk[9]]),
                    begin: flags & 0x02 != 0,
                    end: flags & 0x01 != 0,
                    data: &chunk[16..],
                });
            }
        })
    }
}

/// Largest user message assembled from fragments.
const MAX_MESSAGE: usize = 256 * 1024;
/// Messages being assembled at once.
const MAX_PARTIAL: usize = 1024;

/// Joins fragmented user messages (B … E, consecutive TSNs) per association stream.
#[derive(Debug, Default)]
pub struct SctpReassembler {
    partial: HashMap<(SocketAddr, SocketAddr, u16), (u32, Vec<u8>)>,
    /// Fragments dropped: out of sequence, too large, or over the bound.
    pub dropped: u64,
}

impl SctpReassembler {
    /// Adds a fragment; returns the whole message when its last fragment arrives.
    pub fn add(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        chunk: &DataChunk<'_>,
    ) -> Option<Vec<u8>> {
        let key = (src, dst, chunk.stream);
        if chunk.begin {
            if self.partial.len() >= MAX_PARTIAL && !self.partial.contains_key(&key) {
                self.dropped += 1;
                return None;
            }
            self.partial.insert(key, (chunk.tsn, chunk.data.to_vec()));
            return None;
        }
        let Some((last_tsn, data)) = self.partial.get_mut(&key) else {
            self.dropped += 1;
            return None;
        };
        if chunk.tsn != last_tsn.wrapping_add(1) || data.len() + chunk.data.len() > MAX_MESSAGE {
            self.dropped += 1;
            self.partial.remove(&key);
            return None;
        }
        *last_tsn = chunk.tsn;
        data.extend_from_slice(chunk.data);
        if chunk.end {
            return self.partial.remove(&key).map(|(_, whole)| whole);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_whole_data_chunks() {
        let mut p = vec![0x13, 0xc4, 0x13, 0xc4, 0, 0, 0, 1, 0, 0, 0, 0];
        // DATA, B+E, length 16 + 5, then 3 bytes of padding.
        p.extend_from_slice(&[0, 0x03, 0, 21, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(b"hello\0\0\0");
        // SACK chunk.
        p.extend_from_slice(&[3, 0, 0, 4]);
        // A fragment (B only).
        p.extend_from_slice(&[
            0, 0x02, 0, 20, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, b'x', b'y', b'z', b'w',
        ]);
        let packet = SctpPacket::parse(&p).expect("sctp");
        assert_eq!(packet.dst_port, 5060);
        let chunks: Vec<DataChunk<'_>> = packet.data_chunks().collect();
        assert_eq!(chunks.len(), 2);
        assert_eq!(
            (chunks[0].begin, chunks[0].end, chunks[0].data),
            (true, true, &b"hello"[..])
        );
        assert_eq!(
            (chunks[1].begin, chunks[1].end, chunks[1].tsn),
            (true, false, 2)
        );
    }

    #[test]
    fn joins_fragments_in_sequence() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:5060".parse().expect("a"),
            "10.0.0.2:5060".parse().expect("b"),
        );
        let chunk = |tsn, begin, end, data| DataChunk {
            tsn,
            stream: 0,
            begin,
            end,
            data,
        };
        let mut r = SctpReassembler::default();
        assert_eq!(r.add(a, b, &chunk(7, true, false, b"INVITE ")), None);
        assert_eq!(r.add(a, b, &chunk(8, false, false, b"sip:x ")), None);
        assert_eq!(
            r.add(a, b, &chunk(9, false, true, b"SIP/2.0")).as_deref(),
            Some(&b"INVITE sip:x SIP/2.0"[..])
        );
        assert_eq!(r.add(a, b, &chunk(11, false, true, b"orphan")), None);
        assert_eq!(r.add(a, b, &chunk(12, true, false, b"x")), None);
        assert_eq!(r.add(a, b, &chunk(14, false, true, b"gap")), None);
        assert_eq!(r.dropped, 2);
    }
}
