// SPDX-License-Identifier: AGPL-3.0-or-later
//! Live capture through libpcap (`capture --mode pcap`): the portable mode, with the BPF
//! filter generated from the same configuration as the kernel programs' maps. A waker thread
//! interrupts the blocking read twice a second (`pcap_breakloop`; libpcap's own read timeout
//! does not wake an idle Linux capture), so the stop flag (SIGINT, SIGTERM) is seen within
//! half a second and an idle capture still gets its periodic work done.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pcap::{Active, Capture, Precision};

use super::{CaptureError, Frame, Polled};
use crate::decode::LinkType;

/// How long a read waits for a frame before looking at the stop flag.
const READ_TIMEOUT_MS: i32 = 200;
/// How often the waker interrupts a blocked read.
const WAKE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// An interface being captured.
pub struct LiveSource {
    interface: String,
    capture: Capture<Active>,
    link: LinkType,
    stop: &'static AtomicBool,
    frames: u64,
    /// Reads asked for, and of them those that timed out, at the last counter refresh.
    polls: u64,
    refreshed: (u64, u64),
    counters: Arc<LiveCounters>,
    /// Tells the waker thread to end.
    closed: Arc<AtomicBool>,
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
    }
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
    /// Frames the kernel passed the filter.
    pub received: AtomicU64,
    /// Dropped because the buffer was full (the sensor fell behind).
    pub dropped: AtomicU64,
    /// Dropped by the interface or its driver.
    pub if_dropped: AtomicU64,
}

impl LiveCounters {
    pub fn one_line(&self) -> String {
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
    /// Opens `interface` in immediate mode with `filter` (a pcap-filter expression).
    pub fn open(
        interface: &str,
        filter: &str,
        snap_len: u32,
        buffer_bytes: u32,
        stop: &'static AtomicBool,
    ) -> Result<Self, CaptureError> {
        let failed = |reason: String| CaptureError::Live {
            interface: interface.to_owned(),
            reason,
        };
        let inactive = Capture::from_device(interface).map_err(|e| failed(e.to_string()))?;
        let mut capture = inactive
            .immediate_mode(true)
            .snaplen(i32::try_from(snap_len).unwrap_or(i32::MAX))
            .buffer_size(i32::try_from(buffer_bytes).unwrap_or(i32::MAX))
            .timeout(READ_TIMEOUT_MS)
            .precision(Precision::Nano)
            .open()
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("ermission") || text.contains("not permitted") {
                    failed(format!(
                        "{text}: live capture needs root, or CAP_NET_RAW and CAP_NET_ADMIN \
                         (see the README's setcap line)"
                    ))
                } else {
                    failed(text)
                }
            })?;
        let dlt = capture.get_datalink();
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| {
            failed(format!(
                "unsupported link type {} ({})",
                dlt.get_name().unwrap_or_else(|_| "unknown".into()),
                dlt.0
            ))
        })?;
        capture
            .filter(filter, true)
            .map_err(|e| failed(format!("filter `{filter}`: {e}")))?;
        let closed = Arc::new(AtomicBool::new(false));
        let waker = capture.breakloop_handle();
        let waker_closed = closed.clone();
        std::thread::Builder::new()
            .name("spycraft-pcap-waker".into())
            .spawn(move || {
                while !waker_closed.load(Ordering::Acquire) {
                    std::thread::sleep(WAKE_EVERY);
                    waker.breakloop();
                }
            })
            .map_err(|e| failed(e.to_string()))?;
        Ok(Self {
            closed,
            interface: interface.to_owned(),
            capture,
            link,
            stop,
            frames: 0,
            polls: 0,
            refreshed: (0, 0),
            counters: Arc::default(),
        })
    }

    /// The link type of the interface (what a capture file of it declares).
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// The counters, shared: they stay readable after the source is handed to the pipeline.
    pub fn counters(&self) -> Arc<LiveCounters> {
        self.counters.clone()
    }

    /// The next frame; `Idle` when none came within the read timeout; `End` once the stop
    /// flag is raised.
    pub fn poll(&mut self) -> Result<Polled<'_>, CaptureError> {
        if self.stop.load(Ordering::Acquire) {
            self.refresh();
            return Ok(Polled::End);
        }
        // Refresh after an idle read or every 4,096 frames (an idle read cannot refresh
        // itself: the read borrows the capture until it returns).
        let idle = self.polls - self.frames;
        if idle != self.refreshed.1 || self.frames >= self.refreshed.0 + 4096 {
            self.refresh();
            self.refreshed = (self.frames, idle);
        }
        self.polls += 1;
        match self.capture.next_packet() {
            Ok(packet) => {
                self.frames += 1;
                self.counters.frames.store(self.frames, Ordering::Relaxed);
                let ts = packet.header.ts;
                #[allow(clippy::useless_conversion)]
                let ts_us = i64::from(ts.tv_sec) * 1_000_000 + i64::from(ts.tv_usec) / 1000;
                Ok(Polled::Frame(Frame {
                    ts_us,
                    link: self.link,
                    original_len: packet.header.len,
                    data: packet.data,
                }))
            }
            // Woken by the waker (or libpcap's timeout): nothing yet.
            Err(pcap::Error::TimeoutExpired | pcap::Error::NoMorePackets) => Ok(Polled::Idle),
            Err(e) => Err(CaptureError::Live {
                interface: self.interface.clone(),
                reason: e.to_string(),
            }),
        }
    }

    fn refresh(&mut self) {
        if let Ok(s) = self.capture.stats() {
            let c = &self.counters;
            c.received.store(u64::from(s.received), Ordering::Relaxed);
            c.dropped.store(u64::from(s.dropped), Ordering::Relaxed);
            c.if_dropped
                .store(u64::from(s.if_dropped), Ordering::Relaxed);
        }
    }
}
