//! The HTTP API against a real node: every bad input gets a 4xx JSON error and writes
//! nothing.

use crate::common;

use cartwheel::config::TuningFlags;
use common::{single_region, InProcessCluster};
use serde_json::Value;

async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("errors are JSON");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (status, body["code"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_json_errors_and_write_nothing() {
    let cluster = InProcessCluster::start(&single_region(1, 1), TuningFlags::default()).await;
    let http = reqwest::Client::new();
    let url = |path: &str| cluster.url(0, path);

    let long_key = "k".repeat(1025);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            http.put(url(&format!("/v1/kv/{long_key}"))).body("v"),
            413,
            "key_too_large",
        ),
        (
            http.put(url("/v1/kv/big")).body(vec![0u8; 1024 * 1024 + 1]),
            413,
            "value_too_large",
        ),
        (
            http.put(url("/v1/kv/k1?consistency=most")).body("v"),
            400,
            "unknown_consistency",
        ),
        (http.put(url("/v1/kv/k1?w=0")).body("v"), 400, "bad_request"),
        (
            http.put(url("/v1/kv/k1?w=2")).body("v"),
            400,
            "unsatisfiable_level",
        ),
        (http.put(url("/v1/kv/k1?r=1")).body("v"), 400, "bad_request"),
        (
            http.put(url("/v1/kv/k1?consistency=one&w=1")).body("v"),
            400,
            "bad_request",
        ),
        (
            http.put(url("/v1/kv/k1?colour=red")).body("v"),
            400,
            "bad_request",
        ),
        (
            http.put(url("/v1/kv/k1"))
                .header("x-cartwheel-context", "%%%")
                .body("v"),
            400,
            "bad_context",
        ),
        (
            http.put(url("/v1/kv/k1"))
                .header("x-cartwheel-context", "AQID")
                .body("v"),
            400,
            "bad_context",
        ),
        (
            http.put(url("/v1/kv/k1"))
                .header("x-cartwheel-context", "A".repeat(5000))
                .body("v"),
            400,
            "bad_context",
        ),
        (
            http.delete(url("/v1/kv/k1?consistency=nope")),
            400,
            "unknown_consistency",
        ),
        (
            http.get(url("/v1/kv/k1?consistency=region_safe")),
            400,
            "unknown_consistency",
        ),
        (http.get(url("/v1/kv/k1?w=1")), 400, "bad_request"),
        (http.get(url("/v1/nothing")), 404, "no_route"),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        let got = error_of(response).await;
        assert_eq!(got, (status, code.to_string()));
    }
    for key in ["k1", "big"] {
        let read = http
            .get(url(&format!("/v1/kv/{key}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_of(read).await,
            (404, "not_found".to_string()),
            "{key} was written"
        );
    }
    let status: Value = http
        .get(url("/v1/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["keys"], 0, "nothing reached storage: {status}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn put_get_delete_round_trip_with_levels() {
    let cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let http = reqwest::Client::new();
    let put = http
        .put(cluster.url(0, "/v1/kv/session%2F1?consistency=all"))
        .body(vec![0u8, 255, 7])
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let context = put.headers()["x-cartwheel-context"]
        .to_str()
        .unwrap()
        .to_string();
    let read = http
        .get(cluster.url(1, "/v1/kv/session%2F1?r=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.bytes().await.unwrap().as_ref(), &[0u8, 255, 7]);
    let delete = http
        .delete(cluster.url(2, "/v1/kv/session%2F1?w=3"))
        .header("x-cartwheel-context", &context)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    for index in 0..3 {
        let read = http
            .get(cluster.url(index, "/v1/kv/session%2F1?consistency=one"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            read.status(),
            404,
            "node {index} still serves a deleted key"
        );
    }
    let status: Value = cluster.get_json(0, "/v1/status").await;
    assert_eq!(status["replicas_total"], 3);
    assert_eq!(status["members"].as_array().unwrap().len(), 3);
    assert_eq!(
        status["partitions_owned"], 64,
        "every node owns every partition when N = nodes"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_leaves_siblings_hands_back_no_context_covering_them() {
    let cluster = InProcessCluster::start(&single_region(1, 1), TuningFlags::default()).await;
    let http = reqwest::Client::new();
    let url = cluster.url(0, "/v1/kv/shared");
    let first = http.put(&url).body("mine").send().await.unwrap();
    assert!(first.headers().contains_key("x-cartwheel-context"));
    // A second writer that never read the key: its value becomes a sibling, and its
    // answer must not carry a context that would let it overwrite "mine" unseen.
    let second = http.put(&url).body("theirs").send().await.unwrap();
    assert_eq!(second.status(), 204);
    assert!(!second.headers().contains_key("x-cartwheel-context"));
    assert_eq!(second.headers()["x-cartwheel-siblings"], "2");
    let read = http.get(&url).send().await.unwrap();
    assert_eq!(read.status(), 300);
    let body: Value = read.json().await.unwrap();
    assert_eq!(body["siblings"].as_array().unwrap().len(), 2);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ring_map_names_the_nodes_that_hold_each_key() {
    let cluster = InProcessCluster::start(&single_region(4, 2), TuningFlags::default()).await;
    let http = reqwest::Client::new();
    let ring: cartwheel::api::RingMap = cluster.get_json(0, "/v1/ring").await;
    assert_eq!(ring.partitions, 64);
    assert_eq!(ring.nodes.len(), 4);
    assert_eq!(ring.replicas.len(), 64);
    assert!(ring.replicas.iter().all(|replicas| replicas.len() == 2));
    let roots = |index: usize| {
        cluster.get_json::<std::collections::BTreeMap<u32, String>>(index, "/v1/roots")
    };
    let mut before = Vec::new();
    for index in 0..4 {
        before.push(roots(index).await);
    }
    let keys: Vec<String> = (0..6).map(|index| format!("routed-{index}")).collect();
    for key in &keys {
        let put = http
            .put(cluster.url(0, &format!("/v1/kv/{key}?w=2")))
            .body("v")
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 204);
    }
    let mut after = Vec::new();
    for index in 0..4 {
        after.push(roots(index).await);
    }
    for key in &keys {
        let holders: Vec<String> = ring
            .kv_replicas(key.as_bytes())
            .iter()
            .map(|node| node.http.clone())
            .collect();
        assert_eq!(holders.len(), 2, "{key}: {holders:?}");
        let partition = cartwheel::object::ObjectKey::kv(key.as_bytes())
            .partition(64)
            .0;
        for index in 0..4 {
            let http_addr = cluster
                .url(index, "")
                .trim_start_matches("http://")
                .to_string();
            let listed = holders.contains(&http_addr);
            assert_eq!(
                after[index].contains_key(&partition),
                listed,
                "node {index} owns partition {partition} of {key} iff the map lists it"
            );
            if listed {
                assert_ne!(
                    before[index][&partition], after[index][&partition],
                    "node {index}, listed for {key}, did not store it"
                );
            }
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn siblings_cannot_grow_an_object_past_its_byte_limit() {
    use cartwheel::limits::{SIBLINGS_BYTES_MAX, SIBLING_OVERHEAD_BYTES, VALUE_BYTES_MAX};
    let cluster = InProcessCluster::start(&single_region(1, 1), TuningFlags::default()).await;
    let http = reqwest::Client::new();
    let url = cluster.url(0, "/v1/kv/crowded");
    // Blind writes of the largest value each add a sibling; the ones that fit are taken.
    let fitting = SIBLINGS_BYTES_MAX / (VALUE_BYTES_MAX + SIBLING_OVERHEAD_BYTES);
    assert!((2..cartwheel::limits::SIBLINGS_MAX).contains(&fitting));
    for index in 0..fitting {
        let value = vec![b'a' + index as u8; VALUE_BYTES_MAX];
        let written = http.put(&url).body(value).send().await.unwrap();
        assert_eq!(written.status(), 204, "write {index}");
    }
    let refused = http
        .put(&url)
        .body(vec![b'z'; VALUE_BYTES_MAX])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(refused).await, (413, "object_too_large".into()));
    // Nothing was written: the same siblings are there, and none is the refused value.
    let read = http.get(&url).send().await.unwrap();
    let context = read.headers()["x-cartwheel-context"].clone();
    let (_, siblings) = common::siblings(read).await;
    assert_eq!(siblings.len(), fitting);
    let refused_value = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        vec![b'z'; VALUE_BYTES_MAX],
    );
    assert!(!siblings.contains(&refused_value));
    // A write that has seen them all replaces them: the key still takes writes.
    let resolved = http
        .put(&url)
        .header("x-cartwheel-context", context)
        .body(vec![b'r'; VALUE_BYTES_MAX])
        .send()
        .await
        .unwrap();
    assert_eq!(resolved.status(), 204);
    let read = http.get(&url).send().await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.bytes().await.unwrap().len(), VALUE_BYTES_MAX);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_bytes_are_counted_per_partition_as_writes_happen() {
    use cartwheel::api::PartitionCounts;
    use std::collections::BTreeMap;
    let cluster = InProcessCluster::start(&single_region(1, 1), TuningFlags::default()).await;
    let http = reqwest::Client::new();
    let put = |key: &str, bytes: usize| {
        let request = http.put(cluster.url(0, &format!("/v1/kv/{key}")));
        request.body(vec![b'v'; bytes]).send()
    };
    let counts = || cluster.get_json::<BTreeMap<u32, PartitionCounts>>(0, "/v1/partitions");
    for (index, bytes) in [100, 2_000, 30_000].into_iter().enumerate() {
        assert_eq!(
            put(&format!("counted-{index}"), bytes)
                .await
                .unwrap()
                .status(),
            204
        );
    }
    let sums = |counts: &BTreeMap<u32, PartitionCounts>| {
        let keys = counts.values().map(|counts| counts.keys).sum::<u64>();
        (
            keys,
            counts.values().map(|counts| counts.bytes).sum::<u64>(),
        )
    };
    let before = counts().await;
    let (keys, bytes) = sums(&before);
    assert_eq!(keys, 3, "{before:?}");
    // Each key's bytes hold its value and more (its key, its version vector).
    assert!(bytes > 32_100, "{bytes}");
    let status = cluster.status(0).await;
    assert_eq!((status.keys, status.stored_bytes), (keys, bytes));
    // A larger version of one key: no new key, 50,000 more bytes (and a few of its
    // version's metadata), in its partition.
    assert_eq!(put("counted-0", 50_100).await.unwrap().status(), 204);
    let after = counts().await;
    let (keys_after, bytes_after) = sums(&after);
    assert_eq!(keys_after, 3);
    assert!(
        (bytes + 49_900..bytes + 50_300).contains(&bytes_after),
        "{bytes} -> {bytes_after}"
    );
    let partition = cartwheel::object::ObjectKey::kv(b"counted-0")
        .partition(64)
        .0;
    let grew = after[&partition].bytes - before[&partition].bytes;
    assert!(grew >= 49_900, "partition {partition} grew by {grew}");
    cluster.shutdown().await;
}
