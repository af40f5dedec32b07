// SPDX-License-Identifier: AGPL-3.0-or-later
//! The bundled cases in `pcaps/`, found one way for every test that reads them: the library's
//! unit tests, its integration tests and the workspace's `tests` crate include this file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Fewer cases than this means a broken checkout, not a small corpus.
const AT_LEAST: usize = 20;

/// The bundled cases' directory, `pcaps/` (both crates that use this sit one level below the
/// workspace root).
pub fn pcaps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
}

/// The names of every bundled case, sorted.
pub fn bundled_cases() -> Vec<String> {
    let mut cases: Vec<String> = std::fs::read_dir(pcaps())
        .expect("pcaps/")
        .flatten()
        .filter(|e| e.path().join("capture.pcap").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    cases.sort();
    assert!(cases.len() >= AT_LEAST, "bundled cases: {cases:?}");
    cases
}

/// The capture of a bundled case.
pub fn bundled(case: &str) -> PathBuf {
    pcaps().join(case).join("capture.pcap")
}

/// Every bundled capture, in the order of [`bundled_cases`].
pub fn bundled_captures() -> Vec<PathBuf> {
    bundled_cases().iter().map(|case| bundled(case)).collect()
}
