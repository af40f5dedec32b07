// SPDX-License-Identifier: AGPL-3.0-or-later
//! Where HEP goes or comes from: `udp://host:port`, `tcp://host:port`, `tls://host:port`
//! (the port defaults to Homer's 9060).

use std::fmt;
use std::str::FromStr;

/// Homer's HEP port.
pub const DEFAULT_PORT: u16 = 9060;

/// How HEP packets travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HepTransport {
    /// One packet a datagram.
    Udp,
    /// A stream of packets, each framed by its own length.
    Tcp,
    /// The same stream inside TLS.
    Tls,
}

impl HepTransport {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// A HEP peer: transport, host (name or address) and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Endpoint {
    /// How packets travel.
    pub transport: HepTransport,
    /// Host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Why a text is not an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?}: {why} (expected udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT)")]
pub struct EndpointError {
    text: String,
    why: &'static str,
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |why| EndpointError {
            text: text.to_owned(),
            why,
        };
        let (scheme, rest) = text.split_once("://").ok_or(fail("no scheme"))?;
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "udp" => HepTransport::Udp,
            "tcp" => HepTransport::Tcp,
            "tls" => HepTransport::Tls,
            _ => return Err(fail("unknown scheme")),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(fail("no closing bracket"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or(fail("text after the address"))?,
                    ),
                ),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => {
                    return Err(fail("an IPv6 address needs brackets"))
                }
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
            return Err(fail("no host"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| fail("bad port"))?,
        };
        Ok(Self {
            transport,
            host: host.to_owned(),
            port,
        })
    }
}

impl TryFrom<String> for Endpoint {
    type Error = EndpointError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> Self {
        e.to_string()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.transport.scheme();
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_schemes_with_or_without_a_port() {
        let e: Endpoint = "udp://homer.example:9061".parse().expect("endpoint");
        assert_eq!(
            (e.transport, e.host.as_str(), e.port),
            (HepTransport::Udp, "homer.example", 9061)
        );
        let e: Endpoint = "TCP://10.0.0.1".parse().expect("endpoint");
        assert_eq!((e.transport, e.port), (HepTransport::Tcp, DEFAULT_PORT));
        let e: Endpoint = "tls://[2001:db8::1]:9443/".parse().expect("endpoint");
        assert_eq!((e.host.as_str(), e.port), ("2001:db8::1", 9443));
        assert_eq!(e.to_string(), "tls://[2001:db8::1]:9443");
        assert_eq!(
            "udp://127.0.0.1:9060"
                .parse::<Endpoint>()
                .map(|e| e.to_string()),
            Ok("udp://127.0.0.1:9060".to_owned())
        );
    }

    #[test]
    fn refuses_what_is_not_an_endpoint() {
        for bad in [
            "127.0.0.1:9060",
            "http://homer:9060",
            "udp://",
            "udp://:9060",
            "udp://homer:port",
            "udp://homer:70000",
            "udp://2001:db8::1",
            "tcp://[2001:db8::1",
            "tcp://user@homer:9060",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad} accepted");
        }
    }
}
