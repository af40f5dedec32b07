// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft find` and `spycraft stats`: reports over whole captures.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use spycraft::capture::CaptureError;
use spycraft::inspect::each_message;
use spycraft::inspect::find::{table, EndpointFinder};
use spycraft::pipeline::{analyze_files, AnalyzeError};
use spycraft::settings::Settings;
use spycraft::stats::CallStats;

use crate::args::{FindArgs, ReportFormat, StatsArgs};
use crate::outcome::damage_status;

pub fn find(args: &FindArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut finder = EndpointFinder::default();
    let (_, damage) = each_message(
        &args.input.files,
        args.input.filter.as_deref(),
        &settings.sip_ports(),
        &[],
        &mut |m| finder.on_message(m),
    )?;
    if finder.overflow > 0 {
        eprintln!(
            "spycraft: {} messages of endpoints beyond the first 100,000 were not counted",
            finder.overflow
        );
    }
    let endpoints = finder.into_endpoints();
    let mut out = output_to(None)?;
    match args.format {
        ReportFormat::Table => out.write_all(table(&endpoints).as_bytes())?,
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &endpoints)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(damage_status(damage))
}

pub fn stats(args: &StatsArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let config = spycraft::pipeline::PipelineConfig {
        ports: settings.sip_ports(),
        collation_headers: settings.sensor.collate_headers.clone(),
        tracker: spycraft::call::TrackerConfig {
            node: settings.sensor.node.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut stats = CallStats::default();
    let (_, result) = analyze_files(
        &args.input.files,
        args.input.filter.as_deref(),
        &config,
        &mut stats,
        &mut |_| {},
    );
    let damage = match result {
        Ok(()) => None,
        Err(AnalyzeError::Capture(e @ CaptureError::Damaged { .. })) => Some(e),
        Err(e) => return Err(e.into()),
    };
    let report = stats.report();
    let mut out = output_to(None)?;
    match args.format {
        ReportFormat::Table => out.write_all(report.table().as_bytes())?,
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(damage_status(damage))
}

/// Where a tool writes: the named file, or standard output.
pub fn output_to(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}
