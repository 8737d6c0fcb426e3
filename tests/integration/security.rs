//! A process without a certificate of the cluster's CA cannot talk to its nodes.

use crate::common;

use cartwheel::config::TuningFlags;
use cartwheel::ids::{NodeId, Region};
use cartwheel::object::ObjectKey;
use cartwheel::transport::{self, Handler, PeerInfo, Transport, TransportConfig, WanModel};
use cartwheel::wire::{PeerRequest, PeerResponse};
use common::{single_region, InProcessCluster};
use std::sync::Arc;
use std::time::Duration;

struct Silent;

impl Handler<PeerRequest, PeerResponse> for Silent {
    async fn handle(&self, _from: PeerInfo, _request: PeerRequest) -> PeerResponse {
        PeerResponse::Done
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_with_a_certificate_from_another_ca_is_refused() {
    let cluster = InProcessCluster::start(&single_region(2, 2), TuningFlags::default()).await;
    let rogue_dir = tempfile::tempdir().unwrap();
    transport::create_cluster_ca(rogue_dir.path()).unwrap();
    // The rogue even claims the name of a real member.
    let name = NodeId("local-1".into());
    let config = TransportConfig {
        node: name.clone(),
        region: Region("local".into()),
        bind: "127.0.0.1:0".parse().unwrap(),
        tls: transport::issue_node_certificate(rogue_dir.path(), &name, &Region("local".into()))
            .unwrap(),
        wan: WanModel::disabled(),
        request_timeout: Duration::from_secs(2),
    };
    let rogue: Transport<PeerRequest, PeerResponse> =
        Transport::start(config, Arc::new(Silent)).await.unwrap();
    let target = &cluster.nodes[1];
    rogue
        .set_peer(target.id.clone(), target.region.clone(), target.quic_addr)
        .unwrap();
    let answer = rogue
        .request(
            &target.id,
            &PeerRequest::Get {
                key: ObjectKey::kv(b"k"),
            },
        )
        .await;
    assert!(answer.is_err(), "a rogue peer was answered: {answer:?}");
    // The rogue may learn of the refusal before the node has counted it (TLS 1.3: the
    // server judges the client's certificate after the client's side is done): poll.
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = cartwheel::cluster::fetch_status(&client, target.http_addr)
            .await
            .unwrap();
        if status.connections_refused >= 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "refusal not counted within 10 s: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The node still serves its cluster.
    let put = client
        .put(cluster.url(0, "/v1/kv/k"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    rogue.shutdown().await;
    cluster.shutdown().await;
}
