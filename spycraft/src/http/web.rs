// SPDX-License-Identifier: AGPL-3.0-or-later
//! What the web API and pages share: the records and monitor they show, the rate deck, the
//! bounds every request is held to, and the errors they answer with.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::accounting::RateDeck;
use crate::call::{CallRecord, Timestamp};
use crate::inspect::dump::DumpedMessage;
use crate::monitor::{Monitor, PeerGroups};
use crate::store::history::{History, HistoryError};
use crate::store::kept::{pcap_of, KeptMessage};
use crate::store::messages::{CallMessages, MessagesError};
use crate::store::recent::RecentMessages;
use crate::store::{CallQuery, Page, RecordStore};

/// How long a search may take when not told (`--query-timeout`).
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Searches and reports run at once; more are refused with 503 rather than queued.
pub const MAX_CONCURRENT_QUERIES: usize = 4;

/// The state behind the API and pages.
#[derive(Debug)]
pub struct Web {
    /// The run's figures.
    pub monitor: Arc<Monitor>,
    /// The records and live calls kept.
    pub store: Arc<RecordStore>,
    /// Prices, when a deck is loaded.
    pub deck: Option<Arc<RateDeck>>,
    /// Named peers, for `peer=` filters.
    pub peers: PeerGroups,
    /// Where the messages of past calls come from, if anywhere.
    pub messages: Option<Arc<dyn CallMessages>>,
    /// The messages of recent calls a live sensor keeps (also `messages`), for their counts.
    pub recent: Option<Arc<RecentMessages>>,
    /// The credentials requests must show, for the OpenAPI document.
    pub security: super::api::Security,
    /// A database whose records are shown instead of those in memory (`serve --postgres`).
    pub history: Option<Arc<History>>,
    /// How long a search may take.
    pub query_timeout: Duration,
    queries: Semaphore,
}

impl Web {
    /// The state of a sensor's web API.
    pub fn new(
        monitor: Arc<Monitor>,
        store: Arc<RecordStore>,
        peers: PeerGroups,
        query_timeout: Duration,
    ) -> Self {
        Self {
            monitor,
            store,
            deck: None,
            peers,
            messages: None,
            recent: None,
            security: super::api::Security::default(),
            history: None,
            query_timeout,
            queries: Semaphore::new(MAX_CONCURRENT_QUERIES),
        }
    }

    /// Runs `work` off the server's thread, one of at most [`MAX_CONCURRENT_QUERIES`],
    /// within the query timeout: 503 when too many run, 504 when it takes too long.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Web) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self.queries.try_acquire().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{MAX_CONCURRENT_QUERIES} searches are running; try again shortly"),
            )
        })?;
        let web = self.clone();
        let task = tokio::task::spawn_blocking(move || work(&web));
        // A little over the search's own budget: a search notices its timeout itself and
        // says so; this catches work that cannot look at the clock.
        let limit = self.query_timeout + Duration::from_millis(500);
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(ApiError::internal(e)),
            Err(_) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the request took longer than {} ms; narrow it",
                    self.query_timeout.as_millis()
                ),
            )),
        }
    }
}

/// Where the records come from: the database when there is one, else memory.
impl Web {
    /// The page of records `query` asks for.
    pub async fn search(self: &Arc<Self>, query: CallQuery) -> Result<Page, ApiError> {
        if let Some(history) = &self.history {
            let page = history.search(&query).await?;
            return Ok(Page {
                rows: page.rows.into_iter().map(Arc::new).collect(),
                total: page.total,
                next: page.next,
            });
        }
        let budget = self.query_timeout;
        Ok(self
            .blocking(move |web| web.store.search(&query, budget))
            .await??)
    }

    /// The record with this id, if kept.
    pub async fn record(
        self: &Arc<Self>,
        id: uuid::Uuid,
    ) -> Result<Option<Arc<CallRecord>>, ApiError> {
        match &self.history {
            Some(history) => Ok(history.get(id).await?.map(Arc::new)),
            None => Ok(self.store.get(id)),
        }
    }

    /// Every leg sharing `collation_id`, in INVITE order.
    pub async fn legs(
        self: &Arc<Self>,
        collation_id: &str,
    ) -> Result<Vec<Arc<CallRecord>>, ApiError> {
        match &self.history {
            Some(history) => Ok(history
                .legs(collation_id)
                .await?
                .into_iter()
                .map(Arc::new)
                .collect()),
            None => Ok(self.store.legs(collation_id)),
        }
    }

    /// Whether the messages of past calls can be had at all.
    pub fn keeps_messages(&self) -> bool {
        self.messages.is_some() || self.history.is_some()
    }

    /// The SIP messages of the call whose legs these are, in capture order, as the list and
    /// the ladder show them. 404 when none are kept.
    pub async fn call_messages(
        self: &Arc<Self>,
        legs: &[Arc<CallRecord>],
    ) -> Result<Vec<DumpedMessage>, ApiError> {
        if self.history.is_some() {
            let kept = self.stored_messages(legs).await?;
            return Ok(kept.iter().map(KeptMessage::dumped).collect());
        }
        let messages = self
            .from_source(legs, |source, ids| source.messages(ids))
            .await?;
        if messages.is_empty() {
            return Err(ApiError::not_found(
                "no SIP message of this call is kept (a live sensor lets the oldest calls' go first)",
            ));
        }
        Ok(messages)
    }

    /// The call's frames as a pcap file (rebuilt from the messages the database keeps).
    pub async fn call_pcap(
        self: &Arc<Self>,
        legs: &[Arc<CallRecord>],
    ) -> Result<Vec<u8>, ApiError> {
        if self.history.is_some() {
            return Ok(pcap_of(&self.stored_messages(legs).await?));
        }
        self.from_source(legs, |source, ids| source.pcap(ids)).await
    }

    /// What `read` takes from the source of messages kept here (off the server's thread);
    /// 404 without one.
    async fn from_source<T: Send + 'static>(
        self: &Arc<Self>,
        legs: &[Arc<CallRecord>],
        read: fn(&dyn CallMessages, &HashSet<String>) -> Result<T, MessagesError>,
    ) -> Result<T, ApiError> {
        let ids = call_ids(legs);
        self.blocking(move |web| {
            let source = web.messages.as_ref().ok_or_else(ApiError::no_messages)?;
            read(source.as_ref(), &ids).map_err(ApiError::internal)
        })
        .await?
    }

    /// The messages of these legs in `sip_message`; 404 when there are none.
    async fn stored_messages(
        self: &Arc<Self>,
        legs: &[Arc<CallRecord>],
    ) -> Result<Vec<KeptMessage>, ApiError> {
        let Some(history) = &self.history else {
            return Err(ApiError::no_messages());
        };
        let (from, to) = message_window(legs);
        let ids: Vec<String> = call_ids(legs).into_iter().collect();
        let kept = history.messages(&ids, from, to).await?;
        if kept.is_empty() {
            return Err(ApiError::not_found(
                "no SIP message of this call is stored (sensors store them with --store-messages)",
            ));
        }
        Ok(kept)
    }

    /// Every record whose INVITE falls in the window.
    pub async fn window(
        self: &Arc<Self>,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Vec<Arc<CallRecord>>, ApiError> {
        if let Some(history) = &self.history {
            return Ok(history
                .window(from, to)
                .await?
                .into_iter()
                .map(Arc::new)
                .collect());
        }
        self.blocking(move |web| {
            web.store.select(|r| {
                from.is_none_or(|t| r.invite_at >= t) && to.is_none_or(|t| r.invite_at < t)
            })
        })
        .await
    }
}

/// The Call-IDs of these legs.
fn call_ids(legs: &[Arc<CallRecord>]) -> HashSet<String> {
    legs.iter().map(|r| r.call_id.clone()).collect()
}

/// Where to look for the messages of these legs: from a minute before the first INVITE
/// (clocks of two sensors differ) to five minutes after the last end (retransmissions and
/// late answers), a day after an INVITE whose leg never ended.
fn message_window(legs: &[Arc<CallRecord>]) -> (Timestamp, Timestamp) {
    const MINUTE: i64 = 60_000_000;
    let from = legs.iter().map(|r| r.invite_at.0).min().unwrap_or(0) - MINUTE;
    let to = legs
        .iter()
        .map(|r| r.end_at.map_or(r.invite_at.0 + 24 * 60 * MINUTE, |t| t.0))
        .max()
        .unwrap_or(0)
        + 5 * MINUTE;
    (Timestamp(from), Timestamp(to))
}

impl From<HistoryError> for ApiError {
    fn from(e: HistoryError) -> Self {
        let status = match e {
            HistoryError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            HistoryError::Postgres(_) => StatusCode::SERVICE_UNAVAILABLE,
            HistoryError::Row(_) | HistoryError::Message(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, crate::error_chain(&e))
    }
}

/// A query string read into `T`; one that does not read is a 400 in the API's JSON shape,
/// saying which parameter is wrong.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Params(v))
            .map_err(|e| ApiError::bad(e.body_text()))
    }
}

/// An error as the API answers it: a status and a sentence.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    status: u16,
    /// What went wrong, and what to do about it.
    pub error: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status: status.as_u16(),
            error: error.into(),
        }
    }

    /// 400: the request is wrong.
    pub fn bad(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    /// 404: nothing by that name.
    pub fn not_found(error: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error)
    }

    /// 404: this sensor keeps no messages.
    pub fn no_messages() -> Self {
        Self::not_found(
            "this sensor keeps no SIP messages of past calls (serve FILE... does, capture with \
             --keep-messages-mb above 0 does, serve --postgres does for sensors run with \
             --store-messages)",
        )
    }

    /// 500, saying what failed.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self)).into_response()
    }
}
