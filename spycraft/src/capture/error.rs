// SPDX-License-Identifier: AGPL-3.0-or-later
//! Why a capture could not be read: files, live interfaces and the kernel programs. Each
//! message names what it is about and keeps its cause.

use std::io;
use std::path::PathBuf;

/// Why a capture could not be read. The messages name the file or interface and say what is
/// wrong.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A thread to read an interface on could not be started.
    #[error("starting a reader thread: {0}")]
    Thread(io::Error),
    /// The file does not exist.
    #[error("{path}: no such file")]
    NotFound {
        /// The file asked for.
        path: PathBuf,
    },
    /// A directory was named where a capture file belongs.
    #[error("{path}: is a directory, not a capture file")]
    IsDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// The file exists but cannot be opened.
    #[error("{path}: cannot open: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why the system refused it.
        source: io::Error,
    },
    /// The file is neither pcap nor pcapng.
    #[error("{path}: not a pcap or pcapng capture ({reason})")]
    NotACapture {
        /// The file.
        path: PathBuf,
        /// What its first bytes are instead, as libpcap says.
        reason: String,
    },
    /// A capture in a format other tools write (NetMon, snoop, Sniffer).
    #[error("{path}: a {format} capture, which spycraft does not read; convert it with `editcap -F pcapng {path} OUT.pcapng` (Wireshark's editcap)")]
    OtherFormat {
        /// The file.
        path: PathBuf,
        /// The format's name.
        format: &'static str,
    },
    /// A link layer spycraft does not decode.
    #[error("{path}: unsupported link type {name} ({dlt}); spycraft reads Ethernet, Linux SLL/SLL2, raw IP and BSD loopback")]
    UnsupportedLinkType {
        /// The file.
        path: PathBuf,
        /// libpcap's link-layer header type.
        dlt: i32,
        /// Its name, as libpcap gives it.
        name: String,
    },
    /// libpcap cannot compile the pcap-filter expression.
    #[error("{path}: invalid capture filter `{filter}`: {reason}")]
    BadFilter {
        /// The file it was to filter.
        path: PathBuf,
        /// The expression.
        filter: String,
        /// libpcap's complaint.
        reason: String,
    },
    /// Writing the captured frames (`-w`) failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// Why the write failed.
        source: io::Error,
    },
    /// A live capture could not start or go on.
    #[error("capture on {interface}: {source}")]
    Live {
        /// The interface.
        interface: String,
        /// Boxed: a capture error rides in every poll's result, which stays small.
        source: Box<LiveError>,
    },
    /// The file broke off or holds garbage after a readable part.
    #[error("{path}: capture damaged after {frames} frames: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Frames read before the damage.
        frames: u64,
        /// What the damage is.
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
    Pcap {
        /// libpcap's error.
        source: pcap::Error,
        /// Whether it is a refusal for want of privilege.
        denied: bool,
    },
    /// libpcap cannot compile the capture filter.
    #[error("filter `{filter}`: {source}")]
    Filter {
        /// The pcap-filter expression.
        filter: String,
        /// libpcap's complaint.
        source: pcap::Error,
    },
    /// The handle cannot be made non-blocking.
    #[error("non-blocking mode: {0}")]
    NonBlocking(#[source] pcap::Error),
    /// The interface's link layer is one spycraft does not decode.
    #[error("unsupported link type {name} ({dlt})")]
    UnsupportedLinkType {
        /// libpcap's link-layer header type.
        dlt: i32,
        /// Its name.
        name: String,
    },
    /// Waiting for frames failed.
    #[error("poll: {0}")]
    Poll(#[source] io::Error),
    /// No interface has the name given.
    #[error("no such interface ({0})")]
    NoInterface(#[source] io::Error),
    /// The interface was removed during the capture (its name at the time).
    #[error("interface {0} was removed")]
    Removed(String),
    /// The kernel programs failed.
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
    /// The object with the programs and maps could not be loaded.
    #[error("loading the kernel programs: {}{}", crate::error_chain(.source), privilege_hint(*.denied))]
    Load {
        /// aya's error.
        source: aya::EbpfError,
        /// Whether the kernel refused for want of privilege.
        denied: bool,
    },
    /// The verifier or the kernel refused a program.
    #[error("loading {program}: {}{}", crate::error_chain(.source), privilege_hint(*.denied))]
    LoadProgram {
        /// Which program.
        program: &'static str,
        /// aya's error.
        source: aya::programs::ProgramError,
        /// Whether the kernel refused for want of privilege.
        denied: bool,
    },
    /// A loaded program could not be attached.
    #[error("attaching {how}: {}{}", crate::error_chain(.source), privilege_hint(*.denied))]
    Attach {
        /// Which program, and how.
        how: &'static str,
        /// aya's error.
        source: aya::programs::ProgramError,
        /// Whether the kernel refused for want of privilege.
        denied: bool,
    },
    /// Another XDP program holds the interface.
    #[error("another XDP program (id {id}, {mode} mode) is attached to {interface}; see it with `ip link show dev {interface}` or `bpftool net show dev {interface}`, and detach it with `ip link set dev {interface} xdp off` if nothing needs it (another spycraft, or the program that loaded it, may)")]
    HeldByAnother {
        /// The interface.
        interface: String,
        /// The kernel's id of the program attached.
        id: u32,
        /// Its attach mode.
        mode: &'static str,
    },
    /// The object lacks a program or map this spycraft expects: a build mismatch.
    #[error("the kernel object has no {0}")]
    Missing(&'static str),
    /// A map could not be opened or filled.
    #[error("{name}: {source}")]
    Map {
        /// The map.
        name: &'static str,
        /// aya's error.
        source: aya::maps::MapError,
    },
    /// The AF_PACKET socket for the socket filter failed.
    #[error("{step}: {source}{}", privilege_hint(*.denied))]
    Socket {
        /// What was being done.
        step: &'static str,
        /// The system's error.
        source: io::Error,
        /// Whether the kernel refused for want of privilege.
        denied: bool,
    },
    /// The reader's event loop could not start.
    #[error("starting the ring reader: {0}")]
    Runtime(#[source] io::Error),
    /// Waiting for the programs to wake the reader failed.
    #[error("waiting on the ring buffer: {0}")]
    Wait(#[source] io::Error),
    /// A ring record shorter than its header: a build mismatch.
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
