// SPDX-License-Identifier: AGPL-3.0-or-later
//! The certificates a TLS client trusts: a PEM file's, or the system's.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// Why no trusted roots could be had.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file is missing, unreadable or not PEM, or a certificate in it is unusable.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// Neither the file nor the system had a certificate.
    #[error("no trusted root certificate was found")]
    Empty,
}

/// The certificates of the PEM file `ca`, or the system's trust store without one.
pub fn root_store(ca: Option<&Path>) -> Result<RootCertStore, TrustError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let fail = |why: String| TrustError::File {
                path: path.display().to_string(),
                why,
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))? {
                let cert = cert.map_err(|e| fail(e.to_string()))?;
                roots.add(cert).map_err(|e| fail(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        return Err(TrustError::Empty);
    }
    Ok(roots)
}
