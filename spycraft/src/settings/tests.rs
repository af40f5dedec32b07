// SPDX-License-Identifier: AGPL-3.0-or-later
use std::path::Path;

use super::*;

/// Every key a settings file can hold, each set away from its default.
const EVERY_SETTING: &str = r#"
[sensor]
node = "sbc-east-1"
hosts = ["10.0.0.0/24", "2001:db8::5"]
ports = [5070, "5080-5090"]
collate_headers = ["X-CID", "Session-ID"]
stats_interval_secs = 15

[capture]
interfaces = ["eth1", "eth2:pcap"]
mode = "xdp"
xdp_action = "drop"
xdp_mode = "generic"
pcap_filter = "udp"
ring_mb = 64
snap_len = 4096
buffer_mb = 8
verbose = 2
write = "/var/lib/spycraft/sip.pcap"
pcapng = true
rotate_mb = 100.5
rotate_secs = 3600
ring_files = 24
user = "spycraft"

[records]
format = "csv"
output = "/var/log/spycraft/cdr.csv"
calls = true
stable = false
quiet = true

[calls]
threads = 1
max_live_calls = 5000
call_timeout_secs = 7200
ring_timeout_secs = 90

[postgres]
url = "postgresql://spycraft@db.example/cdr?sslmode=verify-full"
password_file = "/etc/spycraft/pgpassword"
spool = "/srv/spool"
spool_max_mb = 256
spool_fsync = "always"
batch_size = 50
retention_days = 90
drain_timeout_secs = 5
store_messages = true

[http]
listen = "[::1]:9464"
linger_secs = 30
token_file = "/etc/spycraft/tokens"
keep_records = 5000
keep_messages_mb = 16
query_timeout_secs = 2.5

[rates]
file = "/etc/spycraft/rates.csv"
country_code = "49"
international_prefix = "00"
national_prefix = "0"

[hep]
destinations = ["udp://homer.example:9060", "tls://[2001:db8::9]:9061"]
node_id = 2001
node_name = "sbc-east-1-hep"
password_file = "/etc/spycraft/hep-password"
rate = 5000
queue = 1000
cdr = true
ca = "/etc/spycraft/homer-ca.pem"
listen = ["udp://0.0.0.0:9060", "tls://0.0.0.0:9061"]
cert = "/etc/spycraft/hep.pem"
key = "/etc/spycraft/hep.key"

[radius]
servers = ["192.0.2.10", "radius2.example:1646"]
secret_file = "/etc/spycraft/radius-secret"
nas_identifier = "sbc-east-1-nas"
interim_secs = 300
failed = true
spool = "/var/spool/spycraft/radius"
timeout_secs = 1.5
retries = 5
dictionary = "kamailio"

[[peer_group]]
name = "carrier-a"
cidrs = ["192.0.2.0/24"]

[[peer_group]]
name = "pbx"
cidrs = ["2001:db8::/32", "10.1.0.0/16"]
"#;

fn file(text: &str) -> Layer {
    parse(text, Path::new("sensor.toml")).expect("valid settings")
}

fn range(first: u16, last: u16) -> PortRange {
    PortRange { first, last }
}

#[test]
fn a_file_sets_every_setting() {
    let s = Settings::resolve(Layer::default(), file(EVERY_SETTING));
    // RADIUS asks the tracker for its Starts and Interim-Updates.
    assert_eq!(
        s.tracker().progress,
        ProgressReports {
            answers: true,
            interim: Some(Duration::from_secs(300)),
        }
    );
    let host = |h: &str| h.parse::<HostPrefix>().expect("host");
    assert_eq!(
        s.sensor,
        SensorSettings {
            node: "sbc-east-1".into(),
            hosts: vec![host("10.0.0.0/24"), host("2001:db8::5")],
            ports: Some(vec![range(5070, 5070), range(5080, 5090)]),
            collate_headers: vec!["X-CID".into(), "Session-ID".into()],
            stats_interval_secs: 15,
        }
    );
    assert_eq!(
        s.capture,
        CaptureSettings {
            interfaces: vec![
                CaptureInterface {
                    name: "eth1".into(),
                    mode: None,
                },
                CaptureInterface {
                    name: "eth2".into(),
                    mode: Some(CaptureMode::Pcap),
                },
            ],
            mode: CaptureMode::Xdp,
            xdp_action: XdpAction::Drop,
            xdp_mode: XdpAttach::Generic,
            pcap_filter: Some("udp".into()),
            ring_mb: 64,
            snap_len: Some(4096),
            buffer_mb: 8,
            verbose: 2,
            write: Some("/var/lib/spycraft/sip.pcap".into()),
            pcapng: true,
            rotate_mb: Some(100.5),
            rotate_secs: Some(3600),
            ring_files: Some(24),
            user: Some("spycraft".into()),
        }
    );
    assert_eq!(
        s.records,
        RecordSettings {
            format: Some(Format::Csv),
            output: Some("/var/log/spycraft/cdr.csv".into()),
            calls: true,
            stable: false,
            quiet: true,
        }
    );
    assert_eq!(
        s.calls,
        CallSettings {
            threads: 1,
            max_live_calls: 5000,
            call_timeout_secs: 7200,
            ring_timeout_secs: 90,
        }
    );
    assert_eq!(
        s.postgres,
        PostgresSettings {
            url: Some("postgresql://spycraft@db.example/cdr?sslmode=verify-full".into()),
            password_file: Some("/etc/spycraft/pgpassword".into()),
            spool: "/srv/spool".into(),
            spool_max_mb: 256,
            spool_fsync: FsyncPolicy::Always,
            batch_size: 50,
            retention_days: Some(90),
            drain_timeout_secs: 5,
            store_messages: true,
        }
    );
    assert_eq!(
        s.http,
        HttpSettings {
            listen: Some("[::1]:9464".parse().expect("address")),
            linger_secs: 30,
            token_file: Some("/etc/spycraft/tokens".into()),
            users_file: None,
            cert: None,
            key: None,
            keep_records: 5000,
            keep_messages_mb: 16,
            query_timeout_secs: 2.5,
        }
    );
    assert_eq!(
        s.hep,
        HepSettings {
            destinations: vec![
                "udp://homer.example:9060".parse().expect("endpoint"),
                "tls://[2001:db8::9]:9061".parse().expect("endpoint"),
            ],
            node_id: Some(2001),
            node_name: "sbc-east-1-hep".into(),
            password_file: Some("/etc/spycraft/hep-password".into()),
            rate: 5000,
            queue: 1000,
            cdr: true,
            ca: Some("/etc/spycraft/homer-ca.pem".into()),
            listen: vec![
                "udp://0.0.0.0:9060".parse().expect("endpoint"),
                "tls://0.0.0.0:9061".parse().expect("endpoint"),
            ],
            cert: Some("/etc/spycraft/hep.pem".into()),
            key: Some("/etc/spycraft/hep.key".into()),
        }
    );
    assert_eq!(s.rates.file, Some("/etc/spycraft/rates.csv".into()));
    assert_eq!(s.rates.numbering.international_prefix, "00");
    let names: Vec<&str> = s.peer_groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["carrier-a", "pbx"]);
    assert_eq!(s.peer_groups[1].cidrs.len(), 2);
}

/// The printed settings are a settings file giving the same settings, with every key.
#[test]
fn printed_settings_read_back_the_same() {
    let s = Settings::resolve(Layer::default(), file(EVERY_SETTING));
    let printed = s.to_toml();
    assert_eq!(Settings::resolve(Layer::default(), file(&printed)), s);
    let keys = |text: &str| {
        let table: toml::Table = toml::from_str(text).expect("toml");
        let mut keys: Vec<String> = table
            .iter()
            .flat_map(|(section, v)| {
                // Sections, and arrays of tables (`[[peer_group]]`).
                let tables: Vec<&toml::Table> = match v {
                    toml::Value::Array(items) => {
                        items.iter().filter_map(|i| i.as_table()).collect()
                    }
                    other => vec![other.as_table().expect("sections only")],
                };
                tables
                    .into_iter()
                    .flat_map(|t| t.keys())
                    .map(move |k| format!("{section}.{k}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&printed), keys(EVERY_SETTING));

    let defaults = Settings::resolve(Layer::default(), Layer::default());
    assert_eq!(
        Settings::resolve(Layer::default(), file(&defaults.to_toml())),
        defaults
    );
}

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let flags = Layer {
        sensor: SensorLayer {
            node: Some("from-flag".into()),
            ..SensorLayer::default()
        },
        capture: CaptureLayer {
            mode: Some(CaptureMode::Socket),
            ..CaptureLayer::default()
        },
        ..Layer::default()
    };
    let s = Settings::resolve(
        flags,
        file("[sensor]\nnode = \"from-file\"\nstats_interval_secs = 5\n[capture]\nring_mb = 4\n"),
    );
    assert_eq!(s.sensor.node, "from-flag");
    assert_eq!(s.sensor.stats_interval_secs, 5);
    assert_eq!(s.capture.mode, CaptureMode::Socket);
    assert_eq!(s.capture.ring_mb, 4);
    // Not given anywhere: the defaults, the snap length the mode's.
    assert_eq!(s.capture.snap_len, None);
    assert_eq!(s.capture.snap_len_for(s.capture.mode), MAX_KERNEL_SNAP_LEN);
    assert_eq!(s.capture.snap_len_for(CaptureMode::Pcap), 65535);
    assert_eq!(s.calls.threads, 2);
    assert_eq!(s.sensor.collate_headers, ["X-CollateID"]);
    assert_eq!(s.postgres.spool_fsync, FsyncPolicy::Interval);
    assert_eq!(s.postgres.spool.file_name(), Some("from-flag".as_ref()));
}

#[test]
fn the_password_is_never_printed() {
    let s = Settings::resolve(
        Layer::default(),
        file("[postgres]\nurl = \"postgresql://spy:hunter2@db/cdr\"\n"),
    );
    let printed = s.to_toml();
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(
        printed.contains("url = \"postgresql://spy:********@db/cdr\""),
        "{printed}"
    );
}

#[test]
fn bad_values_are_named_with_their_line() {
    let error = |text: &str| {
        parse(text, Path::new("s.toml"))
            .expect_err("refused")
            .to_string()
    };
    let e = error("[capture]\ninterface = \"eth0\"\nmode = \"xdpp\"\n");
    assert!(
        e.starts_with("s.toml line 3, [capture] mode: unknown variant `xdpp`"),
        "{e}"
    );
    let e = error("[calls]\nthreads = 3\n");
    assert_eq!(
        e,
        "s.toml line 2, [calls] threads: 3 threads: expected 1 or 2"
    );
    let e = error("[sensor]\nhosts = [\"pbx.example\"]\n");
    assert!(
        e.starts_with("s.toml line 2, [sensor] hosts: `pbx.example` is not an IP address"),
        "{e}"
    );
    let e = error("[postgres]\nspool_fsync = \"sometimes\"\n");
    assert!(e.contains("line 2, [postgres] spool_fsync"), "{e}");
}

#[test]
fn reads_the_documented_example() {
    let doc = include_str!("mod.rs");
    let example: String = doc
        .lines()
        .skip_while(|l| !l.starts_with("//! ```toml"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| l.trim_start_matches("//!").trim_start())
        .collect::<Vec<_>>()
        .join("\n");
    let s = Settings::resolve(Layer::default(), file(&example));
    assert_eq!(s.sensor.node, "sbc-east-1");
    assert_eq!(s.sip_ports().ports.len(), 2);
    assert_eq!(s.postgres.retention_days, Some(90));
    assert_eq!(s.capture.mode, CaptureMode::Xdp);
}

/// One interface may be named alone, as before lists were taken; a name with a colon that
/// is not a mode stays whole.
#[test]
fn an_interface_may_be_one_name() {
    let s = Settings::resolve(
        Layer::default(),
        file("[capture]\ninterface = \"eth0:1\"\n"),
    );
    assert_eq!(
        s.capture.interfaces,
        [CaptureInterface {
            name: "eth0:1".into(),
            mode: None,
        }]
    );
    assert!("".parse::<CaptureInterface>().is_err());
    assert!(":xdp".parse::<CaptureInterface>().is_err());
}

/// The reference of every key in docs/cli.md is a settings file that reads.
#[test]
fn reads_the_reference_in_the_manual() {
    let manual = include_str!("../../../docs/cli.md");
    let start = manual.find("```toml\n[sensor]").expect("the reference") + "```toml\n".len();
    let end = start + manual[start..].find("```").expect("its end");
    let s = Settings::resolve(Layer::default(), file(&manual[start..end]));
    assert_eq!(s.capture.mode, CaptureMode::Xdp);
    assert_eq!(s.postgres.retention_days, Some(90));
    assert_eq!(s.capture.user.as_deref(), Some("spycraft"));
    assert_eq!(
        s.http.listen,
        Some("127.0.0.1:9464".parse().expect("address"))
    );
    assert_eq!(s.peer_groups.len(), 1);
    assert_eq!(s.peer_groups().expect("valid").len(), 1);
    assert_eq!(s.radius.servers.len(), 2);
    assert_eq!(s.radius.dictionary, Dictionary::Cisco);
}

/// Files are paced and wait for the collector; a live capture is neither; the node name
/// defaults to the sensor's.
#[test]
fn hep_export_paces_files_and_never_holds_a_live_capture() {
    let hep = |extra: &str| {
        let text = format!(
            "[sensor]\nnode = \"n1\"\n[hep]\ndestinations = [\"udp://127.0.0.1:9060\"]\n{extra}"
        );
        Settings::resolve(Layer::default(), file(&text))
    };
    let s = hep("");
    assert_eq!(s.hep.node_name, "n1");
    let files = s
        .hep(false)
        .expect("no secret to read")
        .expect("a collector");
    assert_eq!((files.rate, files.wait_when_full), (Some(20_000), true));
    assert_eq!(files.node_name, "n1");
    let live = s
        .hep(true)
        .expect("no secret to read")
        .expect("a collector");
    assert_eq!((live.rate, live.wait_when_full), (None, false));
    let unpaced = hep("rate = 0\n")
        .hep(false)
        .expect("ok")
        .expect("a collector");
    assert_eq!(unpaced.rate, None);
    let missing = hep("password_file = \"/nonexistent/hep\"\n").hep(false);
    assert!(missing.is_err_and(|e| e.path == "/nonexistent/hep"));
    let none = Settings::resolve(Layer::default(), Layer::default());
    assert!(none.hep(false).expect("ok").is_none());
}

#[test]
fn radius_needs_a_secret_and_spools_beside_the_database() {
    let s = Settings::resolve(
        Layer::default(),
        file("[postgres]\nspool = \"/tmp/s\"\n[radius]\nservers = [\"127.0.0.1\"]\n"),
    );
    assert_eq!(s.radius.spool, PathBuf::from("/tmp/s-radius"));
    assert_eq!(s.radius.nas_identifier, s.sensor.node);
    assert!(matches!(
        s.radius(false, true),
        Err(RadiusSettingsError::NoSecret)
    ));
    let none = Settings::resolve(Layer::default(), Layer::default());
    assert!(none
        .radius(false, true)
        .expect("no servers, no error")
        .is_none());
}
