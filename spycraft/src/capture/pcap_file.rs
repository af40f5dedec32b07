// SPDX-License-Identifier: AGPL-3.0-or-later
//! Classic pcap files read directly: one large read at a time, records sliced in place.
//!
//! libpcap copies every record out of a stdio buffer, one call per record; on a large capture
//! that costs more than decoding the frames. This reader handles the common case (a classic
//! pcap file, no filter) and leaves pcapng, filters and standard input to libpcap.

use std::io::Read;

use super::window::Window;
use crate::packet::Timestamp;

/// libpcap's largest snap length for the link types spycraft reads: records claiming more
/// are damage, not data, whatever the file's header says (so a hostile header cannot make the
/// reader allocate gigabytes).
pub(crate) const MAX_SNAPLEN: u32 = 262_144;
const HEADER: usize = 24;
const RECORD_HEADER: usize = 16;

/// What the global header says about the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PcapHeader {
    /// Fields are in the other byte order than this machine's.
    swapped: bool,
    /// Timestamps carry nanoseconds, not microseconds.
    nanos: bool,
    /// Largest record length accepted.
    max_caplen: u32,
    /// LINKTYPE_ value.
    pub(crate) link_type: u32,
}

impl PcapHeader {
    /// Reads a classic pcap global header; `None` for anything else (pcapng, the modified
    /// formats, link types with FCS bits), which libpcap then handles.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; HEADER] = bytes.get(..HEADER)?.try_into().ok()?;
        let magic = u32::from_le_bytes(bytes[..4].try_into().ok()?);
        let (big_endian, nanos) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            _ => return None,
        };
        let u32_at = |at: usize| {
            let field: [u8; 4] = bytes[at..at + 4].try_into().unwrap_or_default();
            if big_endian {
                u32::from_be_bytes(field)
            } else {
                u32::from_le_bytes(field)
            }
        };
        let major = if big_endian {
            u16::from_be_bytes([bytes[4], bytes[5]])
        } else {
            u16::from_le_bytes([bytes[4], bytes[5]])
        };
        if major != 2 {
            return None;
        }
        let link_type = u32_at(20);
        if link_type > 0xffff {
            return None;
        }
        Some(Self {
            swapped: big_endian,
            nanos,
            max_caplen: MAX_SNAPLEN,
            link_type,
        })
    }
}

/// One record: capture time, length on the wire, and where its bytes lie in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) time: Timestamp,
    pub(crate) original_len: u32,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// The records of a classic pcap file, after its global header.
#[derive(Debug)]
pub(crate) struct PcapReader<R> {
    window: Window<R>,
    header: PcapHeader,
}

impl<R: Read> PcapReader<R> {
    /// Reads from `input`, positioned just after the global header.
    pub(crate) fn new(input: R, header: PcapHeader) -> Self {
        Self {
            window: Window::new(input),
            header,
        }
    }

    /// The record's bytes.
    pub(crate) fn data(&self, record: &Record) -> &[u8] {
        self.window.slice(record.start, record.len)
    }

    /// The next record, `Ok(None)` at a clean end, or why the file breaks off.
    pub(crate) fn next_record(&mut self) -> Result<Option<Record>, String> {
        if !self.window.fill(RECORD_HEADER)? {
            return match self.window.available() {
                0 => Ok(None),
                got => Err(format!(
                    "truncated dump file; tried to read {RECORD_HEADER} header bytes, only got {got}"
                )),
            };
        }
        let ahead = self.window.ahead();
        let field = |n: usize| {
            let bytes: [u8; 4] = ahead[4 * n..4 * n + 4].try_into().unwrap_or_default();
            if self.header.swapped {
                u32::from_be_bytes(bytes)
            } else {
                u32::from_le_bytes(bytes)
            }
        };
        let (secs, fraction, caplen, original_len) = (field(0), field(1), field(2), field(3));
        if caplen > self.header.max_caplen {
            return Err(format!(
                "invalid packet capture length {caplen}, bigger than maximum of {}",
                self.header.max_caplen
            ));
        }
        let caplen = caplen as usize;
        if !self.window.fill(RECORD_HEADER + caplen)? {
            return Err(format!(
                "truncated dump file; tried to read {caplen} captured bytes, only got {}",
                self.window.available() - RECORD_HEADER
            ));
        }
        let micros = if self.header.nanos {
            i64::from(fraction) / 1000
        } else {
            i64::from(fraction)
        };
        let record = Record {
            time: Timestamp::from_parts(i64::from(secs), micros),
            original_len,
            start: self.window.pos() + RECORD_HEADER,
            len: caplen,
        };
        self.window.consume(RECORD_HEADER + caplen);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A global header: magic, version 2.4, snap length 65,535, link type.
    fn global(magic: u32, big_endian: bool, link: u32) -> Vec<u8> {
        let u32s = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u16s = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = u32s(magic).to_vec();
        out.extend(u16s(2));
        out.extend(u16s(4));
        for field in [0, 0, 65_535, link] {
            out.extend(u32s(field));
        }
        out
    }

    fn record(big_endian: bool, fields: [u32; 4], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in fields {
            out.extend_from_slice(&if big_endian {
                f.to_be_bytes()
            } else {
                f.to_le_bytes()
            });
        }
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_both_byte_orders_and_both_precisions() {
        for big_endian in [false, true] {
            for (magic, fraction, us) in [
                (0xa1b2_c3d4, 250_000, 250_000),
                (0xa1b2_3c4d, 7_000_123, 7_000),
            ] {
                let mut file = global(magic, big_endian, 1);
                let header = PcapHeader::parse(&file).expect("classic pcap");
                assert_eq!(header.link_type, 1);
                file.extend(record(big_endian, [10, fraction, 3, 60], b"abc"));
                file.extend(record(big_endian, [11, 0, 0, 0], b""));
                let mut reader = PcapReader::new(&file[HEADER..], header);
                let first = reader.next_record().expect("ok").expect("a record");
                assert_eq!(
                    (first.time.micros(), first.original_len),
                    (10_000_000 + us, 60)
                );
                assert_eq!(reader.data(&first), b"abc");
                let second = reader.next_record().expect("ok").expect("a record");
                assert_eq!((second.time.micros(), second.len), (11_000_000, 0));
                assert_eq!(reader.next_record(), Ok(None));
            }
        }
    }

    #[test]
    fn leaves_other_formats_to_libpcap() {
        assert_eq!(PcapHeader::parse(&[0x0a, 0x0d, 0x0d, 0x0a]), None, "pcapng");
        assert_eq!(
            PcapHeader::parse(&global(0xa1b2_cd34, false, 1)),
            None,
            "modified"
        );
        assert_eq!(
            PcapHeader::parse(&global(0xa1b2_c3d4, false, 0x1000_0001)),
            None,
            "FCS bits"
        );
        assert!(PcapHeader::parse(&global(0xa1b2_c3d4, false, 276)).is_some());
    }

    #[test]
    fn reports_records_cut_short_or_impossibly_long() {
        let mut file = global(0xa1b2_c3d4, false, 1);
        let header = PcapHeader::parse(&file).expect("classic pcap");
        file.extend(record(false, [1, 0, 4, 4], b"good"));
        let good = file.len();
        file.extend(record(false, [2, 0, 100, 100], b"cut"));
        let mut reader = PcapReader::new(&file[HEADER..], header);
        assert!(reader.next_record().expect("ok").is_some());
        let err = reader.next_record().expect_err("cut");
        assert!(err.contains("only got 3"), "{err}");

        let mut reader = PcapReader::new(&file[HEADER..good + 7], header);
        assert!(reader.next_record().expect("ok").is_some());
        let err = reader.next_record().expect_err("cut header");
        assert!(err.contains("16 header bytes, only got 7"), "{err}");

        let mut huge = file[..good].to_vec();
        huge.extend(record(false, [3, 0, u32::MAX, u32::MAX], &[0; 64]));
        let mut reader = PcapReader::new(&huge[HEADER..], header);
        assert!(reader.next_record().expect("ok").is_some());
        let err = reader.next_record().expect_err("huge");
        assert!(err.contains("bigger than maximum of 262144"), "{err}");
    }

    #[test]
    fn a_header_claiming_a_huge_snap_length_does_not_raise_the_bound() {
        let mut file = global(0xa1b2_c3d4, false, 1);
        file[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        let header = PcapHeader::parse(&file).expect("classic pcap");
        file.extend(record(false, [1, 0, 1 << 30, 1 << 30], &[0; 64]));
        let mut reader = PcapReader::new(&file[HEADER..], header);
        let err = reader.next_record().expect_err("too long");
        assert!(err.contains("bigger than maximum of 262144"), "{err}");
        assert_eq!(
            reader.window.capacity(),
            super::super::window::CHUNK,
            "nothing was allocated for it"
        );
    }

    #[test]
    fn records_split_between_reads_come_out_whole() {
        // About 4 MiB of records of every size up to 1,600 bytes: record headers and bodies
        // fall across the buffer's refills at many offsets.
        let mut file = global(0xa1b2_c3d4, false, 1);
        let header = PcapHeader::parse(&file).expect("classic pcap");
        let body = |n: u32| -> Vec<u8> { (0..n % 1601).map(|i| (n ^ i) as u8).collect() };
        let count = 5_000u32;
        for n in 0..count {
            let data = body(n);
            file.extend(record(false, [n, 0, data.len() as u32, 2_000], &data));
        }
        let mut reader = PcapReader::new(&file[HEADER..], header);
        for n in 0..count {
            let r = reader.next_record().expect("ok").expect("a record");
            assert_eq!(
                (r.time.micros(), r.original_len),
                (i64::from(n) * 1_000_000, 2_000)
            );
            assert_eq!(reader.data(&r), body(n), "record {n}");
        }
        assert_eq!(reader.next_record(), Ok(None));
    }

    #[test]
    fn reads_records_larger_than_its_buffer_and_across_reads() {
        let mut file = global(0xa1b2_c3d4, false, 1);
        let header = PcapHeader::parse(&file).expect("classic pcap");
        let big = vec![7u8; 200_000];
        for n in 0..12 {
            file.extend(record(false, [n, 0, 200_000, 200_000], &big));
        }
        // A reader that hands out odd-sized pieces, as pipes do.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = out.len().min(self.0.len()).min(77_777);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut reader = PcapReader::new(Trickle(&file[HEADER..]), header);
        let mut n = 0;
        while let Some(r) = reader.next_record().expect("ok") {
            assert_eq!(r.time.micros(), i64::from(n) * 1_000_000);
            assert!(reader.data(&r).iter().all(|&b| b == 7));
            n += 1;
        }
        assert_eq!(n, 12);
    }
}
