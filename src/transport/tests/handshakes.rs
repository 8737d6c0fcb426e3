//! Inbound handshakes: a peer that starts a handshake and never finishes holds no
//! connection slot and is timed out; a burst of handshakes brings in address validation
//! (QUIC Retry) and a hard bound, and real peers still connect.

use super::*;
use server::ServerLimits;

/// Datagrams a half-open client's relay forwards at most (its retransmissions).
const RELAYED_DATAGRAMS_MAX: usize = 1_000;

/// A QUIC client whose handshake never completes: its datagrams reach the server
/// through a relay socket that drops everything the server answers (Retry included).
struct HalfOpen {
    _endpoint: quinn::Endpoint,
    _connecting: quinn::Connecting,
    relay: tokio::task::JoinHandle<()>,
}

impl Drop for HalfOpen {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

async fn half_open(tls: &NodeTls, server: &TestNode) -> HalfOpen {
    let relay = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let server_addr = server.transport.local_addr();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let client_addr = endpoint.local_addr().unwrap();
    let crypto = tls::quic_client_crypto(tls).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(crypto));
    let connecting = endpoint.connect(relay_addr, server.node.as_str()).unwrap();
    let relay = tokio::spawn(async move {
        let mut buffer = vec![0; 65_536];
        for _ in 0..RELAYED_DATAGRAMS_MAX {
            let Ok((length, from)) = relay.recv_from(&mut buffer).await else {
                return;
            };
            if from == client_addr {
                let _ = relay.send_to(&buffer[..length], server_addr).await;
            }
        }
    });
    HalfOpen {
        _endpoint: endpoint,
        _connecting: connecting,
        relay,
    }
}

async fn server_with(ca_dir: &Path, limits: ServerLimits) -> TestNode {
    let timeout = Duration::from_secs(5);
    start_node_with(ca_dir, "a", "local", WanModel::disabled(), timeout, limits).await
}

async fn half_opens(ca_dir: &Path, server: &TestNode, count: usize) -> Vec<HalfOpen> {
    let tls = issue_node_certificate(ca_dir, &node_id("ghost"), &region("local")).unwrap();
    let mut clients = Vec::new();
    for _ in 0..count {
        clients.push(half_open(&tls, server).await);
    }
    clients
}

#[tokio::test]
async fn a_handshake_never_finished_holds_no_connection_slot_and_times_out() {
    bounded(async {
        let dir = cluster_dir();
        let limits = ServerLimits {
            connections_max: 1,
            handshakes_max: 8,
            handshakes_before_retry: 8,
            handshake_timeout: Duration::from_secs(3),
        };
        let a = server_with(dir.path(), limits).await;
        let _stuck = half_opens(dir.path(), &a, 3).await;
        a.transport
            .wait_for_stats(|stats| stats.handshakes_started >= 3)
            .await;
        // One connection slot, three handshakes in progress: a real peer still gets it.
        let b = simple_node(dir.path(), "b").await;
        introduce(&b, &a);
        let answer = b.transport.request(&a.node, &TestRequest::WhoAmI).await;
        assert!(answer.is_ok(), "{answer:?}");
        let stats = a.transport.stats();
        assert_eq!(
            stats.handshakes_timed_out, 0,
            "still in progress: {stats:?}"
        );
        assert_eq!(stats.connections_accepted, 1);
        assert_eq!(stats.connections_overloaded, 0);
        a.transport
            .wait_for_stats(|stats| stats.handshakes_timed_out >= 3)
            .await;
        assert_eq!(a.transport.stats().connections_accepted, 1);
    })
    .await;
}

#[tokio::test]
async fn a_burst_of_handshakes_brings_address_validation_and_real_peers_connect() {
    bounded(async {
        let dir = cluster_dir();
        let limits = ServerLimits {
            connections_max: 1024,
            handshakes_max: 4,
            handshakes_before_retry: 2,
            handshake_timeout: Duration::from_secs(10),
        };
        let a = server_with(dir.path(), limits).await;
        let _first = half_opens(dir.path(), &a, 2).await;
        a.transport
            .wait_for_stats(|stats| stats.handshakes_started >= 2)
            .await;
        // These never answer the Retry, so they never get a handshake started.
        let _burst = half_opens(dir.path(), &a, 3).await;
        a.transport
            .wait_for_stats(|stats| stats.handshakes_retried >= 3)
            .await;
        assert_eq!(a.transport.stats().handshakes_started, 2);
        // A real peer answers the Retry and connects.
        let b = simple_node(dir.path(), "b").await;
        introduce(&b, &a);
        let answer = b.transport.request(&a.node, &TestRequest::WhoAmI).await;
        assert!(answer.is_ok(), "{answer:?}");
        let stats = a.transport.stats();
        assert_eq!(stats.connections_accepted, 1);
        assert_eq!(stats.handshakes_started, 3);
        assert_eq!(stats.handshakes_refused, 0);
        assert_eq!(stats.handshakes_timed_out, 0);
    })
    .await;
}

#[tokio::test]
async fn handshakes_beyond_the_hard_bound_are_refused_until_slots_free() {
    bounded(async {
        let dir = cluster_dir();
        let limits = ServerLimits {
            connections_max: 1024,
            handshakes_max: 2,
            handshakes_before_retry: 2,
            handshake_timeout: Duration::from_secs(1),
        };
        let a = server_with(dir.path(), limits).await;
        let _first = half_opens(dir.path(), &a, 2).await;
        a.transport
            .wait_for_stats(|stats| stats.handshakes_started >= 2)
            .await;
        let _third = half_opens(dir.path(), &a, 1).await;
        a.transport
            .wait_for_stats(|stats| stats.handshakes_refused >= 1)
            .await;
        a.transport
            .wait_for_stats(|stats| stats.handshakes_timed_out >= 2)
            .await;
        // The timed-out handshakes gave their slots back.
        let b = simple_node(dir.path(), "b").await;
        introduce(&b, &a);
        let answer = b.transport.request(&a.node, &TestRequest::WhoAmI).await;
        assert!(answer.is_ok(), "{answer:?}");
        assert_eq!(a.transport.stats().connections_accepted, 1);
    })
    .await;
}
