// SPDX-License-Identifier: AGPL-3.0-or-later
//! The monitored hosts (`--host`) and the call direction they imply.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use super::record::Direction;

/// Addresses and prefixes of the SIP nodes the sensor watches over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonitoredHosts {
    nets: Vec<IpNet>,
}

/// A `--host` value that is neither an address nor a CIDR prefix.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR prefix")]
pub struct BadHost(String);

/// One monitored host as an operator writes it: an address (`192.0.2.10`) or a prefix
/// (`10.1.0.0/16`); read from flags and settings files alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPrefix(pub IpNet);

impl FromStr for HostPrefix {
    type Err = BadHost;

    fn from_str(text: &str) -> Result<Self, BadHost> {
        let v = text.trim();
        IpNet::from_str(v)
            .or_else(|_| IpAddr::from_str(v).map(IpNet::from))
            .map(Self)
            .map_err(|_| BadHost(v.to_owned()))
    }
}

impl std::fmt::Display for HostPrefix {
    /// An address alone when the prefix covers one host, as it was most likely written.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl serde::Serialize for HostPrefix {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HostPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl MonitoredHosts {
    /// Parses addresses (`192.0.2.10`, `2001:db8::1`) and prefixes (`10.1.0.0/16`).
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Self, BadHost> {
        let hosts = values
            .iter()
            .map(|v| v.as_ref().parse())
            .collect::<Result<Vec<HostPrefix>, _>>()?;
        Ok(Self::new(&hosts))
    }

    /// The hosts given.
    pub fn new(hosts: &[HostPrefix]) -> Self {
        Self {
            nets: hosts.iter().map(|h| h.0).collect(),
        }
    }

    /// The prefixes given (addresses as /32 or /128).
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether `ip` is one of the monitored hosts.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Direction of a call from `caller` to `callee`.
    pub fn direction(&self, caller: IpAddr, callee: IpAddr) -> Direction {
        if self.nets.is_empty() {
            return Direction::Unknown;
        }
        match (self.contains(caller), self.contains(callee)) {
            (true, true) => Direction::Internal,
            (true, false) => Direction::Outbound,
            (false, true) => Direction::Inbound,
            (false, false) => Direction::Transit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_directions() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let hosts = MonitoredHosts::parse(&["10.0.0.0/24", "2001:db8::5"]).expect("valid");
        assert_eq!(
            hosts.direction(ip("10.0.0.7"), ip("10.0.0.8")),
            Direction::Internal
        );
        assert_eq!(
            hosts.direction(ip("10.0.0.7"), ip("192.0.2.1")),
            Direction::Outbound
        );
        assert_eq!(
            hosts.direction(ip("192.0.2.1"), ip("2001:db8::5")),
            Direction::Inbound
        );
        assert_eq!(
            hosts.direction(ip("192.0.2.1"), ip("192.0.2.2")),
            Direction::Transit
        );
        let none = MonitoredHosts::default();
        assert_eq!(
            none.direction(ip("10.0.0.7"), ip("10.0.0.8")),
            Direction::Unknown
        );
        assert!(MonitoredHosts::parse(&["pbx.example"]).is_err());
    }
}
