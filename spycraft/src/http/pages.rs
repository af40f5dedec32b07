// SPDX-License-Identifier: AGPL-3.0-or-later
//! The pages: a dashboard, call search, a call's page and accounting reports. Rendered on the
//! server from compiled-in templates (askama escapes every value); the one script and style
//! sheet are compiled in too, so the pages need no network and no build chain.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::api::{self, accounting_of, call_detail, ApiCall, CallDetail, WindowParams};
use super::web::{ApiError, Params, Web};
use crate::accounting::AccountingReport;
use crate::call::Disposition;
use crate::store::{CallQuery, SearchParams};

/// The pages' routes.
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/", get(dashboard))
        .route("/calls", get(calls))
        .route("/calls/{id}", get(call))
        .route("/accounting", get(accounting))
        .route("/alerts", get(alerts))
        .route(
            "/assets/app.css",
            get(|| asset("text/css", include_str!("../../assets/app.css"))),
        )
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript", include_str!("../../assets/app.js"))),
        )
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage;

async fn dashboard() -> Response {
    render(&DashboardPage)
}

/// The search form's fields, as typed.
#[derive(Debug, Default)]
struct SearchForm {
    q: String,
    from: String,
    to: String,
    call_id: String,
    disposition: String,
    node: String,
    peer: String,
    min_billable_ms: String,
}

#[derive(Template)]
#[template(path = "calls.html")]
struct CallsPage {
    form: SearchForm,
    dispositions: Vec<String>,
    error: Option<String>,
    page: Option<api::CallPage>,
    csv_query: String,
    next_query: Option<String>,
}

/// The raw query of a page: every field as typed, so the form shows what was asked.
#[derive(Debug, Default, Deserialize)]
struct RawSearch {
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    call_id: Option<String>,
    disposition: Option<String>,
    node: Option<String>,
    peer: Option<String>,
    min_billable_ms: Option<String>,
    cursor: Option<String>,
}

async fn calls(State(web): State<Arc<Web>>, Params(raw): Params<RawSearch>) -> Response {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let form = SearchForm {
        q: text(&raw.q),
        from: text(&raw.from),
        to: text(&raw.to),
        call_id: text(&raw.call_id),
        disposition: text(&raw.disposition),
        node: text(&raw.node),
        peer: text(&raw.peer),
        min_billable_ms: text(&raw.min_billable_ms),
    };
    let dispositions = [""]
        .into_iter()
        .chain(Disposition::ALL.iter().map(|d| d.as_str()))
        .map(str::to_owned)
        .collect();
    let mut page = CallsPage {
        form,
        dispositions,
        error: None,
        page: None,
        csv_query: String::new(),
        next_query: None,
    };
    let asked = [
        &raw.q,
        &raw.from,
        &raw.to,
        &raw.call_id,
        &raw.disposition,
        &raw.node,
        &raw.peer,
    ]
    .iter()
    .any(|v| v.is_some());
    if !asked {
        return render(&page);
    }
    match search(&web, &raw).await {
        Ok((found, next_cursor)) => {
            let pairs = form_pairs(&page.form);
            page.csv_query = encode(
                &[
                    pairs.clone(),
                    vec![("format", "csv".into()), ("limit", "10000".into())],
                ]
                .concat(),
            );
            page.next_query = next_cursor.map(|c| encode(&[pairs, vec![("cursor", c)]].concat()));
            page.page = Some(found);
        }
        Err(e) => page.error = Some(e.error),
    }
    render(&page)
}

/// Runs the page's search as the API would.
async fn search(
    web: &Arc<Web>,
    raw: &RawSearch,
) -> Result<(api::CallPage, Option<String>), ApiError> {
    let empty_none = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let min_billable_ms = match empty_none(&raw.min_billable_ms) {
        None => None,
        Some(ms) => Some(
            ms.trim()
                .parse()
                .map_err(|_| ApiError::bad("min_billable_ms: is not a number of milliseconds"))?,
        ),
    };
    let params = SearchParams {
        q: empty_none(&raw.q),
        from: empty_none(&raw.from),
        to: empty_none(&raw.to),
        call_id: empty_none(&raw.call_id),
        disposition: empty_none(&raw.disposition),
        node: empty_none(&raw.node),
        peer: empty_none(&raw.peer),
        min_billable_ms,
        cursor: empty_none(&raw.cursor),
        ..SearchParams::default()
    };
    let query = CallQuery::parse(&params, &web.peers).map_err(ApiError::from)?;
    let sort = query.sort;
    let page = web.search(query).await?;
    let next = page.next.map(|c| c.encode(sort));
    let calls = page.rows.iter().map(|r| ApiCall::of(web, r)).collect();
    Ok((
        api::CallPage {
            total: page.total,
            next_cursor: next.clone(),
            calls,
        },
        next,
    ))
}

fn form_pairs(form: &SearchForm) -> Vec<(&'static str, String)> {
    [
        ("q", &form.q),
        ("from", &form.from),
        ("to", &form.to),
        ("call_id", &form.call_id),
        ("disposition", &form.disposition),
        ("node", &form.node),
        ("peer", &form.peer),
        ("min_billable_ms", &form.min_billable_ms),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k, v.clone()))
    .collect()
}

/// `application/x-www-form-urlencoded` pairs.
fn encode(pairs: &[(&str, String)]) -> String {
    let escape = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[derive(Template)]
#[template(path = "call.html")]
struct CallPage {
    detail: CallDetail,
}

async fn call(State(web): State<Arc<Web>>, Path(id): Path<String>) -> Response {
    let Ok(id) = uuid::Uuid::try_parse(&id) else {
        return ApiError::bad("not a record id").into_response();
    };
    let detail = match web.record(id).await {
        Ok(Some(record)) => call_detail(&web, &record).await,
        Ok(None) => Err(ApiError::not_found(format!("no call {id} is kept here"))),
        Err(e) => Err(e),
    };
    match detail {
        Ok(detail) => render(&CallPage { detail }),
        Err(e) => e.into_response(),
    }
}

#[derive(Template)]
#[template(path = "accounting.html")]
struct AccountingPage {
    from: String,
    to: String,
    by: String,
    groupings: Vec<String>,
    error: Option<String>,
    report: Option<AccountingReport>,
    priced: bool,
    csv_query: String,
}

#[derive(Debug, Default, Deserialize)]
struct RawReport {
    from: Option<String>,
    to: Option<String>,
    by: Option<String>,
}

async fn accounting(State(web): State<Arc<Web>>, Params(raw): Params<RawReport>) -> Response {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let by = raw
        .by
        .clone()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "user".into());
    let mut page = AccountingPage {
        from: text(&raw.from),
        to: text(&raw.to),
        by: by.clone(),
        groupings: ["user", "peer", "node", "destination", "day"]
            .map(str::to_owned)
            .to_vec(),
        error: None,
        report: None,
        priced: web.deck.is_some(),
        csv_query: String::new(),
    };
    let pairs: Vec<(&str, String)> = [("from", &page.from), ("to", &page.to), ("by", &page.by)]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.clone()))
        .collect();
    page.csv_query = encode(&[pairs, vec![("format", "csv".into())]].concat());
    let params = WindowParams {
        from: raw.from.filter(|s| !s.is_empty()),
        to: raw.to.filter(|s| !s.is_empty()),
        by: Some(by),
        format: None,
    };
    match accounting_of(&web, params).await {
        Ok(report) => page.report = Some(report),
        Err(e) => page.error = Some(e.error),
    }
    render(&page)
}

/// One alert as the alerts page lists it.
struct AlertRow {
    time: String,
    rule: &'static str,
    signature: &'static str,
    severity: u8,
    repeat: bool,
    source: String,
    target: String,
    count: u64,
    first_seen: String,
    user_agent: String,
    from_to: String,
    call_id: String,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    enabled: bool,
    raised: Vec<(String, u64)>,
    rows: Vec<AlertRow>,
}

async fn alerts(State(web): State<Arc<Web>>) -> Response {
    let Some(log) = web.monitor.alerts() else {
        return render(&AlertsPage {
            enabled: false,
            raised: Vec::new(),
            rows: Vec::new(),
        });
    };
    let report = log.report();
    let raised = report
        .by_rule()
        .map(|(rule, n)| (rule.to_owned(), n))
        .collect();
    let rows = log
        .recent()
        .into_iter()
        .map(|a| {
            let sip = a.sip.as_ref();
            AlertRow {
                time: a.at.to_rfc3339(),
                rule: a.rule.name(),
                signature: a.rule.signature(),
                severity: a.severity,
                repeat: a.repeat,
                source: a.offender.to_string(),
                target: a.target.to_string(),
                count: a.count,
                first_seen: a.first_seen.to_rfc3339(),
                user_agent: sip.map(|s| s.user_agent.clone()).unwrap_or_default(),
                from_to: sip
                    .map(|s| format!("{} → {}", s.from_user, s.to_user))
                    .unwrap_or_default(),
                call_id: sip.map(|s| s.call_id.clone()).unwrap_or_default(),
            }
        })
        .collect();
    render(&AlertsPage {
        enabled: true,
        raised,
        rows,
    })
}
