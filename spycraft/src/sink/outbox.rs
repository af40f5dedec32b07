// SPDX-License-Identifier: AGPL-3.0-or-later
//! Formatted records on their way to a file or a pipe.
//!
//! A failed write (a full disk, a vanished mount) keeps every byte not yet written, so the next
//! flush goes on exactly where the last one stopped: no record is torn, none is written twice,
//! none is dropped without being counted. Past [`MAX_HELD_BYTES`] new records are counted as
//! lost instead of held, so an output that never recovers cannot take the sensor's memory.

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};

use super::Tally;

/// Bytes an output may hold while its writes fail; beyond, records are counted as lost.
pub const MAX_HELD_BYTES: usize = 16 << 20;

/// A buffered writer that knows where its records end.
pub struct Outbox {
    out: Box<dyn Write + Send>,
    /// Formatted bytes not yet written.
    buf: Vec<u8>,
    /// For each group of records in `buf`: where it ends and how many records it holds.
    ends: VecDeque<(usize, u64)>,
    tally: Tally,
    max_held: usize,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("pending_bytes", &self.buf.len())
            .field("tally", &self.tally)
            .finish()
    }
}

impl Outbox {
    /// An outbox in front of `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self::with_limit(out, MAX_HELD_BYTES)
    }

    /// An outbox holding at most `max_held` bytes while its writes fail.
    pub fn with_limit(out: Box<dyn Write + Send>, max_held: usize) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(64 * 1024 + 4096),
            ends: VecDeque::new(),
            tally: Tally::default(),
            max_held,
        }
    }

    /// Formats `records` records with `format` (one line, or a call with its legs), unless
    /// the outbox already holds its limit: then they are counted as lost.
    pub fn push(&mut self, records: u64, format: impl FnOnce(&mut Vec<u8>)) {
        self.tally.records += records;
        if self.buf.len() >= self.max_held {
            self.tally.lost += records;
            return;
        }
        format(&mut self.buf);
        self.ends.push_back((self.buf.len(), records));
    }

    /// Bytes that belong to no record (a CSV header); written before what follows them.
    pub fn push_preamble(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes waiting to be written.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// What became of the records pushed so far.
    pub fn tally(&self) -> Tally {
        let t = self.tally;
        Tally {
            held: t.records - t.delivered - t.lost,
            ..t
        }
    }

    /// Writes what is waiting. On failure, what was written is forgotten and the rest kept
    /// for the next call.
    pub fn flush(&mut self) -> std::io::Result<()> {
        let mut written = 0;
        let result = loop {
            if written == self.buf.len() {
                break self.out.flush();
            }
            match self.out.write(&self.buf[written..]) {
                Ok(0) => break Err(ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.forget(written);
        result
    }

    /// The last flush, at the end of a run: what it cannot write is lost.
    pub fn finish(&mut self) -> std::io::Result<()> {
        let result = self.flush();
        if result.is_err() {
            self.abandon();
        }
        result
    }

    /// Gives up on everything still waiting (the output is gone for good): it is lost.
    pub fn abandon(&mut self) {
        self.tally.lost += self.ends.iter().map(|&(_, n)| n).sum::<u64>();
        self.ends.clear();
        self.buf.clear();
    }

    /// Drops the first `written` bytes, counting the records they completed.
    fn forget(&mut self, written: usize) {
        if written == 0 {
            return;
        }
        while let Some(&(end, records)) = self.ends.front() {
            if end > written {
                break;
            }
            self.tally.delivered += records;
            self.ends.pop_front();
        }
        if written == self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.drain(..written);
        }
        for (end, _) in &mut self.ends {
            *end -= written;
        }
    }
}

impl Drop for Outbox {
    /// As `BufWriter` does: what is gathered is not lost when `finish` was never reached (an
    /// error elsewhere ended the run); errors here have nowhere to go.
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let _ = self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Takes at most `room` bytes, then fails as a full disk does; the room can be raised.
    #[derive(Clone, Default)]
    struct Disk {
        bytes: Arc<Mutex<Vec<u8>>>,
        room: Arc<Mutex<usize>>,
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut bytes = self.bytes.lock().expect("lock");
            let room = *self.room.lock().expect("lock") - bytes.len();
            if room == 0 {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = room.min(buf.len());
            bytes.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(n: u64) -> impl FnOnce(&mut Vec<u8>) {
        move |buf: &mut Vec<u8>| {
            buf.extend_from_slice(format!("record {n:04}\n").as_bytes());
        }
    }

    #[test]
    fn a_full_disk_tears_nothing_and_the_rest_follows_when_space_returns() {
        let disk = Disk::default();
        *disk.room.lock().expect("lock") = 30; // two 12-byte lines and half of a third
        let mut outbox = Outbox::new(Box::new(disk.clone()));
        for n in 0..5 {
            outbox.push(1, line(n));
        }
        let e = outbox.flush().expect_err("the disk is full");
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        let t = outbox.tally();
        assert_eq!((t.records, t.delivered, t.lost), (5, 2, 0), "{t:?}");
        // Still full: nothing moves, nothing is lost.
        outbox.push(1, line(5));
        assert!(outbox.flush().is_err());
        assert_eq!(outbox.tally().delivered, 2);
        *disk.room.lock().expect("lock") = 1 << 20;
        outbox.flush().expect("space is back");
        let t = outbox.tally();
        assert_eq!((t.records, t.delivered, t.lost), (6, 6, 0), "{t:?}");
        let expected: String = (0..6).map(|n| format!("record {n:04}\n")).collect();
        assert_eq!(
            String::from_utf8(disk.bytes.lock().expect("lock").clone()).expect("text"),
            expected,
            "every line once, in order, none torn"
        );
    }

    #[test]
    fn beyond_its_limit_an_outbox_counts_records_as_lost() {
        let disk = Disk::default();
        let mut outbox = Outbox::with_limit(Box::new(disk.clone()), 40);
        for n in 0..10 {
            outbox.push(1, line(n));
        }
        assert!(outbox.flush().is_err());
        let t = outbox.tally();
        // 12-byte lines: four fit under 40 bytes held, the other six are lost.
        assert_eq!((t.records, t.delivered, t.lost), (10, 0, 6), "{t:?}");
        outbox.abandon();
        assert_eq!(outbox.tally().lost, 10);
        assert_eq!(outbox.pending_bytes(), 0);
    }
}
