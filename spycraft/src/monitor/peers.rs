// SPDX-License-Identifier: AGPL-3.0-or-later
//! Peer groups: the trunks, carriers or sites an operator names by their address ranges.
//! Per-peer figures exist only for these, so the series a scrape returns stay bounded however
//! many numbers and addresses the calls carry.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::call::CallRecord;

/// Most peer groups a sensor takes.
pub const MAX_PEER_GROUPS: usize = 32;

/// One named group of peers (`[[peer_group]]` in the settings file).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerGroup {
    /// The name its figures carry (`peer_group` label).
    pub name: String,
    /// Its addresses.
    pub cidrs: Vec<IpNet>,
}

/// Finds the group a call belongs to.
#[derive(Clone, Debug, Default)]
pub struct PeerGroups {
    groups: Vec<PeerGroup>,
}

impl PeerGroups {
    /// The groups, in the order they are tried.
    pub fn new(groups: Vec<PeerGroup>) -> Self {
        Self { groups }
    }

    /// The groups' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|g| g.name.as_str())
    }

    /// The group named `name`.
    pub fn get(&self, name: &str) -> Option<&PeerGroup> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// How many groups there are.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The group of a call: the first that holds the address it was sent to, else the first
    /// that holds the address it came from (a trunk is both).
    pub fn of(&self, record: &CallRecord) -> Option<usize> {
        self.holding(record.callee_ip)
            .or_else(|| self.holding(record.caller_ip))
    }

    fn holding(&self, ip: IpAddr) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.cidrs.iter().any(|net| net.contains(&ip)))
    }
}

/// Why the peer groups cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerGroupError {
    /// More groups than the bound.
    #[error("{0} peer groups: at most {MAX_PEER_GROUPS} are taken (each adds series to /metrics)")]
    TooMany(usize),
    /// A name that is empty or used twice.
    #[error("peer group name {0:?} is empty or used twice")]
    BadName(String),
    /// A group without addresses.
    #[error("peer group {0:?} has no cidrs")]
    Empty(String),
}

/// Checks the groups: bounded in number, named once each, none empty.
pub fn check(groups: &[PeerGroup]) -> Result<(), PeerGroupError> {
    if groups.len() > MAX_PEER_GROUPS {
        return Err(PeerGroupError::TooMany(groups.len()));
    }
    for (n, g) in groups.iter().enumerate() {
        if g.name.is_empty() || groups[..n].iter().any(|other| other.name == g.name) {
            return Err(PeerGroupError::BadName(g.name.clone()));
        }
        if g.cidrs.is_empty() {
            return Err(PeerGroupError::Empty(g.name.clone()));
        }
    }
    Ok(())
}
