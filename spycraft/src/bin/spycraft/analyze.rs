// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft analyze`: captures in, records out.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use spycraft::capture::{FrameSource, OfflineSource};
use spycraft::inspect::write::{split_calls, Inputs};
use spycraft::pipeline::{Progress, RunObserver};
use spycraft::settings::Settings;

use crate::args::AnalyzeArgs;
use crate::outcome::Usage;
use crate::record::{record_run, Run, Watchers};
use crate::service::{Service, Source};
use crate::stop::{self, STOP};

pub fn run(args: AnalyzeArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let files = &args.input.files;
    let from_stdin = files.iter().filter(|f| f.as_os_str() == "-").count();
    if from_stdin > 1 {
        return Err(Usage("standard input (`-`) can be read only once".into()).into());
    }
    if !settings.hep.listen.is_empty() {
        return Err(Usage(
            "--hep-listen is for capture; analyze reads HEP in capture files as it is".into(),
        )
        .into());
    }
    if let Some(dir) = &args.split_calls {
        if from_stdin > 0 {
            return Err(Usage(
                "--split-calls reads the captures twice: give files, not standard input".into(),
            )
            .into());
        }
        // Checked before the run, not after it.
        std::fs::create_dir_all(dir).with_context(|| format!("--split-calls {}", dir.display()))?;
    }
    let ports = settings.sip_ports();
    let mut sources = open_files(files, args.input.filter.as_deref())?;
    let expectation = args.expect.prepare()?;
    // SIGINT and SIGTERM end the reading; what was read is still written.
    stop::install_handlers();
    let source = Source::Files {
        files,
        filter: args.input.filter.as_deref(),
    };
    let service = Service::start(settings, source)?;
    let bar = progress_bar(files);
    let mut progress = |p: &Progress| {
        if let Some(bar) = &bar {
            bar.set_position(p.bytes);
        }
    };
    let code = record_run(
        settings,
        Run::Analyze,
        ports.clone(),
        &mut sources,
        &mut progress,
        None,
        Watchers {
            service: service.as_ref(),
            observer: expectation
                .as_ref()
                .map(|e| e.collector.clone() as Arc<dyn RunObserver>),
        },
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(dir) = &args.split_calls {
        let inputs = Inputs {
            files,
            filter: args.input.filter.as_deref(),
            ports: &ports,
            collation_headers: &settings.sensor.collate_headers,
        };
        let written = split_calls(inputs, dir)?;
        if !settings.records.quiet {
            eprintln!(
                "spycraft: {written} call captures written to {}",
                dir.display()
            );
        }
    }
    match expectation {
        Some(expectation) => expectation.judge(code?, settings.records.quiet),
        None => code,
    }
}

/// Opens every capture before any is read, so a typo in the last name fails before a long
/// run; each stops reading at SIGINT or SIGTERM.
pub fn open_files(
    files: &[PathBuf],
    filter: Option<&str>,
) -> anyhow::Result<Vec<Box<dyn FrameSource>>> {
    let mut sources: Vec<Box<dyn FrameSource>> = Vec::with_capacity(files.len());
    for path in files {
        let source = OfflineSource::open(path, filter)?;
        sources.push(Box::new(source.stop_on(&STOP)));
    }
    Ok(sources)
}

/// A progress bar on stderr for inputs over 32 MiB, when stderr is a terminal.
fn progress_bar(files: &[PathBuf]) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    if total < 32 << 20 {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}
