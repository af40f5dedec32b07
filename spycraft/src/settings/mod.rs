// SPDX-License-Identifier: AGPL-3.0-or-later
//! Settings, resolved once: each comes from the command line, else the settings file
//! (`--config`), else its default, and every default is written here and only here.
//!
//! The file holds every setting a flag can give, in sections; `spycraft config` prints the
//! effective settings in this form (the database password never shown):
//!
//! ```toml
//! [sensor]
//! node = "sbc-east-1"
//! hosts = ["10.0.0.0/24"]
//! ports = [5060, "5080-5090"]
//! collate_headers = ["X-CollateID", "X-CID"]
//! stats_interval_secs = 60
//!
//! [capture]
//! interface = "eth1"
//! mode = "xdp"
//! xdp_action = "pass"
//! xdp_mode = "auto"
//! ring_mb = 16
//!
//! [records]
//! format = "jsonl"
//! output = "/var/log/spycraft/cdr.jsonl"
//!
//! [calls]
//! threads = 2
//! call_timeout_secs = 14400
//!
//! [postgres]
//! url = "postgresql://spycraft@db.example/cdr?sslmode=verify-full"
//! password_file = "/etc/spycraft/pgpassword"
//! spool = "/var/spool/spycraft"
//! spool_max_mb = 1024
//! spool_fsync = "interval"
//! batch_size = 1000
//! retention_days = 90
//! drain_timeout_secs = 30
//! store_messages = false
//!
//! [http]
//! listen = "127.0.0.1:9464"
//! keep_records = 100000
//! keep_messages_mb = 64
//!
//! [hep]
//! destinations = ["udp://homer.example:9060"]
//! node_id = 2001
//! node_name = "sbc-east-1"
//! password_file = "/etc/spycraft/hep-password"
//! rate = 20000
//! queue = 65536
//! cdr = false
//! listen = ["udp://0.0.0.0:9060"]
//!
//! [rates]
//! file = "/etc/spycraft/rates.csv"
//! country_code = "49"
//! international_prefix = "00"
//! national_prefix = "0"
//!
//! [[peer_group]]
//! name = "carrier-a"
//! cidrs = ["192.0.2.0/24", "2001:db8::/32"]
//!
//! [alerts]
//! output = "/var/log/spycraft/alerts.jsonl"
//!
//! [[alert]]
//! rule = "invite_flood"
//! threshold = 200
//! window_secs = 10
//! ```

mod file;
mod layer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use spycraft_common::{PortRange, XdpAction, MAX_KERNEL_SNAP_LEN};

pub use file::{load, parse, SettingsError};
pub use layer::{
    AlertsLayer, CallsLayer, CaptureLayer, HepLayer, HttpLayer, Layer, PostgresLayer, RadiusLayer,
    RatesLayer, RecordsLayer, SensorLayer,
};

use crate::accounting::{Numbering, RateDeck, RatesError};
use crate::alert::{RuleError, RuleLayer, Rules, SyslogTarget};
use crate::call::{HostPrefix, MonitoredHosts, ProgressReports, Timers, TrackerConfig};
use crate::capture::{CaptureInterface, CaptureMode, XdpAttach};
use crate::filter::{FilterConfig, FilterError};
use crate::hep::export::QUEUED_PACKETS;
use crate::hep::{Endpoint, ExportConfig, ListenConfig};
use crate::http::web::DEFAULT_QUERY_TIMEOUT;
use crate::monitor::peers::{self, PeerGroup, PeerGroupError, PeerGroups};
use crate::pipeline::{PipelineConfig, SipPorts, DEFAULT_COLLATION_HEADER};
use crate::secret::{read_secret, SecretError};
use crate::sink::postgres::{redact_password, PostgresConfig, PostgresError, Target};
use crate::sink::radius::{Dictionary, RadiusConfig, Timing};
use crate::sink::spool::{FsyncPolicy, SpoolConfig};
use crate::sink::Format;
use crate::store::{DEFAULT_KEEP_MESSAGES_MB, DEFAULT_KEEP_RECORDS};

/// Counter snapshots during a run, in seconds.
const STATS_INTERVAL_SECS: u64 = 60;
/// The kernel programs' ring buffer, in MiB.
const RING_MB: u32 = 16;
/// libpcap's kernel buffer, in MiB.
const BUFFER_MB: u32 = 32;
/// Bytes of a frame libpcap keeps: all of it.
const PCAP_SNAP_LEN: u32 = 65535;
/// Reading on one thread, tracking on another.
const THREADS: u8 = 2;
/// What the spool may hold before reading waits, in MiB.
const SPOOL_MAX_MB: u64 = 1024;
/// Records per database transaction.
const BATCH_SIZE: usize = 1000;
/// How long the end of a run waits for an unreachable database, in seconds.
const DRAIN_TIMEOUT_SECS: u64 = 30;
/// HEP packets a second per collector when reading files.
const HEP_RATE: u32 = 20_000;

/// Every setting, decided.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    /// `[sensor]`
    pub sensor: SensorSettings,
    /// `[capture]`
    pub capture: CaptureSettings,
    /// `[records]`
    pub records: RecordSettings,
    /// `[calls]`
    pub calls: CallSettings,
    /// `[postgres]`
    pub postgres: PostgresSettings,
    /// `[http]`
    pub http: HttpSettings,
    /// `[rates]`
    pub rates: RatesSettings,
    /// `[hep]`
    pub hep: HepSettings,
    /// `[radius]`
    pub radius: RadiusSettings,
    /// `[[peer_group]]`
    #[serde(rename = "peer_group", skip_serializing_if = "Vec::is_empty")]
    pub peer_groups: Vec<PeerGroup>,
    /// `[alerts]`
    pub alerts: AlertSettings,
    /// `[[alert]]`: the rules changed from their defaults, as given.
    #[serde(rename = "alert", skip_serializing_if = "Vec::is_empty")]
    pub alert_rules: Vec<RuleLayer>,
}

/// The HTTP endpoint. Fields as in [`HttpLayer`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct HttpSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    pub linger_secs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    pub keep_records: usize,
    pub keep_messages_mb: usize,
    pub query_timeout_secs: f64,
}

/// HEP export. Fields as in [`HepLayer`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct HepSettings {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u32>,
    pub node_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    pub rate: u32,
    pub queue: usize,
    pub cdr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// Alerting. Fields as in [`AlertsLayer`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AlertSettings {
    /// Where alerts go as JSON lines (`-`: standard output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    /// Where alerts go as syslog messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syslog: Option<SyslogTarget>,
}

impl AlertSettings {
    /// Whether the rules run: some output wants their alerts.
    pub fn on(&self) -> bool {
        self.output.is_some() || self.syslog.is_some()
    }
}

/// RADIUS accounting. Fields as in [`RadiusLayer`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct RadiusSettings {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    pub nas_identifier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interim_secs: Option<u32>,
    pub failed: bool,
    pub spool: PathBuf,
    pub timeout_secs: f64,
    pub retries: u32,
    pub dictionary: Dictionary,
}

/// Why the RADIUS settings cannot work.
#[derive(Debug, thiserror::Error)]
pub enum RadiusSettingsError {
    /// No shared secret given.
    #[error("--radius needs the shared secret: give --radius-secret-file")]
    NoSecret,
    /// The secret file cannot be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A timeout that is not a positive number of seconds.
    #[error("--radius-timeout {0}: expected a positive number of seconds")]
    Timeout(f64),
    /// An interim interval of no time.
    #[error("--radius-interim 0: expected at least 1 second")]
    Interim,
}

/// The rate deck. Fields as in [`RatesLayer`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct RatesSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    #[serde(flatten)]
    pub numbering: Numbering,
}

/// What every command shares. Fields as in [`SensorLayer`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct SensorSettings {
    pub node: String,
    pub hosts: Vec<HostPrefix>,
    /// None: the default ports, and start-line detection on others when reading files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortRange>>,
    pub collate_headers: Vec<String>,
    pub stats_interval_secs: u64,
}

/// The live sensor. Fields as in [`CaptureLayer`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct CaptureSettings {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<CaptureInterface>,
    pub mode: CaptureMode,
    pub xdp_action: XdpAction,
    pub xdp_mode: XdpAttach,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap_filter: Option<String>,
    pub ring_mb: u32,
    /// Given; otherwise each interface's mode decides ([`CaptureSettings::snap_len_for`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snap_len: Option<u32>,
    pub buffer_mb: u32,
    pub verbose: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write: Option<PathBuf>,
    pub pcapng: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotate_mb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotate_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_files: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl CaptureSettings {
    /// Bytes kept of each frame of an interface captured in `mode`: as given, else all of it
    /// for libpcap and the most the kernel programs copy for theirs.
    pub fn snap_len_for(&self, mode: CaptureMode) -> u32 {
        self.snap_len.unwrap_or(match mode {
            CaptureMode::Pcap => PCAP_SNAP_LEN,
            CaptureMode::Xdp | CaptureMode::Socket => MAX_KERNEL_SNAP_LEN,
        })
    }
}

/// Where the records go. Fields as in [`RecordsLayer`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct RecordSettings {
    /// None: table on a terminal, jsonl otherwise (decided when the output is opened).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    pub calls: bool,
    pub stable: bool,
    pub quiet: bool,
}

/// How calls are followed. Fields as in [`CallsLayer`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct CallSettings {
    pub threads: u8,
    pub max_live_calls: usize,
    pub call_timeout_secs: u32,
    pub ring_timeout_secs: u32,
}

/// The database and its spool. Fields as in [`PostgresLayer`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct PostgresSettings {
    /// Printed without its password.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "url_without_password"
    )]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    pub spool: PathBuf,
    pub spool_max_mb: u64,
    pub spool_fsync: FsyncPolicy,
    pub batch_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    pub drain_timeout_secs: u64,
    pub store_messages: bool,
}

impl Settings {
    /// The command line's settings over the file's, over the defaults.
    pub fn resolve(flags: Layer, file: Layer) -> Self {
        let Layer {
            sensor,
            capture,
            records,
            calls,
            postgres,
            http,
            rates,
            hep,
            radius,
            peer_groups,
            alerts,
            alert_rules,
        } = flags.over(file);
        let node = sensor.node.unwrap_or_else(crate::hostname);
        let spool = postgres.spool.unwrap_or_else(|| default_spool_dir(&node));
        let radius_spool = {
            let mut dir = spool.clone().into_os_string();
            dir.push("-radius");
            PathBuf::from(dir)
        };
        let mode = capture.mode.unwrap_or_default();
        let timers = Timers::default();
        Self {
            capture: CaptureSettings {
                interfaces: capture.interfaces.unwrap_or_default(),
                mode,
                xdp_action: capture.xdp_action.unwrap_or_default(),
                xdp_mode: capture.xdp_mode.unwrap_or_default(),
                pcap_filter: capture.pcap_filter,
                ring_mb: capture.ring_mb.unwrap_or(RING_MB),
                snap_len: capture.snap_len,
                buffer_mb: capture.buffer_mb.unwrap_or(BUFFER_MB),
                verbose: capture.verbose,
                write: capture.write,
                pcapng: capture.pcapng,
                rotate_mb: capture.rotate_mb,
                rotate_secs: capture.rotate_secs,
                ring_files: capture.ring_files,
                user: capture.user,
            },
            records: RecordSettings {
                format: records.format,
                output: records.output,
                calls: records.calls,
                stable: records.stable,
                quiet: records.quiet,
            },
            calls: CallSettings {
                threads: calls.threads.unwrap_or(THREADS),
                max_live_calls: calls
                    .max_live_calls
                    .unwrap_or(TrackerConfig::default().max_live_legs),
                call_timeout_secs: calls.call_timeout_secs.unwrap_or(timers.call_idle_secs),
                ring_timeout_secs: calls.ring_timeout_secs.unwrap_or(timers.ringing_secs),
            },
            postgres: PostgresSettings {
                url: postgres.url,
                password_file: postgres.password_file,
                spool,
                spool_max_mb: postgres.spool_max_mb.unwrap_or(SPOOL_MAX_MB),
                spool_fsync: postgres.spool_fsync.unwrap_or_default(),
                batch_size: postgres.batch_size.unwrap_or(BATCH_SIZE),
                retention_days: postgres.retention_days,
                drain_timeout_secs: postgres.drain_timeout_secs.unwrap_or(DRAIN_TIMEOUT_SECS),
                store_messages: postgres.store_messages,
            },
            http: HttpSettings {
                listen: http.listen,
                linger_secs: http.linger_secs.unwrap_or(0),
                token_file: http.token_file,
                users_file: http.users_file,
                cert: http.cert,
                key: http.key,
                keep_records: http.keep_records.unwrap_or(DEFAULT_KEEP_RECORDS),
                keep_messages_mb: http.keep_messages_mb.unwrap_or(DEFAULT_KEEP_MESSAGES_MB),
                query_timeout_secs: http
                    .query_timeout_secs
                    .unwrap_or(DEFAULT_QUERY_TIMEOUT.as_secs_f64()),
            },
            rates: RatesSettings {
                file: rates.file,
                numbering: Numbering {
                    country_code: rates.country_code.unwrap_or_default(),
                    international_prefix: rates.international_prefix.unwrap_or_default(),
                    national_prefix: rates.national_prefix.unwrap_or_default(),
                },
            },
            peer_groups: peer_groups.unwrap_or_default(),
            alerts: AlertSettings {
                output: alerts.output,
                syslog: alerts.syslog,
            },
            alert_rules: alert_rules.unwrap_or_default(),
            radius: RadiusSettings {
                servers: radius.servers.unwrap_or_default(),
                secret_file: radius.secret_file,
                nas_identifier: radius.nas_identifier.unwrap_or_else(|| node.clone()),
                interim_secs: radius.interim_secs,
                failed: radius.failed,
                spool: radius.spool.unwrap_or(radius_spool),
                timeout_secs: radius.timeout_secs.unwrap_or(2.0),
                retries: radius.retries.unwrap_or(3),
                dictionary: radius.dictionary.unwrap_or_default(),
            },
            hep: HepSettings {
                destinations: hep.destinations.unwrap_or_default(),
                node_id: hep.node_id,
                node_name: hep.node_name.unwrap_or_else(|| node.clone()),
                password_file: hep.password_file,
                rate: hep.rate.unwrap_or(HEP_RATE),
                queue: hep.queue.unwrap_or(QUEUED_PACKETS),
                cdr: hep.cdr,
                ca: hep.ca,
                listen: hep.listen.unwrap_or_default(),
                cert: hep.cert,
                key: hep.key,
            },
            sensor: SensorSettings {
                node,
                hosts: sensor.hosts.unwrap_or_default(),
                ports: sensor.ports,
                collate_headers: sensor
                    .collate_headers
                    .unwrap_or_else(|| vec![DEFAULT_COLLATION_HEADER.to_owned()]),
                stats_interval_secs: sensor.stats_interval_secs.unwrap_or(STATS_INTERVAL_SECS),
            },
        }
    }

    /// The rate deck, when one is configured.
    pub fn rate_deck(&self) -> Result<Option<RateDeck>, RatesError> {
        self.rates
            .file
            .as_deref()
            .map(|path| RateDeck::load(path, self.rates.numbering.clone()))
            .transpose()
    }

    /// How long a web search may take.
    pub fn query_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.http.query_timeout_secs).unwrap_or(DEFAULT_QUERY_TIMEOUT)
    }

    /// The settings as a settings file (`spycraft config`), the password left out.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the settings: {e}\n"))
    }

    /// Which ports files are read on: the ones given, or the defaults plus detection.
    pub fn sip_ports(&self) -> SipPorts {
        match &self.sensor.ports {
            Some(ports) => SipPorts {
                ports: ports.clone(),
                detect_elsewhere: false,
            },
            None => SipPorts::default(),
        }
    }

    /// What a live capture keeps: the ports (or the defaults) of the monitored hosts.
    pub fn capture_filter(&self) -> Result<FilterConfig, FilterError> {
        let ports = self
            .sensor
            .ports
            .clone()
            .unwrap_or_else(|| FilterConfig::default().ports().to_vec());
        let hosts = self.sensor.hosts.iter().map(|h| h.0).collect();
        FilterConfig::new(ports, hosts)
    }

    /// The named peer groups, checked: bounded in number, each named once, none empty.
    pub fn peer_groups(&self) -> Result<PeerGroups, PeerGroupError> {
        peers::check(&self.peer_groups)?;
        Ok(PeerGroups::new(self.peer_groups.clone()))
    }

    /// The alert rules: the defaults changed by the `[[alert]]` tables.
    pub fn alert_rules(&self) -> Result<Rules, RuleError> {
        Rules::new(&self.alert_rules)
    }

    /// How calls are tracked.
    pub fn tracker(&self) -> TrackerConfig {
        TrackerConfig {
            node: self.sensor.node.clone(),
            hosts: MonitoredHosts::new(&self.sensor.hosts),
            timers: Timers {
                call_idle_secs: self.calls.call_timeout_secs,
                ringing_secs: self.calls.ring_timeout_secs,
                ..Timers::default()
            },
            max_live_legs: self.calls.max_live_calls.max(1),
            // RADIUS sends a leg's Start when it is answered and its Interim-Updates while
            // it lasts.
            progress: ProgressReports {
                answers: !self.radius.servers.is_empty(),
                interim: self
                    .radius
                    .interim_secs
                    .filter(|_| !self.radius.servers.is_empty())
                    .map(|secs| Duration::from_secs(secs.into())),
            },
        }
    }

    /// The pipeline of a run reading `ports`; its counter snapshots say `source` took them.
    pub fn pipeline(&self, ports: SipPorts, source: &'static str) -> PipelineConfig {
        PipelineConfig {
            ports,
            collation_headers: self.sensor.collate_headers.clone(),
            tracker: self.tracker(),
            threads: usize::from(self.calls.threads),
            stats_interval: match self.sensor.stats_interval_secs {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            stats_source: source,
            ..PipelineConfig::default()
        }
    }

    /// The HEP listeners of a capture, each with the password packets must carry, if any.
    pub fn hep_listeners(&self) -> Result<Vec<ListenConfig>, SecretError> {
        let h = &self.hep;
        let password = self.hep_password()?;
        let tls = h.cert.clone().zip(h.key.clone());
        Ok(h.listen
            .iter()
            .map(|endpoint| ListenConfig {
                endpoint: endpoint.clone(),
                password: password.clone(),
                tls: tls.clone(),
            })
            .collect())
    }

    /// `--hep-password-file`'s first line.
    fn hep_password(&self) -> Result<Option<Vec<u8>>, SecretError> {
        Ok(self
            .hep
            .password_file
            .as_deref()
            .map(read_secret)
            .transpose()?
            .map(String::into_bytes))
    }

    /// The HEP exporter's settings, `None` when no collector is named; `live`: a capture,
    /// which never waits for a collector nor paces itself.
    pub fn hep(&self, live: bool) -> Result<Option<ExportConfig>, SecretError> {
        let h = &self.hep;
        if h.destinations.is_empty() {
            return Ok(None);
        }
        let password = self.hep_password()?;
        Ok(Some(ExportConfig {
            destinations: h.destinations.clone(),
            agent_id: h.node_id,
            node_name: h.node_name.clone(),
            password,
            rate: (!live && h.rate > 0).then_some(h.rate),
            queue: h.queue.max(1),
            records: h.cdr,
            wait_when_full: !live,
            drain_timeout: Duration::from_secs(self.postgres.drain_timeout_secs),
            ca: h.ca.clone(),
        }))
    }

    /// The RADIUS sink's settings, `None` when no server is named; `live`: a capture;
    /// `report_on_finish`: say what was sent at the end.
    pub fn radius(
        &self,
        live: bool,
        report_on_finish: bool,
    ) -> Result<Option<RadiusConfig>, RadiusSettingsError> {
        let r = &self.radius;
        if r.servers.is_empty() {
            return Ok(None);
        }
        let secret = read_secret(
            r.secret_file
                .as_deref()
                .ok_or(RadiusSettingsError::NoSecret)?,
        )?;
        let timeout = Duration::try_from_secs_f64(r.timeout_secs)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or(RadiusSettingsError::Timeout(r.timeout_secs))?;
        if r.interim_secs == Some(0) {
            return Err(RadiusSettingsError::Interim);
        }
        Ok(Some(RadiusConfig {
            servers: r.servers.clone(),
            secret: secret.into_bytes(),
            nas_identifier: r.nas_identifier.clone(),
            failed: r.failed,
            dictionary: r.dictionary,
            spool: SpoolConfig {
                dir: r.spool.clone(),
                max_bytes: self.postgres.spool_max_mb << 20,
                fsync: self.postgres.spool_fsync,
            },
            timing: Timing {
                timeout,
                retries: r.retries,
            },
            drain_timeout: Duration::from_secs(self.postgres.drain_timeout_secs),
            live,
            report_on_finish,
        }))
    }

    /// The database sink's settings; `None` when no database is named.
    pub fn postgres(
        &self,
        report_on_finish: bool,
    ) -> Result<Option<PostgresConfig>, PostgresError> {
        let p = &self.postgres;
        let Some(url) = &p.url else {
            return Ok(None);
        };
        let node = &self.sensor.node;
        let target = Target::parse(url, p.password_file.as_deref(), &format!("spycraft {node}"))?;
        Ok(Some(PostgresConfig {
            target,
            node: node.clone(),
            spool: SpoolConfig {
                dir: p.spool.clone(),
                max_bytes: p.spool_max_mb << 20,
                fsync: p.spool_fsync,
            },
            batch_size: p.batch_size.max(1),
            retention_days: p.retention_days,
            drain_timeout: Duration::from_secs(p.drain_timeout_secs),
            report_on_finish,
            deck: None,
        }))
    }
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

fn url_without_password<S: serde::Serializer>(
    url: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.serialize_str(&redact_password(url)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests;
