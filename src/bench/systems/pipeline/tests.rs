use super::*;
use axum::routing::get;
use std::sync::atomic::AtomicUsize;

/// A server whose `/v1/pipeline` serves `/echo` pipelined; counts the connections it
/// accepts and keeps the task of each pipeline so a test can cut it.
struct Server {
    node: SocketAddr,
    accepted: Arc<AtomicUsize>,
    pipelines: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn server() -> Server {
    let echo = axum::Router::new().route(
        "/echo",
        axum::routing::put(|body: Bytes| async move { body }),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let pipelines = Arc::new(Mutex::new(Vec::new()));
    let kept = pipelines.clone();
    let app = axum::Router::new().route(
        PIPELINE_PATH,
        get(move |mut request: axum::extract::Request| {
            let (echo, stopped, kept) = (echo.clone(), stopped.clone(), kept.clone());
            async move {
                let on_upgrade = hyper::upgrade::on(&mut request);
                let task = tokio::spawn(async move {
                    let upgraded = on_upgrade.await.expect("upgraded");
                    let bounds = crate::api::PipelineBounds::standalone();
                    crate::api::serve_pipeline(echo, TokioIo::new(upgraded), stopped, bounds).await;
                });
                kept.lock().unwrap().push(task);
                (
                    StatusCode::SWITCHING_PROTOCOLS,
                    [(CONNECTION, "upgrade"), (UPGRADE, PIPELINE_PROTOCOL)],
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let listener = axum::serve::ListenerExt::tap_io(listener, move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        node,
        accepted,
        pipelines,
        _stop: stop,
    }
}

async fn echo(pipelines: &Pipelines, node: SocketAddr, body: &str) -> Result<Answer> {
    let body = Bytes::copy_from_slice(body.as_bytes());
    pipelines.send(node, Method::PUT, "/echo", &[], body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_connection_and_a_cut_one_is_opened_again() {
    let server = server().await;
    let pipelines = Arc::new(Pipelines::new(Duration::from_secs(10)));
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..50 {
        let (pipelines, node) = (pipelines.clone(), server.node);
        tasks.spawn(async move {
            let answer = echo(&pipelines, node, &format!("body {index}")).await?;
            anyhow::ensure!(answer.status == 200, "status {}", answer.status);
            anyhow::ensure!(answer.body == format!("body {index}"), "{:?}", answer.body);
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    // The node drops the connection: the next request opens another.
    for task in server.pipelines.lock().unwrap().drain(..) {
        task.abort();
    }
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(answer) = echo(&pipelines, server.node, "again").await {
            answered = Some(answer);
            break;
        }
    }
    let answer = answered.expect("a request on a new connection is answered");
    assert_eq!(answer.body, "again");
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_node_without_the_pipeline_is_a_clear_error() {
    let app = axum::Router::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let pipelines = Pipelines::new(Duration::from_secs(10));
    let error = echo(&pipelines, node, "x")
        .await
        .err()
        .expect("no pipeline");
    assert!(
        format!("{error:#}").contains("refused the pipeline upgrade (404"),
        "{error:#}"
    );
}
