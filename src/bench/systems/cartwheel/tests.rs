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
        failovers: Arc::default(),
        operations: AtomicU64::new(0),
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
        .map(|_| target.kv_node(&on_first[0])[0].to_string())
        .collect();
    assert!(first.iter().all(|node| node != "127.0.0.1:3"), "{first:?}");
    assert!(first.contains(&"127.0.0.1:1".to_string()), "{first:?}");
    assert!(first.contains(&"127.0.0.1:2".to_string()), "{first:?}");
    map.nodes[1].state = "dead".into();
    set(&map);
    for _ in 0..4 {
        assert_eq!(target.kv_node(&on_second[0])[0].to_string(), "127.0.0.1:3");
    }
    // A map the client cannot use (no partitions) falls back to spreading.
    map.partitions = 0;
    set(&map);
    let spread: std::collections::BTreeSet<SocketAddr> =
        (0..3).map(|_| target.kv_node(&on_second[0])[0]).collect();
    assert_eq!(spread.len(), 3, "{spread:?}");
}

#[test]
fn spread_requests_rotate_over_nodes_and_paths_carry_only_their_level() {
    let target = target(&["127.0.0.1:1", "127.0.0.1:2"]);
    let turns: Vec<String> = (0..4).map(|_| target.kv_node("k")[0].to_string()).collect();
    assert_eq!(
        turns,
        ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"]
    );
    assert_eq!(target.node()[0].to_string(), "127.0.0.1:1");
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

#[tokio::test]
async fn a_request_fails_over_to_the_next_node_when_its_node_is_down_or_refuses() {
    // A node that is down (its port closed), one that answers 503, one that answers.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    let serve = |status: u16| async move {
        let app = axum::Router::new().route(
            "/v1/kv/{key}",
            axum::routing::get(
                move || async move { axum::http::StatusCode::from_u16(status).unwrap() },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node = listener.local_addr().unwrap();
        (
            node,
            tokio::spawn(async move { axum::serve(listener, app).await }),
        )
    };
    let (busy, busy_server) = serve(503).await;
    let (live, live_server) = serve(404).await;
    let nodes = [down.to_string(), busy.to_string(), live.to_string()];
    let target = target(&nodes.iter().map(String::as_str).collect::<Vec<_>>());
    // Spread routing: the first request starts at the down node, goes on to the busy
    // one and is answered by the live one.
    target.get("k").await.expect("answered by the live node");
    assert_eq!(target.failovers().load(Ordering::Relaxed), 1);
    // With every node down or refusing, the request fails with the last answer.
    live_server.abort();
    let _ = live_server.await;
    let lone = self::target(&[down.to_string().as_str(), busy.to_string().as_str()]);
    let error = lone.get("k").await.unwrap_err().to_string();
    assert!(error.contains("503"), "{error}");
    busy_server.abort();
}
