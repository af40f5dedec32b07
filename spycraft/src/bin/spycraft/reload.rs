// SPDX-License-Identifier: AGPL-3.0-or-later
//! SIGHUP for a running capture: read the settings file again and apply, without losing an
//! open call, what can change live: the ports and hosts (the kernel maps or libpcap's filter
//! are rewritten, the program stays attached), the collation headers, the call and ring
//! timeouts and the peer groups. What cannot change live is named in a warning. (The file
//! outputs are reopened by the same signal, on the recording side.)

use std::path::PathBuf;
use std::sync::Arc;

use spycraft::call::MonitoredHosts;
use spycraft::capture::{FilterSlot, LiveFilter};
use spycraft::monitor::Monitor;
use spycraft::pipeline::{ChangeSlot, LiveChanges, SipPorts};
use spycraft::settings::{self, Layer, Settings};

/// The settings keys a running capture takes on a reload.
const LIVE: [&str; 7] = [
    "sensor.ports",
    "sensor.hosts",
    "sensor.collate_headers",
    "calls.call_timeout_secs",
    "calls.ring_timeout_secs",
    "capture.pcap_filter",
    "peer_group",
];

/// What a reload reads and where it leaves what it changes.
pub struct Reloader {
    /// The settings file (`--config`); without one only the command line counts.
    pub path: Option<PathBuf>,
    /// The command line, which wins over the file as at the start.
    pub flags: Layer,
    /// The settings in effect.
    pub current: Settings,
    /// The live sources' filter slots.
    pub filters: Vec<Arc<FilterSlot>>,
    /// The pipeline's change slot.
    pub changes: Arc<ChangeSlot>,
    /// The monitor, for the peer groups.
    pub monitor: Option<Arc<Monitor>>,
}

impl Reloader {
    /// Reads the settings again and applies what changed and can be; a settings file with a
    /// mistake changes nothing.
    pub fn reload(&mut self) {
        let file = match &self.path {
            Some(path) => match settings::load(path) {
                Ok(layer) => layer,
                Err(e) => {
                    eprintln!("spycraft: WARNING: reload: {e}; the settings stay as they were");
                    return;
                }
            },
            None => Layer::default(),
        };
        let new = Settings::resolve(self.flags.clone(), file);
        let changed = changed_keys(&self.current, &new);
        let (live, fixed): (Vec<&String>, Vec<&String>) =
            changed.iter().partition(|key| LIVE.contains(&key.as_str()));
        if !fixed.is_empty() {
            let names: Vec<&str> = fixed.iter().map(|k| k.as_str()).collect();
            eprintln!(
                "spycraft: WARNING: reload: {} cannot change while capturing; restart to apply",
                names.join(", ")
            );
        }
        if live.is_empty() {
            eprintln!("spycraft: reload: nothing to apply live");
            return;
        }
        let filter = match new.capture_filter() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("spycraft: WARNING: reload: {e}; the settings stay as they were");
                return;
            }
        };
        let peers = match new.peer_groups() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("spycraft: WARNING: reload: {e}; the settings stay as they were");
                return;
            }
        };
        self.changes.put(LiveChanges {
            ports: SipPorts {
                ports: filter.ports().to_vec(),
                detect_elsewhere: false,
            },
            collation_headers: new.sensor.collate_headers.clone(),
            hosts: MonitoredHosts::new(&new.sensor.hosts),
            timers: new.tracker().timers,
        });
        for slot in &self.filters {
            slot.put(LiveFilter {
                config: filter.clone(),
                pcap_expression: new.capture.pcap_filter.clone(),
            });
        }
        if let Some(monitor) = &self.monitor {
            if live.iter().any(|k| k.as_str() == "peer_group") {
                monitor.set_peer_groups(peers);
            }
        }
        let names: Vec<&str> = live.iter().map(|k| k.as_str()).collect();
        eprintln!("spycraft: reload: applying {}", names.join(", "));
        // What is in effect now: the live settings new, the rest as they were.
        let current = &mut self.current;
        current.sensor.ports = new.sensor.ports;
        current.sensor.hosts = new.sensor.hosts;
        current.sensor.collate_headers = new.sensor.collate_headers;
        current.calls.call_timeout_secs = new.calls.call_timeout_secs;
        current.calls.ring_timeout_secs = new.calls.ring_timeout_secs;
        current.capture.pcap_filter = new.capture.pcap_filter;
        current.peer_groups = new.peer_groups;
    }
}

/// The keys (`section.key`, or a top-level name) whose values differ between `a` and `b`.
fn changed_keys(a: &Settings, b: &Settings) -> Vec<String> {
    let table = |s: &Settings| toml::Table::try_from(s).unwrap_or_default();
    let (a, b) = (table(a), table(b));
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    let mut changed = Vec::new();
    for name in names {
        match (a.get(name), b.get(name)) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    if x.get(key) != y.get(key) {
                        changed.push(format!("{name}.{key}"));
                    }
                }
            }
            (x, y) if x != y => changed.push(name.clone()),
            _ => {}
        }
    }
    changed
}
