// SPDX-License-Identifier: AGPL-3.0-or-later
//! The sensor's HTTP endpoint (`--http ADDR`): `/metrics` for Prometheus, `/healthz` and
//! `/readyz` for supervisors and load balancers, and, where records are kept, the web API
//! (`/api/v1`) and pages. One small server on a thread of its own with a single-threaded
//! runtime (searches run on its blocking pool): a slow or hostile client costs that thread,
//! never the pipeline.

pub mod api;
pub mod auth;
mod dashboard;
mod https;
pub mod pages;
pub mod tls;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::oneshot;

use crate::monitor::{Monitor, CONTENT_TYPE};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be bound (in use, not local, not permitted).
    #[error("--http {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Its thread or runtime could not be started.
    #[error("HTTP server: {0}")]
    Start(std::io::Error),
}

/// The routes every sensor serves.
pub fn routes(monitor: Arc<Monitor>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(monitor)
}

/// Every route of a sensor that keeps records: the monitoring endpoints, the API and the
/// pages, each request checked by `access`.
pub fn web_routes(web: Arc<web::Web>, access: auth::Access) -> Router {
    let app = Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .with_state(web.clone());
    routes(web.monitor.clone())
        .merge(app)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            auth::guard,
        ))
}

/// The monitoring routes alone, each request checked by `access`.
pub fn monitor_routes(monitor: Arc<Monitor>, access: auth::Access) -> Router {
    routes(monitor).layer(axum::middleware::from_fn_with_state(
        Arc::new(access),
        auth::guard,
    ))
}

async fn metrics(State(monitor): State<Arc<Monitor>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], monitor.exposition())
}

async fn readyz(State(monitor): State<Arc<Monitor>>) -> impl IntoResponse {
    match monitor.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// A running server; stopped when dropped.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` (here, so a taken port fails the start) and serves `router` on a thread
    /// of its own, over TLS when `tls` is given.
    pub fn start(
        addr: SocketAddr,
        router: Router,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Self, HttpError> {
        let bind = |source| HttpError::Bind { addr, source };
        let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let bound = listener.local_addr().map_err(bind)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(HttpError::Start)?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("spycraft-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let served = match tls {
                        Some(tls) => https::serve(listener, router, tls, stopped).await,
                        None => {
                            let app = router.into_make_service_with_connect_info::<SocketAddr>();
                            axum::serve(listener, app)
                                .with_graceful_shutdown(async {
                                    let _ = stopped.await;
                                })
                                .await
                        }
                    };
                    if let Err(e) = served {
                        eprintln!("spycraft: WARNING: HTTP server on {bound}: {e}");
                    }
                });
            })
            .map_err(HttpError::Start)?;
        Ok(Self {
            addr: bound,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port chosen, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
