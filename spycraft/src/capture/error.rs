// SPDX-License-Identifier: AGPL-3.0-or-later
//! Why a capture could not be read: files, live interfaces and the kernel programs. Each
//! message names what it is about and keeps its cause.

use std::io;
use std::path::PathBuf;

/// Why a capture could not be read. The messages name the file or interface and say what is
/// wrong.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: no such file")]
    NotFound { path: PathBuf },
    #[error("{path}: is a directory, not a capture file")]
    IsDirectory { path: PathBuf },
    #[error("{path}: cannot open: {source}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{path}: not a pcap or pcapng capture ({reason})")]
    NotACapture { path: PathBuf, reason: String },
    #[error("{path}: a {format} capture, which spycraft does not read; convert it with `editcap -F pcapng {path} OUT.pcapng` (Wireshark's editcap)")]
    OtherFormat { path: PathBuf, format: &'static str },
    #[error("{path}: unsupported link type {name} ({dlt}); spycraft reads Ethernet, Linux SLL/SLL2, raw IP and BSD loopback")]
    UnsupportedLinkType {
        path: PathBuf,
        dlt: i32,
        name: String,
    },
    #[error("{path}: invalid capture filter `{filter}`: {reason}")]
    BadFilter {
        path: PathBuf,
        filter: String,
        reason: String,
    },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("capture on {interface}: {source}")]
    Live {
        interface: String,
        /// Boxed: a capture error rides in every poll's result, which stays small.
        source: Box<LiveError>,
    },
    #[error("{path}: capture damaged after {frames} frames: {reason}")]
    Damaged {
        path: PathBuf,
        frames: u64,
        reason: String,
    },
}

/// What stopped a live capture, in libpcap or the kernel programs.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// libpcap refused; `denied` when for want of privilege.
    #[error("{source}{}", if *.denied {
        ": live capture needs root, or CAP_NET_RAW and CAP_NET_ADMIN (see the setcap line in \
         docs/live-capture.md)"
    } else { "" })]
    Pcap { source: pcap::Error, denied: bool },
    #[error("filter `{filter}`: {source}")]
    Filter { filter: String, source: pcap::Error },
    #[error("non-blocking mode: {0}")]
    NonBlocking(#[source] pcap::Error),
    #[error("unsupported link type {name} ({dlt})")]
    UnsupportedLinkType { dlt: i32, name: String },
    #[error("poll: {0}")]
    Poll(#[source] io::Error),
    #[error("no such interface ({0})")]
    NoInterface(#[source] io::Error),
    #[error("interface {0} was removed")]
    Removed(String),
    #[cfg(feature = "ebpf")]
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

impl LiveError {
    /// A libpcap error, told apart by whether it is a refusal for want of privilege.
    pub(crate) fn pcap(source: pcap::Error) -> Self {
        let denied = refused(&source.to_string());
        Self::Pcap { source, denied }
    }
}

/// Whether an error's text says the kernel refused for want of privilege.
pub(crate) fn refused(text: &str) -> bool {
    text.contains("EPERM") || text.contains("ermission") || text.contains("not permitted")
}

/// What to do about a refusal by the kernel, added to its message.
#[cfg(feature = "ebpf")]
fn privilege_hint(denied: bool) -> &'static str {
    if denied {
        ": the kernel programs need root, or CAP_BPF and CAP_PERFMON with CAP_NET_ADMIN (xdp) \
         or CAP_NET_RAW (socket); see the setcap line in docs/live-capture.md"
    } else {
        ""
    }
}

/// Why spycraft's kernel programs could not be loaded, attached or read.
#[cfg(feature = "ebpf")]
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("loading the kernel programs: {}{}", crate::error_chain(.source), privilege_hint(*.denied))]
    Load {
        source: aya::EbpfError,
        denied: bool,
    },
    #[error("loading {program}: {}{}", crate::error_chain(.source), privilege_hint(*.denied))]
    LoadProgram {
        program: &'static str,
        source: aya::programs::ProgramError,
        denied: bool,
    },
    #[error("attaching {how}: {}{}", crate::error_chain(.source), privilege_hint(*.denied))]
    Attach {
        how: &'static str,
        source: aya::programs::ProgramError,
        denied: bool,
    },
    #[error("another XDP program (id {id}, {mode} mode) is attached to {interface}; see it with `ip link show dev {interface}` or `bpftool net show dev {interface}`, and detach it with `ip link set dev {interface} xdp off` if nothing needs it (another spycraft, or the program that loaded it, may)")]
    HeldByAnother {
        interface: String,
        id: u32,
        mode: &'static str,
    },
    #[error("the kernel object has no {0}")]
    Missing(&'static str),
    #[error("{name}: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error("{step}: {source}{}", privilege_hint(*.denied))]
    Socket {
        step: &'static str,
        source: io::Error,
        denied: bool,
    },
    #[error("starting the ring reader: {0}")]
    Runtime(#[source] io::Error),
    #[error("waiting on the ring buffer: {0}")]
    Wait(#[source] io::Error),
    #[error("a ring record of {0} bytes has no header")]
    ShortRecord(usize),
}

#[cfg(feature = "ebpf")]
impl KernelError {
    pub(crate) fn load(source: aya::EbpfError) -> Self {
        let denied = refused(&crate::error_chain(&source));
        Self::Load { source, denied }
    }

    pub(crate) fn load_program(program: &'static str, source: aya::programs::ProgramError) -> Self {
        let denied = refused(&crate::error_chain(&source));
        Self::LoadProgram {
            program,
            source,
            denied,
        }
    }

    pub(crate) fn attach(how: &'static str, source: aya::programs::ProgramError) -> Self {
        let denied = refused(&crate::error_chain(&source));
        Self::Attach {
            how,
            source,
            denied,
        }
    }

    pub(crate) fn socket(step: &'static str, source: io::Error) -> Self {
        let denied = refused(&source.to_string());
        Self::Socket {
            step,
            source,
            denied,
        }
    }
}
