//! The session service's near-cache (`--near-cache-bytes`) on real nodes: a hot
//! session is served from a node's memory, a change made through a node of another
//! region reaches it through the change feeds and ends what it kept, and a change made
//! through the node itself is read back at once.

use crate::common;

use cartwheel::config::{SessionFlags, TuningFlags};
use common::sessions::Client;
use common::InProcessCluster;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The value of counter `name` in node `index`'s `/metrics`.
async fn counter(cluster: &InProcessCluster, index: usize, name: &str) -> u64 {
    let text = reqwest::get(cluster.url(index, "/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let line = format!("{name}_total ");
    text.lines()
        .find_map(|row| row.strip_prefix(&line))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .trim()
        .parse()
        .expect("a count")
}

fn skus(body: &Value) -> Vec<String> {
    body["cart"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|line| line["sku"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads `session` at `client` until its cart holds `sku`, at most `limit`.
async fn wait_for_sku(client: &Client, session: &common::sessions::Session, sku: &str) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        let (status, body) = client.get(session).await;
        assert_eq!(status, 200, "{body}");
        if skus(&body).iter().any(|held| held == sku) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_session_is_served_from_memory_until_a_change_anywhere_ends_it() {
    let flags = TuningFlags {
        session: SessionFlags {
            near_cache_bytes: Some(1 << 20),
            ..SessionFlags::default()
        },
        ..TuningFlags::default()
    };
    let cluster = InProcessCluster::start(common::TWO_REGIONS_OF_TWO, flags).await;
    let mut ids = Vec::new();
    for index in 0..4 {
        ids.push(cluster.status(index).await.region);
    }
    let east: Vec<usize> = (0..4).filter(|index| ids[*index] == "east").collect();
    let west: Vec<usize> = (0..4).filter(|index| ids[*index] != "east").collect();
    let (reader, writer, other_west) = (
        Client::new(&cluster, east[1]),
        Client::new(&cluster, east[0]),
        Client::new(&cluster, west[0]),
    );
    let session = writer.login("ann", "phone").await;
    assert_eq!(writer.cart(&session, "add", "first", 1).await.0, 200);

    // Read until the cart is seen, then read again: the second is a hit.
    assert!(wait_for_sku(&reader, &session, "first").await);
    let hits = counter(&cluster, east[1], "cartwheel_session_near_cache_hits").await;
    for _ in 0..5 {
        let (status, body) = reader.get(&session).await;
        assert_eq!((status, skus(&body)), (200, vec!["first".to_string()]));
    }
    let after = counter(&cluster, east[1], "cartwheel_session_near_cache_hits").await;
    assert!(
        after >= hits + 5,
        "hot reads come from memory: {hits} -> {after}"
    );

    // A change through the other region ends what the reader kept.
    let invalidated = counter(
        &cluster,
        east[1],
        "cartwheel_session_near_cache_invalidations",
    )
    .await;
    assert_eq!(
        other_west.cart(&session, "add", "from-west", 1).await.0,
        200
    );
    assert!(
        wait_for_sku(&reader, &session, "from-west").await,
        "the change reached the reader's cache through the feeds"
    );
    let later = counter(
        &cluster,
        east[1],
        "cartwheel_session_near_cache_invalidations",
    )
    .await;
    assert!(
        later > invalidated,
        "invalidated, not expired: {invalidated} -> {later}"
    );

    // A change through the reader itself is read back at once.
    assert_eq!(reader.cart(&session, "add", "local", 1).await.0, 200);
    let (_, body) = reader.get(&session).await;
    assert!(skus(&body).contains(&"local".to_string()), "{body}");
}
