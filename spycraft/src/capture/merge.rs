// SPDX-License-Identifier: AGPL-3.0-or-later
//! Several live sources read as one stream, for a sensor on several interfaces: each source
//! is read on a thread of its own, its frames copied into buffers that go round between the
//! threads (nothing is allocated per frame once warm), and handed on in the order they
//! arrive. The queue is bounded: a slow pipeline holds the readers back, and the kernel's
//! ring or libpcap's buffer counts what does not fit, as with one source.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{CaptureCounts, CaptureError, Frame, FrameSource, Polled};
use crate::packet::{LinkType, Timestamp};

/// Frames queued between the readers and the pipeline.
const QUEUED: usize = 1024;
/// How long a poll waits before saying the sources are idle.
const IDLE_AFTER: Duration = Duration::from_millis(200);

/// A frame copied off its source's buffer.
struct Copied {
    time: Timestamp,
    link: LinkType,
    original_len: u32,
    data: Vec<u8>,
    /// Which reader's buffer it is, to give it back.
    from: usize,
}

/// What a reader thread sends.
enum Read {
    Frame(Copied),
    /// The source broke off; the others go on.
    Failed(CaptureError),
}

/// Live sources read as one.
pub struct MergedSource {
    frames: Receiver<Read>,
    /// Per reader: where its emptied buffers go back.
    spare: Vec<SyncSender<Vec<u8>>>,
    current: Option<Copied>,
    counts: Vec<Arc<dyn CaptureCounts>>,
    /// The reader threads, which end with their sources (the stop flag) or when this source
    /// is gone and they have something to send.
    readers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for MergedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergedSource")
            .field("sources", &self.readers.len())
            .finish()
    }
}

impl MergedSource {
    /// Starts a reader thread for each source; `counts` are their counters (for losses).
    /// Each source ends when the stop flag it was opened with is raised.
    pub fn start(
        sources: Vec<(Box<dyn FrameSource + Send>, Arc<dyn CaptureCounts>)>,
    ) -> Result<Self, CaptureError> {
        let (tx, frames) = sync_channel(QUEUED);
        let mut spare = Vec::new();
        let mut counts = Vec::new();
        let mut readers = Vec::new();
        for (from, (source, count)) in sources.into_iter().enumerate() {
            let (back_tx, back_rx) = sync_channel(QUEUED);
            spare.push(back_tx);
            counts.push(count);
            let tx = tx.clone();
            let reader = std::thread::Builder::new()
                .name(format!("spycraft-read-{from}"))
                .spawn(move || read(source, from, &tx, &back_rx))
                .map_err(CaptureError::Thread)?;
            readers.push(reader);
        }
        Ok(Self {
            frames,
            spare,
            current: None,
            counts,
            readers,
        })
    }
}

/// One reader: every frame of `source`, copied, until it ends or fails.
fn read(
    mut source: Box<dyn FrameSource + Send>,
    from: usize,
    tx: &SyncSender<Read>,
    spare: &Receiver<Vec<u8>>,
) {
    loop {
        let read = match source.poll() {
            Ok(Polled::Frame(frame)) => {
                let mut data = spare.try_recv().unwrap_or_default();
                data.clear();
                data.extend_from_slice(frame.data);
                Read::Frame(Copied {
                    time: frame.time,
                    link: frame.link,
                    original_len: frame.original_len,
                    data,
                    from,
                })
            }
            Ok(Polled::Idle) => continue,
            Ok(Polled::End) => return,
            Err(e) => Read::Failed(e),
        };
        let failed = matches!(read, Read::Failed(_));
        if tx.send(read).is_err() || failed {
            return;
        }
    }
}

impl FrameSource for MergedSource {
    fn poll(&mut self) -> Result<Polled<'_>, CaptureError> {
        if let Some(done) = self.current.take() {
            if let Some(back) = self.spare.get(done.from) {
                // A full return queue drops the buffer: the reader allocates another.
                let _ = back.try_send(done.data);
            }
        }
        match self.frames.recv_timeout(IDLE_AFTER) {
            Ok(Read::Frame(copied)) => {
                let copied = self.current.insert(copied);
                Ok(Polled::Frame(Frame {
                    time: copied.time,
                    link: copied.link,
                    original_len: copied.original_len,
                    data: &copied.data,
                    interface: copied.from as u16,
                }))
            }
            Ok(Read::Failed(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => Ok(Polled::Idle),
            Err(RecvTimeoutError::Disconnected) => Ok(Polled::End),
        }
    }

    fn lost(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| c.figures().lost.iter().map(|(_, n)| n).sum::<u64>())
            .sum()
    }
}
