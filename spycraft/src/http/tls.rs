// SPDX-License-Identifier: AGPL-3.0-or-later
//! HTTPS for the sensor's endpoint (`--http-cert`, `--http-key`): rustls with the ring
//! provider, TLS 1.2 and 1.3, HTTP/1.1. The certificate and key are read once, at start; a
//! mistake in either fails the start, not the first client.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is missing, unreadable or holds no certificate.
    #[error("--http-cert {path}: {why}")]
    Cert {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The key file is missing, unreadable or holds no private key.
    #[error("--http-key {path}: {why}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The key does not fit the certificate, or rustls refused them.
    #[error("--http-cert and --http-key: {0}")]
    Config(rustls::Error),
}

/// A server configuration from a PEM certificate chain (leaf first) and its PEM key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_error = |why: String| TlsError::Cert {
        path: cert.display().to_string(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("holds no PEM certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        why: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
