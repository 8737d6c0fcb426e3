//! Hinted handoff: writes for a replica that is down land on fallbacks and reach the
//! replica once it is back.

use crate::common;

use cartwheel::config::{Topology, TuningFlags};
use cartwheel::object::ObjectKey;
use common::{single_region, InProcessCluster};
use std::time::Duration;

const KEYS: usize = 200;

/// How many of the test's keys `node` is a replica of.
fn keys_owned_by(topology: &str, node: &str) -> u64 {
    (0..KEYS)
        .filter(|i| keys_owned_by_key(topology, &format!("hinted-{i}"), node))
        .count() as u64
}

/// Whether `node` is a replica of `key` in `topology`.
fn keys_owned_by_key(topology: &str, key: &str, node: &str) -> bool {
    let topology = Topology::parse(topology).unwrap();
    let ring = topology.initial_ring().unwrap();
    ring.replicas(ObjectKey::kv(key.as_bytes()).partition(topology.partitions))
        .iter()
        .any(|(id, _)| id.as_str() == node)
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_for_a_down_replica_are_hinted_and_replayed_when_it_returns() {
    let topology = single_region(4, 2);
    let mut cluster = InProcessCluster::start(&topology, TuningFlags::default()).await;
    let http = reqwest::Client::new();
    let down = cluster.stop(1).await;
    for index in 0..3 {
        cluster.wait_dead(index, down.as_str()).await;
    }
    for i in 0..KEYS {
        let put = http
            .put(cluster.url(0, &format!("/v1/kv/hinted-{i}?w=2")))
            .body(format!("v{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.status(),
            204,
            "a write with a replica down still reaches W = 2 through a fallback"
        );
    }
    let expected = keys_owned_by(&topology, down.as_str());
    assert!(expected > 0);
    let mut pending = 0;
    for index in 0..3 {
        pending += cluster
            .status(index)
            .await
            .hints
            .pending
            .get(down.as_str())
            .copied()
            .unwrap_or(0);
    }
    assert_eq!(
        pending, expected,
        "one hint per write the down replica missed"
    );
    cluster.start_again(1, &down).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while cluster.status(1).await.keys < expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "hints were not replayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cluster.status(1).await.keys, expected);
    let mut replayed = 0;
    for index in [0, 2, 3] {
        let status = cluster.status(index).await;
        assert!(
            status.hints.pending.is_empty(),
            "hints deleted once acknowledged: {:?}",
            status.hints
        );
        replayed += status.hints.replayed;
    }
    assert_eq!(replayed, expected);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_quorum_refuses_instead_of_hinting() {
    let flags = TuningFlags {
        strict_quorum: true,
        ..Default::default()
    };
    // Four nodes, three replicas: a fallback exists, but strict quorums do not use it.
    let mut cluster = InProcessCluster::start(&single_region(4, 3), flags).await;
    cluster.stop(2).await;
    let http = reqwest::Client::new();
    cluster.wait_dead(0, "local-3").await;
    // A key local-3 replicates: with it down, W = 3 cannot be met without a fallback.
    let key = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|key| keys_owned_by_key(&single_region(4, 3), key, "local-3"))
        .unwrap();
    let put = http
        .put(cluster.url(0, &format!("/v1/kv/{key}?w=3")))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 503);
    assert!(cluster.status(0).await.hints.pending.is_empty());
    cluster.shutdown().await;
}
