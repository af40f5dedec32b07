// SPDX-License-Identifier: AGPL-3.0-or-later
//! Reading a settings file, with every mistake named by file, line and key.

use std::path::{Path, PathBuf};

use super::Layer;

/// Why a settings file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read settings file {}", path.display())]
    Read {
        /// The file named by `--config`.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not TOML, or holds an unknown key, a wrong type or a bad value.
    #[error("{}{}: {message}", path.display(), place.as_deref().unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// ` line N, [section] key` where the mistake is, when the reader says.
        place: Option<String>,
        /// What is wrong, as the TOML reader says it.
        message: String,
    },
}

/// Reads a settings file.
pub fn load(path: &Path) -> Result<Layer, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Reads settings from `text`, naming `path` in errors.
pub fn parse(text: &str, path: &Path) -> Result<Layer, SettingsError> {
    toml::from_str(text).map_err(|e| SettingsError::Invalid {
        path: path.to_owned(),
        place: e.span().map(|span| place(text, span.start)),
        message: e.message().trim_end().to_owned(),
    })
}

/// ` line N, [section] key` for the byte at `offset`: the key is what stands before `=` on
/// that line, the section the last header above it.
fn place(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_text = text[line_start..].lines().next().unwrap_or_default();
    let key = line_text
        .split_once('=')
        .map(|(key, _)| key.trim())
        .filter(|key| !key.is_empty() && !key.starts_with('['));
    let section = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['));
    match (section, key) {
        (Some(section), Some(key)) => format!(" line {line}, {section} {key}"),
        (None, Some(key)) => format!(" line {line}, {key}"),
        (_, None) => format!(" line {line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(text, Path::new("sensor.toml"))
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn names_file_line_and_key() {
        assert_eq!(
            error("[sensor]\nnode = \"a\"\nnodes = \"b\"\n"),
            "sensor.toml line 3, [sensor] nodes: unknown field `nodes`, expected one of \
             `node`, `hosts`, `ports`, `collate_headers`, `stats_interval_secs`"
        );
        assert_eq!(
            error("[calls]\nthreads = \"two\"\n"),
            "sensor.toml line 2, [calls] threads: invalid type: string \"two\", expected u8"
        );
        let bad = error("[sensor]\nports = [5060,\n 99999]\n");
        assert!(bad.starts_with("sensor.toml line 3"), "{bad}");
        assert!(bad.contains("99999 is not a port"), "{bad}");
    }

    #[test]
    fn a_top_level_key_has_no_section() {
        assert_eq!(
            error("mode = \"xdp\"\n"),
            "sensor.toml line 1, mode: unknown field `mode`, expected one of `sensor`, \
             `capture`, `records`, `calls`, `postgres`, `http`, `rates`, `hep`, `radius`, `peer_group`, \
             `alerts`, `alert`"
        );
    }
}
