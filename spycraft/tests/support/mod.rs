// SPDX-License-Identifier: AGPL-3.0-or-later
//! Test support shared by the integration tests of this crate. Each test binary uses a part
//! of it, so the rest is dead code there.
#![allow(dead_code)]

pub mod calls;
pub mod postgres;
pub mod process;
pub mod tmpfs;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The bundled cases' directory, `pcaps/`.
pub fn pcaps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
}

/// The names of every bundled case, sorted.
pub fn bundled_cases() -> Vec<String> {
    let mut cases: Vec<String> = std::fs::read_dir(pcaps())
        .expect("pcaps/")
        .flatten()
        .filter(|e| e.path().join("capture.pcap").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    cases.sort();
    assert!(cases.len() >= 16, "bundled cases: {cases:?}");
    cases
}

/// The capture of a bundled case in `pcaps/`.
pub fn bundled(case: &str) -> PathBuf {
    pcaps().join(case).join("capture.pcap")
}

/// An empty directory of this name under cargo's temporary directory for tests.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs the `spycraft` binary and waits for it.
pub fn spycraft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spycraft"))
        .args(args)
        .output()
        .expect("spycraft runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The path as UTF-8, for command lines.
pub fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
