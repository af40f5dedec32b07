// SPDX-License-Identifier: AGPL-3.0-or-later
//! The `spycraft` command line.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use spycraft::call::{MonitoredHosts, Timers, TrackerConfig};
use spycraft::capture::{
    CaptureError, CaptureFormat, CaptureWriter, FrameSource, LiveSource, OfflineSource, Rotation,
    TeeSource,
};
use spycraft::config::FileConfig;
use spycraft::decode::DecodeLimits;
use spycraft::filter::FilterConfig;
use spycraft::pipeline::{run_sources, AnalyzeError, PipelineConfig, Progress, SipPorts};
use spycraft::sink::postgres::{self, PostgresConfig, PostgresError, PostgresSink, Target};
use spycraft::sink::spool::{FsyncPolicy, SpoolConfig};
use spycraft::sink::{sink_for, Format, OutputReport, Outputs, RecordSink};
use spycraft_common::PortRange;

/// Exit status when the input broke off mid-way: records from the readable part were written.
const EXIT_DAMAGED: u8 = 3;
/// Exit status when nothing could be analysed (missing file, not a capture, bad option value).
const EXIT_FAILED: u8 = 1;
/// Exit status of a command line that cannot work as given (as clap's own usage errors).
const EXIT_USAGE: u8 = 2;
/// Exit status when the records are safe in the spool but the database has not taken them yet.
const EXIT_UNDELIVERED: u8 = 4;

#[derive(Parser, Debug)]
#[command(
    name = "spycraft",
    version,
    about = "Passive SIP call accounting: captures in, call detail records out"
)]
struct Cli {
    /// Settings file (TOML) with the same settings as the flags; flags win over it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Analyse pcap/pcapng captures and write one call detail record per call leg.
    Analyze(AnalyzeArgs),
    /// The live sensor: capture SIP on an interface until SIGINT or SIGTERM, writing a
    /// record as each call ends (open calls as `incomplete` at the stop).
    Capture(CaptureArgs),
    /// Print the capture filter generated from the ports and hosts: the pcap-filter
    /// expression and the kernel programs' map contents.
    Filter(FilterArgs),
    /// The PostgreSQL database: schema migrations, status, delivering a spool.
    #[command(subcommand)]
    Db(DbCommand),
    /// The SIP messages of one endpoint, call or user, in full (the original sipdump); as
    /// text, JSON lines, or a ladder diagram (HTML or SVG).
    Dump(DumpArgs),
    /// The SIP endpoints seen, with their software, registrations, methods and calls (the
    /// original sipfind).
    Find(FindArgs),
    /// Call-performance figures (RFC 6076 SER, SEER, ISA, SCR, SRD; ASR, NER, ACD) for all
    /// calls, per node and per peer.
    Stats(StatsArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DumpFormat {
    /// Each message in full after a line of time, addresses and transport.
    Text,
    /// One JSON object per message: time, src, dst, transport, call_id, label, text.
    Json,
    /// One self-contained page with the ladder diagram; click an arrow for its message.
    Html,
    /// The ladder diagram alone.
    Svg,
}

#[derive(clap::Args, Debug)]
struct DumpArgs {
    /// Capture files (pcap or pcapng), read in order as one stream; `-` reads standard input.
    #[arg(value_name = "FILE", required_unless_present = "interface")]
    files: Vec<PathBuf>,
    /// Capture live on this interface instead (libpcap, filter generated from --ports), until
    /// SIGINT or SIGTERM.
    #[arg(short = 'i', long, value_name = "IFACE", conflicts_with = "files")]
    interface: Option<String>,
    /// pcap-filter expression applied while reading files (as tcpdump's).
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    filter: Option<String>,
    /// SIP ports and ranges, comma-separated (5060,5080-5090); live, they make the filter.
    #[arg(long, value_delimiter = ',', value_name = "PORTS", value_parser = port_range)]
    ports: Option<Vec<PortRange>>,
    /// Messages to or from this endpoint: ADDR, ADDR:PORT or [IPv6]:PORT.
    #[arg(long, value_name = "ADDR[:PORT]")]
    host: Option<spycraft::inspect::dump::HostFilter>,
    /// Messages of this call, and of the legs collated with it across a B2BUA; repeatable.
    #[arg(long = "call-id", value_name = "ID")]
    call_ids: Vec<String>,
    /// Messages whose From, To or Request-URI has this user part.
    #[arg(long)]
    user: Option<String>,
    /// Header linking B2BUA legs; repeatable [default: X-CollateID].
    #[arg(long = "collate-header", value_name = "NAME")]
    collate_headers: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: DumpFormat,
    /// Write here instead of standard output.
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Write the frames behind the chosen messages to this pcap instead.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FindFormat {
    Table,
    Json,
}

#[derive(clap::Args, Debug)]
struct StatsArgs {
    #[command(flatten)]
    input: InputArgs,
    #[arg(long, value_enum, default_value = "table")]
    format: FindFormat,
    /// Sensor name [default: host name].
    #[arg(long)]
    node: Option<String>,
}

#[derive(clap::Args, Debug)]
struct FilterArgs {
    /// SIP ports and ranges, comma-separated [default: 5060,5061,5080].
    #[arg(long, value_delimiter = ',', value_name = "PORTS", value_parser = port_range)]
    ports: Option<Vec<PortRange>>,
    /// Only frames of these hosts (address or CIDR); repeatable.
    #[arg(long = "host", value_name = "ADDR")]
    hosts: Vec<String>,
    /// Print only the pcap-filter expression (for tcpdump or tshark).
    #[arg(short, long)]
    expression: bool,
}

#[derive(clap::Args, Debug)]
struct FindArgs {
    #[command(flatten)]
    input: InputArgs,
    #[arg(long, value_enum, default_value = "table")]
    format: FindFormat,
}

#[derive(Subcommand, Debug)]
enum DbCommand {
    /// Apply the schema migrations this spycraft has and the database lacks.
    Migrate(DbArgs),
    /// Schema version, records per node, partitions, and what waits in the spool.
    Status(DbArgs),
    /// Deliver what a stopped sensor left in its spool, then exit.
    Flush(DbArgs),
}

#[derive(clap::Args, Debug)]
struct DbArgs {
    #[command(flatten)]
    postgres: PostgresArgs,
    /// Sensor name (chooses the default spool directory) [default: host name].
    #[arg(long)]
    node: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FsyncArg {
    /// After every record.
    Always,
    /// At most once a second.
    Interval,
    /// Left to the kernel.
    Never,
}

/// Where records go in PostgreSQL, and how they wait for it.
#[derive(clap::Args, Debug)]
struct PostgresArgs {
    /// Write records to this PostgreSQL database (URL or key=value string; sslmode and
    /// sslrootcert as libpq's). Its password is never printed.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Read the database password from this file (first line) when the URL has none;
    /// otherwise PGPASSWORD is used.
    #[arg(long, value_name = "FILE")]
    postgres_password_file: Option<PathBuf>,
    /// Spool directory holding records until the database commits them
    /// [default: /var/spool/spycraft/NODE as root, else ~/.local/state/spycraft/spool/NODE].
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Undelivered records the spool may hold, in MiB, before reading waits for the
    /// database [default: 1024].
    #[arg(long, value_name = "MIB")]
    spool_max_mb: Option<u64>,
    /// When spooled records are forced to disk [default: interval].
    #[arg(long, value_enum)]
    spool_fsync: Option<FsyncArg>,
    /// Records per database transaction [default: 1000].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Drop daily partitions older than this many days.
    #[arg(long, value_name = "DAYS")]
    retention_days: Option<u32>,
    /// At the end of a run, how long to keep trying an unreachable database [default: 30].
    #[arg(long, value_name = "SECS")]
    drain_timeout: Option<u64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Table,
    Jsonl,
    Csv,
}

/// The captures a command reads, and which of their traffic is SIP.
#[derive(clap::Args, Debug)]
struct InputArgs {
    /// Capture files (pcap or pcapng), read in order as one stream; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// pcap-filter expression applied while reading (as tcpdump's).
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    filter: Option<String>,
    /// SIP ports and ranges, comma-separated (5060,5080-5090). Given, only these are read; by
    /// default 5060, 5061 and 5080 plus any port whose traffic starts with a SIP start line.
    #[arg(long, value_delimiter = ',', value_name = "PORTS", value_parser = port_range)]
    ports: Option<Vec<PortRange>>,
}

fn port_range(text: &str) -> Result<PortRange, String> {
    spycraft::filter::parse_range(text).map_err(|e| e.to_string())
}

#[derive(clap::Args, Debug)]
struct AnalyzeArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Also write one pcap per call into DIR (every leg of its collation group, the frames
    /// behind each message: fragments and TCP segments included).
    #[arg(long, value_name = "DIR")]
    split_calls: Option<PathBuf>,
    #[command(flatten)]
    record: RecordArgs,
}

/// Live capture: where, how, and what to keep.
#[derive(clap::Args, Debug)]
struct CaptureArgs {
    /// Interface to capture on.
    #[arg(short = 'i', long, value_name = "IFACE")]
    interface: String,
    /// How frames are picked: `xdp`, spycraft's XDP program (a mirror port: ingress only);
    /// `socket`, its socket filter on an AF_PACKET socket (beside the SIP service: both
    /// directions); `pcap`, libpcap with the generated BPF filter (portable).
    #[arg(long, value_enum, default_value = "pcap")]
    mode: CaptureMode,
    /// XDP only: what becomes of the interface's frames once copied. `drop` is for a
    /// dedicated mirror port whose frames nothing else on the box needs.
    #[arg(long, value_enum, default_value = "pass")]
    xdp_action: XdpActionArg,
    /// XDP only: `native` (driver), `generic` (skb), or `auto`: native when the driver has
    /// it, else generic.
    #[arg(long, value_enum, default_value = "auto")]
    xdp_mode: XdpModeArg,
    /// pcap mode: this pcap-filter expression instead of the generated one (`""` keeps every
    /// frame).
    #[arg(long, value_name = "EXPR")]
    pcap_filter: Option<String>,
    /// xdp and socket modes: size of the kernel's ring buffer of selected frames, in MiB.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    ring_mb: u32,
    /// SIP ports and ranges to capture, comma-separated [default: 5060,5061,5080].
    #[arg(long, value_delimiter = ',', value_name = "PORTS", value_parser = port_range)]
    ports: Option<Vec<PortRange>>,
    /// Bytes of each frame kept [default: 65535 for pcap; 9216, the most, for xdp and socket].
    #[arg(long, value_name = "BYTES")]
    snap_len: Option<u32>,
    /// Kernel buffer for frames waiting to be read, in MiB.
    #[arg(long, default_value_t = 32, value_name = "MIB")]
    buffer_mb: u32,
    /// A line of counters on stderr every 10 s (kernel or libpcap counters, SIP messages,
    /// parse errors, calls); twice (`-vv`, xdp and socket modes): also the kernel programs'
    /// log of every frame they select.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Also write the captured frames here (pcap with nanosecond timestamps).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: Option<PathBuf>,
    /// Write pcapng instead of pcap.
    #[arg(long, requires = "write")]
    pcapng: bool,
    /// Start a new file after this many megabytes (10^6 bytes, as tcpdump; fractions allowed):
    /// FILE-0000.pcap, FILE-0001.pcap, …
    #[arg(short = 'C', value_name = "MB", requires = "write")]
    rotate_mb: Option<f64>,
    /// Start a new file every this many seconds of capture time.
    #[arg(short = 'G', value_name = "SECS", requires = "write")]
    rotate_secs: Option<u64>,
    /// With -C or -G: keep this many files, overwriting the oldest.
    #[arg(short = 'W', value_name = "N", requires = "write")]
    ring_files: Option<u32>,
    #[command(flatten)]
    record: RecordArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CaptureMode {
    Xdp,
    Socket,
    Pcap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum XdpActionArg {
    Pass,
    Drop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum XdpModeArg {
    Auto,
    Native,
    Generic,
}

/// What becomes of the calls: tracking, records and where they go.
#[derive(clap::Args, Debug)]
struct RecordArgs {
    /// Output format [default: table on a terminal, jsonl otherwise].
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Write records here instead of standard output.
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// A monitored SIP node (address or CIDR), for the call direction; repeatable.
    #[arg(long = "host", value_name = "ADDR")]
    hosts: Vec<String>,
    /// Sensor name written into each record [default: host name].
    #[arg(long)]
    node: Option<String>,
    /// Header whose value links B2BUA legs into one call; repeatable, first found wins
    /// [default: X-CollateID].
    #[arg(long = "collate-header", value_name = "NAME")]
    collate_headers: Vec<String>,
    /// Cores to use: 1 runs everything on one thread; 2 reads on one and tracks calls on
    /// another, sharing the parsing between them by how busy each is.
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
    /// One row per call, its legs (across B2BUAs, by collation id) nested; jsonl: a `legs`
    /// array. Not with csv.
    #[arg(long)]
    calls: bool,
    /// Seconds between counter snapshots during a run (PostgreSQL's sensor_stats); 0: only
    /// at the end [default: 60].
    #[arg(long, value_name = "SECS")]
    stats_interval: Option<u64>,
    #[command(flatten)]
    postgres: PostgresArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.config.as_deref().map(FileConfig::load).transpose() {
        Ok(file) => {
            let file = file.unwrap_or_default();
            match cli.command {
                Command::Analyze(args) => analyze(args, &file),
                Command::Capture(args) => capture(args, &file),
                Command::Filter(args) => filter(args, &file),
                Command::Db(command) => db(command, &file),
                Command::Dump(args) => dump(args, &file),
                Command::Find(args) => find(args, &file),
                Command::Stats(args) => stats(args, &file),
            }
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(code) => code,
        // The reader of standard output has gone (`| head`): stop quietly, as Unix tools do.
        Err(e) if reader_gone(&e) => ExitCode::SUCCESS,
        Err(e) if e.is::<Usage>() => {
            eprintln!("spycraft: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            let e: &(dyn std::error::Error + 'static) = e.as_ref();
            eprintln!("spycraft: {}", spycraft::error_chain(e));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn analyze(args: AnalyzeArgs, file: &FileConfig) -> anyhow::Result<ExitCode> {
    let ports = sip_ports(args.input.ports.clone(), file)?;
    let from_stdin = args.input.files.iter().filter(|f| f.as_os_str() == "-");
    if from_stdin.count() > 1 {
        return Err(Usage("standard input (`-`) can be read only once".into()).into());
    }
    if let Some(dir) = &args.split_calls {
        if args.input.files.iter().any(|f| f.as_os_str() == "-") {
            return Err(Usage(
                "--split-calls reads the captures twice: give files, not standard input".into(),
            )
            .into());
        }
        // Checked before the run, not after it.
        std::fs::create_dir_all(dir).with_context(|| format!("--split-calls {}", dir.display()))?;
    }
    let split_ports = ports.clone();
    let mut sources: Vec<Box<dyn FrameSource>> = Vec::with_capacity(args.input.files.len());
    // Open everything first, so a typo in the last name fails before a long run.
    for path in &args.input.files {
        let source = OfflineSource::open(path, args.input.filter.as_deref())?;
        sources.push(Box::new(source.stop_on(&STOP)));
    }
    // SIGINT and SIGTERM end the reading; what was read is still written.
    install_stop_handlers();
    let bar = progress_bar(&args.input.files);
    let mut progress = |p: &Progress| {
        if let Some(bar) = &bar {
            bar.set_position(p.bytes);
        }
    };
    let collate_headers = collation_headers(args.record.collate_headers.clone(), file);
    let quiet = args.record.quiet;
    let code = record_run(
        args.record,
        file,
        ports,
        "analyze",
        &mut sources,
        &mut progress,
        None,
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(dir) = &args.split_calls {
        let inputs = spycraft::inspect::write::Inputs {
            files: &args.input.files,
            filter: args.input.filter.as_deref(),
            ports: &split_ports,
            collation_headers: &collate_headers,
        };
        let files = spycraft::inspect::write::split_calls(inputs, dir)?;
        if !quiet {
            eprintln!(
                "spycraft: {files} call captures written to {}",
                dir.display()
            );
        }
    }
    code
}

/// Set by SIGINT and SIGTERM: the live source ends, the run finishes cleanly.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Release);
}

/// SIGINT and SIGTERM raise [`STOP`] instead of killing the process.
fn install_stop_handlers() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is zeroed (no flags, empty mask) before the handler is set.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as *const () as usize;
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

fn capture(args: CaptureArgs, file: &FileConfig) -> anyhow::Result<ExitCode> {
    let filter = capture_filter(args.ports.clone(), args.record.hosts.clone(), file)?;
    let ports = filter.ports().to_vec();
    if args.mode != CaptureMode::Xdp
        && (args.xdp_action != XdpActionArg::Pass || args.xdp_mode != XdpModeArg::Auto)
    {
        anyhow::bail!("--xdp-action and --xdp-mode apply to --mode xdp only");
    }
    if args.mode != CaptureMode::Pcap && args.pcap_filter.is_some() {
        anyhow::bail!("--pcap-filter applies to --mode pcap only");
    }
    install_stop_handlers();
    let opened = open_live(&args, &filter)?;
    let (link, snap_len, counters) = (opened.link, opened.snap_len, opened.counters);
    if !args.record.quiet {
        eprintln!(
            "spycraft: capturing on {} ({})",
            args.interface, opened.description
        );
    }
    let source = opened.source;
    let mut sources: Vec<Box<dyn FrameSource>> = match &args.write {
        None => vec![source],
        Some(path) => {
            let rotation = Rotation {
                max_bytes: args.rotate_mb.map(|mb| (mb * 1e6).max(1.0) as u64),
                every_secs: args.rotate_secs.filter(|&s| s > 0),
                files: args.ring_files.filter(|&n| n > 0),
            };
            let format = if args.pcapng {
                CaptureFormat::Pcapng
            } else {
                CaptureFormat::Pcap
            };
            let writer = CaptureWriter::create(path, format, rotation, link, snap_len)
                .with_context(|| format!("cannot create {}", path.display()))?;
            vec![Box::new(TeeSource::new(source, writer))]
        }
    };
    let mut last_line = Instant::now();
    let verbose = args.verbose > 0;
    let written = Arc::new(AtomicU64::new(0));
    let records = written.clone();
    let mut progress = |p: &Progress| {
        if verbose && last_line.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "spycraft: {}; parsed {} SIP messages, {} parse errors, {} calls recorded",
                counters(),
                p.sip_messages,
                p.parse_errors,
                records.load(Ordering::Relaxed)
            );
            last_line = Instant::now();
        }
    };
    let ports = SipPorts {
        ports,
        detect_elsewhere: false,
    };
    let code = record_run(
        args.record,
        file,
        ports,
        "capture",
        &mut sources,
        &mut progress,
        Some(written),
    );
    eprintln!("spycraft: {}", counters());
    code
}

/// A live source, opened in the mode asked for.
struct OpenedLive {
    source: Box<dyn FrameSource>,
    link: spycraft::decode::LinkType,
    snap_len: u32,
    /// How frames are picked, for the start-up line.
    description: String,
    /// The source's counters as one line, readable while it runs.
    counters: Box<dyn Fn() -> String>,
}

fn open_live(args: &CaptureArgs, filter: &FilterConfig) -> anyhow::Result<OpenedLive> {
    if args.mode == CaptureMode::Pcap {
        let snap_len = args.snap_len.unwrap_or(65535);
        let expression = args
            .pcap_filter
            .clone()
            .unwrap_or_else(|| filter.pcap_expression());
        let source = LiveSource::open(
            &args.interface,
            &expression,
            snap_len,
            args.buffer_mb.saturating_mul(1 << 20),
            &STOP,
        )?;
        let live = source.counters();
        return Ok(OpenedLive {
            link: source.link_type(),
            snap_len,
            description: if expression.is_empty() {
                "libpcap, no filter".to_owned()
            } else {
                format!("libpcap, filter: {expression}")
            },
            counters: Box::new(move || live.one_line()),
            source: Box::new(source),
        });
    }
    open_kernel(args, filter)
}

#[cfg(feature = "ebpf")]
fn open_kernel(args: &CaptureArgs, filter: &FilterConfig) -> anyhow::Result<OpenedLive> {
    use spycraft::capture::kernel::{KernelMode, KernelOptions, KernelSource, XdpAttach};
    use spycraft_common::{XdpAction, MAX_KERNEL_SNAP_LEN};
    let snap_len = args.snap_len.unwrap_or(MAX_KERNEL_SNAP_LEN);
    if snap_len > MAX_KERNEL_SNAP_LEN {
        anyhow::bail!(
            "--snap-len {snap_len}: the kernel programs copy at most {MAX_KERNEL_SNAP_LEN} bytes of a frame"
        );
    }
    let mode = match args.mode {
        CaptureMode::Xdp => KernelMode::Xdp(match args.xdp_mode {
            XdpModeArg::Auto => XdpAttach::Auto,
            XdpModeArg::Native => XdpAttach::Native,
            XdpModeArg::Generic => XdpAttach::Generic,
        }),
        _ => KernelMode::Socket,
    };
    let options = KernelOptions {
        mode,
        snap_len,
        ring_bytes: args.ring_mb.clamp(1, 2048).saturating_mul(1 << 20),
        log_frames: args.verbose >= 2,
        xdp_action: match args.xdp_action {
            XdpActionArg::Pass => XdpAction::Pass,
            XdpActionArg::Drop => XdpAction::Drop,
        },
    };
    let source = KernelSource::open(&args.interface, filter, options, &STOP)?;
    let counters = source.counters();
    Ok(OpenedLive {
        link: source.link_type(),
        snap_len,
        description: format!("{}; ports {}", source.attachment(), filter.ports_text()),
        counters: Box::new(move || counters.one_line()),
        source: Box::new(source),
    })
}

#[cfg(not(feature = "ebpf"))]
fn open_kernel(_: &CaptureArgs, _: &FilterConfig) -> anyhow::Result<OpenedLive> {
    anyhow::bail!(
        "this spycraft was built without its kernel programs (cargo feature `ebpf`); use --mode pcap"
    )
}

fn filter(args: FilterArgs, file: &FileConfig) -> anyhow::Result<ExitCode> {
    let filter = capture_filter(args.ports, args.hosts, file)?;
    if args.expression {
        println!("{}", filter.pcap_expression());
    } else {
        println!("pcap-filter expression (capture --mode pcap; also for tcpdump -i IFACE '...'):");
        println!("  {}", filter.pcap_expression());
        println!();
        println!("kernel filter maps (capture --mode xdp|socket):");
        print!("{}", filter.describe_maps());
    }
    Ok(ExitCode::SUCCESS)
}

/// The shared body of `analyze` and `capture`: tracks the calls of `sources` and writes their
/// records where `args` says, then the summary and the exit status.
fn record_run(
    args: RecordArgs,
    file: &FileConfig,
    ports: SipPorts,
    command: &'static str,
    sources: &mut [Box<dyn FrameSource>],
    progress: &mut dyn FnMut(&Progress),
    records_written: Option<Arc<AtomicU64>>,
) -> anyhow::Result<ExitCode> {
    let node = node_name(args.node, file);
    let hosts = monitored_hosts(args.hosts, file)?;
    let collate_headers = collation_headers(args.collate_headers, file);
    let config = PipelineConfig {
        ports,
        collation_headers: collate_headers,
        tracker: TrackerConfig {
            node: node.clone(),
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
        records_written,
        stats_interval: match args
            .stats_interval
            .or(file.stats_interval_secs)
            .unwrap_or(60)
        {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        },
        stats_source: command,
    };

    // Open the database first: a wrong URL or schema fails before a long run.
    let database = match postgres_config(&args.postgres, file, &node, args.quiet)? {
        Some(c) => {
            let name = format!("PostgreSQL at {}", c.target.describe());
            Some((
                name,
                Box::new(PostgresSink::start(c)?) as Box<dyn RecordSink>,
            ))
        }
        None => None,
    };
    let (out, to_terminal, out_name): (Box<dyn Write + Send>, bool, String) = match &args.output {
        Some(path) => (
            Box::new(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            ),
            false,
            path.display().to_string(),
        ),
        None => (
            Box::new(std::io::stdout()),
            std::io::stdout().is_terminal(),
            "standard output".to_owned(),
        ),
    };
    let format = match args.format {
        Some(FormatArg::Table) => Format::Table,
        Some(FormatArg::Jsonl) => Format::Jsonl,
        Some(FormatArg::Csv) => Format::Csv,
        None if to_terminal => Format::Table,
        None => Format::Jsonl,
    };
    let output: Box<dyn RecordSink> = if args.calls {
        use spycraft::sink::calls::{CallFormat, CallSink};
        match format {
            Format::Jsonl => Box::new(CallSink::new(out, CallFormat::Jsonl)),
            Format::Table => Box::new(CallSink::new(out, CallFormat::Table)),
            Format::Csv => anyhow::bail!("--calls nests legs: use --format jsonl or table"),
        }
    } else if format == Format::Table && command == "capture" {
        // Live, each row shows as its call is written, not when the capture stops.
        Box::new(spycraft::sink::TableSink::live(out))
    } else {
        sink_for(format, out)
    };
    // With a database, records go to standard output only when a format or file is asked for.
    let mut outputs = Outputs::new(Some(&STOP));
    let to_file_too = args.format.is_some() || args.output.is_some();
    if let Some((name, db)) = database {
        outputs.add(name, db);
    }
    if outputs.is_empty() || to_file_too {
        outputs.add(out_name, output);
    }

    let (summary, result) = run_sources(sources, &config, &mut outputs, progress);
    outputs.counters(command, &summary.counters_json());
    // Outputs report their own failures; they never fail the finish.
    let _ = outputs.finish();
    let reports = outputs.reports();

    // Every failure is said, and the most severe decides the exit status.
    let mut status = Outcome::Clean;
    if !args.quiet || result.is_err() {
        eprintln!("spycraft: {}", summary.one_line());
    }
    match result {
        Ok(()) => {}
        Err(AnalyzeError::Capture(e @ CaptureError::Damaged { .. })) => {
            eprintln!("spycraft: {e}; the records cover the readable part");
            status = status.max(Outcome::Damaged);
        }
        Err(e) => {
            eprintln!("spycraft: {}", spycraft::error_chain(&e));
            status = status.max(Outcome::Failed);
        }
    }
    if STOP.load(Ordering::Acquire) && command == "analyze" && !args.quiet {
        eprintln!(
            "spycraft: stopped before the end of the input; open calls written as incomplete"
        );
    }
    for report in &reports {
        let outcome = Outcome::of(report);
        if !args.quiet || outcome != Outcome::Clean {
            eprintln!("spycraft: {}", describe_output(report));
        }
        status = status.max(outcome);
    }
    Ok(status.exit_code())
}

/// A command line that cannot work as given.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

/// Whether `error` comes from writing to a pipe whose reader has closed it.
fn reader_gone(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// How a run ended, in rising order of severity: the most severe one met is the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Clean,
    /// Records are safe in the spool but the database has not taken them yet.
    Undelivered,
    /// The input broke off: the records cover the readable part.
    Damaged,
    /// Records were lost, or the run could not go on.
    Failed,
}

impl Outcome {
    fn of(report: &OutputReport) -> Self {
        let t = &report.tally;
        if report.closed {
            // Its reader stopped reading (`| head`): what it did not take, it did not want.
            Self::Clean
        } else if t.lost > 0 || t.held > 0 {
            Self::Failed
        } else if t.kept > 0 {
            Self::Undelivered
        } else {
            Self::Clean
        }
    }

    fn exit_code(self) -> ExitCode {
        match self {
            Self::Clean => ExitCode::SUCCESS,
            Self::Undelivered => ExitCode::from(EXIT_UNDELIVERED),
            Self::Damaged => ExitCode::from(EXIT_DAMAGED),
            Self::Failed => ExitCode::from(EXIT_FAILED),
        }
    }
}

/// One line on what an output did with its records.
fn describe_output(report: &OutputReport) -> String {
    let t = &report.tally;
    let mut line = format!("{}: {} records", report.output, t.records);
    let mut parts = vec![format!("{} written", t.delivered)];
    if t.kept > 0 {
        parts.push(format!(
            "{} kept in the spool for the next start or `spycraft db flush`",
            t.kept
        ));
    }
    if t.held > 0 {
        parts.push(format!("{} never written", t.held));
    }
    if t.lost > 0 {
        parts.push(format!("{} LOST", t.lost));
    }
    if report.closed {
        parts.push("its reader closed it".to_owned());
    }
    line.push_str(": ");
    line.push_str(&parts.join(", "));
    if let Some(error) = &report.failing {
        line.push_str(&format!(" ({error})"));
    } else if report.write_errors > 0 {
        line.push_str(&format!(
            " ({} write errors, reported as they happened)",
            report.write_errors
        ));
    }
    line
}

/// `--ports` (or the file's `ports`): only those; otherwise the defaults plus detection.
fn sip_ports(cli: Option<Vec<PortRange>>, file: &FileConfig) -> anyhow::Result<SipPorts> {
    let ports = match cli {
        Some(ports) => Some(ports),
        None => file.port_ranges().context("ports in the settings file")?,
    };
    Ok(match ports {
        Some(ports) => SipPorts {
            ports,
            detect_elsewhere: false,
        },
        None => SipPorts::default(),
    })
}

/// Where a tool writes: the named file, or standard output.
fn output_to(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

/// Says on stderr that a capture broke off, and picks the exit status for it.
fn damage_status(damage: Option<CaptureError>) -> ExitCode {
    match damage {
        Some(e) => {
            eprintln!("spycraft: {e}; the output covers the readable part");
            ExitCode::from(EXIT_DAMAGED)
        }
        None => ExitCode::SUCCESS,
    }
}

/// A live capture for `dump -i`: whole frames, the filter made from the SIP ports, SIGINT
/// and SIGTERM ending it.
fn dump_source(interface: &str, ports: &SipPorts) -> anyhow::Result<LiveSource> {
    let filter = FilterConfig::new(ports.ports.clone(), Vec::new())?;
    install_stop_handlers();
    Ok(LiveSource::open(
        interface,
        &filter.pcap_expression(),
        65535,
        32 << 20,
        &STOP,
    )?)
}

fn dump(args: DumpArgs, file: &FileConfig) -> anyhow::Result<ExitCode> {
    use spycraft::inspect::dump::{Collation, DumpedMessage, Selection};
    use spycraft::inspect::{each_message, each_message_of, ladder};
    let ports = sip_ports(args.ports.clone(), file)?;
    let collate_headers = collation_headers(args.collate_headers, file);
    let files = &args.files;
    let filter = args.filter.as_deref();
    let live = args.interface.is_some();
    let call_ids = if args.call_ids.is_empty() {
        None
    } else if live || files.iter().any(|f| f.as_os_str() == "-") {
        // A live capture or standard input cannot be read twice: no first pass to find the
        // collated legs.
        eprintln!("spycraft: reading once: collated legs of --call-id are not added");
        Some(args.call_ids.iter().cloned().collect())
    } else {
        let mut collation = Collation::default();
        each_message(files, filter, &ports, &collate_headers, &mut |m| {
            collation.learn(m)
        })?;
        Some(collation.expand(&args.call_ids))
    };
    let selection = Selection {
        host: args.host,
        call_ids,
        user: args.user,
    };
    if let (Some(path), Some(interface)) = (&args.write, &args.interface) {
        let mut source = dump_source(interface, &ports)?;
        let frames = spycraft::inspect::write::write_picked_live(
            &mut source,
            &ports,
            &collate_headers,
            &mut |m| selection.matches(m),
            path,
        )?;
        eprintln!("spycraft: {frames} frames written to {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &args.write {
        if files.iter().any(|f| f.as_os_str() == "-") {
            anyhow::bail!("dump -w reads the captures twice: give files, not standard input");
        }
        let inputs = spycraft::inspect::write::Inputs {
            files,
            filter,
            ports: &ports,
            collation_headers: &collate_headers,
        };
        let frames =
            spycraft::inspect::write::write_picked(inputs, &mut |m| selection.matches(m), path)?;
        eprintln!("spycraft: {frames} frames written to {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = output_to(args.output.as_deref())?;
    let mut kept = Vec::new();
    let mut failure = None;
    let mut shown = |m: &spycraft::pipeline::SeenMessage<'_, '_, '_>| {
        if failure.is_some() || !selection.matches(m) {
            return;
        }
        let message = DumpedMessage::of(m);
        let written = match args.format {
            DumpFormat::Text => out.write_all(message.to_text(selection.host.as_ref()).as_bytes()),
            DumpFormat::Json => serde_json::to_writer(&mut out, &message)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
            DumpFormat::Html | DumpFormat::Svg => {
                kept.push(message);
                Ok(())
            }
        };
        // Live, each message is shown as it comes.
        let written = written.and_then(|()| if live { out.flush() } else { Ok(()) });
        if let Err(e) = written {
            failure = Some(e);
        }
    };
    let damage = match &args.interface {
        None => each_message(files, filter, &ports, &collate_headers, &mut shown)?.1,
        Some(interface) => {
            let mut sources: Vec<Box<dyn FrameSource>> =
                vec![Box::new(dump_source(interface, &ports)?)];
            each_message_of(&mut sources, &ports, &collate_headers, &mut shown).1
        }
    };
    if let Some(e) = failure {
        return Err(e).context("writing the messages");
    }
    let title = args
        .call_ids
        .first()
        .cloned()
        .unwrap_or_else(|| "SIP messages".into());
    match args.format {
        DumpFormat::Html => out.write_all(ladder::html(&title, &kept).as_bytes())?,
        DumpFormat::Svg => out.write_all(ladder::svg(&kept).as_bytes())?,
        DumpFormat::Text | DumpFormat::Json => {}
    }
    out.flush().context("writing the messages")?;
    Ok(damage_status(damage))
}

fn stats(args: StatsArgs, file: &FileConfig) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig {
        ports: sip_ports(args.input.ports.clone(), file)?,
        collation_headers: collation_headers(Vec::new(), file),
        tracker: TrackerConfig {
            node: node_name(args.node, file),
            ..TrackerConfig::default()
        },
        ..PipelineConfig::default()
    };
    let mut stats = spycraft::stats::CallStats::default();
    let (_, result) = spycraft::pipeline::analyze_files(
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
        FindFormat::Table => out.write_all(report.table().as_bytes())?,
        FindFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(damage_status(damage))
}

fn find(args: FindArgs, file: &FileConfig) -> anyhow::Result<ExitCode> {
    use spycraft::inspect::each_message;
    use spycraft::inspect::find::{table, EndpointFinder};
    let ports = sip_ports(args.input.ports.clone(), file)?;
    let mut finder = EndpointFinder::default();
    let (_, damage) = each_message(
        &args.input.files,
        args.input.filter.as_deref(),
        &ports,
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
        FindFormat::Table => out.write_all(table(&endpoints).as_bytes())?,
        FindFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &endpoints)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(damage_status(damage))
}

/// `--collate-header` values, else the file's, else `X-CollateID`.
fn collation_headers(cli: Vec<String>, file: &FileConfig) -> Vec<String> {
    pick(
        cli,
        file.collate_headers.clone(),
        vec!["X-CollateID".into()],
    )
}

/// `--host` values (else the file's): the monitored SIP nodes.
fn monitored_hosts(cli: Vec<String>, file: &FileConfig) -> anyhow::Result<MonitoredHosts> {
    let from = if cli.is_empty() {
        "hosts in the settings file"
    } else {
        "--host"
    };
    let list = pick(cli, file.hosts.clone(), Vec::new());
    MonitoredHosts::parse(&list).context(from)
}

/// What a live capture keeps: `--ports` (else the file's, else the defaults) and `--host`.
fn capture_filter(
    ports: Option<Vec<PortRange>>,
    hosts: Vec<String>,
    file: &FileConfig,
) -> anyhow::Result<FilterConfig> {
    let ports = match ports {
        Some(p) => p,
        None => file
            .port_ranges()
            .context("ports in the settings file")?
            .unwrap_or_else(|| FilterConfig::default().ports().to_vec()),
    };
    let hosts = monitored_hosts(hosts, file)?;
    Ok(FilterConfig::new(ports, hosts.nets().to_vec())?)
}

/// The command line's value if given, else the file's, else the default.
fn pick<T>(cli: Vec<T>, file: Option<Vec<T>>, default: Vec<T>) -> Vec<T> {
    if cli.is_empty() {
        file.unwrap_or(default)
    } else {
        cli
    }
}

fn node_name(cli: Option<String>, file: &FileConfig) -> String {
    cli.or_else(|| file.node.clone())
        .unwrap_or_else(spycraft::hostname)
}

/// The PostgreSQL settings from flags and file; `None` when no database is named.
fn postgres_config(
    args: &PostgresArgs,
    file: &FileConfig,
    node: &str,
    quiet: bool,
) -> anyhow::Result<Option<PostgresConfig>> {
    let f = &file.postgres;
    let Some(url) = args.postgres.as_ref().or(f.url.as_ref()) else {
        return Ok(None);
    };
    let password_file = args
        .postgres_password_file
        .as_ref()
        .or(f.password_file.as_ref());
    let target = Target::parse(
        url,
        password_file.map(PathBuf::as_path),
        &format!("spycraft {node}"),
    )
    .context("--postgres")?;
    let fsync = match (args.spool_fsync, f.spool_fsync.as_deref()) {
        (Some(FsyncArg::Always), _) | (None, Some("always")) => FsyncPolicy::Always,
        (Some(FsyncArg::Never), _) | (None, Some("never")) => FsyncPolicy::Never,
        (Some(FsyncArg::Interval), _) | (None, Some("interval") | None) => FsyncPolicy::default(),
        (None, Some(other)) => {
            anyhow::bail!("spool_fsync = {other:?}: expected always, interval or never")
        }
    };
    let dir = args
        .spool
        .clone()
        .or_else(|| f.spool.clone())
        .unwrap_or_else(|| default_spool_dir(node));
    Ok(Some(PostgresConfig {
        target,
        node: node.to_owned(),
        spool: SpoolConfig {
            dir,
            max_bytes: args.spool_max_mb.or(f.spool_max_mb).unwrap_or(1024) << 20,
            fsync,
        },
        batch_size: args.batch_size.or(f.batch_size).unwrap_or(1000).max(1),
        retention_days: args.retention_days.or(f.retention_days),
        drain_timeout: Duration::from_secs(
            args.drain_timeout.or(f.drain_timeout_secs).unwrap_or(30),
        ),
        report_on_finish: !quiet,
    }))
}

/// One spool per node, under the system's spool directory for root, the user's state
/// directory otherwise.
fn default_spool_dir(node: &str) -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let base = if root {
        PathBuf::from("/var/spool/spycraft")
    } else if let Some(state) = std::env::var_os("XDG_STATE_HOME") {
        Path::new(&state).join("spycraft/spool")
    } else if let Some(home) = std::env::var_os("HOME") {
        Path::new(&home).join(".local/state/spycraft/spool")
    } else {
        PathBuf::from("spycraft-spool")
    };
    base.join(node)
}

fn db(command: DbCommand, file: &FileConfig) -> anyhow::Result<ExitCode> {
    let (DbCommand::Migrate(args) | DbCommand::Status(args) | DbCommand::Flush(args)) = &command;
    let node = node_name(args.node.clone(), file);
    let Some(config) = postgres_config(&args.postgres, file, &node, true)? else {
        anyhow::bail!("no database: give --postgres URL (or [postgres] url in --config)");
    };
    match command {
        DbCommand::Migrate(_) => {
            let applied = postgres::migrate(&config.target)?;
            if applied.is_empty() {
                println!("{}: schema up to date", config.target.describe());
            } else {
                println!(
                    "{}: applied migrations {applied:?}",
                    config.target.describe()
                );
            }
        }
        DbCommand::Status(_) => {
            print!("{}", postgres::status(&config.target, &config.spool.dir)?);
        }
        DbCommand::Flush(_) => {
            let mut sink = PostgresSink::start(config)?;
            match sink.close() {
                Ok(report) => println!(
                    "{} records delivered ({} new)",
                    report.delivered, report.inserted
                ),
                Err(e @ PostgresError::Undelivered { .. }) => {
                    eprintln!("spycraft: {e}");
                    return Ok(ExitCode::from(EXIT_UNDELIVERED));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
