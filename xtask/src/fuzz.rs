// SPDX-License-Identifier: AGPL-3.0-or-later
//! `cargo xtask fuzz [--seconds N] [TARGET…]`: runs the cargo-fuzz targets in `fuzz/` (nightly),
//! seeded from the bundled captures, the external corpus and the RFC 4475 torture messages,
//! and reports the executions each reached. Seeds are written under `target/fuzz-corpus/`
//! (never into the repository); crashes land in `fuzz/artifacts/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub const TARGETS: [&str; 5] = [
    "sip_parser",
    "frame_decoder",
    "tcp_reassembly",
    "call_state",
    "hep_decoder",
];

/// The HEP3 specification's example packet (rev. 37), a seed for `hep_decoder`.
const HEP_EXAMPLE: [u8; 113] = [
    0x48, 0x45, 0x50, 0x33, 0x00, 0x71, 0x00, 0x00, 0x00, 0x01, 0x00, 0x07, 0x02, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x07, 0x11, 0x00, 0x00, 0x00, 0x03, 0x00, 0x0a, 0xd4, 0xca, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x04, 0x00, 0x0a, 0x52, 0x74, 0x00, 0xd3, 0x00, 0x00, 0x00, 0x07, 0x00, 0x08, 0x2e, 0xea,
    0x00, 0x00, 0x00, 0x08, 0x00, 0x08, 0x13, 0xc4, 0x00, 0x00, 0x00, 0x09, 0x00, 0x0a, 0x4e, 0x49,
    0x82, 0xcb, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x01, 0xd4, 0xc0, 0x00, 0x00, 0x00, 0x0b,
    0x00, 0x07, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x00, 0x00, 0xe4, 0x00, 0x00, 0x00,
    0x0f, 0x00, 0x14, b'I', b'N', b'V', b'I', b'T', b'E', b' ', b's', b'i', b'p', b':', b'b', b'o',
    b'b',
];

/// Entry point of `cargo xtask fuzz`.
pub fn command(root: &Path, args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut targets: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => seconds = it.next().context("--seconds N")?.parse()?,
            t if TARGETS.contains(&t) => targets.push(t.to_owned()),
            other => bail!(
                "fuzz: unknown argument {other}; targets: {}",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    ensure_cargo_fuzz()?;
    let corpus_root = root.join("target/fuzz-corpus");
    write_seeds(root, &corpus_root)?;
    let mut report = Vec::new();
    for target in &targets {
        let corpus = corpus_root.join(target);
        std::fs::create_dir_all(&corpus)?;
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let out = Command::new("cargo")
            .current_dir(root.join("fuzz"))
            .args(["+nightly", "fuzz", "run", "-O", target])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=2048",
                "-timeout=10",
                "-print_final_stats=1",
            ])
            .output()
            .with_context(|| format!("cargo fuzz run {target}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let runs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(|n| n.trim().to_owned())
            .unwrap_or_else(|| "?".into());
        if !out.status.success() {
            eprintln!(
                "{}",
                log.lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            bail!("fuzz target {target} found a failure after {runs} executions (see fuzz/artifacts/{target}/)");
        }
        report.push(format!(
            "{target}: {runs} executions in {seconds} s, no finding"
        ));
    }
    for line in report {
        println!("{line}");
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> Result<()> {
    let have = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        crate::run(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))?;
    }
    Ok(())
}

/// Seeds: SIP payloads for the parser; whole frames (prefixed by the link-type pick) for the
/// decoder; a few scripted inputs for the others.
fn write_seeds(root: &Path, corpus_root: &Path) -> Result<()> {
    let mut captures: Vec<PathBuf> = Vec::new();
    let shared = root.join("../shared/corpus");
    for dir in [
        root.join("pcaps"),
        shared.join("pcaps"),
        shared.join("torture"),
    ] {
        collect(&dir, &mut captures);
    }
    let parser = corpus_root.join("sip_parser");
    let decoder = corpus_root.join("frame_decoder");
    std::fs::create_dir_all(&parser)?;
    std::fs::create_dir_all(&decoder)?;
    let mut n = 0;
    for path in captures {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "dat") {
            std::fs::write(parser.join(format!("seed-{n}")), &bytes)?;
            n += 1;
            continue;
        }
        for (link, frame) in pcap_frames(&bytes).into_iter().take(200) {
            // Link-type picks as in the frame_decoder target.
            let pick = match link {
                1 => 0u8,
                0 => 1,
                108 => 2,
                101 | 12 | 14 => 3,
                113 => 6,
                276 => 7,
                _ => continue,
            };
            let mut seed = vec![pick];
            seed.extend_from_slice(frame);
            std::fs::write(decoder.join(format!("seed-{n}")), &seed)?;
            if let Some(payload) = udp_payload(link, frame) {
                std::fs::write(parser.join(format!("seed-{n}")), payload)?;
            }
            n += 1;
        }
    }
    let tcp = corpus_root.join("tcp_reassembly");
    std::fs::create_dir_all(&tcp)?;
    let msg = b"INVITE sip:b@h SIP/2.0\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let mut seed = vec![0x02, 0, 0, 0, 0];
    seed.extend_from_slice(&[0x10, 0, 1, 1, 40]);
    seed.extend_from_slice(&msg[..40]);
    seed.extend_from_slice(&[0x10, 0, 41, 1, (msg.len() - 40) as u8]);
    seed.extend_from_slice(&msg[40..]);
    std::fs::write(tcp.join("seed-invite"), seed)?;
    let hep = corpus_root.join("hep_decoder");
    std::fs::create_dir_all(&hep)?;
    std::fs::write(hep.join("seed-specification"), HEP_EXAMPLE)?;
    let calls = corpus_root.join("call_state");
    std::fs::create_dir_all(&calls)?;
    // INVITE, 180, 200, ACK, BYE, 200 of call 0 with tags a/x.
    std::fs::write(
        calls.join("seed-call"),
        [
            0x00, 0x00, 1, 1, 0x05, 0x04, 0x81, 1, 0x07, 0x04, 0x81, 1, 0x01, 0x14, 1, 4, 0x02,
            0x24, 2, 4, 0x07, 0x24, 0x82, 1,
        ],
    )?;
    Ok(())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "pcap" || e == "dat") {
            out.push(path);
        }
    }
}

/// Frames of a classic little-endian pcap (pcapng is skipped: seeds need not be complete).
fn pcap_frames(bytes: &[u8]) -> Vec<(u32, &[u8])> {
    let mut frames = Vec::new();
    if bytes.len() < 24
        || !matches!(
            bytes[..4],
            [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]
        )
    {
        return frames;
    }
    let u32_at =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let link = u32_at(20);
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32_at(at + 8) as usize;
        let Some(frame) = bytes.get(at + 16..at + 16 + len) else {
            break;
        };
        frames.push((link, frame));
        at += 16 + len;
    }
    frames
}

/// The UDP payload of an Ethernet/IPv4 or raw IPv4 frame.
fn udp_payload(link: u32, frame: &[u8]) -> Option<&[u8]> {
    let ip = match link {
        1 if frame.get(12..14)? == [0x08, 0x00] => &frame[14..],
        101 | 12 | 14 => frame,
        _ => return None,
    };
    if ip.first()? >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    ip.get(ihl + 8..)
}
