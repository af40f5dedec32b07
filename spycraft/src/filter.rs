// SPDX-License-Identifier: AGPL-3.0-or-later
//! BPF rule generation: one filter configuration (SIP port ranges, optional host prefixes)
//! becomes both the pcap-filter expression libpcap compiles (`capture --mode pcap`) and the
//! contents of the kernel programs' maps (XDP and socket-filter modes), so every capture mode
//! selects the same frames. `spycraft filter` prints both.
//!
//! A port filter alone loses the later fragments of a fragmented datagram (they carry no
//! ports), so the expression also lets through IPv4 non-first fragments and IPv6 fragments of
//! the selected hosts; the decoder reassembles them and drops what does not complete.

use std::fmt::Write;

use ipnet::IpNet;
use spycraft_common::{
    PortRange, DEFAULT_SIP_PORTS, FRAGMENT_FLOWS, MAX_HOST_PREFIXES, MAX_PORT_RANGES,
};

use crate::packet::LinkType;

/// What the capture keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterConfig {
    ports: Vec<PortRange>,
    hosts: Vec<IpNet>,
}

/// A filter that cannot be built.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Text that is not a port or port range.
    #[error("`{0}` is not a port or port range (5060, 5080-5090)")]
    BadRange(String),
    /// More port ranges than the kernel map holds.
    #[error("{0} port ranges given; the kernel filter holds at most {MAX_PORT_RANGES}")]
    TooManyRanges(usize),
    /// An empty port list.
    #[error("no SIP ports given")]
    NoPorts,
    /// More host prefixes of one family than the kernel map holds.
    #[error("{0} host prefixes of one address family given; the kernel filter holds at most {MAX_HOST_PREFIXES}")]
    TooManyHosts(usize),
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            ports: DEFAULT_SIP_PORTS.map(PortRange::single).to_vec(),
            hosts: Vec::new(),
        }
    }
}

/// Parses `5060` or `5080-5090`.
pub fn parse_range(text: &str) -> Result<PortRange, FilterError> {
    text.parse()
        .map_err(|_: spycraft_common::BadPortRange| FilterError::BadRange(text.to_owned()))
}

impl FilterConfig {
    /// Ports (merged where they touch or overlap) and host prefixes (none: any host).
    pub fn new(mut ports: Vec<PortRange>, hosts: Vec<IpNet>) -> Result<Self, FilterError> {
        if ports.is_empty() {
            return Err(FilterError::NoPorts);
        }
        ports.sort_by_key(|r| r.first);
        let mut merged: Vec<PortRange> = Vec::with_capacity(ports.len());
        for r in ports {
            match merged.last_mut() {
                Some(last) if u32::from(r.first) <= u32::from(last.last) + 1 => {
                    last.last = last.last.max(r.last);
                }
                _ => merged.push(r),
            }
        }
        if merged.len() > MAX_PORT_RANGES {
            return Err(FilterError::TooManyRanges(merged.len()));
        }
        let mut hosts: Vec<IpNet> = hosts.into_iter().map(|n| n.trunc()).collect();
        hosts.sort();
        hosts.dedup();
        for v4 in [true, false] {
            let n = hosts
                .iter()
                .filter(|n| matches!(n, IpNet::V4(_)) == v4)
                .count();
            if n > MAX_HOST_PREFIXES as usize {
                return Err(FilterError::TooManyHosts(n));
            }
        }
        Ok(Self {
            ports: merged,
            hosts,
        })
    }

    /// The port ranges, sorted and merged.
    pub fn ports(&self) -> &[PortRange] {
        &self.ports
    }

    /// The host prefixes; none means any host.
    pub fn hosts(&self) -> &[IpNet] {
        &self.hosts
    }

    /// The ports as an operator writes them: `5060, 5080-5090`.
    pub fn ports_text(&self) -> String {
        self.ports
            .iter()
            .map(|r| {
                if r.first == r.last {
                    r.first.to_string()
                } else {
                    format!("{}-{}", r.first, r.last)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The pcap-filter expression (tcpdump syntax) for Ethernet, VLAN-tagged frames included.
    pub fn pcap_expression(&self) -> String {
        self.pcap_expression_on(LinkType::Ethernet)
    }

    /// The pcap-filter expression for an interface of link type `link`: VLAN tags exist on
    /// Ethernet only (libpcap refuses `vlan` on raw IP).
    pub fn pcap_expression_on(&self, link: LinkType) -> String {
        let ports = self
            .ports
            .iter()
            .map(|r| {
                if r.first == r.last {
                    format!("port {}", r.first)
                } else {
                    format!("portrange {}-{}", r.first, r.last)
                }
            })
            .collect::<Vec<_>>()
            .join(" or ");
        let mut sip = format!("(tcp or udp) and ({ports})");
        // Later IPv4 fragments have no ports; IPv6 fragments hide them behind the fragment
        // header, where libpcap's port test does not look.
        let mut fragments = "(ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)".to_owned();
        if !self.hosts.is_empty() {
            let hosts = self
                .hosts
                .iter()
                .map(|n| {
                    if n.prefix_len() == n.max_prefix_len() {
                        format!("host {}", n.addr())
                    } else {
                        format!("net {n}")
                    }
                })
                .collect::<Vec<_>>()
                .join(" or ");
            sip = format!("{sip} and ({hosts})");
            fragments = format!("({fragments}) and ({hosts})");
        }
        let frame = format!("({sip}) or ({fragments})");
        if link != LinkType::Ethernet {
            return frame;
        }
        // `vlan` moves libpcap's offsets past one tag for what follows it.
        format!("({frame}) or (vlan and ({frame}))")
    }

    /// The kernel programs' map contents, as `spycraft filter` shows them (spycraft-ebpf
    /// reads them; `capture::kernel::load` writes them).
    pub fn describe_maps(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "SETTINGS   array, 1 entry: {} of {MAX_PORT_RANGES} port ranges used (source or destination port):",
            self.ports.len()
        );
        for (i, r) in self.ports.iter().enumerate() {
            let _ = writeln!(out, "  [{i}] {}-{}", r.first, r.last);
        }
        for (map, v4) in [("HOSTS_V4", true), ("HOSTS_V6", false)] {
            let nets: Vec<&IpNet> = self
                .hosts
                .iter()
                .filter(|n| matches!(n, IpNet::V4(_)) == v4)
                .collect();
            if self.hosts.is_empty() {
                let _ = writeln!(out, "{map}   LPM trie, empty: frames of any host");
            } else {
                let _ = writeln!(
                    out,
                    "{map}   LPM trie, {} prefixes (source or destination address):",
                    nets.len()
                );
                for n in nets {
                    let _ = writeln!(out, "  {n}");
                }
            }
        }
        let _ = writeln!(
            out,
            "FRAGMENTS  LRU hash of {FRAGMENT_FLOWS} datagrams whose first fragment matched; their later fragments follow"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(text: &[&str]) -> Vec<PortRange> {
        text.iter()
            .map(|t| parse_range(t).expect("range"))
            .collect()
    }

    #[test]
    fn merges_ranges_and_refuses_what_the_kernel_cannot_hold() {
        let c = FilterConfig::new(ranges(&["5080-5090", "5060", "5061", "5085-5100"]), vec![])
            .expect("valid");
        assert_eq!(
            c.ports(),
            [
                PortRange {
                    first: 5060,
                    last: 5061
                },
                PortRange {
                    first: 5080,
                    last: 5100
                }
            ]
        );
        let many: Vec<PortRange> = (0..17).map(|i| PortRange::single(6000 + 2 * i)).collect();
        assert_eq!(
            FilterConfig::new(many, vec![]),
            Err(FilterError::TooManyRanges(17))
        );
        assert_eq!(FilterConfig::new(vec![], vec![]), Err(FilterError::NoPorts));
        let hosts: Vec<IpNet> = (0..=MAX_HOST_PREFIXES)
            .map(|i| {
                IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(
                    0x0a00_0000 + i,
                )))
            })
            .collect();
        assert_eq!(
            FilterConfig::new(ranges(&["5060"]), hosts),
            Err(FilterError::TooManyHosts(MAX_HOST_PREFIXES as usize + 1))
        );
        for bad in ["", "x", "5090-5080", "0", "70000"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_ports_hosts_fragments_and_vlans_into_the_expression() {
        let c = FilterConfig::new(
            ranges(&["5060", "5080-5090"]),
            vec![
                "10.1.2.0/24".parse().expect("net"),
                "2001:db8::5/128".parse().expect("net"),
            ],
        )
        .expect("valid");
        let e = c.pcap_expression();
        assert_eq!(
            e,
            "(((tcp or udp) and (port 5060 or portrange 5080-5090) and (net 10.1.2.0/24 or host 2001:db8::5)) \
             or (((ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)) and (net 10.1.2.0/24 or host 2001:db8::5))) \
             or (vlan and (((tcp or udp) and (port 5060 or portrange 5080-5090) and (net 10.1.2.0/24 or host 2001:db8::5)) \
             or (((ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)) and (net 10.1.2.0/24 or host 2001:db8::5))))"
        );
        let maps = c.describe_maps();
        assert!(maps.contains("[1] 5080-5090"), "{maps}");
        assert!(maps.contains("2001:db8::5/128"), "{maps}");
    }

    #[test]
    fn libpcap_compiles_every_expression() {
        let configs = [
            FilterConfig::default(),
            FilterConfig::new(ranges(&["1-65535"]), vec![]).expect("valid"),
            FilterConfig::new(
                ranges(&["5060", "6000-6010"]),
                vec![
                    "192.0.2.0/24".parse().expect("net"),
                    "2001:db8::/32".parse().expect("net"),
                ],
            )
            .expect("valid"),
        ];
        for c in configs {
            let capture = pcap::Capture::dead(pcap::Linktype::ETHERNET).expect("dead capture");
            if let Err(e) = capture.compile(&c.pcap_expression(), true) {
                panic!("{}: {e}", c.pcap_expression());
            }
        }
    }
}
