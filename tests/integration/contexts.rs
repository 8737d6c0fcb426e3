//! Forged causal contexts against real nodes: made-up actors, counters near `u64::MAX`,
//! altered, truncated, replayed on another key or signed by another cluster. Each is
//! refused with `400 bad_context`, nothing is written, and every later write of the key
//! (on any coordinator) still works.

use crate::common;

use base64::Engine;
use cartwheel::api::ContextKeys;
use cartwheel::clock::{Actor, VersionVector};
use cartwheel::config::TuningFlags;
use cartwheel::node;
use cartwheel::object::ObjectKey;
use common::{single_region, InProcessCluster};
use serde_json::Value;

/// The session secret `InProcessCluster` gives its nodes (key id 0).
fn cluster_keys() -> ContextKeys {
    ContextKeys::new(&[(0, [3; 32])]).unwrap()
}

async fn put(
    http: &reqwest::Client,
    url: String,
    context: Option<&str>,
    value: &str,
) -> (u16, String) {
    let mut request = http.put(url).body(value.to_string());
    if let Some(context) = context {
        request = request.header("x-cartwheel-context", context);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let code = match status {
        204 => String::new(),
        _ => {
            let body: Value = response.json().await.expect("errors are JSON");
            body["code"].as_str().unwrap_or_default().to_string()
        }
    };
    (status, code)
}

/// The value and context of a key with one live value.
async fn read(http: &reqwest::Client, url: String) -> (String, String) {
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let context = response.headers()["x-cartwheel-context"]
        .to_str()
        .unwrap()
        .to_string();
    (response.text().await.unwrap(), context)
}

fn forgeries(genuine: &str, genuine_for_other_key: &str) -> Vec<(&'static str, String)> {
    let key = ObjectKey::kv(b"cart");
    let real = cluster_keys().decode(&key, genuine).expect("genuine");
    let made_up_actors =
        VersionVector::from_entries((1..=63).map(|actor| (Actor(actor), 1)).collect()).unwrap();
    let huge: Vec<(Actor, u64)> = real
        .entries()
        .iter()
        .map(|(actor, _)| (*actor, u64::MAX - 1))
        .collect();
    let huge = VersionVector::from_entries(huge).unwrap();
    let other_cluster = ContextKeys::new(&[(0, [4; 32])]).unwrap();
    // The format before contexts were signed: a version byte and the bare vector.
    let mut unsigned = vec![1];
    rmp_serde::encode::write(&mut unsigned, &made_up_actors).unwrap();
    let unsigned = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(unsigned);
    let mut altered = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(genuine)
        .unwrap();
    altered[3] ^= 0x10;
    let altered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(altered);
    vec![
        ("unsigned made-up actors", unsigned),
        (
            "other cluster, made-up actors",
            other_cluster.encode(&key, &made_up_actors),
        ),
        (
            "other cluster, huge counters",
            other_cluster.encode(&key, &huge),
        ),
        ("altered", altered),
        ("truncated", genuine[..genuine.len() - 4].to_string()),
        ("other key's", genuine_for_other_key.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_contexts_are_refused_and_the_key_stays_writable() {
    let cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let http = reqwest::Client::new();
    let url = |node: usize, path: &str| cluster.url(node, path);
    assert_eq!(put(&http, url(0, "/v1/kv/cart"), None, "v1").await.0, 204);
    assert_eq!(put(&http, url(0, "/v1/kv/other"), None, "o").await.0, 204);
    let (_, genuine) = read(&http, url(0, "/v1/kv/cart")).await;
    let (_, other) = read(&http, url(0, "/v1/kv/other")).await;
    for (name, forged) in forgeries(&genuine, &other) {
        let answer = put(&http, url(1, "/v1/kv/cart"), Some(&forged), "forged").await;
        assert_eq!(answer, (400, "bad_context".to_string()), "{name}");
        let (value, context) = read(&http, url(2, "/v1/kv/cart")).await;
        assert_eq!(value, "v1", "{name} wrote");
        assert_eq!(context, genuine, "{name} changed the key's context");
    }
    // Every coordinator can still write the key, with its context and blind.
    let mut context = genuine;
    for node in 0..3 {
        let value = format!("v{}", node + 2);
        let answer = put(&http, url(node, "/v1/kv/cart"), Some(&context), &value).await;
        assert_eq!(answer.0, 204, "write through node {node}: {answer:?}");
        let (read_value, read_context) = read(&http, url(node, "/v1/kv/cart")).await;
        assert_eq!(read_value, value);
        context = read_context;
    }
    let vector = cluster_keys()
        .decode(&ObjectKey::kv(b"cart"), &context)
        .unwrap();
    assert!(vector.len() <= 3, "only real actors: {vector:?}");
    assert!(vector.entries().iter().all(|(_, counter)| *counter < 100));
    assert_eq!(
        put(&http, url(1, "/v1/kv/cart"), None, "blind").await.0,
        204
    );
    cluster.shutdown().await;
}

/// A node without session secret hands out no context and refuses any it is sent, so
/// nothing unauthenticated is ever merged into a key; blind writes still work.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_without_session_secret_hands_out_and_accepts_no_context() {
    let dir = tempfile::tempdir().unwrap();
    let running = node::start(common::lone_node_options(
        dir.path(),
        &TuningFlags::default(),
    ))
    .await
    .expect("node starts");
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/kv/cart", running.http_addr);
    assert_eq!(put(&http, url.clone(), None, "v1").await.0, 204);
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-cartwheel-context").is_none());
    let signed = cluster_keys().encode(&ObjectKey::kv(b"cart"), &VersionVector::new());
    let answer = put(&http, url.clone(), Some(&signed), "v2").await;
    assert_eq!(answer, (400, "bad_context".to_string()));
    assert_eq!(put(&http, url.clone(), None, "v2").await.0, 204);
    running.shutdown().await;
}
