// SPDX-License-Identifier: AGPL-3.0-or-later
//! Alerts as syslog messages (RFC 5424), to a local socket or over UDP, one line each in the
//! fixed form of [`Alert::log_line`] so a fail2ban filter can match it
//! (`contrib/fail2ban/spycraft.conf`).

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::str::FromStr;

use super::Alert;

/// Where syslog messages go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogTarget {
    /// A syslog daemon over UDP (`udp://127.0.0.1:514`).
    Udp(SocketAddr),
    /// The local daemon's datagram socket (`unix:/dev/log`).
    Unix(PathBuf),
}

impl FromStr for SyslogTarget {
    type Err = String;

    fn from_str(target: &str) -> Result<Self, String> {
        if let Some(addr) = target.strip_prefix("udp://") {
            return addr.parse().map(Self::Udp).map_err(|_| {
                format!("{target:?}: expected udp://ADDRESS:PORT (an IP address and a port)")
            });
        }
        match target.strip_prefix("unix:") {
            Some(path) if path.starts_with('/') => Ok(Self::Unix(path.into())),
            _ => Err(format!(
                "{target:?}: expected udp://ADDRESS:PORT or unix:/PATH (e.g. unix:/dev/log)"
            )),
        }
    }
}

impl std::fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Udp(addr) => write!(f, "udp://{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl serde::Serialize for SyslogTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SyslogTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

enum Socket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

/// A connected syslog socket and what every message says of its sender.
pub struct Syslog {
    socket: Socket,
    target: SyslogTarget,
    hostname: String,
    pid: u32,
}

impl std::fmt::Debug for Syslog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syslog")
            .field("target", &self.target)
            .finish()
    }
}

/// The facility: local0.
const FACILITY: u8 = 16;

impl Syslog {
    /// Connects to `target`; messages name `hostname` (the node) as their sender.
    pub fn open(target: &SyslogTarget, hostname: &str) -> std::io::Result<Self> {
        let socket = match target {
            SyslogTarget::Udp(addr) => {
                let local: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0".parse().expect("an address")
                } else {
                    "[::]:0".parse().expect("an address")
                };
                let socket = UdpSocket::bind(local)?;
                socket.connect(addr)?;
                Socket::Udp(socket)
            }
            SyslogTarget::Unix(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.connect(path)?;
                Socket::Unix(socket)
            }
        };
        Ok(Self {
            socket,
            target: target.clone(),
            hostname: hostname.replace(' ', "-"),
            pid: std::process::id(),
        })
    }

    /// Where messages go, as given.
    pub fn target(&self) -> &SyslogTarget {
        &self.target
    }

    /// Sends one alert.
    pub fn send(&self, alert: &Alert) -> std::io::Result<()> {
        let message = self.message(alert);
        match &self.socket {
            Socket::Udp(s) => s.send(message.as_bytes()).map(drop),
            Socket::Unix(s) => s.send(message.as_bytes()).map(drop),
        }
    }

    /// `<PRI>1 TIMESTAMP HOST spycraft PID alert - MESSAGE`: severity 1 as critical, 2 as
    /// warning, 3 as notice.
    fn message(&self, alert: &Alert) -> String {
        let severity = match alert.severity {
            1 => 2,
            2 => 4,
            _ => 5,
        };
        format!(
            "<{}>1 {} {} spycraft {} alert - {}",
            FACILITY * 8 + severity,
            alert.at.to_rfc3339(),
            self.hostname,
            self.pid,
            alert.log_line()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_udp_addresses_or_local_sockets() {
        assert_eq!(
            "udp://127.0.0.1:5514".parse(),
            Ok(SyslogTarget::Udp(
                "127.0.0.1:5514".parse().expect("address")
            ))
        );
        assert_eq!(
            "unix:/dev/log".parse(),
            Ok(SyslogTarget::Unix("/dev/log".into()))
        );
        assert!("udp://localhost:514".parse::<SyslogTarget>().is_err());
        assert!("/dev/log".parse::<SyslogTarget>().is_err());
    }
}
