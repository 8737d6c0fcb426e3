//! TLS on the RESP listener: the operator's certificate chain and key (PEM files, as
//! Redis's `tls-cert-file` and `tls-key-file`) made into an acceptor. Clients connect
//! with `rediss://`. It only builds the configuration; the server runs the handshake
//! (under the request timeout) before a connection reads any request.
//!
//! It names the `ring` provider explicitly, as the transport does, and never installs a
//! process-global one.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Why the RESP listener's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM {what}: {message}")]
    Pem {
        path: String,
        what: &'static str,
        message: String,
    },
    #[error("the certificate and key do not make a TLS server: {0}")]
    Config(String),
}

/// A TLS acceptor for the RESP listener.
#[derive(Clone)]
pub struct RespTls(pub(super) tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for RespTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("RespTls(..)")
    }
}

impl RespTls {
    /// From PEM files: the certificate chain (leaf first) and its private key.
    pub fn from_files(cert: &Path, key: &Path) -> Result<RespTls, TlsSetupError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsSetupError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        let pem_error = |path: &Path, what, message: String| TlsSetupError::Pem {
            path: path.display().to_string(),
            what,
            message,
        };
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| pem_error(cert, "certificate", error.to_string()))?;
        if chain.is_empty() {
            return Err(pem_error(cert, "certificate", "none found".to_string()));
        }
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|error| pem_error(key, "private key", error.to_string()))?;
        RespTls::new(chain, key_der)
    }

    /// From a certificate chain and key already parsed.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<RespTls, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsSetupError::Config(error.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|error| TlsSetupError::Config(error.to_string()))?;
        Ok(RespTls(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }
}
