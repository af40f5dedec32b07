// SPDX-License-Identifier: AGPL-3.0-or-later
//! Interfaces without a link-layer header (tun, WireGuard, ipip): frames start with IP. Two
//! namespaces joined by a pair of tun devices, relayed here; sipp calls across them; sensors
//! on the caller's tun in all three modes at once.

mod support;

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::netns::Namespaces;
use support::process::{interrupt, ip, may_capture, Reaped};
use support::text;

/// Opens tun device `name` in namespace `ns` (created by the open, gone with the fd).
fn open_tun(ns: &str, name: &str) -> OwnedFd {
    let (ns, name) = (ns.to_owned(), name.to_owned());
    // setns changes the calling thread's namespace only: a thread of its own.
    std::thread::spawn(move || {
        let netns = File::open(format!("/var/run/netns/{ns}")).expect("the namespace");
        // SAFETY: a valid namespace fd, for this thread.
        let entered = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
        // SAFETY: a C string literal.
        let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR) };
        assert!(fd >= 0, "/dev/net/tun: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ifreq is plain data; zeroed is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (slot, byte) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *slot = byte as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF with a valid ifreq on a tun fd.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &ifr) };
        assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
        fd
    })
    .join()
    .expect("tun opened")
}

/// Copies every packet one tun device sends into the other, until `stop`.
fn relay(from: Arc<OwnedFd>, to: Arc<OwnedFd>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            let mut poll = libc::pollfd {
                fd: from.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut poll, 1, 100) } <= 0 {
                continue;
            }
            // SAFETY: reads into a buffer of its length.
            let n = unsafe { libc::read(from.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                // SAFETY: writes the n bytes just read.
                unsafe { libc::write(to.as_raw_fd(), buf.as_ptr().cast(), n as usize) };
            }
        }
    });
}

fn sipp(ns: &Namespaces, n: usize, script: &str, address: &str) -> Command {
    support::process::sipp(ns.exec(n, "sipp"), script, address, 5060, 3)
}

#[test]
fn every_mode_captures_sip_on_a_tun_device() {
    if !may_capture() {
        return;
    }
    let ns = Namespaces::new(&["sc-tun-caller", "sc-tun-callee"]);
    let a = Arc::new(open_tun(ns.name(0), "tca"));
    let b = Arc::new(open_tun(ns.name(1), "tcb"));
    for (n, dev, local, peer) in [
        (0, "tca", "10.72.0.1", "10.72.0.2"),
        (1, "tcb", "10.72.0.2", "10.72.0.1"),
    ] {
        ip(&[
            "-n",
            ns.name(n),
            "addr",
            "add",
            local,
            "peer",
            peer,
            "dev",
            dev,
        ]);
        ip(&["-n", ns.name(n), "link", "set", dev, "up"]);
    }
    let stop = Arc::new(AtomicBool::new(false));
    relay(a.clone(), b.clone(), stop.clone());
    relay(b, a, stop.clone());
    let sensors: Vec<(&str, Reaped)> = ["xdp", "socket", "pcap"]
        .into_iter()
        .map(|mode| {
            let sensor = Reaped::spawn(
                ns.exec(0, env!("CARGO_BIN_EXE_spycraft"))
                    .args(["capture", "-i", "tca", "--mode", mode, "--ports", "5060"])
                    .args(["--format", "jsonl"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped()),
            );
            (mode, sensor)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let callee = Reaped::spawn(&mut sipp(&ns, 1, "uas-busy.xml", "10.72.0.2"));
    std::thread::sleep(Duration::from_millis(300));
    let status = sipp(&ns, 0, "uac-reject.xml", "10.72.0.1")
        .args(["-s", "bob", "10.72.0.2:5060"])
        .status()
        .expect("sipp");
    assert!(status.success(), "the calls cross the tun pair: {status}");
    assert!(callee.output().status.success());
    std::thread::sleep(Duration::from_millis(700));
    for (mode, sensor) in sensors {
        interrupt(sensor.child());
        let out = sensor.output();
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{mode}: {stderr}");
        let records = text(&out.stdout);
        if mode == "xdp" {
            // XDP sees what the interface receives: the callee's side of each call.
            assert!(stderr.contains("generic"), "{mode}: {stderr}");
            let selected = stderr
                .split("frames seen, ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok());
            assert!(selected.is_some_and(|n| n >= 9), "{mode}: {stderr}");
            continue;
        }
        let busy = records.matches("\"disposition\":\"busy\"").count();
        assert_eq!(busy, 3, "{mode}: {records}\n{stderr}");
        assert_eq!(records.lines().count(), 3, "{mode}: {records}");
    }
    stop.store(true, Ordering::Relaxed);
}
