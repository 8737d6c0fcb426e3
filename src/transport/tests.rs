//! End-to-end tests over real QUIC and mutual TLS on 127.0.0.1.

use super::frame::EnvelopeRef;
use super::*;
use crate::limits::PEERS_MAX;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

mod channels;
mod handshakes;

/// Upper bound on any single test; failures show up as a timeout, never a hang.
const TEST_BOUND: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TestRequest {
    Echo(String),
    WhoAmI,
    Hang,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TestResponse {
    Echo(String),
    YouAre { node: NodeId, region: Region },
}

struct TestHandler {
    node: NodeId,
    /// Gains a permit whenever a `Hang` request is dropped (cancelled).
    hangs_cancelled: Arc<Semaphore>,
}

/// Adds a permit when dropped, i.e. when the handler future is cancelled.
struct CancelSignal(Arc<Semaphore>);

impl Drop for CancelSignal {
    fn drop(&mut self) {
        self.0.add_permits(1);
    }
}

impl Handler<TestRequest, TestResponse> for TestHandler {
    async fn handle(&self, from: PeerInfo, request: TestRequest) -> TestResponse {
        match request {
            TestRequest::Echo(text) => TestResponse::Echo(format!("{}:{text}", self.node)),
            TestRequest::WhoAmI => TestResponse::YouAre {
                node: from.node,
                region: from.region,
            },
            TestRequest::Hang => {
                let _signal = CancelSignal(self.hangs_cancelled.clone());
                std::future::pending::<()>().await;
                unreachable!("pending never resolves")
            }
        }
    }
}

type TestTransport = Transport<TestRequest, TestResponse>;

struct TestNode {
    transport: TestTransport,
    node: NodeId,
    region: Region,
    hangs_cancelled: Arc<Semaphore>,
}

fn node_id(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn region(name: &str) -> Region {
    Region::new(name).unwrap()
}

fn cluster_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    create_cluster_ca(dir.path()).unwrap();
    dir
}

async fn start_node(
    ca_dir: &Path,
    name: &str,
    region_name: &str,
    wan: WanModel,
    request_timeout: Duration,
) -> TestNode {
    let limits = server::ServerLimits::default();
    start_node_with(ca_dir, name, region_name, wan, request_timeout, limits).await
}

async fn start_node_with(
    ca_dir: &Path,
    name: &str,
    region_name: &str,
    wan: WanModel,
    request_timeout: Duration,
    limits: server::ServerLimits,
) -> TestNode {
    let node = node_id(name);
    let config = TransportConfig {
        node: node.clone(),
        region: region(region_name),
        bind: "127.0.0.1:0".parse().unwrap(),
        tls: issue_node_certificate(ca_dir, &node, &region(region_name)).unwrap(),
        wan,
        request_timeout,
    };
    let hangs_cancelled = Arc::new(Semaphore::new(0));
    let handler = Arc::new(TestHandler {
        node: node.clone(),
        hangs_cancelled: hangs_cancelled.clone(),
    });
    let transport = Transport::start_with(config, handler, limits)
        .await
        .unwrap();
    TestNode {
        transport,
        node,
        region: region(region_name),
        hangs_cancelled,
    }
}

async fn simple_node(ca_dir: &Path, name: &str) -> TestNode {
    start_node(
        ca_dir,
        name,
        "local",
        WanModel::disabled(),
        Duration::from_secs(5),
    )
    .await
}

/// Tells `from` where `to` listens.
fn introduce(from: &TestNode, to: &TestNode) {
    from.transport
        .set_peer(
            to.node.clone(),
            to.region.clone(),
            to.transport.local_addr(),
        )
        .unwrap();
}

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, future)
        .await
        .expect("test exceeded its time bound")
}

/// A bare quinn client holding valid cluster credentials, to send hand-made bytes.
async fn raw_connection(tls: &NodeTls, server: &TestNode) -> quinn::Connection {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let crypto = tls::quic_client_crypto(tls).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(crypto));
    endpoint
        .connect(server.transport.local_addr(), server.node.as_str())
        .unwrap()
        .await
        .unwrap()
}

/// Writes `bytes` on a new stream (finishing it if asked) and reads the whole answer.
async fn raw_exchange(
    connection: &quinn::Connection,
    bytes: &[u8],
    finish: bool,
) -> Result<Vec<u8>, quinn::ReadToEndError> {
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    // The server may reset before reading everything; a failed write is fine here.
    let _ = send.write_all(bytes).await;
    if finish {
        let _ = send.finish();
    }
    recv.read_to_end(crate::limits::FRAME_BYTES_MAX + 8).await
}

fn reset_code(result: Result<Vec<u8>, quinn::ReadToEndError>) -> Option<Refusal> {
    match result {
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
            Some(Refusal::from_code(code))
        }
        _ => None,
    }
}

/// A `WhoAmI` request envelope saying it comes from `from` in region `from_region`.
fn who_am_i_from(from: &NodeId, from_region: &str) -> Vec<u8> {
    encode(&EnvelopeRef {
        from,
        from_region: &region(from_region),
        body: &TestRequest::WhoAmI,
    })
    .unwrap()
}

/// Starts node `a` of region `local` under `tls`, whatever node and region it names.
async fn start_node_a_under(tls: NodeTls) -> Result<TestTransport, TransportError> {
    let config = TransportConfig {
        node: node_id("a"),
        region: region("local"),
        bind: "127.0.0.1:0".parse().unwrap(),
        tls,
        wan: WanModel::disabled(),
        request_timeout: Duration::from_secs(1),
    };
    let handler = Arc::new(TestHandler {
        node: node_id("a"),
        hangs_cancelled: Arc::new(Semaphore::new(0)),
    });
    TestTransport::start(config, handler).await
}

#[tokio::test]
async fn two_nodes_exchange_requests_both_directions() {
    bounded(async {
        let dir = cluster_dir();
        let a = start_node(
            dir.path(),
            "a",
            "us-east",
            WanModel::disabled(),
            Duration::from_secs(5),
        )
        .await;
        let b = start_node(
            dir.path(),
            "b",
            "eu-west",
            WanModel::disabled(),
            Duration::from_secs(5),
        )
        .await;
        introduce(&a, &b);
        introduce(&b, &a);

        let echoed = a
            .transport
            .request(&b.node, &TestRequest::Echo("hi".into()))
            .await
            .unwrap();
        assert_eq!(echoed, TestResponse::Echo("b:hi".into()));
        let who = b
            .transport
            .request(&a.node, &TestRequest::WhoAmI)
            .await
            .unwrap();
        assert_eq!(
            who,
            TestResponse::YouAre {
                node: b.node.clone(),
                region: b.region.clone()
            }
        );
        // To itself: handled locally, no connection opened.
        let own = a
            .transport
            .request(&a.node, &TestRequest::Echo("me".into()))
            .await
            .unwrap();
        assert_eq!(own, TestResponse::Echo("a:me".into()));

        let stats = a.transport.stats();
        assert_eq!(stats.requests_sent, 2);
        assert_eq!(stats.requests_received, 2); // one from b, one from itself
        assert_eq!(stats.connections_opened, 1);
        assert_eq!(stats.connections_accepted, 1);
        assert_eq!(stats.requests_failed, 0);
        a.transport.shutdown().await;
        b.transport.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_requests_share_one_connection() {
    bounded(async {
        let dir = cluster_dir();
        let a = simple_node(dir.path(), "a").await;
        let b = simple_node(dir.path(), "b").await;
        introduce(&a, &b);
        let requests = (0..64).map(|index| {
            let transport = a.transport.clone();
            let peer = b.node.clone();
            async move {
                transport
                    .request(&peer, &TestRequest::Echo(index.to_string()))
                    .await
            }
        });
        let responses = futures::future::join_all(requests).await;
        for (index, response) in responses.into_iter().enumerate() {
            assert_eq!(response.unwrap(), TestResponse::Echo(format!("b:{index}")));
        }
        assert_eq!(a.transport.stats().connections_opened, 1);
        let server = b.transport.stats();
        assert_eq!(server.connections_accepted, 1);
        assert_eq!(server.requests_received, 64);
    })
    .await;
}

#[tokio::test]
async fn node_from_another_ca_is_refused_as_client_and_as_server() {
    bounded(async {
        let ours = cluster_dir();
        let theirs = cluster_dir();
        let a = simple_node(ours.path(), "a").await;
        let rogue = simple_node(theirs.path(), "rogue").await;

        // Rogue as client.
        introduce(&rogue, &a);
        let error = rogue
            .transport
            .request(&a.node, &TestRequest::WhoAmI)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                TransportError::Connect { .. } | TransportError::Stream { .. }
            ),
            "{error}"
        );
        a.transport
            .wait_for_stats(|stats| stats.connections_refused >= 1)
            .await;
        assert_eq!(a.transport.stats().requests_received, 0);
        assert_eq!(a.transport.stats().connections_accepted, 0);

        // Rogue as server: our client rejects its certificate.
        introduce(&a, &rogue);
        let error = a
            .transport
            .request(&rogue.node, &TestRequest::WhoAmI)
            .await
            .unwrap_err();
        match &error {
            TransportError::Connect { peer, .. } => assert_eq!(peer, &rogue.node),
            other => panic!("expected a connect error, got {other}"),
        }
        assert!(
            error.to_string().starts_with("cannot connect to rogue"),
            "{error}"
        );
        assert_eq!(a.transport.stats().connect_failures, 1);
        rogue
            .transport
            .wait_for_stats(|stats| stats.connections_refused >= 1)
            .await;
        assert_eq!(rogue.transport.stats().requests_received, 0);
    })
    .await;
}

#[tokio::test]
async fn garbage_frame_resets_its_stream_only() {
    bounded(async {
        let dir = cluster_dir();
        let a = simple_node(dir.path(), "a").await;
        let b = simple_node(dir.path(), "b").await;
        let raw_node = node_id("raw");
        let raw_tls = issue_node_certificate(dir.path(), &raw_node, &region("local")).unwrap();
        let connection = raw_connection(&raw_tls, &b).await;

        let junk = [0, 0, 0, 6, WIRE_VERSION, 0xc1, 0xc1, 0xde, 0xad, 0xbe];
        let result = raw_exchange(&connection, &junk, true).await;
        assert_eq!(reset_code(result), Some(Refusal::FrameRejected));
        assert_eq!(b.transport.stats().frames_rejected, 1);
        // A frame cut short (declares 10 bytes, sends 2, finishes) is rejected too.
        let truncated = [0, 0, 0, 10, WIRE_VERSION, 0x90];
        let result = raw_exchange(&connection, &truncated, true).await;
        assert_eq!(reset_code(result), Some(Refusal::FrameRejected));
        assert_eq!(b.transport.stats().frames_rejected, 2);

        // The same connection still serves a valid request.
        let valid = encode(&EnvelopeRef {
            from: &raw_node,
            from_region: &region("local"),
            body: &TestRequest::Echo("after".into()),
        })
        .unwrap();
        let answer = raw_exchange(&connection, &valid, true).await.unwrap();
        let response: TestResponse = decode_frame(&answer).unwrap();
        assert_eq!(response, TestResponse::Echo("b:after".into()));

        // And so do other connections.
        introduce(&a, &b);
        let echoed = a
            .transport
            .request(&b.node, &TestRequest::Echo("x".into()))
            .await
            .unwrap();
        assert_eq!(echoed, TestResponse::Echo("b:x".into()));
        assert_eq!(b.transport.stats().frames_rejected, 2);
    })
    .await;
}

#[tokio::test]
async fn oversized_length_is_rejected_before_the_body_arrives() {
    bounded(async {
        let dir = cluster_dir();
        // A long server timeout: only an early rejection answers within the test bound.
        let b = start_node(
            dir.path(),
            "b",
            "local",
            WanModel::disabled(),
            Duration::from_secs(60),
        )
        .await;
        let raw_tls =
            issue_node_certificate(dir.path(), &node_id("raw"), &region("local")).unwrap();
        let connection = raw_connection(&raw_tls, &b).await;
        // Declares 4 GiB, sends nothing more and keeps the stream open.
        let result = raw_exchange(&connection, &[0xff, 0xff, 0xff, 0xff], false).await;
        assert_eq!(reset_code(result), Some(Refusal::FrameRejected));
        assert_eq!(b.transport.stats().frames_rejected, 1);
    })
    .await;
}

#[tokio::test]
async fn sender_cannot_claim_another_nodes_id() {
    bounded(async {
        let dir = cluster_dir();
        let b = simple_node(dir.path(), "b").await;
        let raw_tls =
            issue_node_certificate(dir.path(), &node_id("raw"), &region("local")).unwrap();
        let connection = raw_connection(&raw_tls, &b).await;
        let forged = who_am_i_from(&node_id("a"), "local");
        let result = raw_exchange(&connection, &forged, true).await;
        assert_eq!(reset_code(result), Some(Refusal::IdentityRejected));
        let stats = b.transport.stats();
        assert_eq!(stats.impersonations_rejected, 1);
        assert_eq!(stats.requests_received, 0);
    })
    .await;
}

#[tokio::test]
async fn wan_model_delays_cross_region_requests() {
    bounded(async {
        let dir = cluster_dir();
        let mut rtt_ms = BTreeMap::new();
        rtt_ms.insert((region("us-east"), region("eu-west")), 40.0);
        let wan = WanModel {
            rtt_ms,
            intra_region_rtt_ms: 0.5,
            jitter_ms: 0.0,
        };
        let timeout = Duration::from_secs(5);
        let a = start_node(dir.path(), "a", "us-east", wan.clone(), timeout).await;
        let near = start_node(dir.path(), "near", "us-east", wan.clone(), timeout).await;
        let far = start_node(dir.path(), "far", "eu-west", wan, timeout).await;
        introduce(&a, &near);
        introduce(&a, &far);

        let fastest = |peer: NodeId| {
            let transport = a.transport.clone();
            async move {
                // The first request pays the handshake; measure the following ones.
                transport
                    .request(&peer, &TestRequest::WhoAmI)
                    .await
                    .unwrap();
                let mut best = Duration::MAX;
                for _ in 0..3 {
                    let started = Instant::now();
                    transport
                        .request(&peer, &TestRequest::WhoAmI)
                        .await
                        .unwrap();
                    best = best.min(started.elapsed());
                }
                best
            }
        };
        let far_best = fastest(far.node.clone()).await;
        let near_best = fastest(near.node.clone()).await;
        assert!(
            far_best >= Duration::from_millis(40),
            "far took {far_best:?}"
        );
        assert!(
            near_best < Duration::from_millis(25),
            "near took {near_best:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn timeout_names_the_peer_and_cancels_the_handler() {
    bounded(async {
        let dir = cluster_dir();
        let a = start_node(
            dir.path(),
            "a",
            "local",
            WanModel::disabled(),
            Duration::from_millis(300),
        )
        .await;
        let b = simple_node(dir.path(), "b").await;
        introduce(&a, &b);
        let error = a
            .transport
            .request(&b.node, &TestRequest::Hang)
            .await
            .unwrap_err();
        match &error {
            TransportError::Timeout { peer, after_ms } => {
                assert_eq!(peer, &b.node);
                assert_eq!(*after_ms, 300);
            }
            other => panic!("expected a timeout, got {other}"),
        }
        assert_eq!(error.to_string(), "request to b timed out after 300 ms");
        assert_eq!(a.transport.stats().requests_timed_out, 1);
        // The abandoned stream makes the server drop the handler future.
        let cancelled = b.hangs_cancelled.acquire().await.unwrap();
        cancelled.forget();
        // The connection is still good for other requests.
        let echoed = a
            .transport
            .request(&b.node, &TestRequest::Echo("ok".into()))
            .await
            .unwrap();
        assert_eq!(echoed, TestResponse::Echo("b:ok".into()));
    })
    .await;
}

#[tokio::test]
async fn reconnects_after_the_peer_restarts_elsewhere() {
    bounded(async {
        let dir = cluster_dir();
        let a = start_node(
            dir.path(),
            "a",
            "local",
            WanModel::disabled(),
            Duration::from_millis(500),
        )
        .await;
        let b = simple_node(dir.path(), "b").await;
        introduce(&a, &b);
        a.transport
            .request(&b.node, &TestRequest::WhoAmI)
            .await
            .unwrap();
        b.transport.shutdown().await;
        assert!(matches!(
            b.transport.request(&a.node, &TestRequest::WhoAmI).await,
            Err(TransportError::Closed)
        ));
        assert!(a
            .transport
            .request(&b.node, &TestRequest::WhoAmI)
            .await
            .is_err());

        let restarted = simple_node(dir.path(), "b").await;
        introduce(&a, &restarted);
        let echoed = a
            .transport
            .request(&b.node, &TestRequest::Echo("again".into()))
            .await
            .unwrap();
        assert_eq!(echoed, TestResponse::Echo("b:again".into()));
        assert_eq!(a.transport.stats().connections_opened, 2);
    })
    .await;
}

#[tokio::test]
async fn address_book_errors_are_typed() {
    bounded(async {
        let dir = cluster_dir();
        let a = simple_node(dir.path(), "a").await;
        let error = a
            .transport
            .request(&node_id("nobody"), &TestRequest::WhoAmI)
            .await
            .unwrap_err();
        assert!(matches!(&error, TransportError::UnknownPeer(peer) if peer.as_str() == "nobody"));
        assert_eq!(error.to_string(), "no address known for peer nobody");

        let addr = "127.0.0.1:9".parse().unwrap();
        for index in 0..PEERS_MAX {
            a.transport
                .set_peer(node_id(&format!("n{index}")), region("local"), addr)
                .unwrap();
        }
        // Updating a known peer is fine when full; adding a new one is not.
        a.transport
            .set_peer(node_id("n0"), region("other"), addr)
            .unwrap();
        assert!(matches!(
            a.transport
                .set_peer(node_id("extra"), region("local"), addr),
            Err(TransportError::TooManyPeers { max: PEERS_MAX })
        ));
        a.transport.remove_peer(&node_id("n0"));
        a.transport
            .set_peer(node_id("extra"), region("local"), addr)
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn start_refuses_a_certificate_for_another_node() {
    let dir = cluster_dir();
    let tls = issue_node_certificate(dir.path(), &node_id("b"), &region("local")).unwrap();
    let result = start_node_a_under(tls).await;
    assert!(matches!(
        result,
        Err(TransportError::Tls(TlsError::Untrusted { .. }))
    ));
}

#[tokio::test]
async fn sender_cannot_claim_another_region() {
    bounded(async {
        let dir = cluster_dir();
        let b = simple_node(dir.path(), "b").await;
        let raw_node = node_id("raw");
        let raw_tls = issue_node_certificate(dir.path(), &raw_node, &region("local")).unwrap();
        let connection = raw_connection(&raw_tls, &b).await;
        let forged = who_am_i_from(&raw_node, "elsewhere");
        let result = raw_exchange(&connection, &forged, true).await;
        assert_eq!(reset_code(result), Some(Refusal::IdentityRejected));
        let stats = b.transport.stats();
        assert_eq!(stats.impersonations_rejected, 1);
        assert_eq!(stats.requests_received, 0);
        // Its own region still works, on a new connection.
        let connection = raw_connection(&raw_tls, &b).await;
        let honest = who_am_i_from(&raw_node, "local");
        assert!(raw_exchange(&connection, &honest, true).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn a_peer_is_not_dialled_under_another_region() {
    bounded(async {
        let dir = cluster_dir();
        let a = simple_node(dir.path(), "a").await;
        let b = simple_node(dir.path(), "b").await;
        a.transport
            .set_peer(b.node.clone(), region("elsewhere"), b.transport.local_addr())
            .unwrap();
        let result = a.transport.request(&b.node, &TestRequest::WhoAmI).await;
        assert!(
            matches!(&result, Err(TransportError::Connect { reason, .. }) if reason.contains("region")),
            "{result:?}"
        );
        assert_eq!(a.transport.stats().impersonations_rejected, 1);
        introduce(&a, &b);
        assert!(a.transport.request(&b.node, &TestRequest::WhoAmI).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn start_refuses_a_certificate_for_another_region() {
    let dir = cluster_dir();
    let tls = issue_node_certificate(dir.path(), &node_id("a"), &region("elsewhere")).unwrap();
    let result = start_node_a_under(tls).await;
    assert!(matches!(
        result,
        Err(TransportError::Tls(TlsError::WrongRegion { .. }))
    ));
}

#[tokio::test]
async fn a_slow_node_answers_its_peers_late_but_answers() {
    bounded(async {
        let dir = cluster_dir();
        let a = simple_node(dir.path(), "a").await;
        let b = simple_node(dir.path(), "b").await;
        introduce(&a, &b);
        introduce(&b, &a);
        let delay = Duration::from_millis(150);
        let plan = FaultPlan {
            reply_delay_ms: 150.0,
            ..Default::default()
        };
        b.transport.set_faults(plan).unwrap();
        let started = Instant::now();
        let echoed = a
            .transport
            .request(&b.node, &TestRequest::Echo("late".into()))
            .await
            .unwrap();
        assert_eq!(echoed, TestResponse::Echo("b:late".into()));
        assert!(
            started.elapsed() >= delay,
            "answered in {:?}",
            started.elapsed()
        );
        // Only b's answers are late: b asking a is not slowed.
        let started = Instant::now();
        b.transport
            .request(&a.node, &TestRequest::Echo("quick".into()))
            .await
            .unwrap();
        assert!(
            started.elapsed() < delay,
            "answered in {:?}",
            started.elapsed()
        );
        b.transport.set_faults(FaultPlan::default()).unwrap();
        let started = Instant::now();
        a.transport
            .request(&b.node, &TestRequest::Echo("healed".into()))
            .await
            .unwrap();
        assert!(
            started.elapsed() < delay,
            "answered in {:?}",
            started.elapsed()
        );
        a.transport.shutdown().await;
        b.transport.shutdown().await;
    })
    .await;
}
