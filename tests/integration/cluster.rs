//! Local clusters of real `cartwheel` processes talking QUIC with mutual TLS.

use crate::common;

use common::{single_region, ProcessCluster};
use std::process::Command;

const CONTEXT: &str = "x-cartwheel-context";

#[tokio::test(flavor = "multi_thread")]
async fn a_write_at_w2_of_3_survives_a_killed_replica() {
    let cluster = ProcessCluster::up(
        &single_region(3, 3),
        &["--w", "2", "--r", "2", "--request-timeout-ms", "1000"],
    );
    let http = reqwest::Client::new();
    let put = http
        .put(cluster.url("local-1", "/v1/kv/cart-42"))
        .body("three socks")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    cluster.kill("local-2");
    let get = http
        .get(cluster.url("local-3", "/v1/kv/cart-42"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.text().await.unwrap(), "three socks");
    // All three replicas cannot answer any more: the error says how many did.
    let all = http
        .get(cluster.url("local-3", "/v1/kv/cart-42?r=3"))
        .send()
        .await
        .unwrap();
    assert!(all.status().is_server_error(), "{}", all.status());
    let body: serde_json::Value = all.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("2 of 3 replicas answered"), "{message}");
    assert!(
        body["code"] == "quorum_not_reached" || body["code"] == "timeout",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_become_siblings_until_a_write_with_their_context() {
    let cluster = ProcessCluster::up(&single_region(3, 3), &[]);
    let http = reqwest::Client::new();
    for (node, value) in [("local-1", "phone"), ("local-2", "laptop")] {
        let put = http
            .put(cluster.url(node, "/v1/kv/prefs"))
            .body(value)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 204);
    }
    let read = http
        .get(cluster.url("local-3", "/v1/kv/prefs"))
        .send()
        .await
        .unwrap();
    let context = read.headers()[CONTEXT].to_str().unwrap().to_string();
    let (body, siblings) = common::siblings(read).await;
    assert_eq!(
        siblings,
        ["bGFwdG9w", "cGhvbmU="],
        "base64 of laptop and phone"
    );
    assert_eq!(body["context"], context.as_str());
    let resolve = http
        .put(cluster.url("local-3", "/v1/kv/prefs"))
        .header(CONTEXT, &context)
        .body("merged")
        .send()
        .await
        .unwrap();
    assert_eq!(resolve.status(), 204);
    let read = http
        .get(cluster.url("local-1", "/v1/kv/prefs"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.text().await.unwrap(), "merged");
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_down_leaves_no_process_and_garbage_datagrams_change_nothing() {
    let cluster = ProcessCluster::up(&single_region(3, 2), &[]);
    let http = reqwest::Client::new();
    // Junk at a node's QUIC port: the node keeps serving.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for size in [1usize, 17, 1200, 1500] {
        socket
            .send_to(&vec![0xA5; size], cluster.node("local-1").quic)
            .unwrap();
    }
    let put = http
        .put(cluster.url("local-1", "/v1/kv/after-junk"))
        .body("ok")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let nodes: Vec<_> = cluster
        .nodes
        .iter()
        .map(|node| (node.pid, node.id.clone()))
        .collect();
    assert!(nodes
        .iter()
        .all(|(pid, id)| cartwheel::cluster::process_is_node(*pid, id)));
    let output = cluster.down();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("stopped 3 nodes"));
    for (pid, id) in nodes {
        assert!(
            !cartwheel::cluster::process_is_node(pid, &id),
            "node {pid} still running after cluster down"
        );
    }
}

#[test]
fn the_sim_runs_the_default_topology_and_checks_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("s.json");
    let output = Command::new(common::binary())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["sim", "--duration", "3s", "--seed", "7", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sim failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(summary["ops"]["acked"].as_u64().unwrap() > 50, "{summary}");
    assert_eq!(summary["invariants"]["lost_acked_writes"], 0);
    assert!(summary["invariants"]["keys_checked"].as_u64().unwrap() > 0);
    for region in ["us-east", "us-west", "eu-west"] {
        assert!(
            summary["latency_ms"][region]["read"]["p99"]
                .as_f64()
                .unwrap()
                > 0.0,
            "{summary}"
        );
        assert!(
            summary["latency_ms"][region]["write"]["p50"]
                .as_f64()
                .unwrap()
                > 60.0,
            "writes wait for another region: {summary}"
        );
    }
}

#[test]
fn bad_flags_and_topologies_are_refused_with_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let topology = dir.path().join("t.toml");
    std::fs::write(&topology, single_region(2, 2)).unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(common::binary()).args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    let t = topology.to_str().unwrap();
    let d = dir.path().join("c");
    let d = d.to_str().unwrap();
    let message = run(&["cluster", "up", "--dir", d, "--topology", t, "--w", "3"]);
    assert!(
        message.contains("--w") && message.contains("needs 3"),
        "{message}"
    );
    let message = run(&[
        "cluster",
        "up",
        "--dir",
        d,
        "--topology",
        t,
        "--replicas-per-region",
        "3",
    ]);
    assert!(message.contains("region local has 2 nodes"), "{message}");
    let message = run(&[
        "cluster",
        "up",
        "--dir",
        d,
        "--topology",
        t,
        "--read",
        "most",
    ]);
    assert!(message.contains("unknown consistency level"), "{message}");
    std::fs::write(
        &topology,
        "[[regions]]\nname = \"a\"\nnodes = 2\n[[regions]]\nname = \"b\"\nnodes = 2\n",
    )
    .unwrap();
    let message = run(&["cluster", "up", "--dir", d, "--topology", t]);
    assert!(
        message.contains("missing the round trip between a and b"),
        "{message}"
    );
    assert!(
        !dir.path().join("c").join("cluster.json").exists(),
        "nothing was started"
    );
}
