// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft stats`: the RFC 6076 (and ITU-T E.411/E.425) call-performance figures over call
//! records, for all calls, per sensor node and per peer (the address the INVITE went to).
//!
//! Each record is one INVITE attempt (a leg; a 401/407 challenge and its retry count once).
//! - SER, session establishment ratio: 2xx / (attempts − 3xx).
//! - SEER, session establishment effectiveness ratio: (2xx, 480, 486, 600, 603) / (attempts − 3xx).
//! - ISA, ineffective session attempts: (408, 500, 503, 504, or no final response) / attempts.
//! - SCR, session completion ratio: answered calls ended by a BYE / attempts.
//! - ASR, answer seizure ratio (E.411): answered / attempts.
//! - NER, network effectiveness ratio (E.425): answered, user busy (486, 600), no answer
//!   (408, 480, or cancelled while ringing) and terminal rejection (603) / attempts.
//! - SRD, session request delay: INVITE to the first 18x or final response (`pdd_ms`):
//!   mean, median and 95th percentile (nearest rank).
//! - ACD, average call duration: billable time of answered calls / answered calls.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::call::{CallRecord, Disposition, EndReason};

/// How attempts count towards the ratios; one attempt's, or a sum of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    /// INVITE attempts.
    pub attempts: u64,
    /// Of them, redirected (3xx): left out of SER and SEER's base.
    pub redirected: u64,
    /// Answered.
    pub answered: u64,
    /// Answered, or ended by the user (480, 486, 600, 603): SEER's numerator.
    pub effective: u64,
    /// Failed in the network (408, 500, 503, 504, no final response): ISA's numerator.
    pub ineffective: u64,
    /// Answered and ended by a BYE: SCR's numerator.
    pub completed: u64,
    /// NER's numerator: answered, busy, no answer, cancelled, or 603.
    pub network_effective: u64,
}

impl Attempts {
    /// How one record counts.
    pub fn of(r: &CallRecord) -> Self {
        let code = r.final_status;
        let answered = r.disposition == Disposition::Answered;
        let flag = |b: bool| u64::from(b);
        Self {
            attempts: 1,
            redirected: flag(code.is_some_and(|c| (300..400).contains(&c))),
            answered: flag(answered),
            effective: flag(answered || matches!(code, Some(480 | 486 | 600 | 603))),
            ineffective: flag(code.is_none() || matches!(code, Some(408 | 500 | 503 | 504))),
            completed: flag(answered && r.end_reason == EndReason::Bye),
            network_effective: flag(
                answered
                    || matches!(
                        r.disposition,
                        Disposition::Busy | Disposition::NoAnswer | Disposition::Cancelled
                    )
                    || code == Some(603),
            ),
        }
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Attempts) {
        self.attempts += other.attempts;
        self.redirected += other.redirected;
        self.answered += other.answered;
        self.effective += other.effective;
        self.ineffective += other.ineffective;
        self.completed += other.completed;
        self.network_effective += other.network_effective;
    }

    /// Answer-seizure ratio (E.411), 0 to 1; `None` without attempts.
    pub fn asr(&self) -> Option<f64> {
        ratio(self.answered, self.attempts)
    }

    /// Network effectiveness ratio (E.425), 0 to 1.
    pub fn ner(&self) -> Option<f64> {
        ratio(self.network_effective, self.attempts)
    }

    /// Session establishment ratio (RFC 6076), 0 to 1.
    pub fn ser(&self) -> Option<f64> {
        ratio(self.answered, self.attempts - self.redirected)
    }
}

fn ratio(n: u64, of: u64) -> Option<f64> {
    (of > 0).then(|| n as f64 / of as f64)
}

/// Counts kept for one group of records.
#[derive(Clone, Debug, Default)]
struct Tally {
    attempts: Attempts,
    billable_ms: u64,
    srd_ms: Vec<u64>,
    by_disposition: BTreeMap<&'static str, u64>,
    by_final_status: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, r: &CallRecord) {
        let one = Attempts::of(r);
        self.attempts.add(&one);
        if one.answered > 0 {
            self.billable_ms += r.billable_ms.unwrap_or(0);
        }
        if let Some(pdd) = r.pdd_ms {
            self.srd_ms.push(pdd);
        }
        *self
            .by_disposition
            .entry(r.disposition.as_str())
            .or_default() += 1;
        let code = r
            .final_status
            .map_or_else(|| "none".to_owned(), |c| c.to_string());
        *self.by_final_status.entry(code).or_default() += 1;
    }

    fn figures(&self) -> Figures {
        let percent = |n: u64, of: u64| {
            if of == 0 {
                None
            } else {
                Some((n as f64 * 10_000.0 / of as f64).round() / 100.0)
            }
        };
        let a = &self.attempts;
        let established_base = a.attempts - a.redirected;
        let mut srd = self.srd_ms.clone();
        srd.sort_unstable();
        let rank = |p: f64| -> Option<u64> {
            if srd.is_empty() {
                return None;
            }
            let index = ((p * srd.len() as f64).ceil() as usize).clamp(1, srd.len()) - 1;
            Some(srd[index])
        };
        Figures {
            attempts: a.attempts,
            answered: a.answered,
            ser: percent(a.answered, established_base),
            seer: percent(a.effective, established_base),
            isa: percent(a.ineffective, a.attempts),
            scr: percent(a.completed, a.attempts),
            asr: percent(a.answered, a.attempts),
            ner: percent(a.network_effective, a.attempts),
            srd_avg_ms: (!srd.is_empty())
                .then(|| (srd.iter().sum::<u64>() as f64 / srd.len() as f64 * 10.0).round() / 10.0),
            srd_p50_ms: rank(0.5),
            srd_p95_ms: rank(0.95),
            acd_s: (a.answered > 0)
                .then(|| (self.billable_ms as f64 / a.answered as f64 / 10.0).round() / 100.0),
            by_disposition: self.by_disposition.clone(),
            by_final_status: self.by_final_status.clone(),
        }
    }
}

/// The figures of one group. Ratios are percentages with two decimals; `None` where the
/// base is empty.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figures {
    /// INVITE attempts.
    pub attempts: u64,
    /// Answered calls.
    pub answered: u64,
    /// Session establishment ratio (RFC 6076).
    pub ser: Option<f64>,
    /// Session establishment effectiveness ratio (RFC 6076).
    pub seer: Option<f64>,
    /// Ineffective session attempts (RFC 6076).
    pub isa: Option<f64>,
    /// Session completion ratio (RFC 6076).
    pub scr: Option<f64>,
    /// Answer-seizure ratio.
    pub asr: Option<f64>,
    /// Network effectiveness ratio.
    pub ner: Option<f64>,
    /// Mean session request delay, ms.
    pub srd_avg_ms: Option<f64>,
    /// Median session request delay, ms.
    pub srd_p50_ms: Option<u64>,
    /// 95th percentile session request delay, ms.
    pub srd_p95_ms: Option<u64>,
    /// Seconds.
    pub acd_s: Option<f64>,
    /// Calls by disposition.
    pub by_disposition: BTreeMap<&'static str, u64>,
    /// Calls by final status.
    pub by_final_status: BTreeMap<String, u64>,
}

/// Figures for everything, per node and per peer.
#[derive(Clone, Debug, Default)]
pub struct CallStats {
    all: Tally,
    nodes: BTreeMap<String, Tally>,
    peers: BTreeMap<String, Tally>,
}

/// The report, as JSON shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatsReport {
    /// All calls.
    pub all: Figures,
    /// By sensor node.
    pub nodes: BTreeMap<String, Figures>,
    /// By peer.
    pub peers: BTreeMap<String, Figures>,
}

impl CallStats {
    /// Counts one record.
    pub fn add(&mut self, r: &CallRecord) {
        self.all.add(r);
        self.nodes.entry(r.node.clone()).or_default().add(r);
        self.peers
            .entry(r.callee_ip.to_string())
            .or_default()
            .add(r);
    }

    /// The figures so far.
    pub fn report(&self) -> StatsReport {
        StatsReport {
            all: self.all.figures(),
            nodes: self
                .nodes
                .iter()
                .map(|(k, t)| (k.clone(), t.figures()))
                .collect(),
            peers: self
                .peers
                .iter()
                .map(|(k, t)| (k.clone(), t.figures()))
                .collect(),
        }
    }
}

/// Figures over records grouped by a key of each: all of them, and each group.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GroupedFigures {
    /// All the records.
    #[schema(value_type = Object)]
    pub all: Figures,
    /// Each group, by its key.
    #[schema(value_type = Object)]
    pub groups: BTreeMap<String, Figures>,
}

/// The figures of `records`, all together and grouped by `key`.
pub fn figures_by<'r>(
    records: impl IntoIterator<Item = &'r CallRecord>,
    key: impl Fn(&CallRecord) -> String,
) -> GroupedFigures {
    let mut all = Tally::default();
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    for r in records {
        all.add(r);
        groups.entry(key(r)).or_default().add(r);
    }
    GroupedFigures {
        all: all.figures(),
        groups: groups
            .iter()
            .map(|(k, t)| (k.clone(), t.figures()))
            .collect(),
    }
}

impl StatsReport {
    /// One row per group: all, each node, each peer.
    pub fn table(&self) -> String {
        let header = [
            "GROUP", "CALLS", "ANSWERED", "SER%", "SEER%", "ISA%", "SCR%", "ASR%", "NER%",
            "SRD AVG", "P50", "P95", "ACD S",
        ];
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut row = |name: String, f: &Figures| {
            let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
            let ms = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
            rows.push(vec![
                name,
                f.attempts.to_string(),
                f.answered.to_string(),
                pct(f.ser),
                pct(f.seer),
                pct(f.isa),
                pct(f.scr),
                pct(f.asr),
                pct(f.ner),
                f.srd_avg_ms.map_or("-".into(), |v| format!("{v:.1}")),
                ms(f.srd_p50_ms),
                ms(f.srd_p95_ms),
                f.acd_s.map_or("-".into(), |v| format!("{v:.2}")),
            ]);
        };
        row("all".into(), &self.all);
        for (node, f) in &self.nodes {
            row(format!("node {node}"), f);
        }
        for (peer, f) in &self.peers {
            row(format!("peer {peer}"), f);
        }
        let mut out = crate::sink::aligned::aligned(&header, &rows, 1);
        let by = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "\ndispositions: {}\nfinal codes: {}\n",
            self.all
                .by_disposition
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            by(&self.all.by_final_status)
        ));
        out
    }
}

/// Collecting the figures is one more place records can go.
impl crate::sink::RecordSink for CallStats {
    fn write(&mut self, record: &CallRecord) -> Result<(), crate::sink::SinkError> {
        self.add(record);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), crate::sink::SinkError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Option<u16>, disposition: Disposition, end: EndReason) -> CallRecord {
        let line = include_str!("../../pcaps/answered-caller-bye/expected.jsonl");
        let mut r: CallRecord = serde_json::from_str(line.trim()).expect("a record");
        r.final_status = status;
        r.disposition = disposition;
        r.end_reason = end;
        r
    }

    #[test]
    fn redirects_leave_the_establishment_base_and_silence_is_ineffective() {
        let mut s = CallStats::default();
        s.add(&record(Some(200), Disposition::Answered, EndReason::Bye));
        s.add(&record(Some(302), Disposition::Failed, EndReason::Rejected));
        s.add(&record(None, Disposition::Failed, EndReason::Timeout));
        s.add(&record(Some(603), Disposition::Failed, EndReason::Rejected));
        let f = s.report().all;
        assert_eq!(f.attempts, 4);
        assert_eq!(f.ser, Some(33.33), "1 of the 3 that were not redirected");
        assert_eq!(f.seer, Some(66.67), "200 and 603 of 3");
        assert_eq!(f.isa, Some(25.0), "no final response is ineffective");
        assert_eq!(f.ner, Some(50.0), "answered and the 603");
        assert_eq!(f.by_final_status["none"], 1);
    }

    #[test]
    fn an_empty_group_has_no_ratios() {
        let f = CallStats::default().report().all;
        assert_eq!(
            (f.ser, f.asr, f.acd_s, f.srd_p95_ms),
            (None, None, None, None)
        );
    }
}
