//! TLS on the client-facing listeners with a certificate the cluster CA issued
//! (`cartwheel init --edge-cert`): a client that trusts only the cluster's `ca.pem`
//! reaches the HTTP API (and its pipeline upgrade) and the RESP listener over TLS; a
//! plain client on either port gets nothing and the node serves on; the certificate
//! files are never overwritten.

use crate::common;

use cartwheel::config::{EdgeTls, TuningFlags, HTTP_ALPN};
use cartwheel::node::{self, NodeOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any single exchange in these tests may take.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(10);

/// A TLS client that trusts only the CA in `ca_pem`, offering `alpn`.
fn connector(ca_pem: &Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Sends `request` over TLS to `addr` as `name` and reads until the node closes, or
/// until the answer ends with `until` when given.
async fn exchange_tls(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    name: &str,
    request: &[u8],
    until: Option<&str>,
) -> (Option<Vec<u8>>, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut stream = tokio::time::timeout(EXCHANGE_LIMIT, connector.connect(name, tcp))
        .await
        .expect("handshake within the limit")
        .expect("TLS handshake under the cluster CA");
    let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    // The node closes after `connection: close` / QUIT; a TLS close without
    // close_notify still leaves what was read.
    let _ = tokio::time::timeout(EXCHANGE_LIMIT, async {
        let mut chunk = [0_u8; 4096];
        while let Ok(read @ 1..) = stream.read(&mut chunk).await {
            answer.extend_from_slice(&chunk[..read]);
            if until.is_some_and(|end| answer.ends_with(end.as_bytes())) {
                break;
            }
        }
    })
    .await;
    (alpn, String::from_utf8_lossy(&answer).into_owned())
}

/// What a plain (non-TLS) client reads from `addr` after sending `request`.
async fn exchange_plain(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(EXCHANGE_LIMIT, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// `cartwheel init --dir DIR --edge-cert PREFIX --hosts ...`, as an operator runs it.
fn init_edge_cert(dir: &Path, prefix: &Path) -> std::process::Output {
    std::process::Command::new(common::binary())
        .arg("init")
        .arg("--dir")
        .arg(dir)
        .arg("--edge-cert")
        .arg(prefix)
        .args(["--hosts", "127.0.0.1,localhost"])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_listeners_serve_tls_with_a_certificate_the_cluster_ca_issued() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    cartwheel::transport::create_cluster_ca(&tls_dir).unwrap();
    let prefix = dir.path().join("edge");
    let output = init_edge_cert(dir.path(), &prefix);
    assert!(output.status.success(), "{output:?}");
    let (cert, key) = (dir.path().join("edge.pem"), dir.path().join("edge.key"));
    // A second run refuses to overwrite the files it wrote.
    let again = init_edge_cert(dir.path(), &prefix);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{again:?}"
    );

    let data = tempfile::tempdir().unwrap();
    let node = node::start(NodeOptions {
        resp_bind: Some("127.0.0.1:0".parse().unwrap()),
        resp_tls: Some(EdgeTls::from_files(&cert, &key, &[]).unwrap()),
        http_tls: Some(EdgeTls::from_files(&cert, &key, HTTP_ALPN).unwrap()),
        ..common::lone_node_options(data.path(), &TuningFlags::default())
    })
    .await
    .expect("node starts");
    let ca = tls_dir.join("ca.pem");

    // HTTP over TLS, by IP address and by name; HTTP/1.1 negotiated.
    let http = connector(&ca, HTTP_ALPN);
    let request = b"GET /v1/status HTTP/1.1\r\nhost: node\r\nconnection: close\r\n\r\n";
    for name in ["127.0.0.1", "localhost"] {
        let (alpn, answer) = exchange_tls(&http, node.http_addr, name, request, None).await;
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"resp\""), "{answer}");
    }
    // The pipeline upgrade works through TLS too.
    let upgrade = b"GET /v1/pipeline HTTP/1.1\r\nhost: node\r\nconnection: upgrade\r\n\
                    upgrade: cartwheel-pipeline/1\r\n\r\n";
    let (_, answer) = exchange_tls(
        &http,
        node.http_addr,
        "localhost",
        upgrade,
        Some("\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");

    // RESP over TLS with the same certificate.
    let resp = connector(&ca, &[]);
    let (_, answer) = exchange_tls(
        &resp,
        node.resp_addr.unwrap(),
        "localhost",
        b"PING\r\nQUIT\r\n",
        None,
    )
    .await;
    assert_eq!(answer, "+PONG\r\n+OK\r\n");

    // A name the certificate does not carry is refused by the client.
    let tcp = TcpStream::connect(node.http_addr).await.unwrap();
    let other = ServerName::try_from("elsewhere.example").unwrap();
    let refused = tokio::time::timeout(EXCHANGE_LIMIT, http.connect(other, tcp)).await;
    assert!(matches!(refused, Ok(Err(_))), "{refused:?}");

    // Plain clients get no answer on either port, and the node serves on.
    let plain = exchange_plain(node.http_addr, request).await;
    assert!(!plain.contains("HTTP/1.1 200"), "{plain}");
    let (_, answer) = exchange_tls(&http, node.http_addr, "localhost", request, None).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // ... and counted the failed handshake.
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(
        status["edge"]["tls_failures"].as_u64() >= Some(1),
        "{status}"
    );
    node.shutdown().await;
}
