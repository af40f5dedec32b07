// SPDX-License-Identifier: AGPL-3.0-or-later
//! Passwords and shared secrets kept in files of their own (`--postgres-password-file`,
//! `--hep-password-file`), so they never show in a process listing or a settings file.

use std::path::Path;

/// A secret file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct SecretError {
    /// The file.
    pub path: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// The first line of the file at `path`, without its line end.
pub fn read_secret(path: &Path) -> Result<String, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError {
        path: path.display().to_string(),
        source,
    })?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}
