//! TLS to PostgreSQL, with rustls: used when the database URL says `sslmode=require`. The server's
//! certificate is verified (chain and host name) against the webpki roots and, if set, the PEM
//! certificates in `database_ca_file`. Any other `sslmode` connects without TLS.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{StoreError, StoreResult};

/// The TLS connector `config` asks for, or `None` for a plain connection.
pub fn connector(
    config: &tokio_postgres::Config,
    ca_file: Option<&Path>,
) -> StoreResult<Option<MakeRustlsConnect>> {
    if config.get_ssl_mode() != SslMode::Require {
        return Ok(None);
    }
    let bad = |what: String| StoreError::Internal(format!("database TLS: {what}"));
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
            bad(format!(
                "cannot read database_ca_file {}: {e}",
                path.display()
            ))
        })?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| bad(format!("{} is not PEM: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("{}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad(format!("{} holds no certificate", path.display())));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(tls)))
}
