// SPDX-License-Identifier: AGPL-3.0-or-later
//! Record files as a comparison reads them: JSON lines, each a record object with only the
//! fields records have, each call once.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::key::{CallKey, MatchOn};
use crate::sink::COLUMNS;

/// One record and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Keyed {
    /// What pairs it with its counterpart.
    pub key: CallKey,
    /// Its line in its file (1-based), or its place in a run's output.
    pub line: usize,
    /// The record.
    pub record: Map<String, Value>,
}

/// Why a record file cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a record.
    #[error("{}:{line}: {why}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// Reads the records of `path` (JSON lines; blank lines skipped), keyed by `match_on`.
/// Broken lines, fields records do not have and a call found twice are refused, with the
/// line named.
pub fn read(path: &Path, match_on: &MatchOn) -> Result<Vec<Keyed>, RecordsError> {
    let text = std::fs::read_to_string(path).map_err(|source| RecordsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let error = |line: usize, why: String| RecordsError::Line {
        path: path.to_owned(),
        line,
        why,
    };
    let mut records = Vec::new();
    for (at, text) in text.lines().enumerate() {
        let line = at + 1;
        if text.trim().is_empty() {
            continue;
        }
        let record = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(record)) => record,
            Ok(_) => return Err(error(line, "not a JSON object".into())),
            Err(e) => return Err(error(line, format!("not JSON: {e}"))),
        };
        if let Some(unknown) = record.keys().find(|k| !COLUMNS.contains(&k.as_str())) {
            return Err(error(line, format!("{unknown:?} is not a record field")));
        }
        records.push((line, record));
    }
    keyed(records, match_on).map_err(|(line, why)| error(line, why))
}

/// Keys `records` (each with its line) by `match_on`; a key found twice is refused with the
/// line of its second record.
pub fn keyed(
    records: Vec<(usize, Map<String, Value>)>,
    match_on: &MatchOn,
) -> Result<Vec<Keyed>, (usize, String)> {
    let keys = match_on
        .keys(records.iter().map(|(_, r)| r))
        .map_err(|(at, why)| (records[at].0, why))?;
    let mut keyed: Vec<Keyed> = records
        .into_iter()
        .zip(keys)
        .map(|((line, record), key)| Keyed { key, line, record })
        .collect();
    let mut order: Vec<usize> = (0..keyed.len()).collect();
    order.sort_by(|&a, &b| keyed[a].key.cmp(&keyed[b].key).then(a.cmp(&b)));
    for pair in order.windows(2) {
        let (first, second) = (&keyed[pair[0]], &keyed[pair[1]]);
        if first.key == second.key {
            return Err((
                second.line,
                format!("the call {} is already on line {}", second.key, first.line),
            ));
        }
    }
    keyed.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(keyed)
}
