// SPDX-License-Identifier: AGPL-3.0-or-later
//! Synthetic captures.
use anyhow::Result;
pub fn command(_args: &[String]) -> Result<()> {
    anyhow::bail!("not yet")
}
