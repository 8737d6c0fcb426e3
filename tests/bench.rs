//! `cartwheel bench` against a real cluster: every workload runs without an error (over
//! the pipelined API and over HTTP/1.1), and what it writes is really in the cluster
//! afterwards.

mod common;

use common::{binary, single_region, ProcessCluster};
use std::process::Command;

/// The kv workload of these tests: 200 keys of 100 bytes at R = 2, W = 2.
const KV: &[&str] = &[
    "--keys",
    "200",
    "--value-bytes",
    "100",
    "--r",
    "2",
    "--w",
    "2",
    "--seed",
    "7",
];

/// Runs `cartwheel bench` against the cluster and returns its JSON summary.
fn bench(cluster: &ProcessCluster, args: &[&str]) -> serde_json::Value {
    let json = cluster.dir.path().join("bench.json");
    let output = Command::new(binary())
        .arg("bench")
        .arg("--dir")
        .arg(cluster.dir.path())
        .args(["--clients", "4", "--warmup", "0s", "--duration", "1s"])
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run cartwheel bench");
    assert!(
        output.status.success(),
        "bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(&json).expect("bench summary")).expect("JSON summary")
}

fn assert_clean_run(summary: &serde_json::Value, ops: &[&str]) {
    assert_eq!(summary["errors"], 0, "{summary:#}");
    assert!(
        summary["throughput_ops_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{summary:#}"
    );
    let latency = &summary["latency_ms"];
    let (p50, p999) = (latency["p50"].as_f64(), latency["p999"].as_f64());
    assert!(p50.is_some() && p50 <= p999, "{summary:#}");
    for op in ops {
        assert!(
            latency[op]["count"].as_u64().unwrap_or(0) > 0,
            "no {op} in {summary:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_workload_runs_clean_against_a_cluster_and_its_writes_are_stored() {
    let cluster = ProcessCluster::up(&single_region(3, 3), &[]);
    for (routing, protocol) in [
        ("token", "pipeline"),
        ("spread", "pipeline"),
        ("token", "http"),
    ] {
        let how = ["--routing", routing, "--protocol", protocol];
        let summary = bench(&cluster, &[KV, &how].concat());
        assert_clean_run(&summary, &["read", "write"]);
    }
    // The bench loaded its keys before timing: each is readable at every node (as one
    // value, or as siblings when two bench clients wrote it concurrently).
    let http = reqwest::Client::new();
    for node in ["local-1", "local-2", "local-3"] {
        let read = http
            .get(cluster.url(node, "/v1/kv/bench-0?r=1"))
            .send()
            .await
            .expect("GET");
        let status = read.status().as_u16();
        let body = read.bytes().await.expect("body");
        match status {
            200 => assert_eq!(body.len(), 100, "{node}"),
            300 => {
                use base64::Engine;
                let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                let siblings = body["siblings"].as_array().expect("siblings");
                assert!(siblings.len() >= 2, "{node}: {body}");
                for sibling in siblings {
                    let value = base64::engine::general_purpose::STANDARD
                        .decode(sibling.as_str().expect("base64 text"))
                        .expect("base64");
                    assert_eq!(value.len(), 100, "{node}");
                }
            }
            _ => panic!("{node}: bench-0 answered {status}"),
        }
    }
    for (workload, ops) in [
        ("session-read", &["read", "cart_add"][..]),
        ("cart-write", &["read", "cart_add"][..]),
        ("login-storm", &["login", "validate", "logout"][..]),
    ] {
        let summary = bench(
            &cluster,
            &[
                "--workload",
                workload,
                "--keys",
                "20",
                "--value-bytes",
                "300",
            ],
        );
        assert_clean_run(&summary, ops);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_aware_requests_go_around_a_dead_node() {
    let cluster = ProcessCluster::up(&single_region(3, 3), &[]);
    cluster.kill("local-3");
    for id in ["local-1", "local-2"] {
        cluster
            .wait_status(id, std::time::Duration::from_secs(30), |s| {
                s.members
                    .iter()
                    .any(|m| m.node == "local-3" && m.state == "dead")
            })
            .await;
    }
    // Two of three replicas answer R = 2 and W = 2; a request sent to the dead node
    // would fail to connect and count as an error.
    let summary = bench(&cluster, &[KV, &["--routing", "token"]].concat());
    assert_clean_run(&summary, &["read", "write"]);
}

/// A build without the `etcd` feature has the etcd target's flag but not its client: the
/// run stops at once with exit code 1 and says how to build it, with no panic.
#[cfg(not(feature = "etcd"))]
#[test]
fn an_etcd_target_without_the_etcd_feature_says_how_to_build_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let output = Command::new(binary())
        .args(["bench", "--target", "etcd://127.0.0.1:1", "--dir"])
        .arg(dir.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run cartwheel bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--features etcd"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
