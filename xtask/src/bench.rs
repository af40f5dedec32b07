// SPDX-License-Identifier: AGPL-3.0-or-later
//! Throughput benchmark.
use anyhow::Result;
pub fn command(_root: &std::path::Path, _args: &[String]) -> Result<()> {
    anyhow::bail!("not yet")
}
