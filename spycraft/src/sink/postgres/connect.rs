// SPDX-License-Identifier: AGPL-3.0-or-later
//! From a libpq-style connection string to a connected client: TLS through rustls with
//! libpq's `sslmode` meanings, and the password from the string, a file or `PGPASSWORD`.
//! Nothing here ever prints the connection string: [`Target::describe`] names the server
//! without its password.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, NoTls};

use super::PostgresError;
use crate::trust::TrustError;

/// How much of the server's certificate is checked (libpq's `sslmode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Encryption only (`require`, `prefer`): any certificate is accepted.
    Nothing,
    /// The chain up to a trusted root (`verify-ca`, or `require` with `sslrootcert`).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

/// A database to connect to.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    verify: Verify,
    root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.write_str(&self.describe())
    }
}

impl Target {
    /// Parses a URL (`postgresql://user:pw@host:5432/db?sslmode=verify-full`) or key=value
    /// string. Without a password in it, the password comes from `password_file`, then from
    /// `PGPASSWORD`.
    pub fn parse(
        connection: &str,
        password_file: Option<&Path>,
        application_name: &str,
    ) -> Result<Self, PostgresError> {
        let connection = query_replaces_authority(connection);
        let (rest, sslmode) = take_param(&connection, "sslmode");
        let (rest, root_cert) = take_param(&rest, "sslrootcert");
        let mut config: tokio_postgres::Config = rest.parse().map_err(|e| {
            PostgresError::Config(format!("not a PostgreSQL connection string: {e}"))
        })?;
        let root_cert = root_cert.map(PathBuf::from);
        let (mode, verify) = match sslmode.as_deref() {
            None | Some("prefer") | Some("allow") => (SslMode::Prefer, Verify::Nothing),
            Some("disable") => (SslMode::Disable, Verify::Nothing),
            Some("require") if root_cert.is_some() => (SslMode::Require, Verify::Chain),
            Some("require") => (SslMode::Require, Verify::Nothing),
            Some("verify-ca") => (SslMode::Require, Verify::Chain),
            Some("verify-full") => (SslMode::Require, Verify::Full),
            Some(other) => {
                return Err(PostgresError::Config(format!(
                    "sslmode {other:?}: expected disable, allow, prefer, require, verify-ca or verify-full"
                )))
            }
        };
        // As libpq: TLS is not used over Unix-domain sockets (and a path is no TLS name).
        let all_unix = !config.get_hosts().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|h| matches!(h, Host::Unix(_)));
        config.ssl_mode(if all_unix { SslMode::Disable } else { mode });
        if config.get_password().is_none() {
            if let Some(path) = password_file {
                let password = crate::secret::read_secret(path)
                    .map_err(|e| PostgresError::Config(format!("password file {e}")))?;
                config.password(password);
            } else if let Ok(pw) = std::env::var("PGPASSWORD") {
                config.password(pw);
            }
        }
        if config.get_application_name().is_none() {
            config.application_name(application_name);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        Ok(Self {
            config,
            verify,
            root_cert,
        })
    }

    /// `user@host:port/dbname`, or `user@/dir/.s.PGSQL.port/dbname` for a Unix socket
    /// (the socket's own path, as libpq names it), for messages.
    pub fn describe(&self) -> String {
        let c = &self.config;
        let port = c.get_ports().first().copied().unwrap_or(5432);
        let server = match c.get_hosts().first() {
            Some(Host::Tcp(h)) => format!("{h}:{port}"),
            Some(Host::Unix(dir)) => dir.join(format!(".s.PGSQL.{port}")).display().to_string(),
            None => format!("localhost:{port}"),
        };
        format!(
            "{}@{server}/{}",
            c.get_user().unwrap_or("?"),
            c.get_dbname().or(c.get_user()).unwrap_or("?")
        )
    }

    /// Connects, and drives the connection on the current tokio runtime.
    pub async fn connect(&self) -> Result<Client, PostgresError> {
        let failed = |e| PostgresError::Connect(self.describe(), super::PgError(e));
        // Errors of a running connection surface on the client's next call.
        if self.config.get_ssl_mode() == SslMode::Disable {
            // Also the Unix-socket case, where a path would be no TLS server name.
            let (client, connection) = self.config.connect(NoTls).await.map_err(failed)?;
            tokio::spawn(connection);
            return Ok(client);
        }
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
        let (client, connection) = self.config.connect(tls).await.map_err(failed)?;
        tokio::spawn(connection);
        Ok(client)
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, PostgresError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| PostgresError::Config(format!("TLS: {e}")))?;
        let webpki = match self.verify {
            Verify::Nothing => None,
            Verify::Chain | Verify::Full => Some(
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(self.roots()?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| PostgresError::Config(format!("TLS roots: {e}")))?,
            ),
        };
        let verifier = Arc::new(CertificateCheck {
            verify: self.verify,
            webpki,
            provider,
        });
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }

    /// `sslrootcert` if given, else the system's trust store.
    fn roots(&self) -> Result<RootCertStore, PostgresError> {
        crate::trust::root_store(self.root_cert.as_deref()).map_err(|e| match e {
            TrustError::Empty => PostgresError::Config(
                "TLS verification asked for, but no trusted root certificate was found".into(),
            ),
            e => PostgresError::Config(format!("sslrootcert {e}")),
        })
    }
}

/// What stands in for a password in printed settings.
const HIDDEN: &str = "********";

/// `connection` with any password in it replaced by asterisks: in a URL's user info or
/// `password` query parameter, or a key=value string's `password`.
pub fn redact_password(connection: &str) -> String {
    let Some(rest) = connection
        .strip_prefix("postgresql://")
        .or_else(|| connection.strip_prefix("postgres://"))
    else {
        return redact_key_value(connection);
    };
    let scheme = &connection[..connection.len() - rest.len()];
    let (before, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority_end = before.find('/').unwrap_or(before.len());
    let (authority, path) = before.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{HIDDEN}@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|pair| match pair.split_once('=') {
                Some(("password", _)) => format!("password={HIDDEN}"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(query) => format!("{scheme}{authority}{path}?{query}"),
        None => format!("{scheme}{authority}{path}"),
    }
}

/// A key=value string with its `password` value (quoted or not) hidden.
fn redact_key_value(connection: &str) -> String {
    let mut out = String::with_capacity(connection.len());
    let mut rest = connection;
    while let Some(at) = rest.find("password") {
        let (head, tail) = rest.split_at(at + "password".len());
        out.push_str(head);
        let starts_key = head[..at]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        let after = tail.trim_start();
        let Some(value) = after.strip_prefix('=').filter(|_| starts_key) else {
            rest = tail;
            continue;
        };
        let value = value.trim_start();
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            // Up to the closing quote that is not escaped.
            let mut escaped = false;
            quoted
                .char_indices()
                .find(|&(_, c)| {
                    let close = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    close
                })
                .map_or(value.len(), |(i, _)| i + 2)
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        out.push('=');
        out.push_str(HIDDEN);
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// As libpq: a URL's `host` and `port` query parameters replace the host and the port named
/// before the path (`postgresql://u@localhost/db?host=/run/pg` means the socket in /run/pg),
/// where tokio-postgres would add them to the list. Other strings are returned as they are.
fn query_replaces_authority(connection: &str) -> String {
    let Some(rest) = connection
        .strip_prefix("postgresql://")
        .or_else(|| connection.strip_prefix("postgres://"))
    else {
        return connection.to_owned();
    };
    let scheme = &connection[..connection.len() - rest.len()];
    let Some((before, query)) = rest.split_once('?') else {
        return connection.to_owned();
    };
    let given = |key: &str| {
        query
            .split('&')
            .any(|pair| pair.split_once('=').is_some_and(|(k, _)| k == key))
    };
    let (host_given, port_given) = (given("host"), given("port"));
    if !host_given && !port_given {
        return connection.to_owned();
    }
    let (authority, path) = before.split_at(before.find('/').unwrap_or(before.len()));
    let (userinfo, hostspec) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    // host[:port] or [v6]:port, comma-separated.
    let (mut hosts, mut ports) = (Vec::new(), Vec::new());
    for part in hostspec.split(',').filter(|p| !p.is_empty()) {
        let port_at = match part.rfind(']') {
            Some(bracket) => part[bracket..].find(':').map(|i| bracket + i),
            None => part.rfind(':'),
        };
        match port_at {
            Some(colon) => {
                hosts.push(&part[..colon]);
                ports.push(&part[colon + 1..]);
            }
            None => hosts.push(part),
        }
    }
    // Both lists go to the query, where tokio-postgres pairs them as libpq does.
    let mut query = query.to_owned();
    if !host_given {
        // One `host` each: in a query, tokio-postgres takes the value whole.
        for host in hosts {
            query.push_str("&host=");
            query.push_str(host.trim_start_matches('[').trim_end_matches(']'));
        }
    }
    if !port_given && !ports.is_empty() {
        query.push_str(&format!("&port={}", ports.join(",")));
    }
    format!("{scheme}{userinfo}{path}?{query}")
}

/// Removes `key=value` from a URL query or a key=value string; returns the rest and the value.
fn take_param(connection: &str, key: &str) -> (String, Option<String>) {
    if connection.starts_with("postgres://") || connection.starts_with("postgresql://") {
        let Some((base, query)) = connection.split_once('?') else {
            return (connection.to_owned(), None);
        };
        let mut value = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.split_once('=') {
                Some((k, v)) if k == key => {
                    value = Some(percent_decode(v));
                    false
                }
                _ => true,
            })
            .collect();
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (rest, value)
    } else {
        let mut value = None;
        let kept: Vec<&str> = connection
            .split_whitespace()
            .filter(|token| match token.split_once('=') {
                Some((k, v)) if k.trim() == key => {
                    value = Some(v.trim_matches('\'').to_owned());
                    false
                }
                _ => true,
            })
            .collect();
        (kept.join(" "), value)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Judges the server's certificate as `sslmode` asks. The handshake signature is always
/// checked, so the session is bound to the certificate's key whatever the mode.
#[derive(Debug)]
struct CertificateCheck {
    verify: Verify,
    /// The chain check (`verify-ca`, `verify-full`); none for `require`.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CertificateCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            // `require`: encrypted, the certificate not judged (libpq's meaning).
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // `verify-ca`: the chain must lead to a trusted root; the name may differ.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.verify == Verify::Chain => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_tls_parameters_out_of_both_forms() {
        let (rest, mode) = take_param(
            "postgresql://u:secret@db.example:5433/cdr?sslmode=verify-full&connect_timeout=5",
            "sslmode",
        );
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(
            rest,
            "postgresql://u:secret@db.example:5433/cdr?connect_timeout=5"
        );
        let (rest, root) = take_param(
            "host=/tmp/x sslrootcert='/etc/ca.pem' user=spy",
            "sslrootcert",
        );
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(rest, "host=/tmp/x user=spy");
        let (rest, root) = take_param("postgres://h/d?sslrootcert=%2Fetc%2Fca.pem", "sslrootcert");
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(rest, "postgres://h/d");
    }

    #[test]
    fn redacts_every_form_of_password() {
        for (given, shown) in [
            (
                "postgresql://spy:hunter2@db:5433/cdr?sslmode=require",
                "postgresql://spy:********@db:5433/cdr?sslmode=require",
            ),
            (
                "postgres://spy@db/cdr?password=hunter2&sslmode=disable",
                "postgres://spy@db/cdr?password=********&sslmode=disable",
            ),
            ("postgresql://spy@db/cdr", "postgresql://spy@db/cdr"),
            (
                "host=db password=hunter2 user=spy",
                "host=db password=******** user=spy",
            ),
            (
                "host=db password = 'hunt \\' er2' dbname=cdr",
                "host=db password=******** dbname=cdr",
            ),
            ("host=db user=nopassword", "host=db user=nopassword"),
        ] {
            assert_eq!(redact_password(given), shown, "{given}");
        }
    }

    #[test]
    fn describes_without_the_password() {
        let t = Target::parse(
            "postgresql://spy:hunter2@db.example:5433/cdr?sslmode=verify-full",
            None,
            "spycraft",
        )
        .expect("parses");
        assert_eq!(t.describe(), "spy@db.example:5433/cdr");
        assert!(!format!("{t:?}").contains("hunter2"));
        assert_eq!(t.verify, Verify::Full);
    }

    #[test]
    fn reads_the_password_file_when_the_string_has_none() {
        let dir = std::env::temp_dir().join(format!("spycraft-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("pw");
        std::fs::write(&file, "from-file\n").expect("write");
        let t = Target::parse("host=/tmp user=spy", Some(&file), "spycraft").expect("parses");
        assert_eq!(t.config.get_password(), Some(&b"from-file"[..]));
        let t = Target::parse("postgresql://spy:inline@h/d", Some(&file), "x").expect("parses");
        assert_eq!(t.config.get_password(), Some(&b"inline"[..]));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn url_query_host_and_port_replace_the_ones_before_the_path_as_in_libpq() {
        let t = Target::parse(
            "postgresql://postgres@localhost/postgres?host=/run/pg",
            None,
            "x",
        )
        .expect("parses");
        assert_eq!(t.config.get_hosts(), [Host::Unix("/run/pg".into())]);
        assert_eq!(
            t.config.get_ssl_mode(),
            SslMode::Disable,
            "no TLS over a socket"
        );
        assert_eq!(t.describe(), "postgres@/run/pg/.s.PGSQL.5432/postgres");

        let t = Target::parse(
            "postgresql://u@db:5433/cdr?host=/s&sslmode=require",
            None,
            "x",
        )
        .expect("parses");
        assert_eq!(t.config.get_hosts(), [Host::Unix("/s".into())]);
        assert_eq!(t.config.get_ports(), [5433]);
        assert_eq!(t.describe(), "u@/s/.s.PGSQL.5433/cdr");

        let t =
            Target::parse("postgresql://u@[::1]:5433,db/cdr?port=6000", None, "x").expect("parses");
        assert_eq!(
            t.config.get_hosts(),
            [Host::Tcp("::1".into()), Host::Tcp("db".into())]
        );
        assert_eq!(t.config.get_ports(), [6000]);

        let t =
            Target::parse("postgresql://u@db/cdr?hostaddr=127.0.0.1", None, "x").expect("parses");
        assert_eq!(
            t.config.get_hosts(),
            [Host::Tcp("db".into())],
            "hostaddr keeps the name"
        );
        assert_eq!(t.config.get_hostaddrs().len(), 1);
    }

    #[test]
    fn rejects_unknown_sslmodes() {
        assert!(Target::parse("host=h sslmode=sometimes", None, "x").is_err());
    }
}
