// SPDX-License-Identifier: AGPL-3.0-or-later
//! `/api/v1`: the calls a sensor keeps, searched and explained; the calls in progress and
//! their events; RFC 6076 figures and accounting reports over any window. Read-only: no
//! endpoint changes anything.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::web::{ApiError, Params, Web};
use crate::accounting::{self, AccountingReport, GroupBy};
use crate::call::{CallRecord, CaptureIssue, Timestamp};
use crate::inspect::ladder;
use crate::stats::{figures_by, GroupedFigures};
use crate::store::query::parse_time;
use crate::store::recent::RecentCounts;
use crate::store::{CallQuery, LiveBoard, LiveEvent, SearchParams, StoreFigures};

/// The API's routes.
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/api/v1/calls", get(calls))
        .route("/api/v1/calls/{id}", get(call))
        .route("/api/v1/calls/{id}/messages", get(messages))
        .route("/api/v1/calls/{id}/flow.svg", get(flow))
        .route("/api/v1/calls/{id}/pcap", get(pcap))
        .route("/api/v1/live", get(live))
        .route("/api/v1/live/events", get(live_events))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/accounting", get(accounting_report))
        .route("/api/v1/status", get(status))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/dashboard", get(super::dashboard::dashboard))
        .route("/api/v1/openapi.json", get(openapi))
}

/// A record as the API gives it: with its rated prefix and cost when a rate deck is loaded.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ApiCall {
    /// The call detail record.
    #[serde(flatten)]
    pub record: CallRecord,
    /// The rate deck's prefix that priced it.
    pub rated_prefix: Option<String>,
    /// What it cost by the deck.
    pub cost: Option<f64>,
}

impl ApiCall {
    /// The record as the API gives it.
    pub fn of(web: &Web, record: &CallRecord) -> Self {
        let rated = web.deck.as_ref().and_then(|d| d.rate(record));
        Self {
            record: record.clone(),
            rated_prefix: rated.as_ref().map(|x| x.rate.prefix.clone()),
            cost: rated.map(|x| accounting::rates::money(x.cost)),
        }
    }
}

/// A page of search results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallPage {
    /// Records matching the filters, on every page.
    pub total: u64,
    /// Where the next page starts (pass as `cursor`); absent on the last page.
    pub next_cursor: Option<String>,
    /// This page's records.
    pub calls: Vec<ApiCall>,
}

/// Searches the calls.
#[utoipa::path(get, path = "/api/v1/calls", params(SearchParams),
    responses(
        (status = 200, description = "A page of calls (JSON), or the same rows as CSV with `format=csv`",
            content((CallPage = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A parameter is wrong", body = ApiError),
        (status = 401, description = "No valid token", body = ApiError),
        (status = 503, description = "Too many searches at once", body = ApiError),
        (status = 504, description = "The search took longer than the query timeout", body = ApiError)))]
async fn calls(
    State(web): State<Arc<Web>>,
    Params(params): Params<SearchParams>,
) -> Result<Response, ApiError> {
    let csv = match params.format.as_deref() {
        None | Some("" | "json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::bad("format: takes json or csv")),
    };
    let query = CallQuery::parse(&params, &web.peers).map_err(ApiError::from)?;
    let sort = query.sort;
    let page = web.search(query).await?;
    let next_cursor = page.next.map(|c| c.encode(sort));
    if csv {
        let body = csv_of(&web, page.rows.iter().map(|r| &**r))?;
        let mut response = (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"calls.csv\"",
                ),
            ],
            body,
        )
            .into_response();
        if let Some(next) = next_cursor {
            if let Ok(value) = next.parse() {
                response.headers_mut().insert("x-next-cursor", value);
            }
        }
        return Ok(response);
    }
    let calls = page.rows.iter().map(|r| ApiCall::of(&web, r)).collect();
    Ok(Json(CallPage {
        total: page.total,
        next_cursor,
        calls,
    })
    .into_response())
}

/// The records as `--format csv` writes them (the same columns and quoting), with
/// `rated_prefix` and `cost` after them when a rate deck prices the calls.
fn csv_of<'r>(
    web: &Web,
    records: impl Iterator<Item = &'r CallRecord>,
) -> Result<Vec<u8>, ApiError> {
    let deck = web.deck.as_deref();
    let rated_columns: &[&str] = if deck.is_some() {
        &["rated_prefix", "cost"]
    } else {
        &[]
    };
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = crate::sink::COLUMNS.iter().chain(rated_columns);
    out.write_record(header).map_err(ApiError::internal)?;
    for r in records {
        let mut row = crate::sink::csv_values(r);
        if let Some(deck) = deck {
            let rated = deck.rate(r);
            row.push(
                rated
                    .as_ref()
                    .map_or_else(String::new, |x| x.rate.prefix.clone()),
            );
            row.push(rated.map_or_else(String::new, |x| {
                accounting::rates::money(x.cost).to_string()
            }));
        }
        out.write_record(&row).map_err(ApiError::internal)?;
    }
    out.into_inner().map_err(ApiError::internal)
}

/// A capture issue and what it means.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssueExplained {
    /// The issue's name in the record.
    pub issue: CaptureIssue,
    /// What it means, in words.
    pub meaning: &'static str,
}

/// One call: its record, every leg collated with it, its capture issues explained.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallDetail {
    /// The record asked for.
    pub call: ApiCall,
    /// Every leg sharing its collation id (this one included), across B2BUAs and nodes,
    /// in INVITE order.
    pub legs: Vec<ApiCall>,
    /// Its capture issues, explained.
    pub issues: Vec<IssueExplained>,
    /// Whether its messages, ladder and pcap can be had (`/messages`, `/flow.svg`, `/pcap`).
    pub messages_kept: bool,
}

fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(text).map_err(|_| ApiError::bad("id: is not a record id (a UUID)"))
}

/// The record with this id, or 404.
async fn record_of(web: &Arc<Web>, id: &str) -> Result<Arc<CallRecord>, ApiError> {
    let id = parse_id(id)?;
    web.record(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no call {id} is kept here")))
}

/// One call, its legs and its issues.
#[utoipa::path(get, path = "/api/v1/calls/{id}", params(("id" = Uuid, Path, description = "The record id")),
    responses((status = 200, body = CallDetail), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn call(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
) -> Result<Json<CallDetail>, ApiError> {
    let record = record_of(&web, &id).await?;
    Ok(Json(call_detail(&web, &record).await?))
}

/// The detail of `record`.
pub async fn call_detail(web: &Arc<Web>, record: &CallRecord) -> Result<CallDetail, ApiError> {
    let legs = web.legs(&record.collation_id).await?;
    Ok(CallDetail {
        call: ApiCall::of(web, record),
        legs: legs.iter().map(|r| ApiCall::of(web, r)).collect(),
        issues: record
            .capture_issues
            .iter()
            .map(|&issue| IssueExplained {
                issue,
                meaning: issue.meaning(),
            })
            .collect(),
        messages_kept: web.keeps_messages(),
    })
}

/// Every leg of the call `record` belongs to, itself included.
async fn legs_of(
    web: &Arc<Web>,
    record: Arc<CallRecord>,
) -> Result<Vec<Arc<CallRecord>>, ApiError> {
    let mut legs = web.legs(&record.collation_id).await?;
    if !legs.iter().any(|r| r.id == record.id) {
        legs.push(record);
    }
    Ok(legs)
}

/// The call's SIP messages, from the source that keeps them.
async fn messages_of(
    web: &Arc<Web>,
    id: &str,
) -> Result<Vec<crate::inspect::dump::DumpedMessage>, ApiError> {
    let record = record_of(web, id).await?;
    let legs = legs_of(web, record).await?;
    web.call_messages(&legs).await
}

/// One SIP message of a call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiMessage {
    /// When it was captured.
    #[schema(value_type = String, format = DateTime)]
    pub time: Timestamp,
    /// Sender (address:port).
    pub src: String,
    /// Receiver.
    pub dst: String,
    /// udp, tcp, tls, ws, sctp.
    pub transport: String,
    /// Its Call-ID.
    pub call_id: String,
    /// Method, or status and reason.
    pub label: String,
    /// The whole message.
    pub text: String,
}

/// The call's SIP messages (every leg's), in capture order.
#[utoipa::path(get, path = "/api/v1/calls/{id}/messages", params(("id" = Uuid, Path, description = "The record id")),
    responses((status = 200, body = Vec<ApiMessage>), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn messages(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
) -> Result<Json<Vec<ApiMessage>>, ApiError> {
    let messages = messages_of(&web, &id).await?;
    Ok(Json(
        messages
            .into_iter()
            .map(|m| ApiMessage {
                time: m.time,
                src: m.src.to_string(),
                dst: m.dst.to_string(),
                transport: serde_json::to_value(m.transport)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                call_id: m.call_id,
                label: m.label,
                text: m.text,
            })
            .collect(),
    ))
}

/// The call's ladder diagram: one arrow per SIP message.
#[utoipa::path(get, path = "/api/v1/calls/{id}/flow.svg", params(("id" = Uuid, Path, description = "The record id")),
    responses((status = 200, description = "An SVG image", content_type = "image/svg+xml", body = String), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn flow(State(web): State<Arc<Web>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let messages = messages_of(&web, &id).await?;
    Ok((
        [(header::CONTENT_TYPE, "image/svg+xml")],
        ladder::svg(&messages),
    )
        .into_response())
}

/// The call's frames as a pcap file.
#[utoipa::path(get, path = "/api/v1/calls/{id}/pcap", params(("id" = Uuid, Path, description = "The record id")),
    responses((status = 200, description = "A pcap file", content_type = "application/vnd.tcpdump.pcap", body = Vec<u8>), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn pcap(State(web): State<Arc<Web>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let record = record_of(&web, &id).await?;
    let legs = legs_of(&web, record.clone()).await?;
    let bytes = web.call_pcap(&legs).await?;
    let name = format!("attachment; filename=\"call-{}.pcap\"", record.id);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.tcpdump.pcap".to_owned(),
            ),
            (header::CONTENT_DISPOSITION, name),
        ],
        bytes,
    )
        .into_response())
}

/// The calls in progress.
#[utoipa::path(get, path = "/api/v1/live", responses((status = 200, body = LiveBoard)))]
async fn live(State(web): State<Arc<Web>>) -> Json<LiveBoard> {
    Json(web.store.live())
}

/// Calls starting, answered, ending and recorded, as Server-Sent Events (`started`,
/// `answered`, `ended`, `recorded`; `lagged` when this reader fell behind and missed some).
#[utoipa::path(get, path = "/api/v1/live/events",
    responses((status = 200, description = "An event stream; each event's data is a LiveEvent", content_type = "text/event-stream", body = LiveEvent)))]
async fn live_events(State(web): State<Arc<Web>>) -> impl IntoResponse {
    let mut events = web.store.subscribe();
    let stream = async_stream(move |tx| async move {
        loop {
            let received = tokio::select! {
                received = events.recv() => received,
                () = tx.closed() => break,
            };
            let event = match received {
                Ok(e) => {
                    let name = match &e {
                        LiveEvent::Started { .. } => "started",
                        LiveEvent::Answered { .. } => "answered",
                        LiveEvent::Ended { .. } => "ended",
                        LiveEvent::Recorded { .. } => "recorded",
                    };
                    Event::default()
                        .event(name)
                        .json_data(&e)
                        .unwrap_or_else(|_| Event::default().comment("unserialisable"))
                }
                Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
                Err(RecvError::Closed) => break,
            };
            if tx.send(Ok(event)).await.is_err() {
                break;
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// A stream fed by a task: what `f` sends on its channel.
fn async_stream<F, Fut>(f: F) -> tokio_stream_shim::ReceiverStream<Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    tokio_stream_shim::ReceiverStream(rx)
}

/// A receiver as a `Stream`, without another crate for it.
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// The items a channel receives, as a stream.
    #[derive(Debug)]
    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures_core::Stream for ReceiverStream<T> {
        type Item = T;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

/// A time window and a grouping.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowParams {
    /// Calls whose INVITE came at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Calls whose INVITE came before this time (RFC 3339).
    pub to: Option<String>,
    /// What the rows are grouped by.
    pub by: Option<String>,
    /// `json` (the default) or `csv`.
    #[param(pattern = "^(json|csv)?$")]
    pub format: Option<String>,
}

impl WindowParams {
    /// The records in the window.
    async fn records(&self, web: &Arc<Web>) -> Result<Vec<Arc<CallRecord>>, ApiError> {
        let from = parse_time("from", self.from.as_deref())?;
        let to = parse_time("to", self.to.as_deref())?;
        web.window(from, to).await
    }
}

/// RFC 6076 figures over a window, for all calls and per node, peer, hour or day.
#[utoipa::path(get, path = "/api/v1/stats", params(WindowParams),
    responses((status = 200, body = GroupedFigures), (status = 400, body = ApiError)))]
async fn stats(
    State(web): State<Arc<Web>>,
    Params(params): Params<WindowParams>,
) -> Result<Json<GroupedFigures>, ApiError> {
    if !matches!(params.format.as_deref(), None | Some("" | "json")) {
        return Err(ApiError::bad("format: figures are JSON only"));
    }
    let key: fn(&CallRecord) -> String = match params.by.as_deref() {
        None | Some("" | "node") => |r| r.node.clone(),
        Some("peer") => |r| r.callee_ip.to_string(),
        Some("hour") => |r| r.invite_at.to_rfc3339()[..13].to_owned(),
        Some("day") => |r| r.invite_at.to_rfc3339()[..10].to_owned(),
        Some(_) => return Err(ApiError::bad("by: takes node, peer, hour or day")),
    };
    let records = params.records(&web).await?;
    let figures = web
        .blocking(move |_| figures_by(records.iter().map(|r| &**r), key))
        .await?;
    Ok(Json(figures))
}

/// Calls, answered calls, billed time, ASR, ACD and cost per user, peer, node, destination
/// or day.
#[utoipa::path(get, path = "/api/v1/accounting", params(WindowParams),
    responses((status = 200, description = "The report (JSON), or its rows as CSV with `format=csv`",
        content((AccountingReport = "application/json"), (String = "text/csv"))), (status = 400, body = ApiError)))]
async fn accounting_report(
    State(web): State<Arc<Web>>,
    Params(params): Params<WindowParams>,
) -> Result<Response, ApiError> {
    let format = params.format.clone();
    let report = accounting_of(&web, params).await?;
    match format.as_deref() {
        None | Some("" | "json") => Ok(Json(report).into_response()),
        Some("csv") => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"accounting.csv\"",
                ),
            ],
            accounting_csv(&report)?,
        )
            .into_response()),
        Some(_) => Err(ApiError::bad("format: takes json or csv")),
    }
}

/// The accounting report `params` ask for.
pub async fn accounting_of(
    web: &Arc<Web>,
    params: WindowParams,
) -> Result<AccountingReport, ApiError> {
    let by = match params.by.as_deref() {
        None | Some("" | "user") => GroupBy::User,
        Some("peer") => GroupBy::Peer,
        Some("node") => GroupBy::Node,
        Some("destination") => GroupBy::Destination,
        Some("day") => GroupBy::Day,
        Some(_) => {
            return Err(ApiError::bad(
                "by: takes user, peer, node, destination or day",
            ))
        }
    };
    let records = params.records(web).await?;
    web.blocking(move |web| {
        accounting::report(records.iter().map(|r| &**r), by, web.deck.as_deref())
    })
    .await
}

/// The report's rows, then the total, as CSV.
fn accounting_csv(report: &AccountingReport) -> Result<Vec<u8>, ApiError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "key",
        "description",
        "calls",
        "answered",
        "billed_s",
        "asr",
        "acd_s",
        "cost",
        "unrated",
    ];
    out.write_record(header).map_err(ApiError::internal)?;
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for row in report.rows.iter().chain([&report.total]) {
        out.write_record([
            row.key.clone(),
            row.description.clone().unwrap_or_default(),
            row.calls.to_string(),
            row.answered.to_string(),
            row.billed_s.to_string(),
            opt(row.asr),
            opt(row.acd_s),
            opt(row.cost),
            row.unrated.to_string(),
        ])
        .map_err(ApiError::internal)?;
    }
    out.into_inner()
        .map_err(|e| ApiError::internal(e.into_error()))
}

/// What the sensor holds and how it runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// The records kept in memory.
    pub store: StoreFigures,
    /// Whether a rate deck prices the calls, and how many rates it has.
    pub rates: usize,
    /// Whether the calls' messages can be had.
    pub messages_kept: bool,
    /// The messages of recent calls kept in memory (a live capture).
    pub recent_messages: Option<RecentCounts>,
    /// Why the sensor is not ready, if it is not.
    pub not_ready: Option<String>,
}

/// What the sensor holds and whether it is ready.
#[utoipa::path(get, path = "/api/v1/status", responses((status = 200, body = Status)))]
async fn status(State(web): State<Arc<Web>>) -> Json<Status> {
    Json(Status {
        store: web.store.figures(),
        rates: web.deck.as_ref().map_or(0, |d| d.len()),
        messages_kept: web.keeps_messages(),
        recent_messages: web.recent.as_ref().map(|r| r.counts()),
        not_ready: web.monitor.readiness().err(),
    })
}

/// The alert rules' latest alerts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertList {
    /// Whether this sensor applies the alert rules (`--alerts`, `--alerts-syslog`).
    pub enabled: bool,
    /// Alerts raised since the start, by rule (every rule named).
    pub raised: std::collections::BTreeMap<String, u64>,
    /// The latest alerts (at most 1,000), newest first, each as the alert log writes it
    /// (Suricata's EVE shape: `timestamp`, `src_ip`, `alert.signature`, `sip`, `count`…).
    #[schema(value_type = Vec<Object>)]
    pub alerts: Vec<serde_json::Value>,
}

/// The alerts of the intrusion and toll-fraud rules, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", responses((status = 200, body = AlertList)))]
async fn alerts(State(web): State<Arc<Web>>) -> Json<AlertList> {
    Json(alert_list(&web))
}

/// What `/api/v1/alerts` and the alerts page show.
pub fn alert_list(web: &Web) -> AlertList {
    let Some(log) = web.monitor.alerts() else {
        return AlertList {
            enabled: false,
            raised: Default::default(),
            alerts: Vec::new(),
        };
    };
    let report = log.report();
    AlertList {
        enabled: true,
        raised: report
            .by_rule()
            .map(|(rule, n)| (rule.to_owned(), n))
            .collect(),
        alerts: log.recent().iter().map(crate::alert::Alert::eve).collect(),
    }
}

/// The API's description.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "spycraft",
        description = "Call records, live calls, figures and accounting of a spycraft sensor. Read-only."
    ),
    paths(
        calls,
        call,
        messages,
        flow,
        pcap,
        live,
        live_events,
        stats,
        accounting_report,
        status,
        alerts,
        super::dashboard::dashboard
    ),
    components(schemas(ApiError, CallRecord, LiveEvent))
)]
struct ApiDoc;

/// How requests to this server authenticate, for its OpenAPI document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Security {
    /// Bearer tokens (`--http-token-file`).
    pub bearer: bool,
    /// HTTP Basic with argon2-hashed passwords (`--http-users`).
    pub basic: bool,
}

/// Statuses any operation may answer besides its own: the request limits, the query
/// bounds and an unreachable database.
const COMMON_ERRORS: [(&str, &str); 4] = [
    ("414", "The query string is longer than 4 KiB"),
    ("500", "The server failed to answer"),
    (
        "503",
        "Too many queries at once, or the database cannot be reached",
    ),
    ("504", "The query took longer than the query timeout"),
];

/// The OpenAPI 3 document of this API as this server runs it: with the credentials it asks
/// for, if any, and the errors every operation may answer.
pub fn document(security: Security) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    let mut doc = <ApiDoc as utoipa::OpenApi>::openapi();
    let mut errors: Vec<(&str, &str)> = COMMON_ERRORS.to_vec();
    let schemes = [
        (security.bearer, "bearer", HttpAuthScheme::Bearer),
        (security.basic, "basic", HttpAuthScheme::Basic),
    ];
    let mut required = Vec::new();
    for (_, name, scheme) in schemes.into_iter().filter(|(on, ..)| *on) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(scheme).build()),
            );
        required.push(SecurityRequirement::new(name, Vec::<String>::new()));
    }
    if !required.is_empty() {
        doc.security = Some(required);
        errors.push(("401", "No valid credentials"));
    }
    let error = utoipa::openapi::ContentBuilder::new()
        .schema(Some(utoipa::openapi::Ref::from_schema_name("ApiError")))
        .build();
    for item in doc.paths.paths.values_mut() {
        let Some(operation) = item.get.as_mut() else {
            continue;
        };
        for (status, why) in &errors {
            operation
                .responses
                .responses
                .entry((*status).to_owned())
                .or_insert_with(|| {
                    utoipa::openapi::ResponseBuilder::new()
                        .description(*why)
                        .content("application/json", error.clone())
                        .build()
                        .into()
                });
        }
    }
    doc
}

async fn openapi(State(web): State<Arc<Web>>) -> impl IntoResponse {
    Json(document(web.security))
}

impl From<crate::store::QueryError> for ApiError {
    fn from(e: crate::store::QueryError) -> Self {
        match e {
            crate::store::QueryError::Timeout(_) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.to_string())
            }
            crate::store::QueryError::Bad { .. } => ApiError::bad(e.to_string()),
        }
    }
}
