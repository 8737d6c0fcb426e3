use super::*;
use crate::api::RingMap;

fn target(nodes: &[&str]) -> CartwheelTarget {
    CartwheelTarget {
        http: Connections::new(1, REQUEST_TIMEOUT),
        nodes: nodes.iter().map(|node| node.parse().unwrap()).collect(),
        next: AtomicUsize::new(0),
        ring: SharedRing::default(),
        refresher: None,
        levels: Levels::default(),
        contexts: Mutex::new(HashMap::new()),
    }
}

#[test]
fn token_aware_kv_requests_go_to_the_keys_live_replicas_in_turn() {
    use crate::api::RingNode;
    let target = target(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
    let set = |map: &RingMap| *target.ring.write().unwrap() = Some(Arc::new(map.clone()));
    let node = |port: u16, state: &str| RingNode {
        node: format!("n{port}"),
        region: "r".into(),
        http: format!("127.0.0.1:{port}"),
        state: state.into(),
    };
    // Partition 0 on nodes 1 and 2, partition 1 on node 3 and (dead) node 2.
    let mut map = RingMap {
        epoch: 1,
        change_pending: false,
        partitions: 2,
        region: "r".into(),
        nodes: vec![node(1, "alive"), node(2, "alive"), node(3, "alive")],
        replicas: vec![vec![0, 1], vec![2, 1]],
    };
    set(&map);
    let (on_first, on_second): (Vec<String>, Vec<String>) = (0..40)
        .map(|index| format!("key-{index}"))
        .partition(|key| crate::object::ObjectKey::kv(key.as_bytes()).partition(2).0 == 0);
    assert!(!on_first.is_empty() && !on_second.is_empty());
    let first: Vec<String> = (0..4)
        .map(|_| target.kv_node(&on_first[0]).to_string())
        .collect();
    assert!(first.iter().all(|node| node != "127.0.0.1:3"), "{first:?}");
    assert!(first.contains(&"127.0.0.1:1".to_string()), "{first:?}");
    assert!(first.contains(&"127.0.0.1:2".to_string()), "{first:?}");
    map.nodes[1].state = "dead".into();
    set(&map);
    for _ in 0..4 {
        assert_eq!(target.kv_node(&on_second[0]).to_string(), "127.0.0.1:3");
    }
    // A map the client cannot use (no partitions) falls back to spreading.
    map.partitions = 0;
    set(&map);
    let spread: std::collections::BTreeSet<SocketAddr> =
        (0..3).map(|_| target.kv_node(&on_second[0])).collect();
    assert_eq!(spread.len(), 3, "{spread:?}");
}

#[test]
fn spread_requests_rotate_over_nodes_and_paths_carry_only_their_level() {
    let target = target(&["127.0.0.1:1", "127.0.0.1:2"]);
    let turns: Vec<String> = (0..4).map(|_| target.kv_node("k").to_string()).collect();
    assert_eq!(
        turns,
        ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"]
    );
    assert_eq!(target.node().to_string(), "127.0.0.1:1");
    assert_eq!(CartwheelTarget::kv_path("k", "r", Some(2)), "/v1/kv/k?r=2");
    assert_eq!(CartwheelTarget::kv_path("k", "w", Some(2)), "/v1/kv/k?w=2");
    assert_eq!(CartwheelTarget::kv_path("k", "r", None), "/v1/kv/k");
}

#[tokio::test]
async fn the_ring_map_is_fetched_again_and_replaces_the_one_in_use() {
    let served = Arc::new(Mutex::new(RingMap {
        epoch: 1,
        change_pending: false,
        partitions: 1,
        region: "r".into(),
        nodes: Vec::new(),
        replicas: vec![Vec::new()],
    }));
    let state = served.clone();
    let app = axum::Router::new().route(
        "/v1/ring",
        axum::routing::get(move || {
            let map = state.lock().unwrap().clone();
            async move { axum::Json(map) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let ring = SharedRing::default();
    let refresher = spawn_refresher(
        ring.clone(),
        reqwest::Client::new(),
        vec![node],
        Duration::from_millis(10),
    );
    let epoch = |ring: &SharedRing| ring.read().unwrap().as_ref().map(|map| map.epoch);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while epoch(&ring) != Some(1) {
        assert!(tokio::time::Instant::now() < deadline, "never fetched");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    served.lock().unwrap().epoch = 2;
    while epoch(&ring) != Some(2) {
        assert!(tokio::time::Instant::now() < deadline, "never refetched");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A node that stops answering leaves the last map in use.
    server.abort();
    let _ = server.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(epoch(&ring), Some(2));
    refresher.abort();
}
