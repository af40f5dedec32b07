// SPDX-License-Identifier: AGPL-3.0-or-later
//! Who may ask: bearer tokens from `--http-token-file`, compared in constant time, and the
//! bounds every request is held to. A sensor bound beyond loopback must have tokens (the
//! binary refuses to start without), and every request but `/healthz` then needs one.
//! The access log names the request, never its credentials.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::web::ApiError;

/// Longest query string taken (a search's parameters fit many times over).
pub const MAX_QUERY_BYTES: usize = 4096;
/// Shortest token taken: anything shorter can be guessed.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Why the tokens cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("--http-token-file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A token is too short, or the file has none.
    #[error("--http-token-file {path}: {why}")]
    Bad {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// The credentials a request must show.
#[derive(Clone, Default)]
pub struct Access {
    tokens: Vec<Vec<u8>>,
    log: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("Access")
            .field("tokens", &self.tokens.len())
            .field("log", &self.log)
            .finish()
    }
}

impl Access {
    /// Anyone may ask (a loopback-only server); `log`: write the access log to stderr.
    pub fn open(log: bool) -> Self {
        Self {
            tokens: Vec::new(),
            log,
        }
    }

    /// Reads tokens, one a line (blank lines and `#` comments skipped).
    pub fn from_token_file(path: &Path, log: bool) -> Result<Self, TokenError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: name.clone(),
            source,
        })?;
        let mut tokens = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let token = line.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            if token.len() < MIN_TOKEN_BYTES {
                return Err(TokenError::Bad {
                    path: name,
                    why: format!(
                        "the token on line {} is shorter than {MIN_TOKEN_BYTES} bytes",
                        n + 1
                    ),
                });
            }
            tokens.push(token.as_bytes().to_vec());
        }
        if tokens.is_empty() {
            return Err(TokenError::Bad {
                path: name,
                why: "has no tokens".into(),
            });
        }
        Ok(Self { tokens, log })
    }

    /// Whether requests must show a token.
    pub fn requires_token(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Whether `presented` is one of the tokens. Every token is compared, each in constant
    /// time, so the time taken says nothing of which one nearly matched.
    fn knows(&self, presented: &[u8]) -> bool {
        let mut found = subtle::Choice::from(0);
        for token in &self.tokens {
            found |= token.as_slice().ct_eq(presented);
        }
        found.into()
    }
}

/// Checks each request's credentials and bounds, and logs it.
pub async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a);
    let response = match refusal(&access, &request) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    };
    if access.log && !matches!(path.as_str(), "/metrics" | "/healthz" | "/readyz") {
        let peer = peer.map_or_else(|| "-".into(), |a| a.to_string());
        eprintln!(
            "spycraft: http {peer} {method} {path} {} {} ms",
            response.status().as_u16(),
            started.elapsed().as_millis()
        );
    }
    response
}

/// The answer to a request that may not go on, if it may not.
fn refusal(access: &Access, request: &Request) -> Option<Response> {
    if request
        .uri()
        .query()
        .is_some_and(|q| q.len() > MAX_QUERY_BYTES)
    {
        let too_long = format!("the query is longer than {MAX_QUERY_BYTES} bytes");
        return Some(ApiError::new(StatusCode::URI_TOO_LONG, too_long).into_response());
    }
    if !access.requires_token() || request.uri().path() == "/healthz" {
        return None;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|t| access.knows(t.trim().as_bytes())) {
        return None;
    }
    let mut refusal =
        ApiError::new(StatusCode::UNAUTHORIZED, "a valid bearer token is needed").into_response();
    refusal.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"spycraft\""),
    );
    Some(refusal)
}
