use super::*;
use tokio::io::AsyncReadExt as _;

fn settings() -> HttpSettings {
    HttpSettings {
        header_timeout: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(1000),
        write_timeout: Duration::from_millis(300),
        connections_per_address_max: 2,
        connections_max: 3,
        ..HttpSettings::default()
    }
}

#[tokio::test]
async fn every_request_carries_the_client_address_and_the_server_stops_on_its_signal() {
    let router = Router::new().route(
        "/peer",
        axum::routing::get(
            |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() },
        ),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let edge = Edge {
        settings: settings(),
        stats: Arc::new(EdgeStats::default()),
        tls: None,
    };
    let served = tokio::spawn(serve_router(listener, router, edge, stopped));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stream = socket.connect(node).await.unwrap();
    let local = stream.local_addr().unwrap();
    let request = "GET /peer HTTP/1.1\r\nhost: node\r\nconnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let read = stream.read_to_string(&mut answer);
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("an answer within 5 s")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(&local.to_string()), "{answer}");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("the server stops")
        .unwrap();
}

#[test]
fn the_watchdog_tells_header_idle_and_write_timeouts_apart() {
    let settings = settings();
    let activity = Activity::new();
    let later = |ms: u64| activity.opened + Duration::from_millis(ms);
    assert_eq!(activity.expired(&settings, later(500)), None);
    assert_eq!(activity.expired(&settings, later(1200)), Some(Expiry::Idle));
    // A head begun and not finished: the header timeout, however busy the client.
    activity.head_ms.store(50, Ordering::Relaxed);
    activity.last_ms.store(140, Ordering::Relaxed);
    assert_eq!(
        activity.expired(&settings, later(160)),
        Some(Expiry::Header)
    );
    // A request in its handler: neither the header nor the idle timeout applies.
    let open = RequestOpen::new(Arc::new(Activity::new()));
    assert_eq!(open.0.expired(&settings, later(5000)), None);
    open.0.write_blocked();
    let stuck = open.0.at(open.0.blocked_ms.load(Ordering::Relaxed)) + settings.write_timeout;
    assert_eq!(open.0.expired(&settings, stuck), Some(Expiry::Write));
}
