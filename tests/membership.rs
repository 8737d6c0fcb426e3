//! Membership over real processes: join through seeds, graceful leave, removal of a
//! dead node, failure detection, and the refusals.

mod common;

use common::{single_region, ProcessCluster};
use std::time::Duration;

const KEYS: usize = 150;

async fn write_keys(cluster: &ProcessCluster, via: &str) {
    let http = reqwest::Client::new();
    for i in 0..KEYS {
        let put = http
            .put(cluster.url(via, &format!("/v1/kv/key-{i}?consistency=all")))
            .body(format!("value-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 204, "key-{i}");
    }
}

/// Reads every key at `level` through `via`; returns how many were missing or wrong.
async fn missing_keys(cluster: &ProcessCluster, via: &str, level: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut missing = Vec::new();
    for i in 0..KEYS {
        let read = http
            .get(cluster.url(via, &format!("/v1/kv/key-{i}?consistency={level}")))
            .send()
            .await
            .unwrap();
        let status = read.status();
        let body = read.text().await.unwrap();
        if status != 200 || body != format!("value-{i}") {
            missing.push(format!("key-{i}: {status} {body}"));
        }
    }
    missing
}

fn succeeded(output: &std::process::Output) -> bool {
    if !output.status.success() {
        eprintln!(
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.status.success()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_joins_through_the_seeds_and_fetches_its_partitions_without_misses() {
    let mut cluster = ProcessCluster::up(&single_region(3, 2), &[]);
    write_keys(&cluster, "local-1").await;
    // Readers run through the whole join: no acknowledged key may read as missing.
    let reader = {
        let urls: Vec<String> = (0..KEYS)
            .map(|i| cluster.url("local-2", &format!("/v1/kv/key-{i}")))
            .collect();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut misses = 0;
            for round in 0..4 {
                for url in &urls {
                    let status = http.get(url).send().await.unwrap().status();
                    if status != 200 {
                        misses += 1;
                        eprintln!("round {round}: {url} -> {status}");
                    }
                }
            }
            misses
        })
    };
    assert!(succeeded(&cluster.cli(&["add", "--region", "local"])));
    cluster.reload();
    let joined = cluster
        .wait_status("local-4", Duration::from_secs(60), |s| {
            s.members
                .iter()
                .any(|m| m.node == "local-4" && m.status == "member")
        })
        .await;
    assert!(
        joined.partitions_owned > 0,
        "the joiner owns partitions: {joined:?}"
    );
    assert_eq!(joined.partitions_held, joined.partitions_owned);
    assert!(joined.objects_fetched > 0, "it fetched objects");
    assert_eq!(
        reader.await.unwrap(),
        0,
        "keys read as missing during the join"
    );
    assert_eq!(
        missing_keys(&cluster, "local-4", "all").await,
        Vec::<String>::new()
    );
    let refused = cluster.cli(&["add", "--region", "mars"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("region mars is not in the topology"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leaving_node_streams_its_partitions_then_exits() {
    let mut cluster = ProcessCluster::up(&single_region(4, 2), &[]);
    write_keys(&cluster, "local-1").await;
    let pid = cluster.node("local-2").pid;
    assert!(succeeded(&cluster.cli(&["leave", "local-2"])));
    assert!(!cartwheel::cluster::process_is_node(pid), "the node exited");
    cluster.reload();
    assert_eq!(cluster.nodes.len(), 3);
    let status = cluster
        .wait_status("local-1", Duration::from_secs(20), |s| {
            s.members
                .iter()
                .any(|m| m.node == "local-2" && m.status == "left")
                && !s.ring_change_pending
        })
        .await;
    assert!(
        status
            .members
            .iter()
            .filter(|m| m.status == "member")
            .count()
            == 3
    );
    assert_eq!(
        missing_keys(&cluster, "local-3", "all").await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_dead_node_rebuilds_its_partitions_from_the_other_replicas() {
    let mut cluster = ProcessCluster::up(&single_region(4, 2), &[]);
    write_keys(&cluster, "local-1").await;
    cluster.kill("local-3");
    assert!(succeeded(&cluster.cli(&["remove", "local-3"])));
    cluster.reload();
    for id in ["local-1", "local-2", "local-4"] {
        cluster
            .wait_status(id, Duration::from_secs(30), |s| {
                s.partitions_held == s.partitions_owned && s.transfers_in_flight == 0
            })
            .await;
    }
    assert_eq!(
        missing_keys(&cluster, "local-2", "all").await,
        Vec::<String>::new()
    );
    let total: u64 =
        futures::future::join_all(["local-1", "local-2", "local-4"].map(|id| cluster.status(id)))
            .await
            .iter()
            .map(|s| s.keys)
            .sum();
    assert_eq!(
        total,
        2 * KEYS as u64,
        "every key on its two replicas again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_leave_of_the_last_replicas_and_a_duplicate_id() {
    let cluster = ProcessCluster::up(&single_region(2, 2), &[]);
    let output = cluster.cli(&["leave", "local-1"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("refused") && message.contains("local"),
        "{message}"
    );
    // A second process with the id of a live member is refused.
    let seed = format!("local-1@{}", cluster.node("local-1").quic);
    let topology = cluster.dir.path().join("topology.toml");
    let duplicate = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(common::binary())
            .args([
                "node", "--id", "local-2", "--memory", "--seeds", &seed, "--dir",
            ])
            .arg(cluster.dir.path())
            .arg("--topology")
            .arg(&topology)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the duplicate exits by itself")
    .unwrap();
    assert!(!duplicate.status.success());
    assert!(
        String::from_utf8_lossy(&duplicate.stderr).contains("already used"),
        "{}",
        String::from_utf8_lossy(&duplicate.stderr)
    );
    let status = cluster.status("local-1").await;
    assert!(
        status.members.iter().all(|m| m.state == "alive"),
        "{:?}",
        status.members
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_node_is_detected_and_costs_no_timeout_afterwards() {
    let cluster = ProcessCluster::up(
        &single_region(3, 3),
        &["--w", "2", "--r", "2", "--request-timeout-ms", "5000"],
    );
    cluster.kill("local-3");
    for id in ["local-1", "local-2"] {
        cluster
            .wait_status(id, Duration::from_secs(15), |s| {
                s.members
                    .iter()
                    .any(|m| m.node == "local-3" && m.state == "dead")
            })
            .await;
    }
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let put = http
        .put(cluster.url("local-1", "/v1/kv/fast"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let all = http
        .get(cluster.url("local-2", "/v1/kv/fast?r=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        all.status(),
        503,
        "r=3 fails fast when a replica is known dead"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}: a dead replica cost a timeout",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_pause_is_never_declared_dead() {
    let cluster = ProcessCluster::up(&single_region(3, 3), &[]);
    let pid = cluster.node("local-3").pid;
    cartwheel::cluster::signal(pid, libc::SIGSTOP);
    tokio::time::sleep(Duration::from_millis(700)).await;
    cartwheel::cluster::signal(pid, libc::SIGCONT);
    // Watch for a while after the resume: suspicion may come and must be refuted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        for id in ["local-1", "local-2"] {
            let status = cluster.status(id).await;
            let member = status.members.iter().find(|m| m.node == "local-3").unwrap();
            assert_ne!(member.state, "dead", "{id} declared a paused node dead");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_node_restarted_in_turn_right_after_a_clean_stop_is_let_back_in() {
    let mut cluster =
        common::InProcessCluster::start(&common::single_region(3, 2), Default::default()).await;
    for index in 0..3 {
        let id = cluster.stop(index).await;
        cluster.start_again(index, &id).await;
        for (position, node) in cluster.nodes.iter_mut().enumerate() {
            let exited =
                tokio::time::timeout(std::time::Duration::from_millis(300), node.exited()).await;
            assert!(
                exited.is_err(),
                "round {index}: node {position} stopped: {exited:?}"
            );
        }
    }
    cluster.shutdown().await;
}
