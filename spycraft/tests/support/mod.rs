// SPDX-License-Identifier: AGPL-3.0-or-later
//! Test support shared by the integration tests of this crate. Each test binary uses a part
//! of it, so the rest is dead code there.
#![allow(dead_code)]

pub mod calls;
pub mod deck;
pub mod hep;
pub mod http;
pub mod kamailio;
pub mod netns;
pub mod postgres;
pub mod process;
pub mod serving;
pub mod tmpfs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../src/bundled.rs"]
mod bundled;
#[allow(unused_imports)] // Not every test binary uses all three.
pub use bundled::{bundled, bundled_cases, pcaps};

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

/// The records of an `analyze` run's JSON lines, by Call-ID and From tag.
pub fn records(jsonl: &str) -> BTreeMap<(String, String), serde_json::Value> {
    jsonl
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).expect("a record");
            let key = (
                r["call_id"].as_str().expect("call_id").to_owned(),
                r["from_tag"].as_str().expect("from_tag").to_owned(),
            );
            (key, r)
        })
        .collect()
}
