// SPDX-License-Identifier: AGPL-3.0-or-later
//! What one source of settings says: the command line or the settings file. The same types
//! are read by clap and by the TOML reader, so a flag and its key cannot drift apart; every
//! setting is optional here, and [`Settings::resolve`](super::Settings::resolve) fills the gaps.
//!
//! The doc comment of each field is both its `--help` text and its documentation as a key.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use spycraft_common::{PortRange, XdpAction};

use crate::alert::{RuleLayer, SyslogTarget};
use crate::call::HostPrefix;
use crate::capture::{CaptureInterface, CaptureMode, XdpAttach};
use crate::hep::Endpoint;
use crate::monitor::PeerGroup;
use crate::sink::radius::Dictionary;
use crate::sink::spool::FsyncPolicy;
use crate::sink::Format;

/// Everything a settings file may hold; from flags, the sections a command takes.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// `[sensor]`: what every command shares.
    #[serde(default)]
    pub sensor: SensorLayer,
    /// `[capture]`: the live sensor's interface and kernel programs.
    #[serde(default)]
    pub capture: CaptureLayer,
    /// `[records]`: where records go and in what shape.
    #[serde(default)]
    pub records: RecordsLayer,
    /// `[calls]`: how calls are tracked.
    #[serde(default)]
    pub calls: CallsLayer,
    /// `[postgres]`: the database and the spool in front of it.
    #[serde(default)]
    pub postgres: PostgresLayer,
    /// `[http]`: the metrics and health endpoint.
    #[serde(default)]
    pub http: HttpLayer,
    /// `[rates]`: the rate deck.
    #[serde(default)]
    pub rates: RatesLayer,
    /// `[hep]`: HEP export to Homer, sngrep or Kamailio.
    #[serde(default)]
    pub hep: HepLayer,
    /// `[radius]`: RADIUS accounting.
    #[serde(default)]
    pub radius: RadiusLayer,
    /// `[[peer_group]]`: named groups of peers, each with figures of its own in `/metrics`
    /// (settings file only).
    #[serde(default, rename = "peer_group")]
    pub peer_groups: Option<Vec<PeerGroup>>,
    /// `[alerts]`: where alerts go.
    #[serde(default)]
    pub alerts: AlertsLayer,
    /// `[[alert]]`: rules changed from their defaults (settings file only).
    #[serde(default, rename = "alert")]
    pub alert_rules: Option<Vec<RuleLayer>>,
}

/// `[alerts]`: the intrusion and fraud rules' alerts (the rules themselves are `[[alert]]`
/// tables of the settings file).
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct AlertsLayer {
    /// Apply the alert rules and write their alerts here as JSON lines (Suricata EVE
    /// shape); `-` for standard output [default: no alerting].
    #[arg(id = "alerts", long = "alerts", value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Also send each alert to syslog (RFC 5424, facility local0): udp://ADDRESS:PORT or
    /// unix:/dev/log; one line a fail2ban filter matches (contrib/fail2ban).
    #[arg(id = "alerts_syslog", long = "alerts-syslog", value_name = "TARGET")]
    pub syslog: Option<SyslogTarget>,
}

/// `[http]`: the sensor's HTTP endpoint.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct HttpLayer {
    /// Serve /metrics (Prometheus), /healthz and /readyz on this address (e.g.
    /// 127.0.0.1:9464) [default: off].
    #[arg(long = "http", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// analyze: keep serving this many seconds after the input ends [default: 0].
    #[arg(long = "linger", value_name = "SECS")]
    pub linger_secs: Option<u64>,
    /// Bearer tokens the web API and pages require, one a line (needed to listen beyond
    /// loopback) [default: none].
    #[arg(long = "http-token-file", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Users of the web pages and API, `name:argon2-hash` a line (htpasswd style, PHC
    /// argon2 hashes), for HTTP Basic authentication in browsers [default: none].
    #[arg(long = "http-users", value_name = "FILE")]
    pub users_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --http-key) [default: HTTP].
    #[arg(long = "http-cert", value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The PEM private key of --http-cert.
    #[arg(long = "http-key", value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Records kept in memory for the web API, the oldest dropped first; 0 keeps none
    /// (metrics only, no copy of each record) [default: 100000].
    #[arg(long = "keep-records", value_name = "N")]
    pub keep_records: Option<usize>,
    /// Memory for the SIP messages of the most recent calls, for the call pages of a live
    /// capture (the oldest calls go first); 0 keeps none [default: 64].
    #[arg(long = "keep-messages-mb", value_name = "MIB")]
    pub keep_messages_mb: Option<usize>,
    /// Longest a search or report may take before it answers 504 [default: 10].
    #[arg(long = "query-timeout", value_name = "SECS")]
    pub query_timeout_secs: Option<f64>,
}

/// `[hep]`: every SIP message (and optionally each record) sent as HEP v3.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct HepLayer {
    /// Send every SIP message as HEP v3 to this collector: udp://HOST:PORT, tcp://HOST:PORT
    /// or tls://HOST:PORT; repeatable, each gets every message [default: none].
    #[arg(long = "hep", value_name = "URL")]
    pub destinations: Option<Vec<Endpoint>>,
    /// Capture agent id in every HEP packet [default: none].
    #[arg(long = "hep-node-id", value_name = "N")]
    pub node_id: Option<u32>,
    /// Node name in every HEP packet [default: the sensor's node name].
    #[arg(long = "hep-node-name", value_name = "NAME")]
    pub node_name: Option<String>,
    /// The collector's password (HEP auth key), first line of this file [default: none].
    #[arg(
        id = "hep_password_file",
        long = "hep-password-file",
        value_name = "FILE"
    )]
    pub password_file: Option<PathBuf>,
    /// Reading files, HEP packets a second per collector at most, so a receiver with
    /// default socket buffers keeps up; 0: no limit. Live captures send as traffic comes
    /// [default: 20000].
    #[arg(long = "hep-rate", value_name = "N")]
    pub rate: Option<u32>,
    /// HEP packets waiting for each collector at most; past it, a live capture counts them
    /// as not sent, reading files waits [default: 65536].
    #[arg(long = "hep-queue", value_name = "PACKETS")]
    pub queue: Option<usize>,
    /// Also send each record, as HEP type 0x3c JSON.
    #[arg(long = "hep-cdr")]
    #[serde(default)]
    pub cdr: bool,
    /// capture: take HEP from agents (Kamailio siptrace, heplify, Asterisk, FreeSWITCH) on
    /// udp://ADDR:PORT, tcp://ADDR:PORT or tls://ADDR:PORT; repeatable, alone or beside
    /// interfaces. With --hep-password-file, packets without that password are refused.
    #[arg(id = "hep_listen", long = "hep-listen", value_name = "URL")]
    pub listen: Option<Vec<Endpoint>>,
    /// PEM certificate chain of a tls:// --hep-listen (needs --hep-key).
    #[arg(
        id = "hep_cert",
        long = "hep-cert",
        value_name = "FILE",
        requires = "hep_key"
    )]
    pub cert: Option<PathBuf>,
    /// PEM private key of --hep-cert.
    #[arg(
        id = "hep_key",
        long = "hep-key",
        value_name = "FILE",
        requires = "hep_cert"
    )]
    pub key: Option<PathBuf>,
    /// PEM certificates trusted for tls:// collectors [default: the system's].
    #[arg(long = "hep-ca", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// `[radius]`: each call leg as RADIUS accounting (RFC 2866): a Start when it is answered,
/// Interim-Updates while it lasts, and its record as the Stop, through a spool of its own.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RadiusLayer {
    /// Send each record as RADIUS accounting to this server (HOST or HOST:PORT, port 1813
    /// by default); repeatable: tried in order, the next when one does not answer
    /// [default: none].
    #[arg(id = "radius", long = "radius", value_name = "HOST[:PORT]")]
    pub servers: Option<Vec<String>>,
    /// The shared secret, first line of this file (needed with --radius).
    #[arg(
        id = "radius_secret_file",
        long = "radius-secret-file",
        value_name = "FILE"
    )]
    pub secret_file: Option<PathBuf>,
    /// NAS-Identifier in every request [default: the sensor's node name].
    #[arg(
        id = "radius_nas_identifier",
        long = "radius-nas-identifier",
        value_name = "NAME"
    )]
    pub nas_identifier: Option<String>,
    /// Send an Interim-Update this often (capture time) while an answered call lasts
    /// [default: none].
    #[arg(
        id = "radius_interim",
        long = "radius-interim",
        value_name = "SECS",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub interim_secs: Option<u32>,
    /// Send an unanswered call as Acct-Status-Type Failed (15) rather than a Stop of no
    /// time.
    #[arg(id = "radius_failed", long = "radius-failed")]
    #[serde(default)]
    pub failed: bool,
    /// Spool directory holding records until a RADIUS server acknowledges them [default:
    /// the PostgreSQL spool's directory with `-radius` added].
    #[arg(id = "radius_spool", long = "radius-spool", value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Seconds to wait for the first answer; each retransmission waits twice as long
    /// [default: 2].
    #[arg(id = "radius_timeout", long = "radius-timeout", value_name = "SECS")]
    pub timeout_secs: Option<f64>,
    /// Retransmissions to one server before the next is tried [default: 3].
    #[arg(id = "radius_retries", long = "radius-retries", value_name = "N")]
    pub retries: Option<u32>,
    /// Attributes beside RFC 2866's and Cisco's: `kamailio` adds acc_radius's Sip-* ones
    /// [default: cisco].
    #[arg(id = "radius_dictionary", long = "radius-dictionary", value_enum)]
    pub dictionary: Option<Dictionary>,
}

/// `[rates]`: the rate deck that prices calls in the web API and its reports.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RatesLayer {
    /// Rate deck: CSV with prefix, description, price_per_min, min_s, increment_s
    /// [default: none].
    #[arg(long = "rates", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Country code national numbers are given before rating (49, 1) [default: none].
    #[arg(long = "rates-country-code", value_name = "DIGITS")]
    pub country_code: Option<String>,
    /// Prefix dialled before a country code, taken off before rating (00, 011)
    /// [default: none].
    #[arg(long = "rates-international-prefix", value_name = "DIGITS")]
    pub international_prefix: Option<String>,
    /// Prefix dialled before a national number, replaced by the country code (0)
    /// [default: none].
    #[arg(long = "rates-national-prefix", value_name = "DIGITS")]
    pub national_prefix: Option<String>,
}

/// `[sensor]`: the sensor's name and what it watches.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct SensorLayer {
    /// Sensor name written into each record [default: host name].
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// A monitored SIP node (address or CIDR), for the call direction and the capture
    /// filter; repeatable.
    #[arg(long = "host", value_name = "ADDR")]
    pub hosts: Option<Vec<HostPrefix>>,
    /// SIP ports and ranges, comma-separated (5060,5080-5090). Given, only these are read;
    /// otherwise files are read on 5060, 5061, 5080 and any port whose traffic starts with a
    /// SIP start line, and live captures take 5060, 5061 and 5080.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    pub ports: Option<Vec<PortRange>>,
    /// Header whose value links B2BUA legs into one call; repeatable, first found wins
    /// [default: X-CollateID].
    #[arg(long = "collate-header", value_name = "NAME")]
    pub collate_headers: Option<Vec<String>>,
    /// Seconds between counter snapshots during a run (PostgreSQL's sensor_stats); 0: only
    /// at the end [default: 60].
    #[arg(long = "stats-interval", value_name = "SECS")]
    pub stats_interval_secs: Option<u64>,
}

/// `[capture]`: the live sensor.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct CaptureLayer {
    /// Interface to capture on; repeatable: one sensor, one call tracker over all of them.
    /// `IFACE:MODE` captures that one in its own mode (`-i eth1:xdp -i eth2:socket`).
    #[arg(short = 'i', long = "interface", value_name = "IFACE[:MODE]")]
    #[serde(default, alias = "interface", deserialize_with = "one_or_many")]
    pub interfaces: Option<Vec<CaptureInterface>>,
    /// How frames are picked: `xdp`, spycraft's XDP program (a mirror port: ingress only);
    /// `socket`, its socket filter on an AF_PACKET socket (beside the SIP service: both
    /// directions); `pcap`, libpcap with the generated BPF filter (portable) [default: pcap].
    #[arg(long, value_enum)]
    pub mode: Option<CaptureMode>,
    /// XDP only: what becomes of the interface's frames once copied. `drop` is for a
    /// dedicated mirror port whose frames nothing else on the box needs [default: pass].
    #[arg(long, value_enum)]
    pub xdp_action: Option<XdpAction>,
    /// XDP only: `native` (driver), `generic` (skb), or `auto`: native when the driver has
    /// it, else generic [default: auto].
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpAttach>,
    /// pcap mode: this pcap-filter expression instead of the generated one (`""` keeps every
    /// frame).
    #[arg(long, value_name = "EXPR")]
    pub pcap_filter: Option<String>,
    /// xdp and socket modes: size of the kernel's ring buffer of selected frames, in MiB
    /// [default: 16].
    #[arg(long, value_name = "MIB")]
    pub ring_mb: Option<u32>,
    /// Bytes of each frame kept [default: 65535 for pcap; 9216, the most, for xdp and socket].
    #[arg(long, value_name = "BYTES")]
    pub snap_len: Option<u32>,
    /// pcap mode: kernel buffer for frames waiting to be read, in MiB [default: 32].
    #[arg(long, value_name = "MIB")]
    pub buffer_mb: Option<u32>,
    /// A line of counters on stderr every 10 s (kernel or libpcap counters, SIP messages,
    /// parse errors, calls); twice (`-vv`, xdp and socket modes): also the kernel programs'
    /// log of every frame they select.
    #[arg(short, long, action = clap::ArgAction::Count)]
    #[serde(default)]
    pub verbose: u8,
    /// Also write the captured frames here (pcap with nanosecond timestamps).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Write pcapng instead of pcap.
    #[arg(long)]
    #[serde(default)]
    pub pcapng: bool,
    /// Start a new file after this many megabytes (10^6 bytes, as tcpdump; fractions allowed):
    /// FILE-0000.pcap, FILE-0001.pcap, …
    #[arg(short = 'C', long = "rotate-mb", value_name = "MB")]
    pub rotate_mb: Option<f64>,
    /// Start a new file every this many seconds of capture time.
    #[arg(short = 'G', long = "rotate-secs", value_name = "SECS")]
    pub rotate_secs: Option<u64>,
    /// With -C or -G: keep this many files, overwriting the oldest.
    #[arg(short = 'W', long = "ring-files", value_name = "N")]
    pub ring_files: Option<u32>,
    /// Once capturing, run as this user (its outputs, spool and -w directory must be
    /// writable by it). Capabilities are dropped after the attach either way.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// `[records]`: where the records go.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RecordsLayer {
    /// Output format [default: table on a terminal, jsonl otherwise].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write records here instead of standard output.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// One row per call, its legs (across B2BUAs, by collation id) nested; jsonl: a `legs`
    /// array. Not with csv.
    #[arg(long)]
    #[serde(default)]
    pub calls: bool,
    /// jsonl: the records in a stable order (by INVITE time, then Call-ID and From tag)
    /// without what changes every run (`id`, `node`, the times of day), written at the end:
    /// an expected file to review once (`--expect`).
    #[arg(long)]
    #[serde(default)]
    pub stable: bool,
    /// No summary line on stderr.
    #[arg(short, long)]
    #[serde(default)]
    pub quiet: bool,
}

/// `[calls]`: how calls are followed.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct CallsLayer {
    /// Cores to use: 1 runs everything on one thread; 2 reads on one and tracks calls on
    /// another, sharing the parsing between them by how busy each is [default: 2].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    #[serde(default, deserialize_with = "one_or_two")]
    pub threads: Option<u8>,
    /// Most calls held at once; beyond it the oldest is written early (counted as evicted)
    /// [default: 250000].
    #[arg(long, value_name = "N")]
    pub max_live_calls: Option<usize>,
    /// End an answered call with no BYE after this many seconds without in-dialog traffic
    /// [default: 14400].
    #[arg(long = "call-timeout", value_name = "SECS")]
    pub call_timeout_secs: Option<u32>,
    /// End a ringing call with no final response after this many seconds (Timer C)
    /// [default: 180].
    #[arg(long = "ring-timeout", value_name = "SECS")]
    pub ring_timeout_secs: Option<u32>,
}

/// `[postgres]`: where records go in PostgreSQL, and how they wait for it.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct PostgresLayer {
    /// Write records to this PostgreSQL database (URL or key=value string; sslmode and
    /// sslrootcert as libpq's). Its password is never printed.
    #[arg(long = "postgres", value_name = "URL")]
    pub url: Option<String>,
    /// Read the database password from this file (first line) when the URL has none;
    /// otherwise PGPASSWORD is used.
    #[arg(long = "postgres-password-file", value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Spool directory holding records until the database commits them
    /// [default: /var/spool/spycraft/NODE as root, else ~/.local/state/spycraft/spool/NODE].
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Undelivered records the spool may hold, in MiB, before reading waits for the
    /// database [default: 1024].
    #[arg(long, value_name = "MIB")]
    pub spool_max_mb: Option<u64>,
    /// When spooled records are forced to disk [default: interval].
    #[arg(long, value_enum)]
    pub spool_fsync: Option<FsyncPolicy>,
    /// Records per database transaction [default: 1000].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Drop daily partitions older than this many days.
    #[arg(long, value_name = "DAYS")]
    pub retention_days: Option<u32>,
    /// At the end of a run, how long to keep trying an unreachable database or HEP collector
    /// [default: 30].
    #[arg(long = "drain-timeout", value_name = "SECS")]
    pub drain_timeout_secs: Option<u64>,
    /// Also write every SIP message to the `sip_message` table, for the call pages of
    /// `serve --postgres` (same retention as the records).
    #[arg(long)]
    #[serde(default)]
    pub store_messages: bool,
}

/// `interfaces` in a file: a list, or one name (`interface = "eth1"`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<CaptureInterface>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(CaptureInterface),
        Many(Vec<CaptureInterface>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(i) => vec![i],
        OneOrMany::Many(list) => list,
    }))
}

/// `threads` in a file: 1 or 2, as the flag.
fn one_or_two<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    match u8::deserialize(d)? {
        n @ 1..=2 => Ok(Some(n)),
        n => Err(serde::de::Error::custom(format_args!(
            "{n} threads: expected 1 or 2"
        ))),
    }
}

/// Fills what the higher source left open from the lower one.
trait Fallback {
    fn or_from(self, lower: Self) -> Self;
}

impl<T> Fallback for Option<T> {
    fn or_from(self, lower: Self) -> Self {
        self.or(lower)
    }
}

/// A switch is on when either source turns it on.
impl Fallback for bool {
    fn or_from(self, lower: Self) -> Self {
        self || lower
    }
}

/// A count (`-vv`) given on the command line replaces the file's.
impl Fallback for u8 {
    fn or_from(self, lower: Self) -> Self {
        if self > 0 {
            self
        } else {
            lower
        }
    }
}

/// `over` for each section, naming every field: a field added to a section and not here
/// does not compile.
macro_rules! layered {
    ($($section:ident { $($field:ident),* $(,)? })*) => {$(
        impl $section {
            /// These settings, with what they leave open taken from `lower`.
            pub fn over(self, lower: Self) -> Self {
                Self { $($field: self.$field.or_from(lower.$field)),* }
            }
        }

        impl Fallback for $section {
            fn or_from(self, lower: Self) -> Self {
                self.over(lower)
            }
        }
    )*};
}

layered! {
    Layer {
        sensor, capture, records, calls, postgres, http, rates, hep, radius, peer_groups, alerts,
        alert_rules,
    }
    AlertsLayer { output, syslog }
    RadiusLayer {
        servers, secret_file, nas_identifier, interim_secs, failed, spool, timeout_secs,
        retries, dictionary,
    }
    HepLayer {
        destinations, node_id, node_name, password_file, rate, queue, cdr, ca, listen, cert, key,
    }
    HttpLayer {
        listen, linger_secs, token_file, users_file, cert, key, keep_records, keep_messages_mb,
        query_timeout_secs,
    }
    RatesLayer { file, country_code, international_prefix, national_prefix }
    SensorLayer { node, hosts, ports, collate_headers, stats_interval_secs }
    CaptureLayer {
        interfaces, mode, xdp_action, xdp_mode, pcap_filter, ring_mb, snap_len, buffer_mb,
        verbose, write, pcapng, rotate_mb, rotate_secs, ring_files, user,
    }
    RecordsLayer { format, output, calls, stable, quiet }
    CallsLayer { threads, max_live_calls, call_timeout_secs, ring_timeout_secs }
    PostgresLayer {
        url, password_file, spool, spool_max_mb, spool_fsync, batch_size, retention_days,
        drain_timeout_secs, store_messages,
    }
}
