// SPDX-License-Identifier: AGPL-3.0-or-later
//! `/api/v1/dashboard`: what the dashboard page shows, in one answer. Windows end at the
//! wall clock on a live capture and at the newest record otherwise, so a replayed file
//! shows its own last five minutes rather than an empty present.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::web::{ApiError, Web};
use crate::call::{CallRecord, Timestamp};
use crate::monitor::PDD_BUCKETS;
use crate::stats::{figures_by, Figures};

/// The dashboard's figures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    /// Where the windows end.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub now: Option<Timestamp>,
    /// Call legs open now.
    pub live_calls: u64,
    /// New calls per second over the last minute.
    pub calls_per_second: f64,
    /// Figures over the last 5 minutes.
    #[schema(value_type = Object)]
    pub last_5m: Figures,
    /// Figures over the last hour.
    #[schema(value_type = Object)]
    pub last_1h: Figures,
    /// The most frequent failure statuses (400 and up) of the last hour, most first.
    pub top_failures: Vec<FailureCount>,
    /// Session request delay of the last hour: calls per bucket, by upper bound (seconds;
    /// the last is everything longer).
    pub srd_histogram: Vec<SrdBucket>,
    /// The capture's counters on one line.
    pub capture: String,
    /// Outputs in trouble, each with why.
    pub output_troubles: Vec<String>,
    /// Records dropped from memory to keep its bound.
    pub records_dropped: u64,
}

/// How many calls of the last hour ended with one failure status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FailureCount {
    /// The final status, 400 and up.
    pub status: u16,
    /// Calls that ended with it.
    pub calls: u64,
}

/// One bucket of the session request delay histogram.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SrdBucket {
    /// Its upper bound (`≤0.5` seconds), or `more`.
    pub upto: String,
    /// Calls whose delay falls in it.
    pub calls: u64,
}

/// What the dashboard shows now.
#[utoipa::path(get, path = "/api/v1/dashboard", responses((status = 200, body = Dashboard)))]
pub async fn dashboard(State(web): State<Arc<Web>>) -> Result<Json<Dashboard>, ApiError> {
    // A live capture, and a database live sensors write to, end at the wall clock.
    let now = if web.monitor.is_live() || web.history.is_some() {
        Some(Timestamp::now())
    } else {
        web.store.newest_invite()
    };
    let hour = now.map(|n| n.plus_micros(-3_600_000_000));
    let records = web.window(hour, None).await?;
    web.blocking(move |web| Json(build(web, now, &records)))
        .await
}

fn build(web: &Web, now: Option<Timestamp>, records: &[Arc<CallRecord>]) -> Dashboard {
    let since = |secs: i64| now.map(|n| n.plus_micros(-secs * 1_000_000));
    let within = |secs: i64| {
        let from = since(secs);
        move |r: &&Arc<CallRecord>| from.is_none_or(|f| r.invite_at >= f)
    };
    let last_minute = records.iter().filter(within(60)).count();
    let last_5m = figures_by(records.iter().filter(within(300)).map(|r| &**r), |_| {
        String::new()
    })
    .all;
    let last_1h = figures_by(records.iter().map(|r| &**r), |_| String::new()).all;
    let mut failures: BTreeMap<u16, u64> = BTreeMap::new();
    let mut srd = vec![0u64; PDD_BUCKETS.len() + 1];
    for r in records {
        if let Some(code) = r.final_status.filter(|&c| c >= 400) {
            *failures.entry(code).or_default() += 1;
        }
        if let Some(pdd) = r.pdd_ms {
            let secs = pdd as f64 / 1000.0;
            srd[PDD_BUCKETS.partition_point(|&upper| upper < secs)] += 1;
        }
    }
    let mut top_failures: Vec<FailureCount> = failures
        .into_iter()
        .map(|(status, calls)| FailureCount { status, calls })
        .collect();
    top_failures.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.status.cmp(&b.status)));
    top_failures.truncate(5);
    let srd_histogram = PDD_BUCKETS
        .iter()
        .map(|b| format!("≤{b}"))
        .chain(["more".to_owned()])
        .zip(srd)
        .map(|(upto, calls)| SrdBucket { upto, calls })
        .collect();
    let (capture, output_troubles) = web.monitor.health();
    Dashboard {
        now,
        live_calls: web.store.live().open_legs,
        calls_per_second: (last_minute as f64 / 60.0 * 100.0).round() / 100.0,
        last_5m,
        last_1h,
        top_failures,
        srd_histogram,
        capture,
        output_troubles,
        records_dropped: web.store.figures().dropped,
    }
}
