// SPDX-License-Identifier: AGPL-3.0-or-later
//! `--config spycraft.toml`: the same settings as the command-line flags, for a sensor that
//! runs as a service. A flag given on the command line wins over the file.
//!
//! ```toml
//! node = "sbc-east-1"
//! hosts = ["10.0.0.0/24"]
//! ports = [5060, "5080-5090"]
//! collate_headers = ["X-CollateID", "X-CID"]
//! stats_interval_secs = 60
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
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole file; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub node: Option<String>,
    pub hosts: Option<Vec<String>>,
    /// Ports (5060) and ranges ("5080-5090").
    pub ports: Option<Vec<PortSpec>>,
    pub collate_headers: Option<Vec<String>>,
    pub stats_interval_secs: Option<u64>,
    #[serde(default)]
    pub postgres: PostgresSection,
}

/// One entry of `ports`: a number, or a range as text. Checked by
/// [`FileConfig::port_ranges`], so a number out of range is named there as a port.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    Port(i64),
    Range(String),
}

impl FileConfig {
    /// `ports` as ranges, if given.
    pub fn port_ranges(
        &self,
    ) -> Result<Option<Vec<spycraft_common::PortRange>>, crate::filter::FilterError> {
        self.ports
            .as_ref()
            .map(|ports| {
                ports
                    .iter()
                    .map(|p| match p {
                        PortSpec::Port(n) => crate::filter::parse_range(&n.to_string()),
                        PortSpec::Range(text) => crate::filter::parse_range(text),
                    })
                    .collect()
            })
            .transpose()
    }
}

/// `[postgres]`: the flags that start with `--postgres` or `--spool`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    pub url: Option<String>,
    pub password_file: Option<PathBuf>,
    pub spool: Option<PathBuf>,
    pub spool_max_mb: Option<u64>,
    pub spool_fsync: Option<String>,
    pub batch_size: Option<usize>,
    pub retention_days: Option<u32>,
    pub drain_timeout_secs: Option<u64>,
}

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_example() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let c: FileConfig = toml::from_str(&example).expect("the example parses");
        assert_eq!(c.node.as_deref(), Some("sbc-east-1"));
        assert_eq!(
            c.port_ranges().expect("valid ranges").map(|r| r.len()),
            Some(2)
        );
        assert_eq!(c.postgres.retention_days, Some(90));
        assert!(c.postgres.url.is_some_and(|u| u.contains("verify-full")));
    }

    #[test]
    fn refuses_unknown_keys() {
        assert!(toml::from_str::<FileConfig>("nodes = \"x\"").is_err());
        assert!(toml::from_str::<FileConfig>("[postgres]\nurl = 5").is_err());
    }
}
