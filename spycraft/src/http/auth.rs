// SPDX-License-Identifier: AGPL-3.0-or-later
//! Who may ask: bearer tokens from `--http-token-file` (for tools; compared in constant
//! time) and users from `--http-users` (for browsers: HTTP Basic against argon2 hashes), and
//! the bounds every request is held to. A sensor bound beyond loopback must have one or the
//! other (the binary refuses to start without), and every request but `/healthz` then needs
//! them. The access log names the request, never its credentials.

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

/// Why the tokens or users cannot be used.
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
    /// (name, PHC argon2 hash)
    users: Vec<(String, String)>,
    log: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("Access")
            .field("tokens", &self.tokens.len())
            .field("users", &self.users.len())
            .field("log", &self.log)
            .finish()
    }
}

impl Access {
    /// Anyone may ask (a loopback-only server); `log`: write the access log to stderr.
    pub fn open(log: bool) -> Self {
        Self {
            tokens: Vec::new(),
            users: Vec::new(),
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
        Ok(Self {
            tokens,
            users: Vec::new(),
            log,
        })
    }

    /// Adds the users of an htpasswd-style file: `name:hash` a line, each hash a PHC
    /// argon2 string (`$argon2id$v=19$m=19456,t=2,p=1$…`); blank lines and `#` comments
    /// skipped.
    pub fn with_users_file(mut self, path: &Path) -> Result<Self, TokenError> {
        let name = path.display().to_string();
        let bad = |why: String| TokenError::Bad {
            path: name.clone(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: name.clone(),
            source,
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(bad(format!("line {} is not name:hash", n + 1)));
            };
            let parsed =
                argon2::PasswordHash::new(hash).map_err(|e| bad(format!("line {}: {e}", n + 1)))?;
            if !parsed.algorithm.as_str().starts_with("argon2") {
                return Err(bad(format!("line {}: only argon2 hashes are taken", n + 1)));
            }
            self.users.push((user.to_owned(), hash.to_owned()));
        }
        if self.users.is_empty() {
            return Err(bad("has no users".into()));
        }
        Ok(self)
    }

    /// The credentials requests must show, as the OpenAPI document says them.
    pub fn security(&self) -> super::api::Security {
        super::api::Security {
            bearer: !self.tokens.is_empty(),
            basic: !self.users.is_empty(),
        }
    }

    /// Whether requests must show credentials.
    pub fn requires_token(&self) -> bool {
        !self.tokens.is_empty() || !self.users.is_empty()
    }

    /// Whether `name` and `password` are a user's (argon2: tens of milliseconds, on purpose).
    fn admits(&self, name: &str, password: &str) -> bool {
        use argon2::PasswordVerifier;
        let Some((_, hash)) = self.users.iter().find(|(user, _)| user == name) else {
            return false;
        };
        argon2::PasswordHash::new(hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
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
    // Only owned pieces cross the await: a request's body is not `Sync`.
    let query_len = request.uri().query().map_or(0, str::len);
    let credentials = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = match refusal(&access, query_len, &path, credentials).await {
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
async fn refusal(
    access: &Arc<Access>,
    query_len: usize,
    path: &str,
    credentials: Option<String>,
) -> Option<Response> {
    if query_len > MAX_QUERY_BYTES {
        let too_long = format!("the query is longer than {MAX_QUERY_BYTES} bytes");
        return Some(ApiError::new(StatusCode::URI_TOO_LONG, too_long).into_response());
    }
    if !access.requires_token() || path == "/healthz" {
        return None;
    }
    let credentials = credentials.as_deref();
    if let Some(token) = credentials.and_then(|v| v.strip_prefix("Bearer ")) {
        if access.knows(token.trim().as_bytes()) {
            return None;
        }
    }
    if let Some((name, password)) = credentials.and_then(basic) {
        let access = access.clone();
        // Off the server's thread: argon2 takes its time by design.
        let admitted = tokio::task::spawn_blocking(move || access.admits(&name, &password));
        if admitted.await.unwrap_or(false) {
            return None;
        }
    }
    let mut refusal =
        ApiError::new(StatusCode::UNAUTHORIZED, "valid credentials are needed").into_response();
    let challenge = if access.users.is_empty() {
        "Bearer realm=\"spycraft\""
    } else {
        "Basic realm=\"spycraft\", charset=\"UTF-8\""
    };
    refusal.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static(challenge),
    );
    Some(refusal)
}

/// The name and password of a `Basic` authorization.
fn basic(value: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}
