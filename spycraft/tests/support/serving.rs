// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft serve` on captures, and what `analyze` says of the same ones.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::http::{get, start_sensor};
use super::process::{Reaped, Said};
use super::{spycraft, text, utf8};

/// Every bundled capture.
pub fn bundled() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("pcaps")
        .filter_map(|e| {
            let capture = e.ok()?.path().join("capture.pcap");
            capture.exists().then_some(capture)
        })
        .collect();
    files.sort();
    files
}

/// `serve FILES` on a port of its own, once every record is in.
pub fn serve(files: &[PathBuf], extra: &[&str]) -> (Reaped, Said, SocketAddr) {
    let mut args = vec!["serve", "--http", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    args.extend(files.iter().map(|f| utf8(f)));
    let (child, said, addr) = start_sensor(&args);
    said.wait_for("serving on http", Duration::from_secs(60));
    (child, said, addr)
}

/// What `analyze --format jsonl` writes for `files`.
pub fn analyzed(files: &[PathBuf]) -> Vec<Value> {
    let mut args = vec!["analyze", "--format", "jsonl", "-q"];
    args.extend(files.iter().map(|f| utf8(f)));
    let out = spycraft(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect()
}

pub fn json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = get(addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}
