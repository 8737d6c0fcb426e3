//! Cluster PKI and the TLS side of QUIC: a cluster CA, node certificates whose only DNS
//! name is the node id and whose only URI name is `cartwheel:region:<region>` (usable
//! both as TLS client and server), and the rustls configs that make every connection
//! mutually authenticated under that CA. A certificate thus binds a node id to its
//! region: a peer can claim neither another node's id nor another region.
//!
//! It owns the on-disk layout of the CA and node files. It must never rely on a
//! process-global rustls provider (every config names `ring` explicitly), never
//! overwrite an existing key file, and never accept a peer not signed by the cluster CA.
//! The cluster secret (for other purposes) lives elsewhere.

use crate::ids::{validate_name, NameError, NodeId, Region};
use crate::limits::CERTIFICATE_VALIDITY_YEARS;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ALPN protocol of node-to-node connections; a peer speaking anything else is refused.
pub const ALPN: &[u8] = b"cartwheel/1";
/// File name of the cluster CA certificate.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the cluster CA private key.
pub const CA_KEY_FILE: &str = "ca.key";

/// Prefix of the URI name that carries a node certificate's region.
pub const REGION_URI_PREFIX: &str = "cartwheel:region:";

const CA_COMMON_NAME: &str = "cartwheel cluster CA";
const ORGANIZATION: &str = "cartwheel";

/// Why a PKI or TLS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path} already exists; refusing to overwrite it")]
    AlreadyExists { path: PathBuf },
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} does not hold a valid PEM {what}: {reason}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("node id is not a valid DNS name for a certificate: {0}")]
    Name(#[from] NameError),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the CA key in {dir} does not match its CA certificate (or the CA was not made by cartwheel)")]
    CaMismatch { dir: PathBuf },
    #[error("certificate is not valid for node {node} under the cluster CA: {reason}")]
    Untrusted { node: NodeId, reason: String },
    #[error("TLS configuration rejected: {0}")]
    Config(String),
    #[error("the certificate of node {node} names no region (it was made by an older cartwheel); re-run `cartwheel init` to issue certificates that bind each node to its region")]
    NoRegion { node: NodeId },
    #[error("the certificate of node {node} names region {certified}, not {claimed}")]
    WrongRegion {
        node: NodeId,
        certified: String,
        claimed: Region,
    },
}

/// A node's TLS material: the cluster CA it trusts, its certificate and private key.
pub struct NodeTls {
    pub ca_cert_der: CertificateDer<'static>,
    pub cert_der: CertificateDer<'static>,
    pub key_der: PrivateKeyDer<'static>,
}

impl Clone for NodeTls {
    fn clone(&self) -> Self {
        NodeTls {
            ca_cert_der: self.ca_cert_der.clone(),
            cert_der: self.cert_der.clone(),
            key_der: self.key_der.clone_key(),
        }
    }
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NodeTls")
            .field("ca_cert_der_bytes", &self.ca_cert_der.len())
            .field("cert_der_bytes", &self.cert_der.len())
            .field("key_der", &"<redacted>")
            .finish()
    }
}

/// File name of a node's certificate.
pub fn node_cert_file(node: &NodeId) -> String {
    format!("node-{node}.pem")
}

/// File name of a node's private key.
pub fn node_key_file(node: &NodeId) -> String {
    format!("node-{node}.key")
}

/// Creates a new cluster CA in `dir` (`ca.pem`, `ca.key`); refuses if either exists.
pub fn create_cluster_ca(dir: &Path) -> Result<(), TlsError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    for path in [&cert_path, &key_path] {
        if path.exists() {
            return Err(TlsError::AlreadyExists { path: path.clone() });
        }
    }
    let key = KeyPair::generate()?;
    let certificate = ca_params().self_signed(&key)?;
    write_new(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_new(&cert_path, certificate.pem().as_bytes(), false)?;
    Ok(())
}

/// Issues a certificate for `node` in `region` signed by the CA in `dir`, returned in
/// memory.
pub fn issue_node_certificate(
    dir: &Path,
    node: &NodeId,
    region: &Region,
) -> Result<NodeTls, TlsError> {
    issue(dir, node, Some(region))
}

/// A node certificate as builds before regions were bound made it (no region name):
/// tests make such to check they are refused at start and replaced by `cartwheel init`.
pub fn issue_legacy_node_certificate(dir: &Path, node: &NodeId) -> Result<NodeTls, TlsError> {
    issue(dir, node, None)
}

/// Issues a node certificate; without `region` it names none.
fn issue(dir: &Path, node: &NodeId, region: Option<&Region>) -> Result<NodeTls, TlsError> {
    validate_name(node.as_str())?;
    let (ca_cert_der, issuer, ca_key) = load_issuer(dir)?;
    let mut params = CertificateParams::new(vec![node.as_str().to_string()])?;
    if let Some(region) = region {
        validate_name(region.as_str())?;
        let region_uri = format!("{REGION_URI_PREFIX}{region}");
        params
            .subject_alt_names
            .push(SanType::URI(region_uri.as_str().try_into()?));
    }
    params.distinguished_name = distinguished_name(node.as_str());
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params);
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, &issuer, &ca_key)?;

    let tls = NodeTls {
        ca_cert_der,
        cert_der: certificate.der().clone(),
        key_der: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    };
    // Catches a ca.key that does not belong to ca.pem before the node tries to use it.
    tls.verify_for(node).map_err(|_| TlsError::CaMismatch {
        dir: dir.to_path_buf(),
    })?;
    Ok(tls)
}

/// The cluster CA in `dir`: its certificate, and the issuer and key that sign with it.
fn load_issuer(
    dir: &Path,
) -> Result<(CertificateDer<'static>, rcgen::Certificate, KeyPair), TlsError> {
    let ca_cert_path = dir.join(CA_CERT_FILE);
    let ca_cert_der = read_certificate(&ca_cert_path)?;
    let ca_key_path = dir.join(CA_KEY_FILE);
    let ca_key_pem = read_to_string(&ca_key_path)?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|error| TlsError::Pem {
        path: ca_key_path,
        what: "private key",
        reason: error.to_string(),
    })?;
    // rcgen signs with the issuer's name, key-id method and key; rebuilding the CA from
    // the same fixed parameters reproduces exactly those, without parsing ca.pem.
    let issuer = ca_params().self_signed(&ca_key)?;
    Ok((ca_cert_der, issuer, ca_key))
}

/// Writes a certificate for a client-facing listener (`--http-tls-cert`,
/// `--resp-tls-cert`) signed by the cluster CA in `dir`, for `hosts` (IP addresses or
/// DNS names): `cert` gets the PEM chain (leaf, then the CA), `key` the PEM key (0600).
/// Refuses to overwrite either. It is a server certificate only and names no region, so
/// no node accepts it from a peer, and no peer from a node.
pub fn write_edge_certificate(
    dir: &Path,
    hosts: &[String],
    cert: &Path,
    key: &Path,
) -> Result<(), TlsError> {
    if hosts.is_empty() {
        return Err(TlsError::Config(
            "an edge certificate names at least one host".into(),
        ));
    }
    for path in [cert, key] {
        if path.exists() {
            return Err(TlsError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
    }
    let (ca_cert_der, issuer, ca_key) = load_issuer(dir)?;
    let mut params = CertificateParams::default();
    for host in hosts {
        let refused =
            || TlsError::Config(format!("{host:?} is neither an IP address nor a DNS name"));
        // rustls's own parser judges the name, as clients will.
        let name = match ServerName::try_from(host.as_str()).map_err(|_| refused())? {
            ServerName::IpAddress(address) => SanType::IpAddress(std::net::IpAddr::from(address)),
            ServerName::DnsName(_) => {
                SanType::DnsName(host.as_str().try_into().map_err(|_| refused())?)
            }
            _ => return Err(refused()),
        };
        params.subject_alt_names.push(name);
    }
    params.distinguished_name = distinguished_name("cartwheel edge");
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params);
    let leaf_key = KeyPair::generate()?;
    let certificate = params.signed_by(&leaf_key, &issuer, &ca_key)?;
    let chain = format!("{}{}", certificate.pem(), pem("CERTIFICATE", &ca_cert_der));
    write_new(key, leaf_key.serialize_pem().as_bytes(), true)?;
    write_new(cert, chain.as_bytes(), false)
}

/// The region a node certificate names (its one `cartwheel:region:` URI), `None` when
/// it names none; more than one, or an invalid name, is an error.
pub fn certificate_region(
    certificate: &CertificateDer<'_>,
    node: &NodeId,
) -> Result<Option<Region>, TlsError> {
    let untrusted = |reason: String| TlsError::Untrusted {
        node: node.clone(),
        reason,
    };
    let parsed = webpki::EndEntityCert::try_from(certificate)
        .map_err(|error| untrusted(error.to_string()))?;
    let mut regions = parsed
        .valid_uri_names()
        .filter_map(|uri| uri.strip_prefix(REGION_URI_PREFIX));
    let Some(region) = regions.next() else {
        return Ok(None);
    };
    if regions.next().is_some() {
        return Err(untrusted(
            "the certificate names more than one region".into(),
        ));
    }
    Region::new(region)
        .map(Some)
        .map_err(|error| untrusted(format!("bad region name: {error}")))
}

/// Checks that `certificate` names exactly `region`.
pub fn check_region(
    certificate: &CertificateDer<'_>,
    node: &NodeId,
    region: &Region,
) -> Result<(), TlsError> {
    match certificate_region(certificate, node)? {
        None => Err(TlsError::NoRegion { node: node.clone() }),
        Some(certified) if certified == *region => Ok(()),
        Some(certified) => Err(TlsError::WrongRegion {
            node: node.clone(),
            certified: certified.to_string(),
            claimed: region.clone(),
        }),
    }
}

impl NodeTls {
    /// Loads `ca.pem`, `node-<id>.pem` and `node-<id>.key` from `dir` and checks that the
    /// certificate is the node's and chains to the CA.
    pub fn load(dir: &Path, node: &NodeId) -> Result<Self, TlsError> {
        let ca_cert_der = read_certificate(&dir.join(CA_CERT_FILE))?;
        let cert_der = read_certificate(&dir.join(node_cert_file(node)))?;
        let key_path = dir.join(node_key_file(node));
        let key_pem = read_to_string(&key_path)?;
        let key_der =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|error| TlsError::Pem {
                path: key_path,
                what: "private key",
                reason: error.to_string(),
            })?;
        let tls = NodeTls {
            ca_cert_der,
            cert_der,
            key_der,
        };
        tls.verify_for(node)?;
        Ok(tls)
    }

    /// Writes `node-<id>.pem` and `node-<id>.key` into `dir` (refusing to overwrite),
    /// and `ca.pem` unless an identical one is already there.
    pub fn write_files(&self, dir: &Path, node: &NodeId) -> Result<(), TlsError> {
        let ca_path = dir.join(CA_CERT_FILE);
        if ca_path.exists() {
            if read_certificate(&ca_path)? != self.ca_cert_der {
                return Err(TlsError::AlreadyExists { path: ca_path });
            }
        } else {
            write_new(
                &ca_path,
                pem("CERTIFICATE", &self.ca_cert_der).as_bytes(),
                false,
            )?;
        }
        let key_label = match &self.key_der {
            PrivateKeyDer::Pkcs8(_) => "PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            _ => return Err(TlsError::Config("unsupported private key format".into())),
        };
        let cert_path = dir.join(node_cert_file(node));
        let key_path = dir.join(node_key_file(node));
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(TlsError::AlreadyExists { path: path.clone() });
            }
        }
        write_new(
            &key_path,
            pem(key_label, self.key_der.secret_der()).as_bytes(),
            true,
        )?;
        write_new(
            &cert_path,
            pem("CERTIFICATE", &self.cert_der).as_bytes(),
            false,
        )?;
        Ok(())
    }

    /// Checks that the certificate chains to the CA and names `node`.
    pub fn verify_for(&self, node: &NodeId) -> Result<(), TlsError> {
        IdentityVerifier::new(self)?.verify(&self.cert_der, node)
    }

    /// Checks that the certificate names `region`; a certificate from before regions
    /// were bound names none, and is refused with advice to re-run `cartwheel init`.
    pub fn check_region(&self, node: &NodeId, region: &Region) -> Result<(), TlsError> {
        check_region(&self.cert_der, node, region)
    }
}

/// Checks that a certificate presented by a peer belongs to the node id it claims.
pub(crate) struct IdentityVerifier {
    verifier: Arc<WebPkiServerVerifier>,
}

impl IdentityVerifier {
    pub(crate) fn new(tls: &NodeTls) -> Result<Self, TlsError> {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(tls)?, provider())
            .build()
            .map_err(|error| TlsError::Config(error.to_string()))?;
        Ok(IdentityVerifier { verifier })
    }

    /// [`IdentityVerifier::verify`], then the certificate must name `region` too.
    pub(crate) fn verify_in(
        &self,
        certificate: &CertificateDer<'_>,
        node: &NodeId,
        region: &Region,
    ) -> Result<(), TlsError> {
        self.verify(certificate, node)?;
        check_region(certificate, node, region)
    }

    /// Node certificates carry server-auth usage and the node id as DNS name, so the
    /// server-certificate check of webpki is exactly "signed by our CA and names `node`".
    pub(crate) fn verify(
        &self,
        certificate: &CertificateDer<'_>,
        node: &NodeId,
    ) -> Result<(), TlsError> {
        let untrusted = |reason: String| TlsError::Untrusted {
            node: node.clone(),
            reason,
        };
        let name = ServerName::try_from(node.as_str().to_string())
            .map_err(|error| untrusted(error.to_string()))?;
        self.verifier
            .verify_server_cert(certificate, &[], &name, &[], UnixTime::now())
            .map_err(|error| untrusted(error.to_string()))?;
        Ok(())
    }
}

/// The QUIC server crypto: our certificate, and a client certificate signed by the
/// cluster CA required from every peer.
pub(crate) fn quic_server_crypto(
    tls: &NodeTls,
) -> Result<Arc<quinn::crypto::rustls::QuicServerConfig>, TlsError> {
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots(tls)?, provider())
        .build()
        .map_err(|error| TlsError::Config(error.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(vec![tls.cert_der.clone()], tls.key_der.clone_key())
        .map_err(config_error)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    let config = quinn::crypto::rustls::QuicServerConfig::try_from(config).map_err(config_error)?;
    Ok(Arc::new(config))
}

/// The QUIC client crypto: the server must present a certificate signed by the cluster
/// CA for the node id we dial (the server name), and we present ours.
pub(crate) fn quic_client_crypto(
    tls: &NodeTls,
) -> Result<Arc<quinn::crypto::rustls::QuicClientConfig>, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_root_certificates(roots(tls)?)
        .with_client_auth_cert(vec![tls.cert_der.clone()], tls.key_der.clone_key())
        .map_err(config_error)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    let config = quinn::crypto::rustls::QuicClientConfig::try_from(config).map_err(config_error)?;
    Ok(Arc::new(config))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(tls: &NodeTls) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(tls.ca_cert_der.clone())
        .map_err(|error| TlsError::Config(format!("cluster CA certificate: {error}")))?;
    Ok(Arc::new(roots))
}

fn config_error(error: impl std::fmt::Display) -> TlsError {
    TlsError::Config(error.to_string())
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params);
    params
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, ORGANIZATION);
    name.push(DnType::CommonName, common_name);
    name
}

/// From the start of last year (tolerates clock skew between nodes) for
/// CERTIFICATE_VALIDITY_YEARS.
fn set_validity(params: &mut CertificateParams) {
    const SECONDS_PER_YEAR: u64 = 31_556_952; // mean Gregorian year
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let year = 1970 + i32::try_from(since_epoch / SECONDS_PER_YEAR).unwrap_or(0);
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + CERTIFICATE_VALIDITY_YEARS, 1, 1);
}

fn read_to_string(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_certificate(path: &Path) -> Result<CertificateDer<'static>, TlsError> {
    let text = read_to_string(path)?;
    CertificateDer::from_pem_slice(text.as_bytes()).map_err(|error| TlsError::Pem {
        path: path.to_path_buf(),
        what: "certificate",
        reason: error.to_string(),
    })
}

/// Creates `path` only if absent; private files get mode 0600 on Unix.
fn write_new(path: &Path, contents: &[u8], private: bool) -> Result<(), TlsError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let io_error = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            TlsError::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            TlsError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mut file = options.open(path).map_err(io_error)?;
    file.write_all(contents).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

fn pem(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

#[cfg(test)]
mod tests;
