// SPDX-License-Identifier: AGPL-3.0-or-later
//! Frame sources. Each yields frames borrowed from its own buffer: `(timestamp, link type,
//! bytes)`. Files and live interfaces come through libpcap (no copy); `kernel` reads
//! the ring buffer of spycraft's XDP and socket-filter programs.

mod error;
#[cfg(feature = "ebpf")]
mod interface;
#[cfg(feature = "ebpf")]
pub mod kernel;
mod live;
mod merge;
#[cfg(feature = "ebpf")]
mod netlink;
mod offline;
mod pcap_file;
mod pcapng_file;
mod window;
mod writer;

pub use crate::packet::Frame;
#[cfg(feature = "ebpf")]
pub use error::KernelError;
pub use error::{CaptureError, LiveError};
pub use live::{LiveCounters, LiveSource};
pub use merge::MergedSource;
pub use offline::OfflineSource;
pub use writer::{CaptureFormat, CaptureWriter, Rotation, TeeSource};

/// How a live capture picks its frames.
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
pub enum CaptureMode {
    /// spycraft's XDP program on the interface's ingress (a mirror port).
    Xdp,
    /// Its socket filter on an AF_PACKET socket: both directions (beside the SIP service).
    Socket,
    /// libpcap with the generated BPF filter (portable).
    #[default]
    Pcap,
}

/// An interface to capture on, and the mode it is captured in when not the sensor's own
/// (`eth1`, `eth2:pcap`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureInterface {
    /// The interface's name.
    pub name: String,
    /// Its own mode; `None`: the sensor's `--mode`.
    pub mode: Option<CaptureMode>,
}

impl std::str::FromStr for CaptureInterface {
    type Err = String;

    /// `NAME` or `NAME:MODE`. A name may hold a colon (`eth0:1`): only a known mode after
    /// the last one is taken as the mode.
    fn from_str(text: &str) -> Result<Self, String> {
        let (name, mode) = match text.rsplit_once(':') {
            Some((name, mode)) => match <CaptureMode as clap::ValueEnum>::from_str(mode, false) {
                Ok(mode) => (name, Some(mode)),
                Err(_) => (text, None),
            },
            None => (text, None),
        };
        if name.is_empty() {
            return Err(format!("{text:?}: no interface name"));
        }
        Ok(Self {
            name: name.to_owned(),
            mode,
        })
    }
}

impl std::fmt::Display for CaptureInterface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mode {
            None => f.write_str(&self.name),
            Some(mode) => {
                let mode =
                    clap::ValueEnum::to_possible_value(&mode).map(|v| v.get_name().to_owned());
                write!(f, "{}:{}", self.name, mode.unwrap_or_default())
            }
        }
    }
}

impl serde::Serialize for CaptureInterface {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CaptureInterface {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How the XDP program is attached.
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
pub enum XdpAttach {
    /// Native (driver) mode, falling back to generic when the driver refuses.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode.
    Generic,
}

/// What a live source keeps: ports and hosts (the kernel programs' maps; libpcap's
/// expression generated from them for the interface's link type), or for libpcap an
/// expression of the operator's own.
#[derive(Clone, Debug)]
pub struct LiveFilter {
    /// Ports and hosts.
    pub config: crate::filter::FilterConfig,
    /// libpcap: this expression instead of the generated one.
    pub pcap_expression: Option<String>,
}

impl LiveFilter {
    /// The expression libpcap compiles on an interface of link type `link`.
    pub fn expression_on(&self, link: crate::packet::LinkType) -> String {
        self.pcap_expression
            .clone()
            .unwrap_or_else(|| self.config.pcap_expression_on(link))
    }
}

/// Where a new filter waits for a running live source, which takes it at its next counter
/// refresh (within half a second); the program stays attached, the ring and its frames stay.
pub type FilterSlot = crate::handoff::Handoff<LiveFilter>;

/// What a live capture has counted so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureFigures {
    /// Frames and bytes the kernel program looked at (known to spycraft's own programs only).
    pub seen: Option<(u64, u64)>,
    /// Frames selected (by the kernel program or libpcap's filter), and their bytes where
    /// the kernel counts them.
    pub selected: (u64, Option<u64>),
    /// Frames read by spycraft.
    pub read: u64,
    /// Selected frames lost, by reason (`ring_full`, `buffer_full`, `interface`).
    pub lost: [(&'static str, u64); 2],
}

/// A live capture's counters, readable from any thread while it runs (a scrape reads them;
/// the capture loop keeps them fresh, never per frame for the kernel's).
pub trait CaptureCounts: Send + Sync + std::fmt::Debug {
    /// How frames are picked: `xdp`, `socket` or `pcap`.
    fn mode(&self) -> &'static str;
    /// The counts as last refreshed.
    fn figures(&self) -> CaptureFigures;
    /// The counters as one line for stderr, in the mode's own words.
    fn one_line(&self) -> String;
}

/// What a read from a source gave.
#[derive(Debug)]
pub enum Polled<'a> {
    /// A frame, borrowed until the next poll.
    Frame(Frame<'a>),
    /// Nothing arrived within the source's read timeout (live sources); ask again.
    Idle,
    /// The end of the file, or of the capture once stopped.
    End,
}

/// Anything frames can be read from, in order.
pub trait FrameSource {
    /// The next frame, `Idle`, or `End`.
    fn poll(&mut self) -> Result<Polled<'_>, CaptureError>;
    /// Bytes read so far, for progress (files only; 0 for live sources).
    fn bytes_read(&self) -> u64 {
        0
    }
    /// Frames the capture knows it lost so far (its buffer was full); 0 for files. Updated
    /// when the source refreshes its counters, so a loss shows within a second or so.
    fn lost(&self) -> u64 {
        0
    }
}

impl<S: FrameSource + ?Sized> FrameSource for Box<S> {
    fn poll(&mut self) -> Result<Polled<'_>, CaptureError> {
        (**self).poll()
    }

    fn bytes_read(&self) -> u64 {
        (**self).bytes_read()
    }

    fn lost(&self) -> u64 {
        (**self).lost()
    }
}

impl FrameSource for OfflineSource {
    fn poll(&mut self) -> Result<Polled<'_>, CaptureError> {
        let stopped = self.stop_flag();
        let stopped = || stopped.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed));
        if stopped() {
            return Ok(Polled::End);
        }
        match self.next_frame() {
            Ok(Some(frame)) => Ok(Polled::Frame(frame)),
            Ok(None) => Ok(Polled::End),
            // A read cut short by the signal that stops us is no damage.
            Err(_) if stopped() => Ok(Polled::End),
            Err(e) => Err(e),
        }
    }

    fn bytes_read(&self) -> u64 {
        OfflineSource::bytes_read(self)
    }
}

#[cfg(feature = "ebpf")]
impl FrameSource for kernel::KernelSource {
    fn poll(&mut self) -> Result<Polled<'_>, CaptureError> {
        kernel::KernelSource::poll(self)
    }

    fn lost(&self) -> u64 {
        kernel::KernelSource::lost(self)
    }
}

impl FrameSource for LiveSource {
    fn poll(&mut self) -> Result<Polled<'_>, CaptureError> {
        LiveSource::poll(self)
    }

    fn lost(&self) -> u64 {
        LiveSource::lost(self)
    }
}
