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

impl MonitoredHosts {
    /// Parses addresses (`192.0.2.10`, `2001:db8::1`) and prefixes (`10.1.0.0/16`).
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Self, BadHost> {
        let nets = values
            .iter()
            .map(|v| {
                let v = v.as_ref().trim();
                IpNet::from_str(v)
                    .or_else(|_| IpAddr::from_str(v).map(IpNet::from))
                    .map_err(|_| BadHost(v.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    /// The prefixes given (addresses as /32 or /128).
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

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
