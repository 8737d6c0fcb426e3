use super::*;
use axum::routing::get;
use hyper::HeaderMap;

#[tokio::test]
async fn connections_are_reused_and_answers_read_whole() {
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/echo",
        get(|headers: HeaderMap| async move {
            let value = headers
                .get("x-test")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            ([("x-answer", value)], "a".repeat(5000))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = listener.local_addr().unwrap();
    let counted = opened.clone();
    let server =
        tokio::spawn(async move { axum::serve(CountingListener(listener, counted), app).await });
    let connections = Connections::new(4, Duration::from_secs(5));
    for round in 0..5 {
        let value = format!("v{round}");
        let answer = connections
            .send(
                node,
                Method::GET,
                "/echo",
                &[(HeaderName::from_static("x-test"), &value)],
                Bytes::new(),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-answer"), Some(value.as_str()));
        assert_eq!(answer.body.len(), 5000);
    }
    assert_eq!(opened.load(std::sync::atomic::Ordering::SeqCst), 1);
    let missing = connections
        .send(node, Method::GET, "/nothing", &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    server.abort();
}

#[tokio::test]
async fn a_node_that_does_not_listen_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let node = listener.local_addr().unwrap();
    drop(listener);
    let connections = Connections::new(1, Duration::from_secs(5));
    let error = connections
        .send(node, Method::GET, "/", &[], Bytes::new())
        .await
        .err()
        .expect("nothing listens");
    assert!(error.to_string().contains("cannot connect"), "{error}");
}

/// A listener that counts the connections it accepts.
struct CountingListener(
    tokio::net::TcpListener,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
);

impl axum::serve::Listener for CountingListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok(accepted) = self.0.accept().await {
                self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                return accepted;
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}
