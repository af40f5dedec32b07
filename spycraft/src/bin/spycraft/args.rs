// SPDX-License-Identifier: AGPL-3.0-or-later
//! The command line's shape. Settings are the library's layers (`spycraft::settings`), taken
//! out of the parsed arguments by [`Command::take_settings`]; what stays is each command's own.

use std::mem::take;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use spycraft::inspect::dump::HostFilter;
use spycraft::settings::{
    AlertsLayer, CallsLayer, CaptureLayer, HepLayer, HttpLayer, Layer, PostgresLayer, RadiusLayer,
    RatesLayer, RecordsLayer, SensorLayer,
};
use spycraft_common::PortRange;

#[derive(Parser, Debug)]
#[command(
    name = "spycraft",
    version,
    about = "Passive SIP call accounting: captures in, call detail records out"
)]
pub struct Cli {
    /// Settings file (TOML) holding any of the settings the flags give; flags win over it.
    /// `spycraft config` prints the effective settings in this form.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyse pcap/pcapng captures and write one call detail record per call leg.
    Analyze(AnalyzeArgs),
    /// The live sensor: capture SIP on an interface until SIGINT or SIGTERM, writing a
    /// record as each call ends (open calls as `incomplete` at the stop).
    Capture(CaptureArgs),
    /// Print the effective settings (flags over the settings file over the defaults) as a
    /// settings file; the database password is never shown. Takes every flag of `capture`.
    Config(CaptureArgs),
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
    /// Compare the calls of two runs (captures, or records as JSON lines): the outcomes of
    /// each, and every call that differs; exit status 5 when any does.
    Diff(crate::expect::DiffArgs),
    /// Analyse captures into memory and serve them: the web pages (dashboard, call search,
    /// call flows, accounting) and the API (/api/v1) on --http [default: 127.0.0.1:8080].
    Serve(ServeArgs),
}

impl Command {
    /// The settings given as flags, moved out of the arguments.
    pub fn take_settings(&mut self) -> Layer {
        match self {
            Command::Analyze(a) => a.record.take(Layer::default()),
            Command::Capture(a) | Command::Config(a) => a.record.take(Layer {
                capture: take(&mut a.capture),
                ..Layer::default()
            }),
            Command::Serve(a) => Layer {
                postgres: PostgresLayer {
                    url: take(&mut a.postgres),
                    password_file: take(&mut a.postgres_password_file),
                    ..PostgresLayer::default()
                },
                sensor: take(&mut a.sensor),
                calls: take(&mut a.calls),
                http: take(&mut a.http),
                rates: take(&mut a.rates),
                ..Layer::default()
            },
            Command::Filter(a) => sensor_only(SensorLayer {
                ports: take(&mut a.ports),
                hosts: take(&mut a.hosts),
                ..SensorLayer::default()
            }),
            Command::Db(DbCommand::Migrate(a) | DbCommand::Status(a) | DbCommand::Flush(a)) => {
                Layer {
                    sensor: SensorLayer {
                        node: take(&mut a.node),
                        ..SensorLayer::default()
                    },
                    postgres: take(&mut a.postgres),
                    ..Layer::default()
                }
            }
            Command::Dump(a) => sensor_only(SensorLayer {
                ports: take(&mut a.ports),
                collate_headers: take(&mut a.collate_headers),
                ..SensorLayer::default()
            }),
            Command::Find(a) => sensor_only(SensorLayer {
                ports: take(&mut a.ports),
                ..SensorLayer::default()
            }),
            Command::Stats(a) => sensor_only(SensorLayer {
                ports: take(&mut a.ports),
                node: take(&mut a.node),
                ..SensorLayer::default()
            }),
            Command::Diff(a) => sensor_only(SensorLayer {
                ports: take(&mut a.ports),
                ..SensorLayer::default()
            }),
        }
    }
}

/// Settings of the `[sensor]` section alone, for the tools that take no others.
fn sensor_only(sensor: SensorLayer) -> Layer {
    Layer {
        sensor,
        ..Layer::default()
    }
}

/// The captures a command reads.
#[derive(clap::Args, Debug)]
pub struct InputArgs {
    /// Capture files (pcap or pcapng), read in order as one stream; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// pcap-filter expression applied while reading (as tcpdump's).
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Also write one pcap per call into DIR (every leg of its collation group, the frames
    /// behind each message: fragments and TCP segments included).
    #[arg(long, value_name = "DIR")]
    pub split_calls: Option<PathBuf>,
    #[command(flatten)]
    pub expect: crate::expect::ExpectArgs,
    #[command(flatten)]
    pub record: RecordArgs,
}

/// What `serve` takes: captures, and how to track and show their calls.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Captures to analyse into memory and serve.
    #[arg(value_name = "FILE", required_unless_present = "postgres")]
    pub files: Vec<PathBuf>,
    /// pcap-filter expression applied while reading.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Serve the records every sensor wrote to this PostgreSQL database instead of captures
    /// (URL or key=value string).
    #[arg(long, value_name = "URL", conflicts_with = "files")]
    pub postgres: Option<String>,
    /// Read the database password from this file (first line) when the URL has none.
    #[arg(long = "postgres-password-file", value_name = "FILE")]
    pub postgres_password_file: Option<PathBuf>,
    #[command(flatten)]
    pub sensor: SensorLayer,
    #[command(flatten)]
    pub calls: CallsLayer,
    #[command(flatten)]
    pub http: HttpLayer,
    #[command(flatten)]
    pub rates: RatesLayer,
}

/// Live capture: where, how, and what to keep; every setting there is.
#[derive(clap::Args, Debug)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub capture: CaptureLayer,
    #[command(flatten)]
    pub record: RecordArgs,
}

/// The settings of a run that makes records: calls, outputs, database.
#[derive(clap::Args, Debug)]
pub struct RecordArgs {
    #[command(flatten)]
    pub sensor: SensorLayer,
    #[command(flatten)]
    pub records: RecordsLayer,
    #[command(flatten)]
    pub calls: CallsLayer,
    #[command(flatten)]
    pub postgres: PostgresLayer,
    #[command(flatten)]
    pub http: HttpLayer,
    #[command(flatten)]
    pub rates: RatesLayer,
    #[command(flatten)]
    pub hep: HepLayer,
    #[command(flatten)]
    pub radius: RadiusLayer,
    #[command(flatten)]
    pub alerts: AlertsLayer,
}

impl RecordArgs {
    /// These settings moved into `layer`.
    fn take(&mut self, layer: Layer) -> Layer {
        Layer {
            sensor: take(&mut self.sensor),
            records: take(&mut self.records),
            calls: take(&mut self.calls),
            postgres: take(&mut self.postgres),
            http: take(&mut self.http),
            rates: take(&mut self.rates),
            hep: take(&mut self.hep),
            radius: take(&mut self.radius),
            alerts: take(&mut self.alerts),
            ..layer
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct FilterArgs {
    /// SIP ports and ranges, comma-separated [default: 5060,5061,5080].
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    pub ports: Option<Vec<PortRange>>,
    /// Only frames of these hosts (address or CIDR); repeatable.
    #[arg(long = "host", value_name = "ADDR")]
    pub hosts: Option<Vec<spycraft::call::HostPrefix>>,
    /// Print only the pcap-filter expression (for tcpdump or tshark).
    #[arg(short, long)]
    pub expression: bool,
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Apply the schema migrations this spycraft has and the database lacks.
    Migrate(DbArgs),
    /// Schema version, records per node, partitions, and what waits in the spool.
    Status(DbArgs),
    /// Deliver what a stopped sensor left in its spool, then exit.
    Flush(DbArgs),
}

#[derive(clap::Args, Debug)]
pub struct DbArgs {
    #[command(flatten)]
    pub postgres: PostgresLayer,
    /// Sensor name (chooses the default spool directory) [default: host name].
    #[arg(long)]
    pub node: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DumpFormat {
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
pub struct DumpArgs {
    /// Capture files (pcap or pcapng), read in order as one stream; `-` reads standard input.
    #[arg(value_name = "FILE", required_unless_present = "interface")]
    pub files: Vec<PathBuf>,
    /// Capture live on this interface instead (libpcap, filter generated from --ports), until
    /// SIGINT or SIGTERM.
    #[arg(short = 'i', long, value_name = "IFACE", conflicts_with = "files")]
    pub interface: Option<String>,
    /// pcap-filter expression applied while reading files (as tcpdump's).
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
    /// SIP ports and ranges, comma-separated (5060,5080-5090); live, they make the filter.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    pub ports: Option<Vec<PortRange>>,
    /// Messages to or from this endpoint: ADDR, ADDR:PORT or [IPv6]:PORT.
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub host: Option<HostFilter>,
    /// Messages of this call, and of the legs collated with it across a B2BUA; repeatable.
    #[arg(long = "call-id", value_name = "ID")]
    pub call_ids: Vec<String>,
    /// Messages whose From, To or Request-URI has this user part.
    #[arg(long)]
    pub user: Option<String>,
    /// Header linking B2BUA legs; repeatable [default: X-CollateID].
    #[arg(long = "collate-header", value_name = "NAME")]
    pub collate_headers: Option<Vec<String>>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: DumpFormat,
    /// Write here instead of standard output.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Write the frames behind the chosen messages to this pcap instead.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
}

/// How `find` and `stats` print.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReportFormat {
    /// Aligned columns.
    Table,
    /// One pretty-printed JSON document.
    Json,
}

#[derive(clap::Args, Debug)]
pub struct FindArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// SIP ports and ranges, comma-separated; by default 5060, 5061 and 5080 plus any port
    /// whose traffic starts with a SIP start line.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    pub ports: Option<Vec<PortRange>>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// SIP ports and ranges, comma-separated; by default 5060, 5061 and 5080 plus any port
    /// whose traffic starts with a SIP start line.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    pub ports: Option<Vec<PortRange>>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
    /// Sensor name [default: host name].
    #[arg(long)]
    pub node: Option<String>,
}
