// SPDX-License-Identifier: AGPL-3.0-or-later
//! Call accounting: what calls cost by a rate deck, and reports of calls, answered calls,
//! billed time and cost per user, peer, node, destination or day.

pub mod rates;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::call::CallRecord;

pub use rates::{Numbering, RateDeck, Rated, RatesError};

/// What an accounting report groups calls by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The calling user (the From user).
    User,
    /// The address the INVITE went to.
    Peer,
    /// The sensor node.
    Node,
    /// The rate deck's destination (its prefix); `unrated` for calls no prefix matches.
    Destination,
    /// The UTC day of the INVITE.
    Day,
}

impl GroupBy {
    /// The group of `r`.
    pub fn key(self, r: &CallRecord, rated: Option<&Rated<'_>>) -> String {
        match self {
            Self::User => r.from_user.clone().unwrap_or_else(|| "(none)".into()),
            Self::Peer => r.callee_ip.to_string(),
            Self::Node => r.node.clone(),
            Self::Destination => rated.map_or_else(|| "unrated".into(), |x| x.rate.prefix.clone()),
            Self::Day => r.invite_at.to_rfc3339()[..10].to_owned(),
        }
    }
}

/// One group's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AccountingRow {
    /// The group (user, peer address, node, prefix or day); `all` for the totals.
    pub key: String,
    /// The destination's name, for groups by destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Call attempts.
    pub calls: u64,
    /// Answered calls.
    pub answered: u64,
    /// Seconds billed: by the deck's minimum and increment where a rate matched, else the
    /// billable time in whole seconds (rounded up).
    pub billed_s: u64,
    /// Answer-seizure ratio, percent (two decimals).
    pub asr: Option<f64>,
    /// Average answered call's billable time, seconds (two decimals).
    pub acd_s: Option<f64>,
    /// Cost by the deck; absent without one.
    pub cost: Option<f64>,
    /// Answered calls no rate matched (their cost is missing from `cost`).
    pub unrated: u64,
    #[serde(skip)]
    billable_ms: u64,
    #[serde(skip)]
    cost_micros: i64,
}

impl AccountingRow {
    fn add(&mut self, r: &CallRecord, rated: Option<&Rated<'_>>) {
        self.calls += 1;
        if r.answer_at.is_none() {
            return;
        }
        self.answered += 1;
        self.billable_ms += r.billable_ms.unwrap_or(0);
        match rated {
            Some(x) => {
                self.billed_s += x.billed_s;
                self.cost_micros += x.cost;
            }
            None => {
                self.billed_s += rates::billable_seconds(r);
                self.unrated += 1;
            }
        }
    }

    fn finish(&mut self, priced: bool) {
        let round2 = |v: f64| (v * 100.0).round() / 100.0;
        self.asr =
            (self.calls > 0).then(|| round2(self.answered as f64 * 100.0 / self.calls as f64));
        self.acd_s = (self.answered > 0)
            .then(|| round2(self.billable_ms as f64 / 1000.0 / self.answered as f64));
        self.cost = priced.then(|| rates::money(self.cost_micros));
        if !priced {
            // Without a deck nothing is rated, and nothing is missing from a cost.
            self.unrated = 0;
        }
    }

    /// The cost in millionths (exact).
    pub fn cost_micros(&self) -> i64 {
        self.cost_micros
    }
}

/// A report: one row per group, and the totals.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AccountingReport {
    /// What the rows are grouped by.
    pub by: GroupBy,
    /// The rows, by key.
    pub rows: Vec<AccountingRow>,
    /// All calls together.
    pub total: AccountingRow,
}

/// The report of `records` grouped `by`, priced by `deck` when there is one.
pub fn report<'r>(
    records: impl IntoIterator<Item = &'r CallRecord>,
    by: GroupBy,
    deck: Option<&RateDeck>,
) -> AccountingReport {
    let mut groups: BTreeMap<String, AccountingRow> = BTreeMap::new();
    let mut total = AccountingRow {
        key: "all".into(),
        ..Default::default()
    };
    for r in records {
        let rated = deck.and_then(|d| d.rate(r));
        let key = by.key(r, rated.as_ref());
        let row = groups.entry(key).or_insert_with_key(|key| AccountingRow {
            key: key.clone(),
            description: match (by, &rated) {
                (GroupBy::Destination, Some(x)) => Some(x.rate.description.clone()),
                _ => None,
            },
            ..Default::default()
        });
        row.add(r, rated.as_ref());
        total.add(r, rated.as_ref());
    }
    let priced = deck.is_some();
    let mut rows: Vec<AccountingRow> = groups.into_values().collect();
    rows.iter_mut().for_each(|row| row.finish(priced));
    total.finish(priced);
    AccountingReport { by, rows, total }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::rates::{parse_money, Rate};

    fn answered(to: &str, billable_ms: u64) -> CallRecord {
        let line = include_str!("../../../pcaps/answered-caller-bye/expected.jsonl");
        let mut r: CallRecord = serde_json::from_str(line.trim()).expect("a record");
        r.to_user = Some(to.into());
        r.billable_ms = Some(billable_ms);
        r
    }

    #[test]
    fn rows_add_up_to_the_total_and_unrated_calls_are_counted() {
        let deck = RateDeck::new(
            vec![Rate {
                prefix: "44".into(),
                description: "UK".into(),
                price_per_min: parse_money("0.6").expect("price"),
                min_s: 60,
                increment_s: 60,
            }],
            Numbering::default(),
        )
        .expect("deck");
        let calls = [
            answered("4420", 61_000),
            answered("4421", 1),
            answered("3312", 5_000),
        ];
        let report = report(&calls, GroupBy::Destination, Some(&deck));
        assert_eq!(report.rows.len(), 2);
        let uk = &report.rows[0];
        assert_eq!(
            (uk.key.as_str(), uk.billed_s, uk.cost_micros()),
            ("44", 180, 1_800_000)
        );
        assert_eq!(uk.description.as_deref(), Some("UK"));
        assert_eq!(report.rows[1].key, "unrated");
        assert_eq!(report.total.unrated, 1);
        assert_eq!(report.total.billed_s, 185);
        assert_eq!(report.total.cost, Some(1.8));
        assert_eq!(report.total.asr, Some(100.0));
    }
}
