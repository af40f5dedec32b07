// SPDX-License-Identifier: AGPL-3.0-or-later
//! Live capture through spycraft's kernel programs (`capture --mode xdp|socket`).
//!
//! The programs (spycraft-ebpf, embedded at build time) pick SIP frames out of everything the
//! interface carries and copy them into a ring buffer; this source reads that ring through
//! tokio's `AsyncFd` and yields the frames to the same pipeline as `analyze`. Frames that are
//! not SIP never reach userspace.
//!
//! - `xdp`: on a mirror port (XDP sees ingress only). Native (driver) mode when the driver has
//!   it, else generic (skb) mode; [`KernelSource::attachment`] says which.
//! - `socket`: the socket filter of an AF_PACKET socket, for a sensor beside the SIP service
//!   (both directions). The socket itself queues nothing.
//!
//! On stop the program is detached first, then the ring is drained, so no frame the kernel
//! selected is lost.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::programs::{SocketFilter, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use spycraft_common::{
    FilterSettings, KernelCounter, RingRecordHeader, XdpAction, MAX_KERNEL_SNAP_LEN,
    READER_LOOKS_EVERY_MS,
};
use tokio::io::unix::AsyncFd;

use super::interface::InterfaceWatch;
use super::{CaptureError, Frame, KernelError, LiveError, Polled, XdpAttach};
use crate::filter::FilterConfig;
use crate::packet::{LinkType, Timestamp};

/// The kernel programs, built by `build.rs` from spycraft-ebpf.
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/spycraft"));

/// How long a read waits for the ring before reporting `Idle`.
const READ_TIMEOUT: Duration = Duration::from_millis(200);
/// The programs wake the reader only once a batch has gathered, so it also looks this often.
const LOOK_EVERY: Duration = Duration::from_millis(READER_LOOKS_EVERY_MS);
/// How often the kernel's counters are read while frames flow.
const REFRESH_EVERY: Duration = Duration::from_millis(500);

/// Which program picks the frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelMode {
    /// XDP on the interface's ingress.
    Xdp(XdpAttach),
    /// Socket filter on an AF_PACKET socket bound to the interface.
    Socket,
}

/// What the kernel programs need beyond the filter.
#[derive(Clone, Copy, Debug)]
pub struct KernelOptions {
    /// Which program picks the frames.
    pub mode: KernelMode,
    /// Bytes of each frame copied (at most [`MAX_KERNEL_SNAP_LEN`]).
    pub snap_len: u32,
    /// Ring buffer size in bytes (rounded up to a power of two of pages).
    pub ring_bytes: u32,
    /// What XDP returns for every frame once copied.
    pub xdp_action: XdpAction,
    /// The programs' diagnostics (aya-log): every selected frame, and ring overflows, on
    /// stderr. Off by default: off, they cost one check per selected frame.
    pub log_frames: bool,
}

/// The kernel programs' counters, summed over CPUs; refreshed by the capture loop, readable
/// from any thread.
#[derive(Debug, Default)]
pub struct KernelCounters {
    /// Frames the programs looked at.
    pub seen: AtomicU64,
    /// Frames they selected and copied.
    pub selected: AtomicU64,
    /// Selected frames lost because the ring was full.
    pub ring_full: AtomicU64,
    /// Later fragments copied because their first fragment matched.
    pub fragments_followed: AtomicU64,
    /// Frames read from the ring by spycraft.
    pub read: AtomicU64,
    /// Bytes of the frames the programs looked at.
    pub seen_bytes: AtomicU64,
    /// Bytes of the frames they selected.
    pub selected_bytes: AtomicU64,
    /// Which program: `xdp` or `socket`.
    pub mode: &'static str,
}

impl super::CaptureCounts for KernelCounters {
    fn mode(&self) -> &'static str {
        self.mode
    }

    fn figures(&self) -> super::CaptureFigures {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        super::CaptureFigures {
            seen: Some((get(&self.seen), get(&self.seen_bytes))),
            selected: (get(&self.selected), Some(get(&self.selected_bytes))),
            read: get(&self.read),
            lost: [("ring_full", get(&self.ring_full)), ("interface", 0)],
        }
    }

    fn one_line(&self) -> String {
        format!(
            "kernel: {} frames seen, {} selected, {} lost (ring full), {} later fragments followed; {} read by spycraft",
            self.seen.load(Ordering::Relaxed),
            self.selected.load(Ordering::Relaxed),
            self.ring_full.load(Ordering::Relaxed),
            self.fragments_followed.load(Ordering::Relaxed),
            self.read.load(Ordering::Relaxed),
        )
    }
}

/// An interface captured through the kernel programs.
pub struct KernelSource {
    interface: String,
    /// How its frames begin: Ethernet, or IP on interfaces without a link-layer header.
    link_type: LinkType,
    ebpf: Ebpf,
    attached: Option<Attached>,
    attachment: &'static str,
    ring: AsyncFd<RingBuf<MapData>>,
    counters_map: PerCpuArray<MapData, u64>,
    counters: Arc<KernelCounters>,
    /// A new filter left by a reload.
    filter_slot: Arc<super::FilterSlot>,
    runtime: tokio::runtime::Runtime,
    stop: &'static AtomicBool,
    /// The current record's frame bytes (the ring entry is released as soon as it is copied).
    frame: Vec<u8>,
    /// The current record's header.
    header: RingRecordHeader,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC in ns: the programs stamp frames with the latter.
    clock_offset_ns: i64,
    read: u64,
    refreshed_at: std::time::Instant,
    /// The programs' log records (aya-log), written to stderr as they are read.
    logger: Option<aya_log::EbpfLogger<StderrLog>>,
    watch: InterfaceWatch,
    /// Why the capture cannot go on (the interface was removed): said once the ring is
    /// drained.
    gone: Option<LiveError>,
}

/// Writes the kernel programs' log records to stderr, with spycraft's prefix.
#[derive(Debug)]
pub struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        eprintln!(
            "spycraft: kernel {}: {}",
            record.level().as_str().to_ascii_lowercase(),
            record.args()
        );
    }

    fn flush(&self) {}
}

/// What keeps a program attached: dropping it detaches.
enum Attached {
    Xdp(aya::programs::xdp::XdpLinkId),
    Socket(OwnedFd),
}

impl std::fmt::Debug for KernelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelSource")
            .field("interface", &self.interface)
            .field("attachment", &self.attachment)
            .field("read", &self.read)
            .finish()
    }
}

/// What the programs need to know of the interface they are attached to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// The socket filter ignores outgoing frames (loopback, where each is seen twice).
    pub skip_outgoing: bool,
    /// The interface has no link-layer header: frames start with IP.
    pub raw_ip: bool,
}

/// Loads the kernel programs with `filter` in their maps, unattached (tests run them through
/// `BPF_PROG_TEST_RUN`; [`KernelSource::open`] attaches them).
pub fn load(
    filter: &FilterConfig,
    options: &KernelOptions,
    link: Link,
) -> Result<Ebpf, KernelError> {
    let ring_bytes = options.ring_bytes.max(4096).next_power_of_two();
    // aya-log's level global: 0 keeps every log statement off; 4 is debug.
    let log_level: u8 = if options.log_frames { 4 } else { 0 };
    let mut ebpf = EbpfLoader::new()
        .map_max_entries("FRAMES", ring_bytes)
        .override_global("AYA_LOG_LEVEL", &log_level, true)
        .load(PROGRAMS)
        .map_err(KernelError::load)?;
    let mut settings = FilterSettings::EMPTY;
    settings.snap_len = options.snap_len.clamp(64, MAX_KERNEL_SNAP_LEN);
    settings.xdp_action = options.xdp_action as u32;
    settings.skip_outgoing = u32::from(link.skip_outgoing);
    settings.raw_ip = u32::from(link.raw_ip);
    write_filter(&mut ebpf, filter, settings)?;
    Ok(ebpf)
}

/// Puts `filter`'s ports and hosts into the programs' maps, the rest of `settings` as given.
/// On a running program (a reload) the new host prefixes go in before the settings that
/// count them, and the old ones come out after: meanwhile a frame may be selected by either
/// filter, never by neither.
fn write_filter(
    ebpf: &mut Ebpf,
    filter: &FilterConfig,
    mut settings: FilterSettings,
) -> Result<(), KernelError> {
    settings.ports = FilterSettings::EMPTY.ports;
    for (slot, range) in settings.ports.iter_mut().zip(filter.ports()) {
        *slot = *range;
    }
    settings.port_ranges = filter.ports().len() as u32;
    let v4 = prefixes(filter, |net| match net {
        ipnet::IpNet::V4(n) => Some((n.prefix_len(), n.addr().octets())),
        ipnet::IpNet::V6(_) => None,
    });
    let v6 = prefixes(filter, |net| match net {
        ipnet::IpNet::V6(n) => Some((n.prefix_len(), n.addr().octets())),
        ipnet::IpNet::V4(_) => None,
    });
    let stale_v4 = fill_hosts(ebpf, "HOSTS_V4", &v4)?;
    let stale_v6 = fill_hosts(ebpf, "HOSTS_V6", &v6)?;
    settings.host_prefixes_v4 = v4.len() as u32;
    settings.host_prefixes_v6 = v6.len() as u32;
    let map_error = |source| KernelError::Map {
        name: "SETTINGS",
        source,
    };
    let mut array: Array<_, FilterSettings> =
        Array::try_from(map(ebpf, "SETTINGS")?).map_err(map_error)?;
    array.set(0, settings, 0).map_err(map_error)?;
    remove_hosts(ebpf, "HOSTS_V4", &stale_v4)?;
    remove_hosts(ebpf, "HOSTS_V6", &stale_v6)?;
    Ok(())
}

/// The filter's host prefixes of one family, as (prefix length, address) for its trie.
fn prefixes<const N: usize>(
    filter: &FilterConfig,
    of_family: impl Fn(&ipnet::IpNet) -> Option<(u8, [u8; N])>,
) -> Vec<(u8, [u8; N])> {
    filter.hosts().iter().filter_map(of_family).collect()
}

/// The filter settings the programs run with now.
fn current_settings(ebpf: &mut Ebpf) -> Result<FilterSettings, KernelError> {
    let map_error = |source| KernelError::Map {
        name: "SETTINGS",
        source,
    };
    let array: Array<_, FilterSettings> =
        Array::try_from(map(ebpf, "SETTINGS")?).map_err(map_error)?;
    array.get(&0, 0).map_err(map_error)
}

/// Puts the (prefix length, address) pairs into the LPM trie `name`; returns the prefixes it
/// held before that are not among them, for [`remove_hosts`] once the settings are written.
fn fill_hosts<const N: usize>(
    ebpf: &mut Ebpf,
    name: &'static str,
    prefixes: &[(u8, [u8; N])],
) -> Result<Vec<(u32, [u8; N])>, KernelError> {
    let map_error = |source| KernelError::Map { name, source };
    let mut trie: LpmTrie<_, [u8; N], u8> =
        LpmTrie::try_from(map(ebpf, name)?).map_err(map_error)?;
    let mut stale = Vec::new();
    for key in trie.keys() {
        let key = key.map_err(map_error)?;
        let held = (key.prefix_len(), key.data());
        if !prefixes
            .iter()
            .any(|(len, address)| (u32::from(*len), *address) == held)
        {
            stale.push(held);
        }
    }
    for (len, address) in prefixes {
        trie.insert(&Key::new(u32::from(*len), *address), 1, 0)
            .map_err(map_error)?;
    }
    Ok(stale)
}

/// Takes `prefixes` out of the LPM trie `name`.
fn remove_hosts<const N: usize>(
    ebpf: &mut Ebpf,
    name: &'static str,
    prefixes: &[(u32, [u8; N])],
) -> Result<(), KernelError> {
    let map_error = |source| KernelError::Map { name, source };
    let mut trie: LpmTrie<_, [u8; N], u8> =
        LpmTrie::try_from(map(ebpf, name)?).map_err(map_error)?;
    for (len, address) in prefixes {
        trie.remove(&Key::new(*len, *address)).map_err(map_error)?;
    }
    Ok(())
}

fn map<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut aya::maps::Map, KernelError> {
    ebpf.map_mut(name).ok_or(KernelError::Missing(name))
}

/// Sums a per-CPU counter.
pub fn read_counter(map: &PerCpuArray<MapData, u64>, counter: KernelCounter) -> u64 {
    map.get(&(counter as u32), 0)
        .map(|values| values.iter().sum())
        .unwrap_or(0)
}

impl KernelSource {
    /// Loads the programs with `filter`, attaches the one `options.mode` names to `interface`
    /// and opens the ring.
    pub fn open(
        interface: &str,
        filter: &FilterConfig,
        options: KernelOptions,
        stop: &'static AtomicBool,
    ) -> Result<Self, CaptureError> {
        let failed = |source: LiveError| CaptureError::Live {
            interface: interface.to_owned(),
            source: Box::new(source),
        };
        let kernel = |e: KernelError| failed(LiveError::Kernel(e));
        let ifindex = interface_index(interface).map_err(failed)?;
        let link_type = link_type_of(interface).map_err(failed)?;
        let link = Link {
            skip_outgoing: is_loopback(interface),
            raw_ip: link_type == LinkType::RawIp,
        };
        let mut ebpf = load(filter, &options, link).map_err(kernel)?;
        let (attached, attachment) = match options.mode {
            KernelMode::Xdp(how) => {
                attach_xdp(&mut ebpf, interface, ifindex, how).map_err(kernel)?
            }
            KernelMode::Socket => {
                let socket = attach_socket(&mut ebpf, ifindex).map_err(kernel)?;
                (
                    Attached::Socket(socket),
                    "socket filter on an AF_PACKET socket",
                )
            }
        };
        // Without its reader the log ring fills and later records are dropped; nothing else.
        let logger = aya_log::EbpfLogger::init_with_logger(&mut ebpf, StderrLog).ok();
        let ring = RingBuf::try_from(
            ebpf.take_map("FRAMES")
                .ok_or(KernelError::Missing("map FRAMES"))
                .map_err(kernel)?,
        )
        .map_err(|source| {
            kernel(KernelError::Map {
                name: "FRAMES",
                source,
            })
        })?;
        let counters_map = PerCpuArray::try_from(
            ebpf.take_map("COUNTERS")
                .ok_or(KernelError::Missing("map COUNTERS"))
                .map_err(kernel)?,
        )
        .map_err(|source| {
            kernel(KernelError::Map {
                name: "COUNTERS",
                source,
            })
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| kernel(KernelError::Runtime(e)))?;
        let ring = {
            let _guard = runtime.enter();
            // SAFETY: the ring owns its map's fd, which stays open and the same for as long
            // as the ring, and so the AsyncFd that owns it, lives.
            unsafe { AsyncFd::register(ring) }
                .map_err(|e| kernel(KernelError::Runtime(e.into_parts().1)))?
        };
        Ok(Self {
            interface: interface.to_owned(),
            link_type,
            ebpf,
            attached: Some(attached),
            attachment,
            ring,
            counters_map,
            counters: Arc::new(KernelCounters {
                mode: match options.mode {
                    KernelMode::Xdp(_) => "xdp",
                    KernelMode::Socket => "socket",
                },
                ..KernelCounters::default()
            }),
            filter_slot: Arc::default(),
            runtime,
            stop,
            frame: Vec::with_capacity(MAX_KERNEL_SNAP_LEN as usize),
            header: RingRecordHeader::default(),
            clock_offset_ns: clock_offset_ns(),
            read: 0,
            refreshed_at: std::time::Instant::now(),
            logger,
            watch: InterfaceWatch::new(interface, ifindex),
            gone: None,
        })
    }

    /// How the program is attached, for the start-up message.
    pub fn attachment(&self) -> &'static str {
        self.attachment
    }

    /// Ethernet, or raw IP for interfaces without a link-layer header (as libpcap reports
    /// them).
    pub fn link_type(&self) -> LinkType {
        self.link_type
    }

    /// The counters, shared with the thread that prints them.
    pub fn counters(&self) -> Arc<KernelCounters> {
        self.counters.clone()
    }

    /// Where a reload leaves a new filter for the programs' maps.
    pub fn filter_slot(&self) -> Arc<super::FilterSlot> {
        self.filter_slot.clone()
    }

    /// Frames the programs lost because the ring was full, as last refreshed.
    pub fn lost(&self) -> u64 {
        self.counters.ring_full.load(Ordering::Relaxed)
    }

    /// The next frame; `Idle` when the ring stayed empty for the read timeout; `End` once
    /// stopped and drained.
    pub fn poll(&mut self) -> Result<Polled<'_>, CaptureError> {
        if self.refreshed_at.elapsed() >= REFRESH_EVERY {
            self.refresh();
        }
        if (self.stop.load(Ordering::Acquire) || self.gone.is_some()) && self.attached.is_some() {
            // Detach first: what is in the ring now is all there will be.
            self.detach();
        }
        let waited = std::time::Instant::now();
        while !self.next_record()? {
            if self.attached.is_none() {
                self.refresh();
                if let Some(logger) = self.logger.as_mut() {
                    logger.flush();
                }
                if let Some(source) = self.gone.take() {
                    return Err(CaptureError::Live {
                        interface: self.interface.clone(),
                        source: Box::new(source),
                    });
                }
                return Ok(Polled::End);
            }
            if waited.elapsed() >= READ_TIMEOUT || self.stop.load(Ordering::Acquire) {
                self.refresh();
                return Ok(Polled::Idle);
            }
            self.wait()?;
        }
        let ts_ns = self.header.timestamp_ns as i64 + self.clock_offset_ns;
        Ok(Polled::Frame(Frame {
            time: Timestamp(ts_ns.div_euclid(1000)),
            link: self.link_type,
            original_len: self.header.original_len,
            data: &self.frame,
            interface: 0,
        }))
    }

    /// Waits until the programs wake the reader or [`LOOK_EVERY`] has passed.
    fn wait(&mut self) -> Result<(), CaptureError> {
        if let Some(logger) = self.logger.as_mut() {
            logger.flush();
        }
        let ring = &self.ring;
        let woken = self.runtime.block_on(async {
            match tokio::time::timeout(LOOK_EVERY, ring.readable()).await {
                Ok(Ok(mut guard)) => {
                    guard.clear_ready();
                    Ok(())
                }
                Ok(Err(e)) => Err(e),
                Err(_elapsed) => Ok(()),
            }
        });
        woken.map_err(|e| CaptureError::Live {
            interface: self.interface.clone(),
            source: Box::new(LiveError::Kernel(KernelError::Wait(e))),
        })
    }

    /// Copies the next ring record into `self.header` and `self.frame`; false when the ring
    /// is empty.
    fn next_record(&mut self) -> Result<bool, CaptureError> {
        let ring = self.ring.get_mut();
        let Some(item) = ring.next() else {
            return Ok(false);
        };
        let Some((header, bytes)) = split_record(&item) else {
            return Err(CaptureError::Live {
                interface: self.interface.clone(),
                source: Box::new(LiveError::Kernel(KernelError::ShortRecord(item.len()))),
            });
        };
        self.header = header;
        self.frame.clear();
        self.frame.extend_from_slice(bytes);
        drop(item);
        self.read += 1;
        Ok(true)
    }

    fn detach(&mut self) {
        match self.attached.take() {
            Some(Attached::Xdp(link)) => {
                if let Some(program) = self.ebpf.program_mut("spycraft_xdp") {
                    if let Ok(xdp) = <&mut Xdp>::try_from(program) {
                        let _ = xdp.detach(link);
                    }
                }
            }
            // Closing the socket ends the filter.
            Some(Attached::Socket(socket)) => drop(socket),
            None => {}
        }
    }

    /// Reads the kernel's counters, and looks at the interface (at most once a second): run
    /// every 500 ms while frames flow and whenever the ring is idle, never per frame.
    fn refresh(&mut self) {
        if let Some(filter) = self.filter_slot.take() {
            let written = current_settings(&mut self.ebpf)
                .and_then(|settings| write_filter(&mut self.ebpf, &filter.config, settings));
            match written {
                Ok(()) => eprintln!(
                    "spycraft: {}: the kernel programs now select ports {}",
                    self.interface,
                    filter.config.ports_text()
                ),
                Err(e) => eprintln!(
                    "spycraft: WARNING: {}: the new filter could not be written ({}); the old \
                     one stays",
                    self.interface,
                    crate::error_chain(&e)
                ),
            }
        }
        if self.attached.is_some() && self.gone.is_none() {
            if let Err(removed) = self.watch.check() {
                self.gone = Some(removed);
            }
        }
        let c = &self.counters;
        let get = |counter| read_counter(&self.counters_map, counter);
        c.seen.store(get(KernelCounter::Seen), Ordering::Relaxed);
        c.selected
            .store(get(KernelCounter::Selected), Ordering::Relaxed);
        c.ring_full
            .store(get(KernelCounter::RingFull), Ordering::Relaxed);
        c.fragments_followed
            .store(get(KernelCounter::FragmentsFollowed), Ordering::Relaxed);
        c.read.store(self.read, Ordering::Relaxed);
        c.seen_bytes
            .store(get(KernelCounter::SeenBytes), Ordering::Relaxed);
        c.selected_bytes
            .store(get(KernelCounter::SelectedBytes), Ordering::Relaxed);
        self.refreshed_at = std::time::Instant::now();
    }
}

impl Drop for KernelSource {
    fn drop(&mut self) {
        self.detach();
    }
}

/// A ring record's header and its frame bytes (at most the captured length); `None` when the
/// record is too short to hold a header.
pub fn split_record(record: &[u8]) -> Option<(RingRecordHeader, &[u8])> {
    let (head, rest) = record.split_at_checked(size_of::<RingRecordHeader>())?;
    // SAFETY: `head` is exactly one header long; the header is plain data with every bit
    // pattern valid, read unaligned because nothing promises the slice's alignment.
    let header = unsafe { std::ptr::read_unaligned(head.as_ptr().cast::<RingRecordHeader>()) };
    let captured = rest.len().min(header.captured_len as usize);
    Some((header, &rest[..captured]))
}

fn attach_xdp(
    ebpf: &mut Ebpf,
    interface: &str,
    ifindex: u32,
    how: XdpAttach,
) -> Result<(Attached, &'static str), KernelError> {
    // Another program holding the interface is the usual reason an attach is refused: name
    // it, whatever mode was being tried.
    let refused = |mode: &'static str, e| match super::netlink::xdp_program_of(ifindex) {
        Some((id, held_mode)) => KernelError::HeldByAnother {
            interface: interface.to_owned(),
            id,
            mode: held_mode,
        },
        None => KernelError::attach(mode, e),
    };
    let program: &mut Xdp = ebpf
        .program_mut("spycraft_xdp")
        .ok_or(KernelError::Missing("spycraft_xdp program"))?
        .try_into()
        .map_err(|e| KernelError::load_program("the XDP program", e))?;
    program
        .load()
        .map_err(|e| KernelError::load_program("the XDP program", e))?;
    match how {
        XdpAttach::Native | XdpAttach::Auto => match program.attach(interface, XdpMode::Driver) {
            Ok(link) => return Ok((Attached::Xdp(link), "XDP, native (driver) mode")),
            Err(e) if how == XdpAttach::Native => return Err(refused("XDP in native mode", e)),
            Err(_) => {}
        },
        XdpAttach::Generic => {}
    }
    let link = program
        .attach(interface, XdpMode::Skb)
        .map_err(|e| refused("XDP in generic mode", e))?;
    Ok((
        Attached::Xdp(link),
        if how == XdpAttach::Auto {
            "XDP, generic (skb) mode: the driver has no native XDP"
        } else {
            "XDP, generic (skb) mode"
        },
    ))
}

/// Loads the socket filter and attaches it to a new AF_PACKET socket bound to `ifindex`; the
/// socket keeps it attached.
pub fn attach_socket(ebpf: &mut Ebpf, ifindex: u32) -> Result<OwnedFd, KernelError> {
    let program: &mut SocketFilter = ebpf
        .program_mut("spycraft_socket")
        .ok_or(KernelError::Missing("spycraft_socket program"))?
        .try_into()
        .map_err(|e| KernelError::load_program("the socket filter", e))?;
    program
        .load()
        .map_err(|e| KernelError::load_program("the socket filter", e))?;
    // Protocol 0: the socket receives nothing until it is bound, so no frame slips past
    // before the filter is in place.
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(KernelError::socket(
            "AF_PACKET socket",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: `fd` is a socket we just opened and own alone.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    program
        .attach(socket.as_fd())
        .map_err(|e| KernelError::attach("the socket filter", e))?;
    // SAFETY: sockaddr_ll is plain data; zero is a valid starting value.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    address.sll_ifindex = ifindex as i32;
    // SAFETY: `address` is a valid sockaddr_ll and the length is its size.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const address).cast::<libc::sockaddr>(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(KernelError::socket(
            "binding the AF_PACKET socket",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(socket)
}

/// The index of `interface`.
pub fn interface_index(interface: &str) -> Result<u32, LiveError> {
    let name = std::ffi::CString::new(interface).map_err(|_| {
        LiveError::NoInterface(std::io::Error::from(std::io::ErrorKind::InvalidInput))
    })?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(LiveError::NoInterface(std::io::Error::last_os_error()))
    } else {
        Ok(index)
    }
}

/// How the interface's frames begin, from its ARPHRD type in sysfs: Ethernet (and loopback,
/// whose header is an Ethernet one of zeros), or IP itself for interfaces without a
/// link-layer header (tun and WireGuard: NONE; ipip, sit, gre: tunnels; RAWIP).
fn link_type_of(interface: &str) -> Result<LinkType, LiveError> {
    let kind = std::fs::read_to_string(format!("/sys/class/net/{interface}/type"))
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    match kind {
        // ARPHRD_ETHER, ARPHRD_LOOPBACK; unreadable: leave it to the attach to fail.
        Some(1 | 772) | None => Ok(LinkType::Ethernet),
        // ARPHRD_NONE, TUNNEL, TUNNEL6, SIT, IPGRE, RAWIP.
        Some(65534 | 768 | 769 | 776 | 778 | 519) => Ok(LinkType::RawIp),
        Some(other) => Err(LiveError::UnsupportedLinkType {
            dlt: other as i32,
            name: format!(
                "ARPHRD {other}: the kernel programs read Ethernet or raw IP; use --mode pcap"
            ),
        }),
    }
}

/// Whether the interface is a loopback (its IFF_LOOPBACK flag, from sysfs).
fn is_loopback(interface: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/flags"))
        .ok()
        .and_then(|text| u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|flags| flags & libc::IFF_LOOPBACK as u32 != 0)
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC, in nanoseconds.
fn clock_offset_ns() -> i64 {
    let now = |clock| {
        // SAFETY: timespec is plain data; clock_gettime writes it for a valid clock id.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: as above; both clocks always exist on Linux.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        // time_t and c_long are i64 here, narrower elsewhere.
        #[allow(clippy::useless_conversion)]
        let ns = i64::from(ts.tv_sec) * 1_000_000_000 + i64::from(ts.tv_nsec);
        ns
    };
    now(libc::CLOCK_REALTIME) - now(libc::CLOCK_MONOTONIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_header_reads_from_any_alignment() {
        let header = RingRecordHeader {
            timestamp_ns: 0x0102_0304_0506_0708,
            ifindex: 7,
            original_len: 1514,
            captured_len: 1200,
            direction: 2,
            flags: 1,
            _pad: [0; 2],
        };
        let mut bytes = vec![0u8; 1 + size_of::<RingRecordHeader>()];
        // SAFETY: the destination has room for the header after the first byte.
        unsafe {
            std::ptr::write_unaligned(bytes[1..].as_mut_ptr().cast::<RingRecordHeader>(), header)
        };
        assert_eq!(split_record(&bytes[1..]).map(|(h, _)| h), Some(header));
        assert!(
            split_record(&bytes[2..]).is_none(),
            "one byte short of a header"
        );
        assert_eq!(
            spycraft_common::KERNEL_COUNTERS as usize,
            KernelCounter::ALL.len()
        );
    }
}
