// SPDX-License-Identifier: AGPL-3.0-or-later
//! pcap and pcapng files (or standard input, `-`): classic pcap files read directly,
//! everything else (and any filtered read) through libpcap.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use pcap::{Capture, Offline, Precision};

use super::pcap_file::{PcapHeader, PcapReader};
use super::pcapng_file::{self, PcapngReader};
use super::{CaptureError, Frame};
use crate::packet::{LinkType, Timestamp};

/// Where the records come from.
enum Reader {
    /// Classic pcap files without a filter: read directly (see `pcap_file`).
    Pcap(PcapReader<std::fs::File>),
    /// pcapng files without a filter: read directly, each interface with its own link type
    /// (see `pcapng_file`).
    Pcapng(PcapngReader<std::fs::File>),
    /// pcapng, standard input, filtered reads.
    Libpcap(Capture<Offline>),
}

/// An open capture file.
pub struct OfflineSource {
    path: PathBuf,
    reader: Reader,
    link: LinkType,
    frames: u64,
    /// File bytes consumed so far (record headers included), for progress.
    bytes_read: u64,
    /// Raised by SIGINT or SIGTERM: the reading ends as if the file had.
    stop: Option<&'static AtomicBool>,
}

impl std::fmt::Debug for OfflineSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineSource")
            .field("path", &self.path)
            .field("link", &self.link)
            .field("frames", &self.frames)
            .finish()
    }
}

impl OfflineSource {
    /// Opens a capture; `-` reads standard input. `filter` is a pcap-filter expression.
    pub fn open(path: &Path, filter: Option<&str>) -> Result<Self, CaptureError> {
        let owned = path.to_path_buf();
        if path != Path::new("-") {
            match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(CaptureError::NotFound { path: owned })
                }
                Err(source) => {
                    return Err(CaptureError::Unreadable {
                        path: owned,
                        source,
                    })
                }
                Ok(m) if m.is_dir() => return Err(CaptureError::IsDirectory { path: owned }),
                Ok(_) => {}
            }
            // libpcap reports permission problems as format errors; check them ourselves.
            let file = std::fs::File::open(path).map_err(|source| CaptureError::Unreadable {
                path: owned.clone(),
                source,
            })?;
            if filter.is_none() {
                if let Some(source) = Self::open_direct(&owned, file)? {
                    return Ok(source);
                }
            }
        }
        let mut capture = Capture::from_file_with_precision(path, Precision::Nano).map_err(
            |e| match path_format(path) {
                Some(format) => CaptureError::OtherFormat {
                    path: owned.clone(),
                    format,
                },
                None => CaptureError::NotACapture {
                    path: owned.clone(),
                    reason: e.to_string(),
                },
            },
        )?;
        let dlt = capture.get_datalink();
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| unsupported(&owned, dlt.0))?;
        if let Some(filter) = filter {
            capture
                .filter(filter, true)
                .map_err(|e| CaptureError::BadFilter {
                    path: owned.clone(),
                    filter: filter.to_owned(),
                    reason: e.to_string(),
                })?;
        }
        Ok(Self {
            path: owned,
            reader: Reader::Libpcap(capture),
            link,
            frames: 0,
            bytes_read: 24,
            stop: None,
        })
    }

    /// Reads `file` directly if it is a classic pcap file with a link type spycraft decodes,
    /// or a pcapng file; `Ok(None)` leaves it (and its error messages) to libpcap.
    fn open_direct(path: &Path, mut file: std::fs::File) -> Result<Option<Self>, CaptureError> {
        let mut global = [0u8; 24];
        if file.read_exact(&mut global).is_err() {
            return Ok(None);
        }
        if global[..4] == pcapng_file::MAGIC {
            return Self::open_pcapng(path, file).map(Some);
        }
        let Some(header) = PcapHeader::parse(&global) else {
            return Ok(None);
        };
        let Some(link) = i32::try_from(header.link_type)
            .ok()
            .and_then(LinkType::from_dlt)
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            path: path.to_path_buf(),
            reader: Reader::Pcap(PcapReader::new(file, header)),
            link,
            frames: 0,
            bytes_read: 24,
            stop: None,
        }))
    }

    /// A pcapng file from its start, its first interfaces read so that a link type spycraft
    /// does not decode is refused before the run.
    fn open_pcapng(path: &Path, mut file: std::fs::File) -> Result<Self, CaptureError> {
        use std::io::Seek;
        let owned = path.to_path_buf();
        file.rewind().map_err(|source| CaptureError::Unreadable {
            path: owned.clone(),
            source,
        })?;
        let mut reader = PcapngReader::new(file);
        reader
            .read_head()
            .map_err(|reason| CaptureError::NotACapture {
                path: owned.clone(),
                reason,
            })?;
        let mut link = None;
        for dlt in reader.link_types() {
            let known = LinkType::from_dlt(i32::from(dlt))
                .ok_or_else(|| unsupported(&owned, i32::from(dlt)))?;
            link.get_or_insert(known);
        }
        Ok(Self {
            path: owned,
            reader: Reader::Pcapng(reader),
            link: link.unwrap_or(LinkType::Ethernet),
            frames: 0,
            bytes_read: 0,
            stop: None,
        })
    }

    /// Ends the reading, as if the file ended there, once `stop` is raised (SIGINT, SIGTERM,
    /// every output's reader gone): what was read is still analysed and written.
    pub fn stop_on(mut self, stop: &'static AtomicBool) -> Self {
        self.stop = Some(stop);
        self
    }

    /// The flag that ends the reading, if one was given.
    pub(super) fn stop_flag(&self) -> Option<&'static AtomicBool> {
        self.stop
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its link layer (the first interface's, for pcapng).
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Approximate bytes of the file consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next frame, `Ok(None)` at the end, or `Damaged` when the file breaks off mid-record.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        let damaged = |frames: u64, reason: String| CaptureError::Damaged {
            path: self.path.clone(),
            frames,
            reason,
        };
        match &mut self.reader {
            Reader::Pcap(reader) => match reader.next_record() {
                Ok(Some(record)) => {
                    self.frames += 1;
                    self.bytes_read += 16 + record.len as u64;
                    Ok(Some(Frame {
                        time: record.time,
                        link: self.link,
                        original_len: record.original_len,
                        data: reader.data(&record),
                        interface: 0,
                    }))
                }
                Ok(None) => Ok(None),
                Err(reason) => Err(damaged(self.frames, reason)),
            },
            Reader::Pcapng(reader) => match reader.next_packet() {
                Ok(Some(packet)) => {
                    let link = LinkType::from_dlt(i32::from(packet.link_type)).ok_or_else(|| {
                        let name = pcap::Linktype(i32::from(packet.link_type))
                            .get_name()
                            .unwrap_or_else(|_| "unknown".into());
                        damaged(
                            self.frames,
                            format!(
                                "an interface has link type {name} ({}), which spycraft does not decode",
                                packet.link_type
                            ),
                        )
                    })?;
                    self.frames += 1;
                    self.bytes_read += 32 + packet.len as u64;
                    Ok(Some(Frame {
                        time: packet.time,
                        link,
                        original_len: packet.original_len,
                        data: reader.data(&packet),
                        interface: 0,
                    }))
                }
                Ok(None) => Ok(None),
                Err(reason) => Err(damaged(self.frames, reason)),
            },
            Reader::Libpcap(capture) => match capture.next_packet() {
                Ok(packet) => {
                    self.frames += 1;
                    self.bytes_read += 16 + u64::from(packet.header.caplen);
                    let ts = packet.header.ts;
                    // With nanosecond precision, tv_usec holds nanoseconds. The field types
                    // differ between platforms, hence the conversions.
                    #[allow(clippy::useless_conversion)]
                    let time =
                        Timestamp::from_parts(i64::from(ts.tv_sec), i64::from(ts.tv_usec) / 1000);
                    Ok(Some(Frame {
                        time,
                        link: self.link,
                        original_len: packet.header.len,
                        data: packet.data,
                        interface: 0,
                    }))
                }
                Err(pcap::Error::NoMorePackets) => Ok(None),
                Err(e) => Err(damaged(self.frames, e.to_string())),
            },
        }
    }
}

/// The link type spycraft does not decode, named.
fn unsupported(path: &Path, dlt: i32) -> CaptureError {
    CaptureError::UnsupportedLinkType {
        path: path.to_path_buf(),
        dlt,
        name: pcap::Linktype(dlt)
            .get_name()
            .unwrap_or_else(|_| "unknown".into()),
    }
}

/// Capture formats libpcap does not read, known by their first bytes.
fn path_format(path: &Path) -> Option<&'static str> {
    let mut head = [0u8; 8];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    match &head {
        [b'G', b'M', b'B', b'U', ..] => Some("Microsoft Network Monitor 2.x"),
        [b'R', b'T', b'S', b'S', ..] => Some("Microsoft Network Monitor 1.x"),
        b"snoop\0\0\0" => Some("Sun snoop"),
        [b'X', b'C', b'P', 0, ..] => Some("Network General Sniffer"),
        _ => None,
    }
}

#[cfg(test)]
impl OfflineSource {
    /// Every frame not read yet, as (time, length on the wire, bytes): what tests compare.
    pub(crate) fn remaining_frames(mut self) -> Vec<(Timestamp, u32, Vec<u8>)> {
        let mut frames = Vec::new();
        while let Some(f) = self.next_frame().expect("readable") {
            frames.push((f.time, f.original_len, f.data.to_vec()));
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_reader_yields_exactly_what_libpcap_does() {
        let mut compared = 0;
        for file in crate::bundled::bundled_captures() {
            let direct = OfflineSource::open(&file, None).expect("opens");
            assert!(
                matches!(direct.reader, Reader::Pcap(_)),
                "{}",
                file.display()
            );
            // An empty filter accepts every frame, and sends the read through libpcap.
            let libpcap = OfflineSource::open(&file, Some("")).expect("opens");
            assert!(matches!(libpcap.reader, Reader::Libpcap(_)));
            assert_eq!(
                direct.remaining_frames(),
                libpcap.remaining_frames(),
                "{}",
                file.display()
            );
            compared += 1;
        }
        assert!(compared >= 20, "{compared} captures compared");
    }
}
