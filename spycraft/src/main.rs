// SPDX-License-Identifier: AGPL-3.0-or-later
//! The `spycraft` command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use spycraft::call::{MonitoredHosts, Timers, TrackerConfig};
use spycraft::capture::CaptureError;
use spycraft::decode::DecodeLimits;
use spycraft::pipeline::{analyze_files, AnalyzeError, PipelineConfig, SipPorts};
use spycraft::sink::{sink_for, Format};

/// Exit status when the input broke off mid-way: records from the readable part were written.
const EXIT_DAMAGED: u8 = 3;
/// Exit status when nothing could be analysed (missing file, not a capture, bad option value).
const EXIT_FAILED: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "spycraft",
    version,
    about = "Passive SIP call accounting: captures in, call detail records out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Analyse pcap/pcapng captures and write one call detail record per call leg.
    Analyze(AnalyzeArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Table,
    Jsonl,
    Csv,
}

#[derive(clap::Args, Debug)]
struct AnalyzeArgs {
    /// Capture files (pcap or pcapng), read in order as one stream; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// pcap-filter expression applied while reading (as tcpdump's).
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    filter: Option<String>,
    /// Output format [default: table on a terminal, jsonl otherwise].
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Write records here instead of standard output.
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// A monitored SIP node (address or CIDR), for the call direction; repeatable.
    #[arg(long = "host", value_name = "ADDR")]
    hosts: Vec<String>,
    /// SIP ports, comma-separated. Given, only these are read; by default 5060, 5061 and 5080
    /// plus any UDP port whose payload starts with a SIP start line.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    ports: Option<Vec<u16>>,
    /// Sensor name written into each record [default: host name].
    #[arg(long)]
    node: Option<String>,
    /// Header whose value links B2BUA legs into one call; repeatable, first found wins.
    #[arg(
        long = "collate-header",
        value_name = "NAME",
        default_value = "X-CollateID"
    )]
    collate_headers: Vec<String>,
    /// Threads: 1 runs everything on one; 2 tracks calls and writes records on a second.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    threads: u8,
    /// Most calls held at once; beyond it the oldest is written early (counted as evicted).
    #[arg(long, default_value_t = TrackerConfig::default().max_live_legs, value_name = "N")]
    max_live_calls: usize,
    /// End an answered call with no BYE after this many seconds without in-dialog traffic.
    #[arg(long, default_value_t = Timers::default().call_idle_secs, value_name = "SECS")]
    call_timeout: u32,
    /// End a ringing call with no final response after this many seconds (Timer C).
    #[arg(long, default_value_t = Timers::default().ringing_secs, value_name = "SECS")]
    ring_timeout: u32,
    /// No summary line on stderr.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Analyze(args) => analyze(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("spycraft: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let hosts = MonitoredHosts::parse(&args.hosts).context("--host")?;
    let ports = match args.ports {
        Some(ports) => SipPorts {
            ports,
            detect_elsewhere: false,
        },
        None => SipPorts::default(),
    };
    let config = PipelineConfig {
        ports,
        collation_headers: args.collate_headers,
        tracker: TrackerConfig {
            node: args.node.unwrap_or_else(spycraft::hostname),
            hosts,
            timers: Timers {
                call_idle_secs: args.call_timeout,
                ringing_secs: args.ring_timeout,
                ..Timers::default()
            },
            max_live_legs: args.max_live_calls.max(1),
        },
        threads: usize::from(args.threads),
        decode: DecodeLimits::default(),
    };

    let (out, to_terminal): (Box<dyn Write + Send>, bool) = match &args.output {
        Some(path) => (
            Box::new(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            ),
            false,
        ),
        None => (Box::new(std::io::stdout()), std::io::stdout().is_terminal()),
    };
    let format = match args.format {
        Some(FormatArg::Table) => Format::Table,
        Some(FormatArg::Jsonl) => Format::Jsonl,
        Some(FormatArg::Csv) => Format::Csv,
        None if to_terminal => Format::Table,
        None => Format::Jsonl,
    };
    let mut sink = sink_for(format, out);

    let bar = progress_bar(&args.files);
    let mut progress = |bytes: u64| {
        if let Some(bar) = &bar {
            bar.set_position(bytes);
        }
    };
    let (summary, result) = analyze_files(
        &args.files,
        args.filter.as_deref(),
        &config,
        sink.as_mut(),
        &mut progress,
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(()) => {
            if !args.quiet {
                eprintln!("spycraft: {}", summary.one_line());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(AnalyzeError::Capture(e @ CaptureError::Damaged { .. })) => {
            eprintln!("spycraft: {}", summary.one_line());
            eprintln!("spycraft: {e}; the records above cover the readable part");
            Ok(ExitCode::from(EXIT_DAMAGED))
        }
        Err(e) => Err(e.into()),
    }
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
