//! Read repair: a replica that missed a write is brought up to date by a read; and a
//! replica that lost its data does not mint its old dots again.

use crate::common;

use cartwheel::config::TuningFlags;
use common::{single_region, InProcessCluster};
use std::time::Duration;

/// Default flags with anti-entropy off.
fn without_anti_entropy() -> TuningFlags {
    TuningFlags {
        anti_entropy_rate: Some(0),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_repairs_a_replica_that_lost_its_data() {
    // Anti-entropy off, so only the read can repair.
    let flags = without_anti_entropy();
    let mut cluster = InProcessCluster::start(&single_region(3, 3), flags).await;
    let http = reqwest::Client::new();
    let put = http
        .put(cluster.url(0, "/v1/kv/basket?consistency=all"))
        .body("apples")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    cluster.restart_empty(2).await;
    assert_eq!(
        cluster.status(2).await.keys,
        0,
        "the restarted replica starts empty"
    );
    let read = http
        .get(cluster.url(0, "/v1/kv/basket?consistency=all"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.text().await.unwrap(), "apples");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cluster.status(2).await.keys != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the empty replica was never repaired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = cluster.status(0).await;
    assert!(
        status.read_repairs >= 1,
        "the coordinator counted its repair"
    );
    assert!(
        status.digest_mismatches >= 1,
        "the empty replica's digest differed, so the objects were read"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wiped_replica_mints_new_dots_so_its_next_write_does_not_hide_an_old_one() {
    // Anti-entropy off: the wiped node does not get its old version back before it
    // mints, which is the case where it would hand out the same dot again.
    let flags = without_anti_entropy();
    let mut cluster = InProcessCluster::start(&single_region(3, 3), flags).await;
    let http = reqwest::Client::new();
    let put = |value: &'static str| {
        http.put(cluster.url(0, "/v1/kv/prefs?consistency=all"))
            .body(value)
            .send()
    };
    assert_eq!(put("phone").await.unwrap().status(), 204);
    let before = cluster.status(0).await.actor;
    assert_eq!(before.len(), 16, "an actor in hex: {before:?}");
    cluster.restart_empty(0).await;
    assert_ne!(
        cluster.status(0).await.actor,
        before,
        "a new store, a new actor"
    );
    // Minted on the wiped node without having seen "phone": the two are concurrent.
    // Until the restarted node sees the others alive, `all` fails at once: retry.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let put = http
            .put(cluster.url(0, "/v1/kv/prefs?consistency=all"))
            .body("laptop")
            .send()
            .await
            .unwrap();
        if put.status() == 204 {
            break;
        }
        let answer = put.text().await.unwrap();
        assert!(tokio::time::Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for index in 0..3 {
        let read = http
            .get(cluster.url(index, "/v1/kv/prefs?consistency=all"))
            .send()
            .await
            .unwrap();
        let (_, siblings) = common::siblings(read).await;
        assert_eq!(
            siblings,
            ["bGFwdG9w", "cGhvbmU="],
            "base64 of laptop and phone at node {index}"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_restart_after_early_sends_keeps_the_actor() {
    let mut cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let http = reqwest::Client::new();
    // The first write a node mints for itself starts arming its early sends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for i in 0.. {
        let put = http
            .put(cluster.url(1, &format!("/v1/kv/arm-{i}")))
            .body("v")
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 204);
        if cluster.status(1).await.early_sends {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "early sends never armed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let actor = cluster.status(1).await.actor;
    let id = cluster.stop(1).await;
    cluster.start_again(1, &id).await;
    let status = cluster.status(1).await;
    assert_eq!(status.actor, actor, "a clean stop keeps the incarnation");
    assert!(
        !status.early_sends,
        "a new life arms again before sending early"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_node_rebuilds_its_trees_while_serving_and_anti_entropy_resumes() {
    let mut cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let http = reqwest::Client::new();
    let put = |url: String, i: usize| {
        let http = http.clone();
        async move {
            let put = http.put(url).body(format!("v{i}")).send().await.unwrap();
            assert_eq!(put.status(), 204, "write k{i}");
        }
    };
    for i in 0..200 {
        put(cluster.url(0, &format!("/v1/kv/k{i}?consistency=all")), i).await;
    }
    let id = cluster.stop(2).await;
    // Written while node 2 is away: it must learn them once back.
    for i in 200..250 {
        put(
            cluster.url(0, &format!("/v1/kv/k{i}?consistency=quorum")),
            i,
        )
        .await;
    }
    cluster.start_again(2, &id).await;
    let get = http
        .get(cluster.url(2, "/v1/kv/k7?consistency=one"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200, "the restarted node serves");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = cluster.status(2).await;
        if status.trees_pending == 0 && status.keys == 250 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "trees pending {} keys {} (250 expected)",
            status.trees_pending,
            status.keys
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The rebuilt trees are the others' again: rounds with both peers after the rebuild
    // find every partition equal (a tree the rebuild got wrong would differ forever).
    let rounds = cluster.status(2).await.anti_entropy.rounds;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let repair = cluster.status(2).await.anti_entropy;
        if repair.rounds >= rounds + 3 && repair.partitions_out_of_sync == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "anti-entropy after the rebuild: {repair:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wiped_replica_is_filled_from_one_replica_without_any_read() {
    let mut cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let http = reqwest::Client::new();
    for i in 0..100 {
        let put = http
            .put(cluster.url(0, &format!("/v1/kv/k{i}?consistency=all")))
            .body(format!("v{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 204);
    }
    let mut pushed = 0;
    for index in [0, 1] {
        pushed += cluster.status(index).await.anti_entropy.keys_pushed;
    }
    cluster.restart_empty(2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = cluster.status(2).await;
        if status.keys == 100 && status.partitions_filling == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the wiped replica holds {} keys, {} partitions still filling",
            status.keys,
            status.partitions_filling
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = cluster.status(2).await;
    assert_eq!(status.partitions_filled as usize, status.partitions_held);
    // Each key came once, from one replica: none twice, none pushed by the others.
    assert!(
        (100..=110).contains(&status.objects_fetched),
        "objects fetched: {}",
        status.objects_fetched
    );
    let mut pushed_after = 0;
    for index in [0, 1] {
        pushed_after += cluster.status(index).await.anti_entropy.keys_pushed;
    }
    assert_eq!(
        pushed_after, pushed,
        "no replica pushed to the filling node"
    );
    assert_eq!(status.reads, 0, "no read was involved");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_deleted_while_a_replica_was_away_past_the_hint_window_stays_deleted() {
    let flags = TuningFlags {
        hint_window: Some(Duration::from_millis(1)),
        ..Default::default()
    };
    let mut cluster = InProcessCluster::start(&single_region(4, 3), flags).await;
    let http = reqwest::Client::new();
    let put = http
        .put(cluster.url(0, "/v1/kv/gone?consistency=all"))
        .body("old")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let context = put.headers()["x-cartwheel-context"]
        .to_str()
        .unwrap()
        .to_string();
    // Stop a replica of the key that is not the coordinator.
    let replicas: Vec<String> = (1..4).map(|i| format!("local-{}", i + 1)).collect();
    let mut away = None;
    for (index, id) in replicas.iter().enumerate() {
        let status = cluster.status(index + 1).await;
        if status.keys == 1 {
            away = Some((index + 1, id.clone()));
            break;
        }
    }
    let (index, _) = away.expect("a replica besides the coordinator");
    let id = cluster.stop(index).await;
    cluster.wait_dead(0, id.as_str()).await;
    let delete = http
        .delete(cluster.url(0, "/v1/kv/gone?w=2"))
        .header("x-cartwheel-context", &context)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    cluster.start_again(index, &id).await;
    // The hint (if any) is past the window and dropped; anti-entropy must carry the delete.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let read = http
            .get(cluster.url(index, "/v1/kv/gone?consistency=one"))
            .send()
            .await
            .unwrap();
        let statuses = futures::future::join_all((0..4).map(|i| cluster.status(i))).await;
        let in_sync = statuses
            .iter()
            .all(|s| s.anti_entropy.partitions_out_of_sync == 0);
        if read.status() == 404 && in_sync {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old value came back or replicas never converged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..4 {
        let read = http
            .get(cluster.url(i, "/v1/kv/gone?consistency=all"))
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 404, "node {i} resurrected a deleted key");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tombstones_are_collected_only_after_every_replica_was_seen_holding_them() {
    let flags = TuningFlags {
        tombstone_grace: Some(Duration::from_millis(1)),
        ..Default::default()
    };
    let cluster = InProcessCluster::start(&single_region(3, 3), flags).await;
    let http = reqwest::Client::new();
    let put = http
        .put(cluster.url(0, "/v1/kv/temp?consistency=all"))
        .body("x")
        .send()
        .await
        .unwrap();
    let context = put.headers()["x-cartwheel-context"]
        .to_str()
        .unwrap()
        .to_string();
    let delete = http
        .delete(cluster.url(1, "/v1/kv/temp?consistency=all"))
        .header("x-cartwheel-context", &context)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    for index in 0..3 {
        assert_eq!(
            cluster.status(index).await.keys,
            1,
            "the tombstone is stored first"
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let statuses = futures::future::join_all((0..3).map(|i| cluster.status(i))).await;
        if statuses.iter().all(|s| s.keys == 0) {
            assert!(
                statuses
                    .iter()
                    .map(|s| s.anti_entropy.tombstones_collected)
                    .sum::<u64>()
                    >= 1
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tombstones were never collected: {:?}",
            statuses.iter().map(|s| s.keys).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let read = http
        .get(cluster.url(2, "/v1/kv/temp?consistency=all"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 404);
    cluster.shutdown().await;
}
