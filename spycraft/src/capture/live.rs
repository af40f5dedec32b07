// SPDX-License-Identifier: AGPL-3.0-or-later
//! Live capture through libpcap (`capture --mode pcap`): the portable mode, with the BPF
//! filter generated from the same configuration as the kernel programs' maps.
//!
//! The handle is non-blocking and waited on with poll(2) for at most [`READ_TIMEOUT_MS`], so
//! the stop flag (SIGINT, SIGTERM) is seen promptly and an idle capture still gets its
//! periodic work done. (libpcap's own read timeout does not wake an idle Linux capture, and
//! `pcap_breakloop` from another thread can discard the packet a read just took.) On stop,
//! what the kernel already queued is read before the end.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pcap::{Active, Capture, Precision};

use super::{CaptureError, Frame, LiveError, Polled};
use crate::packet::{LinkType, Timestamp};

/// How long a read waits for a frame before looking at the stop flag.
const READ_TIMEOUT_MS: i32 = 200;

/// An interface being captured.
pub struct LiveSource {
    interface: String,
    capture: Capture<Active>,
    link: LinkType,
    stop: &'static AtomicBool,
    frames: u64,
    bytes: u64,
    /// Reads asked for, and of them those that timed out, at the last counter refresh.
    polls: u64,
    refreshed: (u64, u64),
    counters: Arc<LiveCounters>,
    /// A new filter left by a reload.
    filter_slot: Arc<super::FilterSlot>,
    /// The last read found nothing: wait on the descriptor before the next.
    was_empty: bool,
    /// Stopped: reading what is left, then the end.
    draining: bool,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("interface", &self.interface)
            .field("frames", &self.frames)
            .finish()
    }
}

/// What libpcap and the kernel counted for a live capture, readable from another thread
/// while the capture runs (refreshed when idle and every 4,096 frames).
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Frames read by spycraft.
    pub frames: AtomicU64,
    /// Bytes (as on the wire) of the frames read by spycraft.
    pub bytes: AtomicU64,
    /// Frames the kernel passed the filter.
    pub received: AtomicU64,
    /// Dropped because the buffer was full (the sensor fell behind).
    pub dropped: AtomicU64,
    /// Dropped by the interface or its driver.
    pub if_dropped: AtomicU64,
}

impl super::CaptureCounts for LiveCounters {
    fn mode(&self) -> &'static str {
        "pcap"
    }

    /// libpcap's filter runs in the kernel and counts only what it passes: frames seen are
    /// unknown, and bytes are counted for the frames spycraft reads.
    fn figures(&self) -> super::CaptureFigures {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        super::CaptureFigures {
            seen: None,
            selected: (get(&self.received), None),
            read: get(&self.frames),
            lost: [
                ("buffer_full", get(&self.dropped)),
                ("interface", get(&self.if_dropped)),
            ],
        }
    }

    fn one_line(&self) -> String {
        format!(
            "libpcap: {} frames read; the kernel socket received {}, dropped {} (buffer full), the interface dropped {}",
            self.frames.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.if_dropped.load(Ordering::Relaxed)
        )
    }
}

impl LiveSource {
    /// Opens `interface` in immediate mode, keeping what `filter` says.
    pub fn open(
        interface: &str,
        filter: &super::LiveFilter,
        snap_len: u32,
        buffer_bytes: u32,
        stop: &'static AtomicBool,
    ) -> Result<Self, CaptureError> {
        let failed = |source| CaptureError::Live {
            interface: interface.to_owned(),
            source: Box::new(source),
        };
        let inactive = Capture::from_device(interface).map_err(|e| failed(LiveError::pcap(e)))?;
        let mut capture = inactive
            .immediate_mode(true)
            .snaplen(i32::try_from(snap_len).unwrap_or(i32::MAX))
            .buffer_size(i32::try_from(buffer_bytes).unwrap_or(i32::MAX))
            .timeout(READ_TIMEOUT_MS)
            .precision(Precision::Nano)
            .open()
            .map_err(|e| failed(LiveError::pcap(e)))?;
        let dlt = capture.get_datalink();
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| {
            failed(LiveError::UnsupportedLinkType {
                dlt: dlt.0,
                name: dlt.get_name().unwrap_or_else(|_| "unknown".into()),
            })
        })?;
        let expression = filter.expression_on(link);
        capture.filter(&expression, true).map_err(|source| {
            failed(LiveError::Filter {
                filter: expression.clone(),
                source,
            })
        })?;
        let capture = capture
            .setnonblock()
            .map_err(|e| failed(LiveError::NonBlocking(e)))?;
        Ok(Self {
            interface: interface.to_owned(),
            capture,
            link,
            stop,
            frames: 0,
            bytes: 0,
            polls: 0,
            refreshed: (0, 0),
            counters: Arc::default(),
            filter_slot: Arc::default(),
            was_empty: false,
            draining: false,
        })
    }

    /// The link type of the interface (what a capture file of it declares).
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Frames the kernel socket or the interface dropped, as last refreshed.
    pub fn lost(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
            + self.counters.if_dropped.load(Ordering::Relaxed)
    }

    /// The counters, shared: they stay readable after the source is handed to the pipeline.
    pub fn counters(&self) -> Arc<LiveCounters> {
        self.counters.clone()
    }

    /// Where a reload leaves a new filter expression.
    pub fn filter_slot(&self) -> Arc<super::FilterSlot> {
        self.filter_slot.clone()
    }

    /// The next frame; `Idle` when none came within the read timeout; `End` once the stop
    /// flag is raised and what was queued has been read.
    pub fn poll(&mut self) -> Result<Polled<'_>, CaptureError> {
        if !self.draining && self.stop.load(Ordering::Acquire) {
            self.draining = true;
        }
        // Refresh after an idle read or every 4,096 frames (an idle read cannot refresh
        // itself: the read borrows the capture until it returns).
        let idle = self.polls - self.frames;
        if self.draining || idle != self.refreshed.1 || self.frames >= self.refreshed.0 + 4096 {
            self.refresh();
            self.refreshed = (self.frames, idle);
        }
        if self.was_empty && !self.draining {
            self.wait_readable()?;
        }
        self.polls += 1;
        match self.capture.next_packet() {
            Ok(packet) => {
                self.was_empty = false;
                self.frames += 1;
                self.bytes += u64::from(packet.header.len);
                self.counters.frames.store(self.frames, Ordering::Relaxed);
                self.counters.bytes.store(self.bytes, Ordering::Relaxed);
                let ts = packet.header.ts;
                #[allow(clippy::useless_conversion)]
                let time =
                    Timestamp::from_parts(i64::from(ts.tv_sec), i64::from(ts.tv_usec) / 1000);
                Ok(Polled::Frame(Frame {
                    time,
                    link: self.link,
                    original_len: packet.header.len,
                    data: packet.data,
                    interface: 0,
                }))
            }
            // Nothing queued right now.
            Err(pcap::Error::TimeoutExpired | pcap::Error::NoMorePackets) => {
                self.was_empty = true;
                if self.draining {
                    // The counters were refreshed on entry (draining); nothing was read since.
                    Ok(Polled::End)
                } else {
                    Ok(Polled::Idle)
                }
            }
            Err(e) => Err(CaptureError::Live {
                interface: self.interface.clone(),
                source: Box::new(LiveError::pcap(e)),
            }),
        }
    }

    /// Waits until the handle has something to read, the timeout passes or a signal arrives.
    fn wait_readable(&mut self) -> Result<(), CaptureError> {
        let mut fd = libc::pollfd {
            fd: self.capture.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        let rc = unsafe { libc::poll(&mut fd, 1, READ_TIMEOUT_MS) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(CaptureError::Live {
                    interface: self.interface.clone(),
                    source: Box::new(LiveError::Poll(e)),
                });
            }
        }
        Ok(())
    }

    fn refresh(&mut self) {
        if let Some(filter) = self.filter_slot.take() {
            let expression = &filter.expression_on(self.link);
            match self.capture.filter(expression, true) {
                Ok(()) => eprintln!("spycraft: {}: filter now {expression}", self.interface),
                Err(e) => eprintln!(
                    "spycraft: WARNING: {}: filter {expression:?} refused ({e}); the old one stays",
                    self.interface
                ),
            }
        }
        if let Ok(s) = self.capture.stats() {
            let c = &self.counters;
            c.received.store(u64::from(s.received), Ordering::Relaxed);
            c.dropped.store(u64::from(s.dropped), Ordering::Relaxed);
            c.if_dropped
                .store(u64::from(s.if_dropped), Ordering::Relaxed);
        }
    }
}
