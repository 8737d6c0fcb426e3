//! TLS on the client-facing listeners (HTTP and RESP): a certificate chain and key (PEM
//! files, as Redis's `tls-cert-file` and `tls-key-file`; the operator's own, or one
//! `cartwheel init --edge-cert` issued under the cluster CA) made into an acceptor.
//! Clients connect with `https://` or `rediss://`. It only builds the configuration;
//! each listener runs the handshake (under its own timeout) before it reads a request.
//!
//! It names the `ring` provider explicitly, as the transport does, and never installs a
//! process-global one.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The ALPN protocol the HTTP listener offers (HTTP/1.1: the node serves no HTTP/2).
pub const HTTP_ALPN: &[&[u8]] = &[b"http/1.1"];

/// Why a client-facing listener's TLS could not be set up.
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

/// A TLS acceptor for a client-facing listener.
#[derive(Clone)]
pub struct EdgeTls(tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for EdgeTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("EdgeTls(..)")
    }
}

impl EdgeTls {
    /// From PEM files: the certificate chain (leaf first) and its private key.
    /// `alpn` names the protocols offered (`http/1.1` for HTTP; none for RESP, whose
    /// clients send none).
    pub fn from_files(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<EdgeTls, TlsSetupError> {
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
        EdgeTls::new(chain, key_der, alpn)
    }

    /// From a certificate chain and key already parsed.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        alpn: &[&[u8]],
    ) -> Result<EdgeTls, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsSetupError::Config(error.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|error| TlsSetupError::Config(error.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(EdgeTls(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    /// The acceptor a listener runs each connection's handshake with.
    pub fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.0
    }
}
