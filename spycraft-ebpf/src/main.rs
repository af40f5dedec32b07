// SPDX-License-Identifier: AGPL-3.0-or-later
//! spycraft's kernel programs: pick SIP signalling out of everything an interface carries and
//! copy it into a ring buffer for the userspace pipeline.
//!
//! - `spycraft_xdp` runs on a mirror port (XDP sees ingress only). It fails open: every frame
//!   passes on unless userspace asked for `--xdp-action drop` on a dedicated mirror port.
//! - `spycraft_socket` is the socket filter of an AF_PACKET socket, for a sensor next to the
//!   SIP service: it sees both directions. It returns 0 for every frame, so the socket queues
//!   nothing; the ring buffer is the only way frames leave.
//!
//! Both share [`select::select`] and one record writer. A selected frame becomes one ring
//! record: a [`RingRecordHeader`] and the frame's first bytes (up to the snap length), sized
//! to the frame, so small SIP frames take little room.
#![no_std]
#![no_main]

mod select;

use aya_ebpf::{
    bindings::{xdp_action, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::generated::{bpf_ktime_get_ns, bpf_skb_load_bytes, bpf_xdp_load_bytes},
    macros::{map, socket_filter, xdp},
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
    programs::{SkBuffContext, XdpContext},
    EbpfContext,
};
use spycraft_common::{
    FilterSettings, FragmentKey, FrameDirection, KernelCounter, RingRecordHeader, XdpAction,
    DEFAULT_RING_BYTES, FRAGMENT_FLOWS, KERNEL_COUNTERS, MAX_HOST_PREFIXES, MAX_KERNEL_SNAP_LEN,
    RING_FLAG_FRAGMENT_FOLLOW, WAKE_READER_BYTES,
};

use aya_log_ebpf::{debug, warn};
use select::Packet;

/// The filter configuration (one entry), written by userspace before attaching.
#[map]
static SETTINGS: Array<FilterSettings> = Array::with_max_entries(1, 0);

/// Monitored IPv4 prefixes (empty: any host).
#[map]
static HOSTS_V4: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(MAX_HOST_PREFIXES, 0);

/// Monitored IPv6 prefixes (empty: any host).
#[map]
static HOSTS_V6: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(MAX_HOST_PREFIXES, 0);

/// Datagrams whose first fragment was selected.
#[map]
static FRAGMENTS: LruHashMap<FragmentKey, u8> = LruHashMap::with_max_entries(FRAGMENT_FLOWS, 0);

/// Per-CPU counters, indexed by [`KernelCounter`].
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(KERNEL_COUNTERS, 0);

/// Selected frames, to userspace (size set by userspace at load time).
#[map]
static FRAMES: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

/// Where a record is assembled before it is copied into the ring at its real size: the ring
/// only reserves sizes known when the program is verified.
#[map]
static SCRATCH: PerCpuArray<Record> = PerCpuArray::with_max_entries(1, 0);

const SNAP: usize = MAX_KERNEL_SNAP_LEN as usize;
const HEADER: usize = core::mem::size_of::<RingRecordHeader>();

#[repr(C)]
struct Record {
    header: RingRecordHeader,
    data: [u8; SNAP],
}

/// Linux's `PACKET_OUTGOING` (`skb->pkt_type` of a frame the host sent).
const PACKET_OUTGOING: u32 = 4;

#[xdp]
pub fn spycraft_xdp(ctx: XdpContext) -> u32 {
    let Some(settings) = SETTINGS.get(0) else {
        return xdp_action::XDP_PASS;
    };
    let frame = XdpFrame(&ctx);
    // SAFETY: ingress_ifindex is a plain field of the context the kernel gave us.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    capture(&ctx, &frame, settings, ifindex, FrameDirection::Ingress);
    if settings.xdp_action == XdpAction::Drop as u32 {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

#[socket_filter]
pub fn spycraft_socket(ctx: SkBuffContext) -> i64 {
    let Some(settings) = SETTINGS.get(0) else {
        return 0;
    };
    // SAFETY: pkt_type and ifindex are fields a socket filter may read.
    let (pkt_type, ifindex) = unsafe { ((*ctx.skb.skb).pkt_type, (*ctx.skb.skb).ifindex) };
    let direction = if pkt_type == PACKET_OUTGOING {
        if settings.skip_outgoing != 0 {
            return 0;
        }
        FrameDirection::Egress
    } else {
        FrameDirection::Ingress
    };
    capture(&ctx, &SkbFrame::new(&ctx), settings, ifindex, direction);
    // Keep nothing on the socket itself: the ring carries the frames.
    0
}

/// Counts the frame, and copies it into the ring when it is selected.
#[inline(always)]
fn capture<C: EbpfContext, P: Packet + Copier>(
    ctx: &C,
    frame: &P,
    settings: &FilterSettings,
    ifindex: u32,
    direction: FrameDirection,
) {
    let original_len = frame.wire_len();
    count(KernelCounter::Seen);
    add(KernelCounter::SeenBytes, original_len);
    let Some(flags) = select::select(frame, settings) else {
        return;
    };
    if flags & RING_FLAG_FRAGMENT_FOLLOW != 0 {
        count(KernelCounter::FragmentsFollowed);
    }
    let Some(record) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the per-CPU scratch entry is ours alone while this program runs on this CPU.
    let record = unsafe { &mut *record };
    // 64-bit arithmetic throughout: a 32-bit value is zero-extended into a fresh register,
    // and the verifier would then see the bounds checked on a copy, not on what is passed.
    let mut len = u64::from(original_len);
    if len > u64::from(settings.snap_len) {
        len = u64::from(settings.snap_len);
    }
    if len > SNAP as u64 {
        len = SNAP as u64;
    }
    // The parser read at least an Ethernet, IP and transport header, so len > 0; the test
    // gives the verifier the same knowledge.
    if len == 0 {
        return;
    }
    if !frame.copy_into(&mut record.data, len) {
        return;
    }
    record.header = RingRecordHeader {
        // SAFETY: bpf_ktime_get_ns has no arguments and no preconditions.
        timestamp_ns: unsafe { bpf_ktime_get_ns() },
        ifindex,
        original_len,
        captured_len: len as u32,
        direction: direction as u8,
        flags,
        _pad: [0; 2],
    };
    let size = HEADER + len as usize;
    // SAFETY: `record` is HEADER + SNAP bytes and `size` is at most that.
    let bytes =
        unsafe { core::slice::from_raw_parts((record as *const Record).cast::<u8>(), size) };
    // Wake the reader only once a batch has gathered: a wakeup per frame costs it more than
    // the frame. It also looks every few milliseconds on its own, so nothing waits long.
    let wake = if FRAMES.query(u64::from(BPF_RB_AVAIL_DATA)) + size as u64 >= WAKE_READER_BYTES {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    };
    if FRAMES.output::<[u8]>(bytes, wake).is_ok() {
        count(KernelCounter::Selected);
        add(KernelCounter::SelectedBytes, original_len);
        // Off unless userspace raised AYA_LOG_LEVEL at load (`capture -vv`): then one load
        // and compare per selected frame decide it.
        debug!(
            ctx,
            "selected a frame of {} bytes, {} copied, flags {}", original_len, len as u32, flags
        );
    } else {
        count(KernelCounter::RingFull);
        warn!(
            ctx,
            "ring buffer full: a frame of {} bytes lost", original_len
        );
    }
}

#[inline(always)]
fn count(counter: KernelCounter) {
    add(counter, 1);
}

#[inline(always)]
fn add(counter: KernelCounter, n: u32) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, so no other writer; the pointer came from the map lookup.
        unsafe { *value += u64::from(n) };
    }
}

/// The frame as it was on the wire, for the ring record.
trait Copier {
    /// Its length on the wire.
    fn wire_len(&self) -> u32;
    /// Copies its first `len` bytes (1 ≤ len ≤ SNAP).
    fn copy_into(&self, dst: &mut [u8; SNAP], len: u64) -> bool;
}

struct XdpFrame<'a>(&'a XdpContext);

impl Packet for XdpFrame<'_> {
    #[inline(always)]
    fn len(&self) -> u32 {
        (self.0.data_end() - self.0.data()) as u32
    }

    #[inline(always)]
    fn bytes<const N: usize>(&self, offset: u32) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        // SAFETY: the helper checks `offset + N` against the frame and writes at most N bytes.
        let rc =
            unsafe { bpf_xdp_load_bytes(self.0.ctx, offset, out.as_mut_ptr().cast(), N as u32) };
        (rc == 0).then_some(out)
    }
}

impl Copier for XdpFrame<'_> {
    #[inline(always)]
    fn wire_len(&self) -> u32 {
        self.len()
    }

    #[inline(always)]
    fn copy_into(&self, dst: &mut [u8; SNAP], len: u64) -> bool {
        // SAFETY: `len` ≤ SNAP = dst.len(); the helper checks it against the frame.
        unsafe { bpf_xdp_load_bytes(self.0.ctx, 0, dst.as_mut_ptr().cast(), len as u32) == 0 }
    }
}

/// A socket filter's frame. The kernel may have taken a VLAN tag out of the bytes into the
/// skb (on receive, always; on send, with VLAN offload); the parser reads the bytes as they
/// are, and the copy puts the tag back where it was on the wire, as libpcap does.
struct SkbFrame<'a> {
    ctx: &'a SkBuffContext,
    /// The tag's protocol as stored (network order) and its TCI, when taken out.
    vlan: Option<(u16, u16)>,
}

impl<'a> SkbFrame<'a> {
    #[inline(always)]
    fn new(ctx: &'a SkBuffContext) -> Self {
        // SAFETY: the vlan fields are readable by socket filters.
        let (present, proto, tci) = unsafe {
            let skb = &*ctx.skb.skb;
            (skb.vlan_present, skb.vlan_proto, skb.vlan_tci)
        };
        let vlan = (present != 0).then_some((proto as u16, tci as u16));
        Self { ctx, vlan }
    }
}

impl Packet for SkbFrame<'_> {
    #[inline(always)]
    fn len(&self) -> u32 {
        self.ctx.len()
    }

    #[inline(always)]
    fn bytes<const N: usize>(&self, offset: u32) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        // SAFETY: as for XDP: the helper bounds the read by the frame and by N.
        let rc = unsafe {
            bpf_skb_load_bytes(self.ctx.as_ptr(), offset, out.as_mut_ptr().cast(), N as u32)
        };
        (rc == 0).then_some(out)
    }
}

/// The MAC addresses, before which a VLAN tag sits.
const MACS: usize = 12;
const TAG: usize = 4;

impl Copier for SkbFrame<'_> {
    #[inline(always)]
    fn wire_len(&self) -> u32 {
        self.len() + if self.vlan.is_some() { TAG as u32 } else { 0 }
    }

    #[inline(always)]
    fn copy_into(&self, dst: &mut [u8; SNAP], len: u64) -> bool {
        let skb = self.ctx.as_ptr();
        let Some((proto, tci)) = self.vlan else {
            // SAFETY: `len` ≤ SNAP = dst.len(); the helper checks it against the frame.
            return unsafe { bpf_skb_load_bytes(skb, 0, dst.as_mut_ptr().cast(), len as u32) == 0 };
        };
        // MAC addresses, the tag, then the rest of the frame after it.
        let rest = len.wrapping_sub((MACS + TAG) as u64);
        if rest == 0 || rest > (SNAP - MACS - TAG) as u64 {
            return false;
        }
        // SAFETY: 12 bytes into a buffer of SNAP; the helper checks the frame.
        if unsafe { bpf_skb_load_bytes(skb, 0, dst.as_mut_ptr().cast(), MACS as u32) } != 0 {
            return false;
        }
        // `proto` holds the wire's bytes already; the TCI is in host order.
        let proto = proto.to_ne_bytes();
        let tci = tci.to_be_bytes();
        dst[MACS] = proto[0];
        dst[MACS + 1] = proto[1];
        dst[MACS + 2] = tci[0];
        dst[MACS + 3] = tci[1];
        // SAFETY: the destination starts 16 bytes in and `rest` ≤ SNAP − 16 bytes follow it.
        unsafe {
            bpf_skb_load_bytes(
                skb,
                MACS as u32,
                dst.as_mut_ptr().add(MACS + TAG).cast(),
                rest as u32,
            ) == 0
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The kernel grants some helpers only to GPL-compatible programs; spycraft is
/// AGPL-3.0-or-later, which is compatible with the GPL.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
