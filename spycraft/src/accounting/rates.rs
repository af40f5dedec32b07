// SPDX-License-Identifier: AGPL-3.0-or-later
//! A rate deck (`--rates rates.csv`): prices per destination prefix, matched longest prefix
//! first against the called number in E.164, with the minimum and increment each prefix is
//! billed in (60/60: whole minutes; 1/1: per second; 30/6: 30 s, then 6 s steps).
//!
//! Money is kept in millionths of the deck's currency unit: sums are exact, whatever the
//! number of calls.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::call::CallRecord;

/// Why a rate deck cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RatesError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The deck.
        path: String,
        /// Why.
        source: csv::Error,
    },
    /// A row is wrong.
    #[error("{path} line {line}: {why}")]
    Row {
        /// The deck.
        path: String,
        /// The line (1 is the header).
        line: u64,
        /// What is wrong.
        why: String,
    },
}

/// One row of the deck.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Digits of the E.164 number (without `+`) the rate applies to.
    pub prefix: String,
    /// What the destination is called.
    pub description: String,
    /// Price of a minute, in millionths.
    pub price_per_min: i64,
    /// Seconds billed at least, once answered.
    pub min_s: u32,
    /// Seconds billed in steps of, after the minimum.
    pub increment_s: u32,
}

impl Rate {
    /// Seconds billed for `secs` of talk: none for none, else at least the minimum, the
    /// rest rounded up to whole increments.
    pub fn billed_seconds(&self, secs: u64) -> u64 {
        if secs == 0 {
            return 0;
        }
        let min = u64::from(self.min_s);
        if secs <= min {
            return min;
        }
        let step = u64::from(self.increment_s.max(1));
        min + (secs - min).div_ceil(step) * step
    }

    /// What `billed_s` seconds cost, in millionths, rounded half up.
    pub fn cost_of(&self, billed_s: u64) -> i64 {
        let micro_seconds = i128::from(self.price_per_min) * i128::from(billed_s);
        ((micro_seconds + 30) / 60) as i64
    }
}

/// How called numbers become E.164 (`[rates]` in the settings file).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Numbering {
    /// The country code national numbers get (`1`, `49`); empty: numbers are left as they
    /// are after the international prefix is taken off.
    #[serde(default)]
    pub country_code: String,
    /// Dialled before a country code (`00`, `011`).
    #[serde(default)]
    pub international_prefix: String,
    /// Dialled before a national number (`0`; often empty in North America).
    #[serde(default)]
    pub national_prefix: String,
}

impl Numbering {
    /// The E.164 digits (no `+`) of a dialled number, or `None` when it is not a number
    /// (a name, a URI user with letters). Visual separators (`-`, `.`, spaces, brackets)
    /// are dropped.
    pub fn e164(&self, dialled: &str) -> Option<String> {
        let digits: String = dialled
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | ' ' | '(' | ')'))
            .collect();
        if let Some(rest) = digits.strip_prefix('+') {
            return all_digits(rest);
        }
        let digits = all_digits(&digits)?;
        if !self.international_prefix.is_empty() {
            if let Some(rest) = digits.strip_prefix(&self.international_prefix) {
                return Some(rest.to_owned());
            }
        }
        if !self.national_prefix.is_empty() {
            if let Some(rest) = digits.strip_prefix(&self.national_prefix) {
                return Some(format!("{}{rest}", self.country_code));
            }
        }
        Some(digits)
    }
}

fn all_digits(s: &str) -> Option<String> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.to_owned())
}

/// What a record costs by the deck.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rated<'d> {
    /// The rate that matched.
    pub rate: &'d Rate,
    /// Seconds billed.
    pub billed_s: u64,
    /// Their cost, in millionths.
    pub cost: i64,
}

/// The rates, by prefix.
#[derive(Clone, Debug, Default)]
pub struct RateDeck {
    rates: Vec<Rate>,
    by_prefix: HashMap<String, usize>,
    longest: usize,
    numbering: Numbering,
}

#[derive(Debug, Deserialize)]
struct Row {
    prefix: String,
    #[serde(default)]
    description: String,
    price_per_min: String,
    min_s: u32,
    increment_s: u32,
}

impl RateDeck {
    /// Reads a deck: a CSV file with a header row naming `prefix`, `description`,
    /// `price_per_min`, `min_s` and `increment_s` (in any order).
    pub fn load(path: &Path, numbering: Numbering) -> Result<Self, RatesError> {
        let name = path.display().to_string();
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_path(path)
            .map_err(|source| RatesError::Read {
                path: name.clone(),
                source,
            })?;
        let mut rates = Vec::new();
        // The line of each rate, to name it when the deck is refused.
        let mut lines = Vec::new();
        let mut record = csv::StringRecord::new();
        let headers = reader
            .headers()
            .map_err(|source| RatesError::Read {
                path: name.clone(),
                source,
            })?
            .clone();
        loop {
            let row_error = |line: u64, why: String| RatesError::Row {
                path: name.clone(),
                line,
                why,
            };
            let more = reader.read_record(&mut record).map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                row_error(line, e.to_string())
            })?;
            if !more {
                break;
            }
            let line = record.position().map_or(0, |p| p.line());
            let row: Row = record
                .deserialize(Some(&headers))
                .map_err(|e| row_error(line, e.to_string()))?;
            let prefix = row.prefix.trim_start_matches('+').to_owned();
            if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                return Err(row_error(
                    line,
                    format!("prefix {:?} is not digits", row.prefix),
                ));
            }
            let price_per_min = parse_money(&row.price_per_min).ok_or_else(|| {
                row_error(
                    line,
                    format!("price {:?} is not a price (0.0125)", row.price_per_min),
                )
            })?;
            if row.increment_s == 0 {
                return Err(row_error(line, "increment_s must be at least 1".into()));
            }
            lines.push(line);
            rates.push(Rate {
                prefix,
                description: row.description,
                price_per_min,
                min_s: row.min_s,
                increment_s: row.increment_s,
            });
        }
        Self::new(rates, numbering).map_err(|(n, why)| RatesError::Row {
            path: name,
            line: lines.get(n).copied().unwrap_or(0),
            why,
        })
    }

    /// A deck of `rates`; the index of a prefix given twice is refused.
    pub fn new(rates: Vec<Rate>, numbering: Numbering) -> Result<Self, (usize, String)> {
        let mut by_prefix = HashMap::with_capacity(rates.len());
        for (n, rate) in rates.iter().enumerate() {
            if by_prefix.insert(rate.prefix.clone(), n).is_some() {
                return Err((n, format!("prefix {} is given twice", rate.prefix)));
            }
        }
        let longest = rates.iter().map(|r| r.prefix.len()).max().unwrap_or(0);
        Ok(Self {
            rates,
            by_prefix,
            longest,
            numbering,
        })
    }

    /// How many rates it has.
    pub fn len(&self) -> usize {
        self.rates.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }

    /// The rate of an E.164 number: the longest prefix that matches.
    pub fn rate_of(&self, e164: &str) -> Option<&Rate> {
        (1..=e164.len().min(self.longest))
            .rev()
            .find_map(|n| self.by_prefix.get(&e164[..n]))
            .map(|&i| &self.rates[i])
    }

    /// What a record costs: its called number (the To user) in E.164, its rate, and its
    /// billable time in whole seconds (rounded up) billed by that rate. `None` when the
    /// called number is not a number or no prefix matches.
    pub fn rate(&self, r: &CallRecord) -> Option<Rated<'_>> {
        let number = self.numbering.e164(r.to_user.as_deref()?)?;
        let rate = self.rate_of(&number)?;
        let billed_s = rate.billed_seconds(billable_seconds(r));
        Some(Rated {
            rate,
            billed_s,
            cost: rate.cost_of(billed_s),
        })
    }
}

/// A record's billable time in whole seconds, rounded up (0 unless answered).
pub fn billable_seconds(r: &CallRecord) -> u64 {
    if r.answer_at.is_none() {
        return 0;
    }
    r.billable_ms.unwrap_or(0).div_ceil(1000)
}

/// `12.5`, `0.0125`: a decimal with at most six places, in millionths.
pub fn parse_money(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.len() > 6 {
        return None;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: i64 = format!("{fraction:0<6}").parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(fraction)
}

/// Millionths as a decimal number of the currency (what JSON shows).
pub fn money(micros: i64) -> f64 {
    micros as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(prefix: &str, price: &str, min_s: u32, increment_s: u32) -> Rate {
        Rate {
            prefix: prefix.into(),
            description: prefix.into(),
            price_per_min: parse_money(price).expect("a price"),
            min_s,
            increment_s,
        }
    }

    #[test]
    fn bills_the_minimum_then_whole_increments() {
        let minutes = rate("1", "0.6", 60, 60);
        assert_eq!(minutes.billed_seconds(0), 0);
        assert_eq!(minutes.billed_seconds(1), 60);
        assert_eq!(minutes.billed_seconds(61), 120);
        assert_eq!(minutes.cost_of(120), 1_200_000);
        let six = rate("1", "0.6", 30, 6);
        assert_eq!(six.billed_seconds(31), 36);
        assert_eq!(six.billed_seconds(36), 36);
        let seconds = rate("1", "0.01", 1, 1);
        assert_eq!(seconds.billed_seconds(7), 7);
        assert_eq!(seconds.cost_of(7), 1167, "7 × 0.01/60 = 0.0011667, half up");
    }

    #[test]
    fn longest_prefix_wins() {
        let deck = RateDeck::new(
            vec![rate("49", "0.02", 1, 1), rate("4915", "0.2", 1, 1)],
            Numbering::default(),
        )
        .expect("deck");
        assert_eq!(
            deck.rate_of("4915112345").map(|r| r.prefix.as_str()),
            Some("4915")
        );
        assert_eq!(
            deck.rate_of("4930123").map(|r| r.prefix.as_str()),
            Some("49")
        );
        assert_eq!(deck.rate_of("3312"), None);
        assert!(RateDeck::new(
            vec![rate("1", "1", 1, 1), rate("1", "2", 1, 1)],
            Numbering::default()
        )
        .is_err());
    }

    #[test]
    fn numbers_become_e164_by_the_dialling_rules() {
        let de = Numbering {
            country_code: "49".into(),
            international_prefix: "00".into(),
            national_prefix: "0".into(),
        };
        assert_eq!(de.e164("+44 20 7946-0000").as_deref(), Some("442079460000"));
        assert_eq!(de.e164("0044207946").as_deref(), Some("44207946"));
        assert_eq!(de.e164("030123456").as_deref(), Some("4930123456"));
        assert_eq!(de.e164("alice"), None);
        assert_eq!(
            Numbering::default().e164("15551234").as_deref(),
            Some("15551234")
        );
    }

    #[test]
    fn prices_are_exact_to_a_millionth() {
        assert_eq!(parse_money("0.0125"), Some(12_500));
        assert_eq!(parse_money("12"), Some(12_000_000));
        assert_eq!(parse_money(".5"), Some(500_000));
        assert_eq!(parse_money("0.0000001"), None);
        assert_eq!(parse_money("-1"), None);
        assert_eq!(parse_money(""), None);
    }

    #[test]
    fn a_bad_deck_is_refused_naming_the_line() {
        let dir = std::env::temp_dir().join(format!("spycraft-rates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let refused = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("written");
            RateDeck::load(&path, Numbering::default())
                .expect_err("refused")
                .to_string()
        };
        let header = "prefix,description,price_per_min,min_s,increment_s\n";
        let twice = refused(
            "twice.csv",
            &format!("{header}# UK\n44,UK,1,1,1\n44,UK,2,1,1\n"),
        );
        assert!(
            twice.ends_with("line 4: prefix 44 is given twice"),
            "{twice}"
        );
        let price = refused("price.csv", &format!("{header}44,UK,1.5e3,1,1\n"));
        assert!(price.contains("line 2: price"), "{price}");
        let digits = refused("digits.csv", &format!("{header}4x,UK,1,1,1\n"));
        assert!(digits.contains("line 2: prefix"), "{digits}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
