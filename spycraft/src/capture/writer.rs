// SPDX-License-Identifier: AGPL-3.0-or-later
//! Writing captures: pcap with nanosecond timestamps (or pcapng), rotated as tcpdump's `-C`,
//! `-G` and `-W` do, and [`TeeSource`], which writes every frame a source yields on its way
//! to the pipeline (`capture -w`).
//!
//! Rotation names: without rotation the file is the path given; with it, `NAME.pcap` becomes
//! `NAME-0000.pcap`, `NAME-0001.pcap`, … and, with `-W N`, the index wraps after N files so
//! the oldest is overwritten (a ring of N files). `-G` counts capture time, so replaying a
//! capture rotates as the original traffic did.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{CaptureError, Frame, FrameSource, Polled};
use crate::packet::{LinkType, Timestamp};

/// The file format written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic pcap, nanosecond timestamps (magic `a1b23c4d`).
    #[default]
    Pcap,
    /// pcapng: one section, an interface description per capturing interface (its name and
    /// link type, nanosecond resolution), enhanced packet blocks naming their interface.
    Pcapng,
}

/// When to start a new file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rotation {
    /// After a file reaches this many bytes (tcpdump `-C`, in bytes here).
    pub max_bytes: Option<u64>,
    /// After this many seconds of capture time (tcpdump `-G`).
    pub every_secs: Option<u64>,
    /// Keep at most this many files, overwriting the oldest (tcpdump `-W`).
    pub files: Option<u32>,
}

impl Rotation {
    fn active(&self) -> bool {
        self.max_bytes.is_some() || self.every_secs.is_some()
    }
}

/// A capture file being written, rotated as asked.
#[derive(Debug)]
pub struct CaptureWriter {
    base: PathBuf,
    format: CaptureFormat,
    rotation: Rotation,
    /// The interfaces frames come from (a frame's `interface` is its place here), each with
    /// its link type and, for pcapng, its name. Never empty; classic pcap has one.
    interfaces: Vec<(Option<String>, LinkType)>,
    snap_len: u32,
    out: BufWriter<File>,
    /// Files opened so far (the next file's number).
    opened: u32,
    bytes: u64,
    /// Capture time of the first frame of the current file.
    started: Option<Timestamp>,
}

impl CaptureWriter {
    /// Creates the first file; rotation names the later ones after it.
    pub fn create(
        base: &Path,
        format: CaptureFormat,
        rotation: Rotation,
        link: LinkType,
        snap_len: u32,
    ) -> std::io::Result<Self> {
        Self::open_first(base, format, rotation, vec![(None, link)], snap_len)
    }

    /// Creates the first pcapng file of a capture on several `interfaces` (name, link type):
    /// each frame is written as coming from the interface its `interface` names.
    pub fn create_pcapng_of(
        base: &Path,
        rotation: Rotation,
        interfaces: Vec<(String, LinkType)>,
        snap_len: u32,
    ) -> std::io::Result<Self> {
        let interfaces = interfaces
            .into_iter()
            .map(|(name, link)| (Some(name), link))
            .collect();
        Self::open_first(base, CaptureFormat::Pcapng, rotation, interfaces, snap_len)
    }

    fn open_first(
        base: &Path,
        format: CaptureFormat,
        rotation: Rotation,
        interfaces: Vec<(Option<String>, LinkType)>,
        snap_len: u32,
    ) -> std::io::Result<Self> {
        let path = file_name(base, &rotation, 0);
        let out = BufWriter::with_capacity(256 * 1024, File::create(&path)?);
        let mut writer = Self {
            base: base.to_path_buf(),
            format,
            rotation,
            interfaces,
            snap_len,
            out,
            opened: 1,
            bytes: 0,
            started: None,
        };
        writer.header()?;
        Ok(writer)
    }

    /// Continues a pcap file this writer made earlier (no rotation): for tools that keep many
    /// files and close some for a while.
    pub fn append(path: &Path, link: LinkType, snap_len: u32) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        let bytes = file.metadata()?.len();
        Ok(Self {
            base: path.to_path_buf(),
            format: CaptureFormat::Pcap,
            rotation: Rotation::default(),
            interfaces: vec![(None, link)],
            snap_len,
            out: BufWriter::with_capacity(64 * 1024, file),
            opened: 1,
            bytes,
            started: None,
        })
    }

    /// The link type every frame written must have.
    pub fn link_type(&self) -> LinkType {
        self.interfaces[0].1
    }

    /// The file being written now.
    pub fn current_path(&self) -> PathBuf {
        file_name(&self.base, &self.rotation, self.opened - 1)
    }

    /// Writes a frame, starting a new file first when rotation says so.
    pub fn write(&mut self, frame: &Frame<'_>) -> std::io::Result<()> {
        if self.due(frame) {
            self.rotate()?;
        }
        self.started.get_or_insert(frame.time);
        let data = &frame.data[..frame.data.len().min(self.snap_len as usize)];
        let secs = frame.time.micros().div_euclid(1_000_000);
        let nanos = frame.time.micros().rem_euclid(1_000_000) * 1000;
        let caplen = data.len() as u32;
        match self.format {
            CaptureFormat::Pcap => {
                let mut record = [0u8; 16];
                record[0..4].copy_from_slice(&(secs as u32).to_le_bytes());
                record[4..8].copy_from_slice(&(nanos as u32).to_le_bytes());
                record[8..12].copy_from_slice(&caplen.to_le_bytes());
                record[12..16].copy_from_slice(&frame.original_len.to_le_bytes());
                self.put(&record)?;
                self.put(data)?;
            }
            CaptureFormat::Pcapng => {
                let padded = data.len().next_multiple_of(4);
                let total = (28 + padded + 4) as u32;
                let ts = (secs as u64).wrapping_mul(1_000_000_000) + nanos as u64;
                let mut head = [0u8; 28];
                head[0..4].copy_from_slice(&6u32.to_le_bytes()); // Enhanced Packet Block
                head[4..8].copy_from_slice(&total.to_le_bytes());
                head[8..12].copy_from_slice(&u32::from(frame.interface).to_le_bytes());
                // the timestamp's high and low halves
                head[12..16].copy_from_slice(&((ts >> 32) as u32).to_le_bytes());
                head[16..20].copy_from_slice(&(ts as u32).to_le_bytes());
                head[20..24].copy_from_slice(&caplen.to_le_bytes());
                head[24..28].copy_from_slice(&frame.original_len.to_le_bytes());
                self.put(&head)?;
                self.put(data)?;
                self.put(&[0u8; 3][..padded - data.len()])?;
                self.put(&total.to_le_bytes())?;
            }
        }
        Ok(())
    }

    /// Hands what is buffered to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn due(&self, frame: &Frame<'_>) -> bool {
        if !self.rotation.active() || self.started.is_none() {
            return false;
        }
        let by_size = self.rotation.max_bytes.is_some_and(|max| self.bytes >= max);
        let by_time = match (self.rotation.every_secs, self.started) {
            (Some(secs), Some(start)) => {
                frame.time.micros_since(start) >= (secs as i64) * 1_000_000
            }
            _ => false,
        };
        by_size || by_time
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let path = file_name(&self.base, &self.rotation, self.opened);
        self.out = BufWriter::with_capacity(256 * 1024, File::create(path)?);
        self.opened += 1;
        self.bytes = 0;
        self.started = None;
        self.header()
    }

    fn header(&mut self) -> std::io::Result<()> {
        match self.format {
            CaptureFormat::Pcap => {
                let dlt = self.link_type().dlt() as u32;
                let mut h = [0u8; 24];
                h[0..4].copy_from_slice(&0xa1b2_3c4du32.to_le_bytes());
                h[4..6].copy_from_slice(&2u16.to_le_bytes());
                h[6..8].copy_from_slice(&4u16.to_le_bytes());
                h[16..20].copy_from_slice(&self.snap_len.to_le_bytes());
                h[20..24].copy_from_slice(&dlt.to_le_bytes());
                self.put(&h)
            }
            CaptureFormat::Pcapng => {
                // Section Header Block: byte-order magic, version 1.0, section length unknown.
                let mut shb = [0u8; 28];
                shb[0..4].copy_from_slice(&0x0a0d_0d0au32.to_le_bytes());
                shb[4..8].copy_from_slice(&28u32.to_le_bytes());
                shb[8..12].copy_from_slice(&0x1a2b_3c4du32.to_le_bytes());
                shb[12..14].copy_from_slice(&1u16.to_le_bytes());
                shb[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
                shb[24..28].copy_from_slice(&28u32.to_le_bytes());
                self.put(&shb)?;
                // Every file of a rotation describes every interface again.
                for n in 0..self.interfaces.len() {
                    let (name, link) = self.interfaces[n].clone();
                    self.interface_block(name.as_deref(), link)?;
                }
                Ok(())
            }
        }
    }

    /// An Interface Description Block: `link`, the snap length, if_name when named, and
    /// if_tsresol = 9 (nanoseconds).
    fn interface_block(&mut self, name: Option<&str>, link: LinkType) -> std::io::Result<()> {
        let mut options = Vec::with_capacity(32);
        if let Some(name) = name {
            let value = name.as_bytes();
            options.extend_from_slice(&2u16.to_le_bytes()); // if_name
            options.extend_from_slice(&(value.len() as u16).to_le_bytes());
            options.extend_from_slice(value);
            options.resize(options.len().next_multiple_of(4), 0);
        }
        options.extend_from_slice(&9u16.to_le_bytes()); // if_tsresol
        options.extend_from_slice(&1u16.to_le_bytes());
        options.extend_from_slice(&[9, 0, 0, 0]);
        options.extend_from_slice(&[0; 4]); // opt_endofopt
        let total = (16 + options.len() + 4) as u32;
        let mut head = [0u8; 16];
        head[0..4].copy_from_slice(&1u32.to_le_bytes());
        head[4..8].copy_from_slice(&total.to_le_bytes());
        head[8..10].copy_from_slice(&(link.dlt() as u16).to_le_bytes());
        head[12..16].copy_from_slice(&self.snap_len.to_le_bytes());
        self.put(&head)?;
        self.put(&options)?;
        self.put(&total.to_le_bytes())
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes)
    }
}

/// The file name of the `n`th file opened.
fn file_name(base: &Path, rotation: &Rotation, n: u32) -> PathBuf {
    if !rotation.active() {
        return base.to_path_buf();
    }
    let index = match rotation.files {
        Some(files) if files > 0 => n % files,
        _ => n,
    };
    let stem = base
        .file_stem()
        .map_or_else(|| "capture".into(), |s| s.to_string_lossy().into_owned());
    let name = match base.extension() {
        Some(ext) => format!("{stem}-{index:04}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{index:04}"),
    };
    base.with_file_name(name)
}

/// A source whose frames are also written to a capture file as they pass.
pub struct TeeSource<S> {
    inner: S,
    writer: CaptureWriter,
}

impl<S> std::fmt::Debug for TeeSource<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeeSource")
            .field("writer", &self.writer)
            .finish()
    }
}

impl<S: FrameSource> TeeSource<S> {
    /// Reads from `inner` and writes every frame it yields to `writer`.
    pub fn new(inner: S, writer: CaptureWriter) -> Self {
        Self { inner, writer }
    }
}

impl<S: FrameSource> FrameSource for TeeSource<S> {
    fn poll(&mut self) -> Result<Polled<'_>, CaptureError> {
        let failed = |w: &CaptureWriter, source| CaptureError::Write {
            path: w.current_path(),
            source,
        };
        match self.inner.poll()? {
            Polled::Frame(frame) => {
                self.writer
                    .write(&frame)
                    .map_err(|e| failed(&self.writer, e))?;
                Ok(Polled::Frame(frame))
            }
            Polled::Idle => {
                // Idle moments make what was written readable (tcpdump -U's promise).
                self.writer.flush().map_err(|e| failed(&self.writer, e))?;
                Ok(Polled::Idle)
            }
            Polled::End => {
                self.writer.flush().map_err(|e| failed(&self.writer, e))?;
                Ok(Polled::End)
            }
        }
    }

    fn bytes_read(&self) -> u64 {
        self.inner.bytes_read()
    }

    fn lost(&self) -> u64 {
        self.inner.lost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::OfflineSource;
    use crate::packet::Timestamp;

    fn frame(us: i64, data: &[u8]) -> Frame<'_> {
        Frame {
            time: Timestamp(us),
            link: LinkType::Ethernet,
            original_len: data.len() as u32 + 4,
            data,
            interface: 0,
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("spycraft-writer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    /// Every frame of a file, as libpcap reads it back.
    fn read_back(path: &Path) -> Vec<(i64, u32, Vec<u8>)> {
        let source = OfflineSource::open(path, None).expect("libpcap opens it");
        let frames = source.remaining_frames().into_iter();
        frames
            .map(|(t, len, data)| (t.micros(), len, data))
            .collect()
    }

    #[test]
    fn libpcap_reads_back_both_formats_exactly() {
        let d = dir("formats");
        let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 60 + usize::from(i)]).collect();
        for (format, name) in [
            (CaptureFormat::Pcap, "a.pcap"),
            (CaptureFormat::Pcapng, "a.pcapng"),
        ] {
            let path = d.join(name);
            let mut w = CaptureWriter::create(
                &path,
                format,
                Rotation::default(),
                LinkType::Ethernet,
                65535,
            )
            .expect("create");
            for (i, p) in payloads.iter().enumerate() {
                w.write(&frame(1_764_138_172_000_123 + i as i64, p))
                    .expect("write");
            }
            w.flush().expect("flush");
            let back = read_back(&path);
            assert_eq!(back.len(), 5, "{name}");
            for (i, (ts, len, data)) in back.iter().enumerate() {
                assert_eq!(
                    *ts,
                    1_764_138_172_000_123 + i as i64,
                    "{name}: microseconds kept"
                );
                assert_eq!(*len, payloads[i].len() as u32 + 4, "{name}");
                assert_eq!(data, &payloads[i], "{name}");
            }
        }
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn rotates_by_size_and_time_and_keeps_a_ring_of_files() {
        let d = dir("rotation");
        let payload = [7u8; 100]; // 116 bytes a record
        let by_size = Rotation {
            max_bytes: Some(1000),
            ..Rotation::default()
        };
        let mut w = CaptureWriter::create(
            &d.join("size.pcap"),
            CaptureFormat::Pcap,
            by_size,
            LinkType::Ethernet,
            65535,
        )
        .expect("create");
        for i in 0..20 {
            w.write(&frame(i * 1000, &payload)).expect("write");
        }
        w.flush().expect("flush");
        // 24-byte header + 9 records reach 1,068 ≥ 1,000: 9 frames a file, then 2 left over.
        let counts: Vec<usize> = (0..3)
            .map(|n| read_back(&d.join(format!("size-{n:04}.pcap"))).len())
            .collect();
        assert_eq!(counts, [9, 9, 2]);
        assert!(!d.join("size-0003.pcap").exists());

        let by_time = Rotation {
            every_secs: Some(1),
            files: Some(2),
            ..Rotation::default()
        };
        let mut w = CaptureWriter::create(
            &d.join("time.pcap"),
            CaptureFormat::Pcap,
            by_time,
            LinkType::Ethernet,
            65535,
        )
        .expect("create");
        // Three seconds of capture time, four frames a second: files 0, 1, then 0 again.
        for i in 0..12 {
            w.write(&frame(i * 250_000, &payload)).expect("write");
        }
        w.flush().expect("flush");
        let first = read_back(&d.join("time-0000.pcap"));
        assert_eq!(first.len(), 4);
        assert_eq!(first[0].0, 2_000_000, "the ring overwrote the oldest file");
        assert_eq!(read_back(&d.join("time-0001.pcap")).len(), 4);
        assert!(!d.join("time-0002.pcap").exists(), "-W 2 keeps two files");
        let _ = std::fs::remove_dir_all(d);
    }
}
