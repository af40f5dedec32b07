// SPDX-License-Identifier: AGPL-3.0-or-later
//! The kernel programs, run by the kernel on crafted frames (`BPF_PROG_TEST_RUN`): which
//! frames the shared parser selects (SIP ports, VLAN and QinQ, IPv6 extension headers, first
//! and later fragments, TCP, hosts, truncation), what a ring record holds, the XDP verdict and
//! the per-CPU counters. Needs root (CI runs as root and must run it).
#![cfg(feature = "ebpf")]

mod support;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use aya::Ebpf;
use spycraft::capture::kernel::{self, KernelMode, KernelOptions};
use spycraft::capture::XdpAttach;
use spycraft::filter::{parse_range, FilterConfig};
use spycraft_common::{
    FrameDirection, KernelCounter, RingRecordHeader, XdpAction, RING_FLAG_FRAGMENT_FOLLOW,
};

use support::process::{ip, may_capture};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// The XDP program loaded with `filter`, and its ring and counters.
struct Harness {
    ebpf: Ebpf,
    ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
}

impl Harness {
    fn new(filter: &FilterConfig, snap_len: u32, ring_bytes: u32, action: XdpAction) -> Self {
        Self::on_link(
            filter,
            snap_len,
            ring_bytes,
            action,
            kernel::Link::default(),
        )
    }

    fn on_link(
        filter: &FilterConfig,
        snap_len: u32,
        ring_bytes: u32,
        action: XdpAction,
        link: kernel::Link,
    ) -> Self {
        let options = KernelOptions {
            mode: KernelMode::Xdp(XdpAttach::Auto),
            snap_len,
            ring_bytes,
            xdp_action: action,
            log_frames: false,
        };
        let mut ebpf = kernel::load(filter, &options, link).expect("programs load");
        let xdp: &mut Xdp = ebpf
            .program_mut("spycraft_xdp")
            .expect("program")
            .try_into()
            .expect("xdp");
        xdp.load().expect("the verifier accepts the XDP program");
        let ring = RingBuf::try_from(ebpf.take_map("FRAMES").expect("ring")).expect("ring");
        let counters =
            PerCpuArray::try_from(ebpf.take_map("COUNTERS").expect("counters")).expect("map");
        Self {
            ebpf,
            ring,
            counters,
        }
    }

    fn sip() -> Self {
        Self::new(&FilterConfig::default(), 1536, 1 << 20, XdpAction::Pass)
    }

    /// Runs the program on `frame`: its verdict and the ring record it wrote, if any.
    fn run(&mut self, frame: &[u8]) -> (u32, Option<(RingRecordHeader, Vec<u8>)>) {
        let xdp: &Xdp = self
            .ebpf
            .program("spycraft_xdp")
            .expect("program")
            .try_into()
            .expect("xdp");
        let result = xdp
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        let record = self.ring.next().map(|item| {
            let (header, bytes) = kernel::split_record(&item).expect("a record header");
            (header, bytes.to_vec())
        });
        assert!(self.ring.next().is_none(), "one record per frame at most");
        (result.return_value, record)
    }

    fn selected(&mut self, frame: &[u8]) -> bool {
        self.run(frame).1.is_some()
    }

    fn counter(&self, counter: KernelCounter) -> u64 {
        kernel::read_counter(&self.counters, counter)
    }
}

// ---- frame builders ------------------------------------------------------------------------

const SIP: &[u8] = b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060\r\n\r\n";

fn ethernet(ethertype: u16, tags: &[u16]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for &tpid in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&100u16.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn transport(protocol: u8, source: u16, destination: u16, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&source.to_be_bytes());
    t.extend_from_slice(&destination.to_be_bytes());
    if protocol == 17 {
        t.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        t.extend_from_slice(&[0, 0]);
    } else {
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    }
    t.extend_from_slice(payload);
    t
}

/// An IPv4 packet: `fragment` is the flags-and-offset field.
fn ipv4(source: [u8; 4], protocol: u8, id: u16, fragment: u16, body: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&((20 + body.len()) as u16).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&fragment.to_be_bytes());
    p.extend_from_slice(&[64, protocol, 0, 0]);
    p.extend_from_slice(&source);
    p.extend_from_slice(&[10, 0, 0, 2]);
    p.extend_from_slice(body);
    p
}

fn ipv6(next: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(body.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    p.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    p.extend_from_slice(body);
    p
}

fn udp4(source: [u8; 4], destination_port: u16) -> Vec<u8> {
    let mut f = ethernet(0x0800, &[]);
    f.extend(ipv4(
        source,
        17,
        1,
        0,
        &transport(17, 40000, destination_port, SIP),
    ));
    f
}

fn filter(ports: &[&str], hosts: &[&str]) -> FilterConfig {
    FilterConfig::new(
        ports
            .iter()
            .map(|p| parse_range(p).expect("range"))
            .collect(),
        hosts.iter().map(|h| h.parse().expect("prefix")).collect(),
    )
    .expect("filter")
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn sip_on_a_listed_port_is_copied_whole_with_its_header() {
    if !may_capture() {
        return;
    }
    let mut h = Harness::sip();
    let frame = udp4([10, 0, 0, 1], 5060);
    let (verdict, record) = h.run(&frame);
    assert_eq!(verdict, XDP_PASS, "XDP fails open");
    let (header, bytes) = record.expect("selected");
    assert_eq!(bytes, frame);
    assert_eq!(header.original_len as usize, frame.len());
    assert_eq!(header.captured_len as usize, frame.len());
    assert_eq!(header.direction, FrameDirection::Ingress as u8);
    assert_eq!(header.flags, 0);
    assert!(header.timestamp_ns > 0);

    assert!(!h.selected(&udp4([10, 0, 0, 1], 5070)), "port not listed");
    let mut tcp = ethernet(0x0800, &[]);
    tcp.extend(ipv4(
        [10, 0, 0, 1],
        6,
        2,
        0,
        &transport(6, 5080, 41000, SIP),
    ));
    assert!(h.selected(&tcp), "TCP from a SIP source port");
    let mut sctp = ethernet(0x0800, &[]);
    sctp.extend(ipv4(
        [10, 0, 0, 1],
        132,
        3,
        0,
        &transport(17, 5060, 5060, SIP),
    ));
    assert!(!h.selected(&sctp), "neither UDP nor TCP");
    let mut arp = ethernet(0x0806, &[]);
    arp.extend_from_slice(&[0; 28]);
    assert!(!h.selected(&arp));

    assert_eq!(h.counter(KernelCounter::Seen), 5);
    assert_eq!(h.counter(KernelCounter::Selected), 2);
    assert_eq!(h.counter(KernelCounter::RingFull), 0);
}

/// On an interface without a link-layer header (tun, WireGuard, ipip) frames start with IP:
/// both families are parsed from the first byte, and every byte is counted.
#[test]
fn frames_without_a_link_layer_header_are_parsed_from_ip() {
    if !may_capture() {
        return;
    }
    let raw = kernel::Link {
        raw_ip: true,
        ..kernel::Link::default()
    };
    let mut h = Harness::on_link(
        &FilterConfig::default(),
        1536,
        1 << 20,
        XdpAction::Pass,
        raw,
    );
    let v4 = ipv4([10, 0, 0, 1], 17, 1, 0, &transport(17, 40000, 5060, SIP));
    let (_, record) = h.run(&v4);
    assert_eq!(record.expect("selected").1, v4);
    let v6 = ipv6(17, &transport(17, 5060, 40000, SIP));
    assert!(h.selected(&v6), "IPv6 from its version nibble");
    assert!(
        !h.selected(&ipv4(
            [10, 0, 0, 1],
            17,
            2,
            0,
            &transport(17, 40000, 5070, SIP)
        )),
        "port not listed"
    );
    assert!(
        !h.selected(&udp4([10, 0, 0, 1], 5060)),
        "an Ethernet frame is not IP"
    );
    assert_eq!(h.counter(KernelCounter::Seen), 4);
    assert_eq!(h.counter(KernelCounter::Selected), 2);
    let seen_bytes = v4.len() + v6.len() + v4.len() + udp4([10, 0, 0, 1], 5060).len();
    assert_eq!(h.counter(KernelCounter::SeenBytes), seen_bytes as u64);
    assert_eq!(
        h.counter(KernelCounter::SelectedBytes),
        (v4.len() + v6.len()) as u64
    );
}

#[test]
fn port_ranges_and_hosts_come_from_the_maps() {
    if !may_capture() {
        return;
    }
    let mut h = Harness::new(
        &filter(&["6000-6010", "7000"], &["10.1.0.0/16", "2001:db8::1/128"]),
        1536,
        1 << 20,
        XdpAction::Pass,
    );
    assert!(h.selected(&udp4([10, 1, 2, 3], 6005)));
    assert!(h.selected(&udp4([10, 1, 2, 3], 7000)));
    assert!(
        !h.selected(&udp4([10, 1, 2, 3], 5060)),
        "default port, not listed"
    );
    assert!(
        !h.selected(&udp4([10, 2, 0, 1], 6005)),
        "host outside the prefixes"
    );
    let mut v6 = ethernet(0x86dd, &[]);
    v6.extend(ipv6(17, &transport(17, 40000, 7000, SIP)));
    assert!(h.selected(&v6), "IPv6 source listed");
}

#[test]
fn vlan_and_qinq_tags_are_walked() {
    if !may_capture() {
        return;
    }
    let mut h = Harness::sip();
    let body = ipv4([10, 0, 0, 1], 17, 4, 0, &transport(17, 40000, 5060, SIP));
    for tags in [&[0x8100][..], &[0x88a8, 0x8100], &[0x9100, 0x8100]] {
        let mut f = ethernet(0x0800, tags);
        f.extend_from_slice(&body);
        assert!(h.selected(&f), "tags {tags:x?}");
    }
    let mut three = ethernet(0x0800, &[0x88a8, 0x8100, 0x8100]);
    three.extend_from_slice(&body);
    assert!(!h.selected(&three), "more than two tags is past the bound");
}

#[test]
fn ipv6_extension_headers_are_walked() {
    if !may_capture() {
        return;
    }
    let mut h = Harness::sip();
    let udp = transport(17, 40000, 5060, SIP);
    // Hop-by-hop (8 bytes) → destination options (16 bytes) → UDP.
    let mut body = vec![60, 0, 1, 4, 0, 0, 0, 0];
    body.extend_from_slice(&[17, 1, 1, 12]);
    body.extend_from_slice(&[0; 12]);
    body.extend_from_slice(&udp);
    let mut f = ethernet(0x86dd, &[]);
    f.extend(ipv6(0, &body));
    assert!(h.selected(&f), "hop-by-hop + destination options");
    let mut plain = ethernet(0x86dd, &[0x8100]);
    plain.extend(ipv6(17, &udp));
    assert!(h.selected(&plain), "tagged IPv6");
    // Seven hop-by-hop-like headers: past the walk's bound.
    let mut deep = Vec::new();
    for _ in 0..7 {
        deep.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
    }
    deep[7 * 8 - 8] = 17;
    deep.extend_from_slice(&udp);
    let mut f = ethernet(0x86dd, &[]);
    f.extend(ipv6(60, &deep));
    assert!(!h.selected(&f), "too many extension headers");
}

#[test]
fn later_fragments_follow_a_first_fragment_that_matched() {
    if !may_capture() {
        return;
    }
    let mut h = Harness::sip();
    // IPv4: first fragment (MF, offset 0) carries the ports; the later ones do not.
    let mut first = ethernet(0x0800, &[]);
    first.extend(ipv4(
        [10, 0, 0, 1],
        17,
        77,
        0x2000,
        &transport(17, 40000, 5060, SIP),
    ));
    let mut later = ethernet(0x0800, &[]);
    later.extend(ipv4([10, 0, 0, 1], 17, 77, 10, b"more SIP body bytes"));
    let mut stranger = ethernet(0x0800, &[]);
    stranger.extend(ipv4([10, 0, 0, 1], 17, 78, 10, b"some other datagram"));
    assert!(
        !h.selected(&later),
        "a later fragment before its first is not known yet"
    );
    let (_, record) = h.run(&first);
    assert_eq!(record.expect("first fragment").0.flags, 0);
    let (_, record) = h.run(&later);
    assert_eq!(
        record.expect("later fragment follows").0.flags,
        RING_FLAG_FRAGMENT_FOLLOW
    );
    assert!(!h.selected(&stranger), "another datagram's fragment");

    // IPv6: the fragment header, then UDP in the first fragment only.
    let fragment_header = |offset_flags: u16, id: u32| {
        let mut f = vec![17, 0];
        f.extend_from_slice(&offset_flags.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f
    };
    let mut body = fragment_header(1, 0xabcd);
    body.extend(transport(17, 5060, 40000, SIP));
    let mut first6 = ethernet(0x86dd, &[]);
    first6.extend(ipv6(44, &body));
    let mut body = fragment_header(185 << 3, 0xabcd);
    body.extend_from_slice(b"the rest of the INVITE");
    let mut later6 = ethernet(0x86dd, &[]);
    later6.extend(ipv6(44, &body));
    assert!(h.selected(&first6));
    assert_eq!(
        h.run(&later6).1.expect("follows").0.flags,
        RING_FLAG_FRAGMENT_FOLLOW
    );
    assert_eq!(h.counter(KernelCounter::FragmentsFollowed), 2);
    assert_eq!(h.counter(KernelCounter::Selected), 4);
}

#[test]
fn truncated_frames_are_left_without_harm() {
    if !may_capture() {
        return;
    }
    let mut h = Harness::sip();
    let whole = udp4([10, 0, 0, 1], 5060);
    // Cut inside the IP header, just before the ports, and after Ethernet (the kernel runs
    // XDP on nothing shorter than an Ethernet header).
    for cut in [20, 14 + 20 + 2, 14] {
        let (verdict, record) = h.run(&whole[..cut]);
        assert_eq!(verdict, XDP_PASS);
        assert!(record.is_none(), "cut at {cut}");
    }
    // Cut after the ports: selected, and copied as far as it goes.
    let (_, record) = h.run(&whole[..14 + 20 + 4]);
    assert_eq!(record.expect("ports present").1.len(), 38);
}

#[test]
fn the_snap_length_cuts_long_frames_and_the_header_keeps_the_length() {
    if !may_capture() {
        return;
    }
    let mut h = Harness::new(&FilterConfig::default(), 1000, 1 << 20, XdpAction::Pass);
    let body = vec![b'x'; 3000];
    let mut f = ethernet(0x0800, &[]);
    f.extend(ipv4(
        [10, 0, 0, 1],
        17,
        5,
        0,
        &transport(17, 5060, 5060, &body),
    ));
    let (header, bytes) = h.run(&f).1.expect("selected");
    assert_eq!(header.original_len as usize, f.len());
    assert_eq!(header.captured_len, 1000);
    assert_eq!(bytes, f[..1000]);
}

#[test]
fn drop_mode_drops_every_frame_after_the_copy() {
    if !may_capture() {
        return;
    }
    let mut h = Harness::new(&FilterConfig::default(), 1536, 1 << 20, XdpAction::Drop);
    let (verdict, record) = h.run(&udp4([10, 0, 0, 1], 5060));
    assert_eq!(verdict, XDP_DROP);
    assert!(record.is_some());
    let (verdict, record) = h.run(&udp4([10, 0, 0, 1], 80));
    assert_eq!(verdict, XDP_DROP);
    assert!(record.is_none());
}

#[test]
fn a_full_ring_is_counted_not_hidden() {
    if !may_capture() {
        return;
    }
    // One page of ring, frames of about 1 KiB, nobody reading.
    let mut h = Harness::new(&FilterConfig::default(), 1536, 4096, XdpAction::Pass);
    let mut f = ethernet(0x0800, &[]);
    f.extend(ipv4(
        [10, 0, 0, 1],
        17,
        6,
        0,
        &transport(17, 5060, 5060, &[b'y'; 1000]),
    ));
    let xdp: &Xdp = h
        .ebpf
        .program("spycraft_xdp")
        .expect("program")
        .try_into()
        .expect("xdp");
    for _ in 0..10 {
        xdp.test_run(TestRunOptions {
            data_in: Some(&f),
            ..TestRunOptions::default()
        })
        .expect("run");
    }
    let selected = h.counter(KernelCounter::Selected);
    let full = h.counter(KernelCounter::RingFull);
    assert_eq!(selected + full, 10);
    assert!(full > 0 && selected > 0, "selected {selected}, full {full}");
    let mut read = 0;
    while h.ring.next().is_some() {
        read += 1;
    }
    assert_eq!(
        read, selected,
        "every record counted as selected is in the ring"
    );
}

// ---- the socket filter, on a real AF_PACKET socket -----------------------------------------
//
// BPF_PROG_TEST_RUN hands a socket filter an skb that starts at the IP header, unlike the
// AF_PACKET sockets it runs on, so it is tested where it lives: on one end of a veth pair in
// a network namespace of its own, with frames sent into the pair from both ends.

/// A namespace with a veth pair `sa`–`sb`, deleted on drop.
struct Namespace(String);

impl Namespace {
    fn new() -> Self {
        Self::named("kern")
    }

    /// A namespace with a veth pair `sa`–`sb`, both up; `what` keeps its name apart from the
    /// other tests' running at the same time.
    fn named(what: &str) -> Self {
        let name = format!("spy-{what}-{}", std::process::id());
        ip(&["netns", "add", &name]);
        ip(&[
            "-n", &name, "link", "add", "name", "sa", "type", "veth", "peer", "name", "sb",
        ]);
        ip(&["-n", &name, "link", "set", "sa", "up"]);
        ip(&["-n", &name, "link", "set", "sb", "up"]);
        Self(name)
    }

    /// Moves the calling thread into the namespace.
    fn enter(&self) {
        let file = std::fs::File::open(format!("/run/netns/{}", self.0)).expect("netns file");
        // SAFETY: setns with a namespace file we hold open; it changes this thread only.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

use std::os::fd::{AsRawFd, OwnedFd};

/// A raw AF_PACKET socket that sends whole frames out of `interface`.
fn sender(interface: &str) -> (OwnedFd, libc::sockaddr_ll) {
    // SAFETY: socket(2) with constant arguments, checked below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(fd >= 0, "{}", std::io::Error::last_os_error());
    // SAFETY: a socket we own alone.
    let fd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
    // SAFETY: plain data; zero is a valid start.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_ifindex = kernel::interface_index(interface).expect("interface") as i32;
    address.sll_halen = 6;
    (fd, address)
}

fn send(socket: &(OwnedFd, libc::sockaddr_ll), frame: &[u8]) {
    // SAFETY: the buffer and the address are valid for the call.
    let sent = unsafe {
        libc::sendto(
            socket.0.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&raw const socket.1).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert_eq!(
        sent,
        frame.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn the_socket_filter_sees_both_directions_and_puts_vlan_tags_back() {
    if !may_capture() {
        return;
    }
    let namespace = Namespace::new();
    let body = std::thread::spawn(move || {
        namespace.enter();
        let options = KernelOptions {
            mode: KernelMode::Socket,
            snap_len: 9216,
            ring_bytes: 1 << 20,
            xdp_action: XdpAction::Pass,
            log_frames: false,
        };
        let mut ebpf = kernel::load(&FilterConfig::default(), &options, kernel::Link::default())
            .expect("load");
        let index = kernel::interface_index("sa").expect("sa");
        let _socket = kernel::attach_socket(&mut ebpf, index).expect("the verifier accepts it");
        let mut ring = RingBuf::try_from(ebpf.take_map("FRAMES").expect("ring")).expect("ring");
        let counters: PerCpuArray<MapData, u64> =
            PerCpuArray::try_from(ebpf.take_map("COUNTERS").expect("map")).expect("map");

        let into_sa = sender("sb");
        let out_of_sa = sender("sa");
        let arriving = udp4([10, 0, 0, 1], 5060);
        let leaving = udp4([10, 0, 0, 2], 5080);
        let mut tagged = ethernet(0x0800, &[0x8100]);
        tagged.extend(ipv4(
            [10, 0, 0, 3],
            17,
            9,
            0,
            &transport(17, 40000, 5061, SIP),
        ));
        let noise = udp4([10, 0, 0, 1], 53);
        send(&into_sa, &arriving);
        send(&out_of_sa, &leaving);
        send(&into_sa, &tagged);
        send(&into_sa, &noise);

        let mut records = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while records.len() < 3 && std::time::Instant::now() < deadline {
            match ring.next() {
                Some(item) => {
                    let (header, bytes) = kernel::split_record(&item).expect("a record header");
                    records.push((header, bytes.to_vec()));
                }
                None => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        assert_eq!(records.len(), 3, "three SIP frames");
        let find = |frame: &[u8]| {
            records
                .iter()
                .find(|(_, bytes)| bytes == frame)
                .unwrap_or_else(|| panic!("a record of {frame:x?}"))
                .0
        };
        assert_eq!(find(&arriving).direction, FrameDirection::Ingress as u8);
        assert_eq!(find(&leaving).direction, FrameDirection::Egress as u8);
        let header = find(&tagged);
        assert_eq!(header.original_len as usize, tagged.len(), "the tag counts");
        assert_eq!(header.ifindex, index);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(ring.next().is_none(), "the DNS frame was left");
        assert_eq!(kernel::read_counter(&counters, KernelCounter::Selected), 3);
        assert!(kernel::read_counter(&counters, KernelCounter::Seen) >= 4);
    });
    body.join().expect("the socket filter test");
}

// ---- least privilege -------------------------------------------------------------------------

/// The README's setcap line is enough to run every mode as an unprivileged user, and without
/// it the error says what is missing.
#[test]
fn the_named_capabilities_suffice_and_their_absence_is_explained() {
    if !may_capture() {
        return;
    }
    // A copy the `nobody` user can reach and run (the build tree may be private).
    let dir = std::env::temp_dir().join(format!("spycraft-caps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let binary = dir.join("spycraft");
    std::fs::copy(env!("CARGO_BIN_EXE_spycraft"), &binary).expect("copy");
    let open = |path: &std::path::Path, mode| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    open(&dir, 0o755);
    open(&binary, 0o755);
    let run_as_nobody = |mode: &str| {
        // setpriv (util-linux) changes user and execs: the signal below reaches the sensor.
        let child = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&binary)
            .args(["capture", "-i", "lo", "--mode", mode, "-o", "/dev/null"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("setpriv");
        let child = support::process::Reaped::spawn_from(child);
        std::thread::sleep(std::time::Duration::from_millis(800));
        support::process::interrupt(child.child());
        child.output()
    };
    for mode in ["xdp", "socket"] {
        let out = run_as_nobody(mode);
        let stderr = support::text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{mode} without capabilities: {stderr}"
        );
        assert!(
            stderr.contains("Operation not permitted") && stderr.contains("CAP_BPF"),
            "{stderr}"
        );
    }
    let setcap = std::process::Command::new("setcap")
        .arg("cap_bpf,cap_perfmon,cap_net_admin,cap_net_raw+eip")
        .arg(&binary)
        .status()
        .expect("setcap (libcap2-bin)");
    assert!(setcap.success());
    for mode in ["xdp", "socket", "pcap"] {
        let out = run_as_nobody(mode);
        let stderr = support::text(&out.stderr);
        assert!(out.status.success(), "{mode} with capabilities: {stderr}");
        assert!(stderr.contains("capturing on lo"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- diagnostics -----------------------------------------------------------------------------

/// Collects the programs' log records.
#[derive(Clone, Default)]
struct Collected(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl log::Log for Collected {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .expect("not poisoned")
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

/// aya-log is off unless asked for (`capture -vv`): then each selected frame is logged.
#[test]
fn the_programs_log_selected_frames_only_when_asked() {
    if !may_capture() {
        return;
    }
    for log_frames in [false, true] {
        let options = KernelOptions {
            mode: KernelMode::Xdp(XdpAttach::Auto),
            snap_len: 1536,
            ring_bytes: 1 << 20,
            xdp_action: XdpAction::Pass,
            log_frames,
        };
        let mut ebpf = kernel::load(&FilterConfig::default(), &options, kernel::Link::default())
            .expect("load");
        let collected = Collected::default();
        let mut logger =
            aya_log::EbpfLogger::init_with_logger(&mut ebpf, collected.clone()).expect("logger");
        let xdp: &mut Xdp = ebpf
            .program_mut("spycraft_xdp")
            .expect("program")
            .try_into()
            .expect("xdp");
        xdp.load().expect("verifier");
        let frame = udp4([10, 0, 0, 1], 5060);
        for f in [&frame[..], &udp4([10, 0, 0, 1], 53)] {
            xdp.test_run(TestRunOptions {
                data_in: Some(f),
                ..TestRunOptions::default()
            })
            .expect("run");
        }
        logger.flush();
        let lines = collected.0.lock().expect("not poisoned").clone();
        if log_frames {
            assert_eq!(
                lines,
                [format!(
                    "DEBUG selected a frame of {} bytes, {} copied, flags 0",
                    frame.len(),
                    frame.len()
                )],
                "one line, for the SIP frame only"
            );
        } else {
            assert!(lines.is_empty(), "{lines:?}");
        }
    }
}

// ---- an interface that goes --------------------------------------------------------------------

/// A capture whose interface is removed says so, writes its open calls (as `incomplete`) and
/// exits 1, in both kernel modes; an interface that goes down and up again is followed.
#[test]
fn a_removed_interface_ends_the_capture_and_a_downed_one_is_followed() {
    use std::time::Duration;
    if !may_capture() {
        return;
    }
    for mode in ["socket", "xdp"] {
        let namespace = Namespace::named(&format!("gone-{mode}"));
        let out = support::scratch(&format!("gone-{mode}")).join("records.jsonl");
        let mut child = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &namespace.0,
                env!("CARGO_BIN_EXE_spycraft"),
            ])
            .args([
                "capture", "-i", "sa", "--mode", mode, "--format", "jsonl", "-o",
            ])
            .arg(&out)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ip netns exec spycraft");
        let said = support::process::Said::new(child.stderr.take().expect("stderr"));
        let sensor = support::process::Reaped::spawn_from(child);
        let wait_for = |what: &str| said.wait_for(what, Duration::from_secs(10));
        wait_for("capturing on sa");
        // An INVITE arrives on sa and its call stays open.
        let invite: &[u8] = b"INVITE sip:bob@10.0.0.2 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-gone\r\n\
            From: <sip:alice@10.0.0.1>;tag=a1\r\nTo: <sip:bob@10.0.0.2>\r\n\
            Call-ID: gone@spycraft.test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let mut frame = ethernet(0x0800, &[]);
        frame.extend(ipv4(
            [10, 0, 0, 1],
            17,
            1,
            0,
            &transport(17, 5060, 5060, invite),
        ));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                namespace.enter();
                send(&sender("sb"), &frame);
            });
        });
        ip(&["-n", &namespace.0, "link", "set", "sa", "down"]);
        wait_for("sa is down");
        ip(&["-n", &namespace.0, "link", "set", "sa", "up"]);
        wait_for("sa is up again");
        ip(&["-n", &namespace.0, "link", "del", "sa"]);
        wait_for("interface sa was removed");
        let status = sensor.output().status;
        assert_eq!(status.code(), Some(1), "{mode}: {status}");
        let records = std::fs::read_to_string(&out).expect("records");
        assert_eq!(records.lines().count(), 1, "{mode}: {records}");
        assert!(
            records.contains(r#""end_reason":"incomplete""#),
            "{records}"
        );
    }
}

/// A second XDP capture on an interface is refused with the program that holds it named, and
/// how to see and detach it, in every attach mode.
#[test]
fn a_second_xdp_capture_names_the_program_that_holds_the_interface() {
    use std::time::Duration;
    if !may_capture() {
        return;
    }
    let namespace = Namespace::named("held");
    let in_namespace = |extra: &[&str]| {
        let mut cmd = std::process::Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &namespace.0,
            env!("CARGO_BIN_EXE_spycraft"),
        ])
        .args(["capture", "-i", "sa", "--mode", "xdp", "-o", "/dev/null"])
        .args(extra);
        cmd
    };
    let first =
        support::process::Reaped::spawn(in_namespace(&[]).stderr(std::process::Stdio::null()));
    std::thread::sleep(Duration::from_millis(1500));
    for how in ["auto", "native", "generic"] {
        let out = in_namespace(&["--xdp-mode", how]).output().expect("runs");
        let stderr = support::text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{how}: {stderr}");
        assert!(
            stderr.contains("another XDP program (id "),
            "{how}: {stderr}"
        );
        assert!(stderr.contains("ip link set dev sa xdp off"), "{stderr}");
        assert!(!stderr.contains("File exists"), "{stderr}");
    }
    support::process::interrupt(first.child());
    assert!(first.output().status.success());
}
