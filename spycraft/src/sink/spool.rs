// SPDX-License-Identifier: AGPL-3.0-or-later
//! The on-disk spool: every record bound for a database is appended here first and stays
//! until the database has committed it, so an outage, a crash or a kill loses nothing.
//!
//! Layout of the spool directory:
//! - `<offset>.jsonl` segments of JSON lines (the `jsonl` output format), each named by the
//!   global byte offset of its first byte; the last one is being appended to;
//! - `cursor`: the global offset up to which the database has committed (rewritten by rename);
//! - `spool.lock`: held (flock) by the one process using the spool;
//! - `rejected.jsonl`: lines that could not be read back (a torn disk write), kept for a human.
//!
//! Durability: a record is written to the kernel (one `write`) before `append` returns, so a
//! crash or SIGKILL of the sensor loses nothing. A write that fails (a full disk) is cut back
//! to the last whole record and the record held in memory, up to
//! [`MAX_HELD_BYTES`](super::MAX_HELD_BYTES), to be written first once the disk takes it;
//! beyond that bound records are counted as lost. `fsync` policy decides what survives a power
//! failure: `always` (every record), `interval` (at most the last second; the default) or
//! `never` (the kernel's writeback). Delivery is idempotent, so the cursor is not synced: after
//! a power failure a few records may be offered twice and the database keeps one.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{DeliveryStatus, Tally};
use crate::call::CallRecord;

/// A segment is closed and a new one begun past this size.
const SEGMENT_BYTES: u64 = 8 << 20;

/// When a full spool makes the writer wait, it says so at most this often.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(10);

/// How often [`FsyncPolicy::Interval`] forces the spool to disk.
const FSYNC_INTERVAL: Duration = Duration::from_secs(1);

/// When the spool's data is forced to disk.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// After every record.
    Always,
    /// At most once a second, and when the spool is closed.
    #[default]
    Interval,
    /// Never by spycraft; the kernel writes back on its own schedule.
    Never,
}

/// Where the spool lives and how big it may grow.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// The directory.
    pub dir: PathBuf,
    /// Undelivered bytes beyond which `append` waits for the database (back-pressure).
    pub max_bytes: u64,
    /// When data is forced to disk.
    pub fsync: FsyncPolicy,
}

/// Why the spool could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A spool file could not be read or written.
    #[error("spool {}: {source}", dir.display())]
    Io {
        /// The spool directory.
        dir: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// Another spycraft holds the spool.
    #[error("spool {} is in use by another spycraft process; give each sensor its own --spool", .0.display())]
    Busy(PathBuf),
    /// Delivery stopped while the writer waited for room.
    #[error("spool {}: delivery stopped, so records can no longer be accepted", .0.display())]
    DeliveryStopped(PathBuf),
    /// The spool path is not a directory.
    #[error("spool {}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// The size limit given is below the least a spool needs.
    #[error("spool limit of {} MiB is below one spool segment ({} MiB)", .0 >> 20, SEGMENT_BYTES >> 20)]
    TooSmall(u64),
}

/// Counts shared by the writer and the reader.
#[derive(Debug, Default)]
struct Shared {
    /// Global offset of the end of the last complete record written.
    written: AtomicU64,
    /// Global offset up to which the database has committed.
    committed: AtomicU64,
    written_records: AtomicU64,
    committed_records: AtomicU64,
    /// Records the database has committed in this run.
    delivered: AtomicU64,
    /// Set when the reader is gone, so a writer waiting for space gives up.
    reader_gone: AtomicBool,
    /// Wakes the delivery task when a record arrives.
    arrived: tokio::sync::Notify,
}

/// How much is waiting in a spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backlog {
    /// Records not yet delivered.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Opens (creating if need be) the spool, recovering from a crash: a torn last line is cut
/// off, the cursor is read back. Returns the appending and the delivering halves.
pub fn open(config: &SpoolConfig) -> Result<(SpoolWriter, SpoolReader), SpoolError> {
    let dir = config.dir.clone();
    let io = |source| SpoolError::Io {
        dir: dir.clone(),
        source,
    };
    if config.max_bytes < SEGMENT_BYTES {
        return Err(SpoolError::TooSmall(config.max_bytes));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(SpoolError::NotADirectory(dir));
    }
    fs::create_dir_all(&dir).map_err(io)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("spool.lock"))
        .map_err(io)?;
    // SAFETY: flock on a descriptor we own; it is released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(SpoolError::Busy(dir));
    }

    let mut segments = list_segments(&dir).map_err(io)?;
    if segments.is_empty() {
        let start = read_cursor(&dir).map_err(io)?.unwrap_or(0);
        let start = if start == u64::MAX { 0 } else { start };
        File::create(segment_path(&dir, start)).map_err(io)?;
        segments.push(start);
    }
    let last = *segments.last().unwrap_or(&0);
    let last_len = cut_torn_tail(&segment_path(&dir, last)).map_err(io)?;
    let written = last + last_len;
    let committed = match resume_at(&dir, &segments, written).map_err(io)? {
        Resume::At(at) => at,
        Resume::Misfit { cursor, from } => {
            eprintln!(
                "spycraft: WARNING: spool {}: its cursor ({cursor}) does not fit the spool \
                 (records from offset {from} to {written}); every record in it is offered again \
                 from the start (the database skips the ones it has)",
                dir.display()
            );
            from
        }
    };
    let backlog_records = count_lines(&dir, &segments, committed, written).map_err(io)?;

    let shared = Arc::new(Shared::default());
    shared.written.store(written, Ordering::Release);
    shared.committed.store(committed, Ordering::Release);
    shared
        .written_records
        .store(backlog_records, Ordering::Release);

    let file = OpenOptions::new()
        .append(true)
        .open(segment_path(&dir, last))
        .map_err(io)?;
    let writer = SpoolWriter {
        dir: dir.clone(),
        file,
        segment_start: last,
        buf: Vec::with_capacity(2048),
        max_bytes: config.max_bytes,
        fsync: config.fsync,
        last_sync: Instant::now(),
        unsynced: false,
        last_full_warning: None,
        held: VecDeque::new(),
        held_bytes: 0,
        records: 0,
        lost: 0,
        torn: false,
        shared: shared.clone(),
        _lock: lock,
    };
    let reader = SpoolReader {
        dir,
        shared,
        position: committed,
        input: None,
        line: Vec::with_capacity(2048),
        rejected: 0,
        handed_out: committed,
    };
    Ok((writer, reader))
}

/// Appends records; the pipeline's half.
#[derive(Debug)]
pub struct SpoolWriter {
    dir: PathBuf,
    file: File,
    segment_start: u64,
    /// One record's JSON, reused.
    buf: Vec<u8>,
    max_bytes: u64,
    fsync: FsyncPolicy,
    last_sync: Instant,
    unsynced: bool,
    last_full_warning: Option<Instant>,
    /// Records a failed write left to write, oldest first, with their bytes summed.
    held: VecDeque<Vec<u8>>,
    held_bytes: usize,
    /// Records handed to `append` in this run.
    records: u64,
    /// Records given up on (held beyond the bound, or still held at `close`).
    lost: u64,
    /// A failed write could not be cut back to the last whole record: cut before writing.
    torn: bool,
    shared: Arc<Shared>,
    _lock: File,
}

impl SpoolWriter {
    /// Writes one record to the spool. Waits while the spool is full (the database is down
    /// or slower than the traffic), saying so on stderr, rather than dropping anything. A
    /// failed write holds the record (see the module's doc) and returns the error.
    pub fn append(&mut self, record: &CallRecord) -> Result<(), SpoolError> {
        self.records += 1;
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, record).map_err(|e| self.io(e.into()))?;
        self.buf.push(b'\n');
        // Held records go first; this one waits behind them if they still cannot be written.
        let line = std::mem::take(&mut self.buf);
        let result = self.retry().and_then(|()| self.write_line(&line));
        if result.is_err() {
            self.hold(line.clone());
        }
        self.buf = line;
        result
    }

    /// Writes the records a failed write left held, oldest first; stops at the first failure.
    pub fn retry(&mut self) -> Result<(), SpoolError> {
        while let Some(line) = self.held.pop_front() {
            if let Err(e) = self.write_line(&line) {
                self.held.push_front(line);
                return Err(e);
            }
            self.held_bytes -= line.len();
        }
        Ok(())
    }

    /// Forces what was appended to disk (whatever the policy, unless it is `never`), after
    /// a last try at what is held; what still cannot be written is counted as lost.
    pub fn close(&mut self) -> Result<(), SpoolError> {
        let retried = self.retry();
        if retried.is_err() {
            self.lost += self.held.len() as u64;
            self.held.clear();
            self.held_bytes = 0;
        }
        if self.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        self.shared.arrived.notify_one();
        retried
    }

    /// Records handed to `append` in this run.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Records held in memory after a failed write.
    pub fn held(&self) -> u64 {
        self.held.len() as u64
    }
    /// What became of the records this writer took, for an output delivering from it:
    /// `left`, once delivery has stopped, is what it left in the spool; until then the
    /// backlog is.
    pub fn tally(&self, left: Option<u64>) -> Tally {
        Tally {
            records: self.records(),
            delivered: self.delivered(),
            kept: left.unwrap_or_else(|| self.backlog().records),
            held: self.held(),
            lost: self.lost(),
        }
    }

    /// How delivery from this spool stands: its backlog, and while records wait, the time
    /// since `last_delivery`.
    pub fn delivery_status(
        &self,
        last_delivery: Option<Instant>,
        unreachable: Option<String>,
    ) -> DeliveryStatus {
        let backlog = self.backlog();
        let lag_seconds = match last_delivery {
            Some(t) if backlog.records > 0 => t.elapsed().as_secs_f64(),
            _ => 0.0,
        };
        DeliveryStatus {
            backlog_records: backlog.records,
            backlog_bytes: backlog.bytes,
            lag_seconds,
            unreachable,
            requests: None,
        }
    }

    /// Records given up on.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Records the database has committed in this run.
    pub fn delivered(&self) -> u64 {
        self.shared.delivered.load(Ordering::Acquire)
    }

    /// Keeps a record whose write failed, unless the bound is reached: then it is lost.
    fn hold(&mut self, line: Vec<u8>) {
        if self.held_bytes >= super::MAX_HELD_BYTES {
            self.lost += 1;
            return;
        }
        self.held_bytes += line.len();
        self.held.push_back(line);
    }

    /// Appends one whole line; on failure cuts the segment back to the last whole record.
    fn write_line(&mut self, line: &[u8]) -> Result<(), SpoolError> {
        self.wait_for_space()?;
        let written = self.shared.written.load(Ordering::Acquire);
        if self.torn {
            self.file
                .set_len(written - self.segment_start)
                .map_err(|e| self.io(e))?;
            self.torn = false;
        }
        if written - self.segment_start >= SEGMENT_BYTES {
            self.roll(written)?;
        }
        if let Err(e) = self.file.write_all(line) {
            // Some of the line may be in the file: cut it off, so the next record starts
            // where the reader expects one.
            if self.file.set_len(written - self.segment_start).is_err() {
                self.torn = true;
            }
            return Err(self.io(e));
        }
        self.unsynced = true;
        match self.fsync {
            FsyncPolicy::Always => self.sync()?,
            FsyncPolicy::Interval if self.last_sync.elapsed() >= FSYNC_INTERVAL => self.sync()?,
            _ => {}
        }
        self.shared
            .written
            .store(written + line.len() as u64, Ordering::Release);
        self.shared.written_records.fetch_add(1, Ordering::AcqRel);
        self.shared.arrived.notify_one();
        Ok(())
    }

    /// What waits to be delivered.
    pub fn backlog(&self) -> Backlog {
        backlog(&self.shared)
    }

    fn sync(&mut self) -> Result<(), SpoolError> {
        if self.unsynced {
            self.file.sync_data().map_err(|e| self.io(e))?;
            self.unsynced = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    fn roll(&mut self, at: u64) -> Result<(), SpoolError> {
        self.sync()?;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(segment_path(&self.dir, at))
            .map_err(|e| self.io(e))?;
        self.file = file;
        self.segment_start = at;
        Ok(())
    }

    fn wait_for_space(&mut self) -> Result<(), SpoolError> {
        loop {
            let b = self.backlog();
            if b.bytes < self.max_bytes {
                return Ok(());
            }
            if self.shared.reader_gone.load(Ordering::Acquire) {
                return Err(SpoolError::DeliveryStopped(self.dir.clone()));
            }
            if self
                .last_full_warning
                .is_none_or(|t| t.elapsed() >= FULL_WARNING_EVERY)
            {
                eprintln!(
                    "spycraft: WARNING: spool {} is full ({} records, {} MiB undelivered, limit {} MiB): \
                     waiting for the database before taking more records",
                    self.dir.display(),
                    b.records,
                    b.bytes >> 20,
                    self.max_bytes >> 20
                );
                self.last_full_warning = Some(Instant::now());
            }
            // Make sure what is waiting can be delivered, then let the reader catch up.
            self.sync()?;
            self.shared.arrived.notify_one();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn io(&self, source: std::io::Error) -> SpoolError {
        SpoolError::Io {
            dir: self.dir.clone(),
            source,
        }
    }
}

/// Reads records back in order and forgets them once committed; the delivery task's half.
#[derive(Debug)]
pub struct SpoolReader {
    dir: PathBuf,
    shared: Arc<Shared>,
    /// Global offset of the next byte to read.
    position: u64,
    /// The open segment: its start offset and a reader positioned at `position`.
    input: Option<(u64, BufReader<File>)>,
    line: Vec<u8>,
    rejected: u64,
    /// Global offset just past the last record handed out by `read`.
    handed_out: u64,
}

impl SpoolReader {
    /// Appends up to `max` records to `out`, in the order they were written; returns the
    /// global offset just past the last one read (to pass to [`SpoolReader::commit`]).
    /// Lines that cannot be parsed are moved to `rejected.jsonl` and reported.
    pub fn read(&mut self, max: usize, out: &mut Vec<CallRecord>) -> Result<u64, SpoolError> {
        let mut taken = 0;
        while taken < max {
            let written = self.shared.written.load(Ordering::Acquire);
            if self.position >= written {
                break;
            }
            if !self.open_segment()? {
                break;
            }
            let Some((_, input)) = self.input.as_mut() else {
                break;
            };
            self.line.clear();
            let n = input
                .read_until(b'\n', &mut self.line)
                .map_err(|e| io_err(&self.dir, e))?;
            if n == 0 || self.line.last() != Some(&b'\n') {
                // The end of this segment: the next one starts exactly here.
                self.input = None;
                if n > 0 {
                    // Only complete lines count; `written` never points inside a line.
                    return Err(io_err(
                        &self.dir,
                        std::io::Error::other("a segment ends inside a record"),
                    ));
                }
                if !segment_path(&self.dir, self.position).exists() {
                    break;
                }
                continue;
            }
            self.position += n as u64;
            match serde_json::from_slice::<CallRecord>(&self.line) {
                Ok(record) => {
                    out.push(record);
                    taken += 1;
                    self.handed_out = self.position;
                }
                Err(e) => self.reject(&e)?,
            }
        }
        // Rejected lines with no record after them, and every record handed out committed:
        // commit past those lines, so a later start does not read them again.
        let committed = self.shared.committed.load(Ordering::Acquire);
        if taken == 0 && self.position > committed && committed >= self.handed_out {
            self.commit(self.position, 0)?;
        }
        Ok(self.position)
    }

    /// Records that the database has committed everything before `position`; deletes the
    /// segments that hold nothing else.
    pub fn commit(&mut self, position: u64, records: u64) -> Result<(), SpoolError> {
        self.shared.committed.store(position, Ordering::Release);
        self.shared
            .committed_records
            .fetch_add(records, Ordering::AcqRel);
        self.shared.delivered.fetch_add(records, Ordering::AcqRel);
        let tmp = self.dir.join("cursor.tmp");
        fs::write(&tmp, format!("{position}\n")).map_err(|e| io_err(&self.dir, e))?;
        fs::rename(&tmp, self.dir.join("cursor")).map_err(|e| io_err(&self.dir, e))?;
        let segments = list_segments(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        for pair in segments.windows(2) {
            let (start, next) = (pair[0], pair[1]);
            if next <= position {
                fs::remove_file(segment_path(&self.dir, start))
                    .map_err(|e| io_err(&self.dir, e))?;
            }
        }
        Ok(())
    }

    /// Waits (up to `timeout`) for a record to arrive.
    pub async fn wait(&self, timeout: Duration) {
        if self.position < self.shared.written.load(Ordering::Acquire) {
            return;
        }
        let _ = tokio::time::timeout(timeout, self.shared.arrived.notified()).await;
    }

    /// What waits to be delivered.
    pub fn backlog(&self) -> Backlog {
        backlog(&self.shared)
    }

    /// Lines that could not be read back (see `rejected.jsonl`).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens the segment holding `position` if none is open. False if it does not exist yet.
    fn open_segment(&mut self) -> Result<bool, SpoolError> {
        if self.input.is_some() {
            return Ok(true);
        }
        let segments = list_segments(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        let Some(&start) = segments.iter().rev().find(|&&s| s <= self.position) else {
            return Ok(false);
        };
        let mut file =
            File::open(segment_path(&self.dir, start)).map_err(|e| io_err(&self.dir, e))?;
        file.seek(SeekFrom::Start(self.position - start))
            .map_err(|e| io_err(&self.dir, e))?;
        self.input = Some((start, BufReader::with_capacity(256 * 1024, file)));
        Ok(true)
    }

    fn reject(&mut self, error: &serde_json::Error) -> Result<(), SpoolError> {
        self.rejected += 1;
        eprintln!(
            "spycraft: WARNING: spool {}: a record could not be read back ({error}); \
             kept in rejected.jsonl",
            self.dir.display()
        );
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("rejected.jsonl"))
            .map_err(|e| io_err(&self.dir, e))?;
        f.write_all(&self.line).map_err(|e| io_err(&self.dir, e))?;
        self.shared.committed_records.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for SpoolReader {
    fn drop(&mut self) {
        self.shared.reader_gone.store(true, Ordering::Release);
    }
}

/// What is waiting in the spool at `dir`, read without taking it over (for `db status`).
pub fn inspect(dir: &Path) -> std::io::Result<Option<Backlog>> {
    if !dir.exists() {
        return Ok(None);
    }
    let segments = list_segments(dir)?;
    let Some(&last) = segments.last() else {
        return Ok(Some(Backlog {
            records: 0,
            bytes: 0,
        }));
    };
    let written = last + fs::metadata(segment_path(dir, last))?.len();
    let committed = match resume_at(dir, &segments, written)? {
        Resume::At(at) => at,
        Resume::Misfit { from, .. } => from,
    };
    Ok(Some(Backlog {
        records: count_lines(dir, &segments, committed, written)?,
        bytes: written - committed,
    }))
}

fn backlog(shared: &Shared) -> Backlog {
    let written = shared.written.load(Ordering::Acquire);
    let committed = shared.committed.load(Ordering::Acquire);
    Backlog {
        records: shared
            .written_records
            .load(Ordering::Acquire)
            .saturating_sub(shared.committed_records.load(Ordering::Acquire)),
        bytes: written.saturating_sub(committed),
    }
}

fn io_err(dir: &Path, source: std::io::Error) -> SpoolError {
    SpoolError::Io {
        dir: dir.to_path_buf(),
        source,
    }
}

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}.jsonl"))
}

/// Start offsets of the segments, ascending.
fn list_segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut starts = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")) else {
            continue;
        };
        if let Ok(start) = stem.parse::<u64>() {
            starts.push(start);
        }
    }
    starts.sort_unstable();
    Ok(starts)
}

/// Where delivery resumes in a spool.
enum Resume {
    At(u64),
    /// The cursor points outside the spool or inside a record: start from its beginning.
    Misfit {
        cursor: u64,
        from: u64,
    },
}

/// The cursor when it fits the spool (the end of a record within it), else its start.
fn resume_at(dir: &Path, segments: &[u64], written: u64) -> std::io::Result<Resume> {
    let from = segments.first().copied().unwrap_or(0);
    Ok(match read_cursor(dir)? {
        None => Resume::At(from),
        Some(c) if c == from || (c > from && c <= written && ends_a_line(dir, segments, c)) => {
            Resume::At(c)
        }
        Some(cursor) => Resume::Misfit { cursor, from },
    })
}

/// The committed offset; `u64::MAX` (which fits no spool) when the file holds no number.
fn read_cursor(dir: &Path) -> std::io::Result<Option<u64>> {
    match fs::read_to_string(dir.join("cursor")) {
        Ok(text) => Ok(Some(text.trim().parse().unwrap_or(u64::MAX))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the byte before global offset `at` is the end of a record (a newline).
fn ends_a_line(dir: &Path, segments: &[u64], at: u64) -> bool {
    let Some(&start) = segments.iter().rev().find(|&&s| s < at) else {
        return false;
    };
    let mut byte = [0u8; 1];
    File::open(segment_path(dir, start))
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(at - start - 1))?;
            f.read_exact(&mut byte)
        })
        .is_ok_and(|()| byte[0] == b'\n')
}

/// Cuts a partial last line (a write the crash interrupted); returns the length kept.
fn cut_torn_tail(path: &Path) -> std::io::Result<u64> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let mut keep = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while keep > 0 {
        let from = keep.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(keep - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(part)?;
        if let Some(i) = memchr::memrchr(b'\n', part) {
            keep = from + i as u64 + 1;
            break;
        }
        keep = from;
    }
    if keep < len {
        eprintln!(
            "spycraft: spool {}: cut {} bytes of a record interrupted by a crash",
            path.display(),
            len - keep
        );
        file.set_len(keep)?;
    }
    Ok(keep)
}

/// Lines between two global offsets.
fn count_lines(dir: &Path, segments: &[u64], from: u64, to: u64) -> std::io::Result<u64> {
    let mut lines = 0;
    let mut buf = vec![0u8; 256 * 1024];
    for (i, &start) in segments.iter().enumerate() {
        let end = segments.get(i + 1).copied().unwrap_or(to);
        if end <= from || start >= to {
            continue;
        }
        let mut file = File::open(segment_path(dir, start))?;
        file.seek(SeekFrom::Start(from.saturating_sub(start)))?;
        let mut left = end.min(to) - from.max(start);
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
            left -= n as u64;
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u32) -> CallRecord {
        let line = include_str!("../../../pcaps/answered-caller-bye/expected.jsonl");
        let mut r: CallRecord = serde_json::from_str(line.trim()).expect("a record");
        r.call_id = format!("{n:08}-{}", "x".repeat(600));
        r
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("spycraft-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn config(dir: &Path, max_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_owned(),
            max_bytes,
            fsync: FsyncPolicy::Never,
        }
    }

    /// Reads everything there is, committing after each batch; returns the call numbers.
    fn drain(reader: &mut SpoolReader, batch: usize) -> Vec<u32> {
        let mut seen = Vec::new();
        loop {
            let mut out = Vec::new();
            let end = reader.read(batch, &mut out).expect("read");
            if out.is_empty() {
                return seen;
            }
            reader.commit(end, out.len() as u64).expect("commit");
            seen.extend(
                out.iter()
                    .map(|r| r.call_id[..8].parse::<u32>().expect("n")),
            );
        }
    }

    #[test]
    fn records_come_back_in_order_across_segments_and_restarts() {
        let d = dir("order");
        let total = 20_000; // about 19 MiB: three segments
        {
            let (mut w, mut r) = open(&config(&d, 1 << 30)).expect("open");
            for n in 0..total / 2 {
                w.append(&record(n)).expect("append");
            }
            assert_eq!(drain(&mut r, 700), (0..total / 2).collect::<Vec<_>>());
            for n in total / 2..total {
                w.append(&record(n)).expect("append");
            }
            // Read a little, commit it, and "crash" with the rest unread.
            let mut out = Vec::new();
            let end = r.read(300, &mut out).expect("read");
            r.commit(end, 300).expect("commit");
            assert_eq!(r.backlog().records, u64::from(total / 2 - 300));
        }
        let segments_before = list_segments(&d).expect("list").len();
        let (_w, mut r) = open(&config(&d, 1 << 30)).expect("reopen");
        assert_eq!(r.backlog().records, u64::from(total / 2 - 300));
        assert_eq!(
            drain(&mut r, 1000),
            (total / 2 + 300..total).collect::<Vec<_>>()
        );
        assert!(list_segments(&d).expect("list").len() < segments_before.max(2));
        assert_eq!(inspect(&d).expect("inspect").map(|b| b.records), Some(0));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_torn_last_record_is_cut_and_the_rest_kept() {
        let d = dir("torn");
        {
            let (mut w, _r) = open(&config(&d, 1 << 30)).expect("open");
            for n in 0..3 {
                w.append(&record(n)).expect("append");
            }
        }
        let seg = segment_path(&d, 0);
        let mut bytes = fs::read(&seg).expect("segment");
        bytes.extend_from_slice(b"{\"id\":\"half a rec");
        fs::write(&seg, bytes).expect("tear");
        let (mut w, mut r) = open(&config(&d, 1 << 30)).expect("reopen");
        w.append(&record(3)).expect("append after the cut");
        assert_eq!(drain(&mut r, 10), vec![0, 1, 2, 3]);
        assert_eq!(r.rejected(), 0);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn an_unreadable_last_line_is_rejected_once() {
        let d = dir("rejected");
        {
            let (mut w, mut r) = open(&config(&d, 1 << 30)).expect("open");
            w.append(&record(0)).expect("append");
            assert_eq!(drain(&mut r, 10), vec![0]);
        }
        // A whole line that is no record, written by hand after the reader committed.
        let seg = segment_path(&d, 0);
        let mut bytes = fs::read(&seg).expect("segment");
        bytes.extend_from_slice(b"{\"not\": \"a record\"}\n");
        fs::write(&seg, bytes).expect("spoil");
        for run in 0..2 {
            let (_w, mut r) = open(&config(&d, 1 << 30)).expect("reopen");
            let mut out = Vec::new();
            r.read(10, &mut out).expect("read");
            assert!(out.is_empty());
            assert_eq!(r.rejected(), 1 - run, "rejected in the first run only");
            assert_eq!(r.backlog().records, 0);
        }
        let kept = fs::read_to_string(d.join("rejected.jsonl")).expect("kept for a human");
        assert_eq!(kept.lines().count(), 1);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_full_spool_holds_the_writer_back_and_loses_nothing() {
        let d = dir("full");
        let (mut w, mut r) = open(&config(&d, SEGMENT_BYTES)).expect("open");
        let total = 12_000u32; // about 11 MiB, over the 8 MiB cap
        let writer = std::thread::spawn(move || {
            for n in 0..total {
                w.append(&record(n)).expect("append");
            }
            w
        });
        let mut seen = Vec::new();
        while seen.len() < total as usize {
            std::thread::sleep(Duration::from_millis(5));
            seen.extend(drain(&mut r, 500));
            assert!(r.backlog().bytes <= SEGMENT_BYTES + 4096, "the cap holds");
        }
        writer.join().expect("writer");
        assert_eq!(seen, (0..total).collect::<Vec<_>>());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_cursor_that_does_not_fit_the_spool_offers_it_all_again() {
        let d = dir("cursor");
        {
            let (mut w, _r) = open(&config(&d, 1 << 30)).expect("open");
            for n in 0..3 {
                w.append(&record(n)).expect("append");
            }
        }
        let line = fs::read(segment_path(&d, 0)).expect("segment").len() as u64 / 3;
        // Past the end, inside a record, and no number at all.
        for cursor in ["99999999999".to_owned(), (line + 7).to_string(), "x".into()] {
            fs::write(d.join("cursor"), &cursor).expect("cursor");
            assert_eq!(inspect(&d).expect("inspect").map(|b| b.records), Some(3));
            let (_w, mut r) = open(&config(&d, 1 << 30)).expect("reopen");
            assert_eq!(r.backlog().records, 3, "cursor {cursor}");
            let mut out = Vec::new();
            r.read(10, &mut out).expect("read");
            assert_eq!(out.len(), 3, "cursor {cursor}: every record again");
        }
        // A cursor at the end of a record is kept.
        fs::write(d.join("cursor"), line.to_string()).expect("cursor");
        let (_w, r) = open(&config(&d, 1 << 30)).expect("reopen");
        assert_eq!(r.backlog().records, 2);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_write_is_cut_back_held_and_written_first_when_it_can_be() {
        let d = dir("held");
        let (mut w, mut r) = open(&config(&d, 1 << 30)).expect("open");
        w.append(&record(0)).expect("append");
        // A read-only descriptor makes every write fail, as a full disk would.
        let writable = std::mem::replace(
            &mut w.file,
            File::open(segment_path(&d, 0)).expect("read-only"),
        );
        for n in 1..4 {
            assert!(w.append(&record(n)).is_err(), "record {n} fails");
        }
        assert_eq!((w.records(), w.held(), w.lost()), (4, 3, 0));
        assert!(w.retry().is_err());
        w.file = writable;
        w.append(&record(4)).expect("the disk takes records again");
        assert_eq!(w.held(), 0);
        assert_eq!(
            drain(&mut r, 10),
            vec![0, 1, 2, 3, 4],
            "in order, none torn"
        );
        assert_eq!(w.delivered(), 5);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_second_process_cannot_share_a_spool() {
        let d = dir("busy");
        let _first = open(&config(&d, 1 << 30)).expect("open");
        assert!(matches!(
            open(&config(&d, 1 << 30)),
            Err(SpoolError::Busy(_))
        ));
        let _ = fs::remove_dir_all(&d);
    }
}
