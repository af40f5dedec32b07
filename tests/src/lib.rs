// SPDX-License-Identifier: AGPL-3.0-or-later
//! Helpers shared by the integration tests: where things are, running the pipeline into memory,
//! and reading and writing plain pcap files to build captures of every link type.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use spycraft::call::CallRecord;
use spycraft::pipeline::{analyze_files, AnalyzeError, PipelineConfig, Summary};
use spycraft::sink::{RecordSink, SinkError};

#[path = "../../spycraft/src/bundled.rs"]
mod bundled;
pub mod sensor;

pub use bundled::{bundled, bundled_captures, bundled_cases, pcaps};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The external corpus (`../shared/corpus` beside the checkout, or `$SPYCRAFT_CORPUS`).
/// Missing is fatal under CI; elsewhere the caller skips with a message.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SPYCRAFT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/corpus"));
    if dir.join("MANIFEST.tsv").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the external corpus is missing at {} (set SPYCRAFT_CORPUS)",
        dir.display()
    );
    eprintln!("skipping: no corpus at {}", dir.display());
    None
}

/// A sink that keeps records in memory.
#[derive(Clone, Debug, Default)]
pub struct MemorySink(pub Arc<Mutex<Vec<CallRecord>>>);

impl RecordSink for MemorySink {
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
        self.0.lock().expect("not poisoned").push(record.clone());
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Runs the offline pipeline over `paths` and returns the records and counters.
pub fn analyze_with(
    paths: &[PathBuf],
    config: &PipelineConfig,
) -> (Vec<CallRecord>, Summary, Result<(), AnalyzeError>) {
    let mut sink = MemorySink::default();
    let (summary, result) = analyze_files(paths, None, config, &mut sink, &mut |_| {});
    let records = std::mem::take(&mut *sink.0.lock().expect("not poisoned"));
    (records, summary, result)
}

/// As [`analyze_with`], with the node named `golden`; panics on error.
pub fn analyze(paths: &[PathBuf]) -> (Vec<CallRecord>, Summary) {
    let mut config = PipelineConfig::default();
    config.tracker.node = "golden".into();
    let (records, summary, result) = analyze_with(paths, &config);
    if let Err(e) = result {
        panic!("analysing {paths:?}: {e}");
    }
    (records, summary)
}

/// A frame of a plain pcap file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapFrame {
    pub ts_sec: u32,
    pub ts_usec: u32,
    pub data: Vec<u8>,
}

/// Reads a little-endian microsecond pcap (what tcpdump writes): link type and frames.
pub fn read_pcap(path: &Path) -> (u32, Vec<PcapFrame>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "{}: not a LE µs pcap",
        path.display()
    );
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let link = u32_at(20);
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let caplen = u32_at(at + 8) as usize;
        frames.push(PcapFrame {
            ts_sec: u32_at(at),
            ts_usec: u32_at(at + 4),
            data: bytes[at + 16..at + 16 + caplen].to_vec(),
        });
        at += 16 + caplen;
    }
    (link, frames)
}

/// Writes a little-endian microsecond pcap.
pub fn write_pcap(path: &Path, link: u32, frames: &[PcapFrame]) {
    let mut out = Vec::new();
    out.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&link.to_le_bytes());
    for f in frames {
        out.extend_from_slice(&f.ts_sec.to_le_bytes());
        out.extend_from_slice(&f.ts_usec.to_le_bytes());
        out.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&f.data);
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A fresh empty directory under the target directory for one test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = workspace_root().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}
