use super::*;
use crate::ids::{NodeId, Region};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A node that answers every request on a connection with `200 ok`.
async fn answering_node() -> (SocketAddr, JoinHandle<()>) {
    node_answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await
}

/// A node that answers every request on a connection with `answer`.
async fn node_answering(answer: &'static [u8]) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                let mut seen = Vec::new();
                while let Ok(read) = stream.read(&mut buffer).await {
                    if read == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buffer[..read]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (address, task)
}

/// A node that accepts connections and never answers (a paused process).
async fn silent_node() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            if held.len() < 64 {
                held.push(stream);
            }
        }
    });
    (address, task)
}

/// An address where nothing listens (a killed process): connections are refused.
fn refusing_node() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn driver_of(nodes: &[SocketAddr]) -> Driver {
    let routes = Routes::default();
    let region = Region::new("r").unwrap();
    for (index, node) in nodes.iter().enumerate() {
        routes.add(
            &region,
            NodeId::new(&format!("r-{}", index + 1)).unwrap(),
            *node,
        );
    }
    Driver::start("r", &routes, http_client().unwrap()).await
}

fn get(http: &reqwest::Client, node: SocketAddr) -> reqwest::RequestBuilder {
    http.post(format!("http://{node}/v1/session/cart"))
}

const TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn a_refused_connection_fails_over_even_for_a_write_and_the_node_is_held_down() {
    let refused = refusing_node();
    let (answering, server) = answering_node().await;
    let driver = driver_of(&[refused, answering]).await;
    // Turn 0 tries the nodes in the order the client knows them: the refusing one first.
    let sent = driver.send(None, Retry::IfNotSent, TIMEOUT, 0, get).await;
    match sent {
        Sent::Answered {
            node,
            earlier_maybe_applied,
            ..
        } => {
            assert_eq!(node, answering);
            assert!(!earlier_maybe_applied, "a refused connection sent nothing");
        }
        _ => panic!("the request did not fail over to the answering node"),
    }
    assert_eq!(driver.counts.retries.load(Ordering::Relaxed), 1);
    assert_eq!(driver.counts.failovers.load(Ordering::Relaxed), 1);
    // The refusing node is held down: the next request goes straight to the other one.
    let sent = driver.send(None, Retry::IfNotSent, TIMEOUT, 0, get).await;
    assert!(matches!(sent, Sent::Answered { node, .. } if node == answering));
    assert_eq!(driver.counts.retries.load(Ordering::Relaxed), 1);
    server.abort();
}

#[tokio::test]
async fn a_write_that_may_have_been_sent_is_not_retried_but_a_retryable_one_is() {
    let (silent, silent_task) = silent_node().await;
    let (answering, server) = answering_node().await;
    let driver = driver_of(&[silent, answering]).await;
    let sent = driver.send(None, Retry::IfNotSent, TIMEOUT, 0, get).await;
    assert!(
        matches!(sent, Sent::Failed { node, maybe_sent: true } if node == silent),
        "a timed-out session write must not be sent again"
    );
    assert_eq!(driver.counts.retries.load(Ordering::Relaxed), 0);
    let driver = driver_of(&[silent, answering]).await;
    let sent = driver.send(None, Retry::Always, TIMEOUT, 0, get).await;
    match sent {
        Sent::Answered {
            node,
            earlier_maybe_applied,
            ..
        } => {
            assert_eq!(node, answering);
            assert!(
                earlier_maybe_applied,
                "the timed-out attempt may have applied"
            );
        }
        _ => panic!("a retryable request did not fail over"),
    }
    assert_eq!(driver.counts.retries.load(Ordering::Relaxed), 1);
    silent_task.abort();
    server.abort();
}

#[tokio::test]
async fn a_region_whose_nodes_are_all_held_down_sends_nothing() {
    let driver = driver_of(&[refusing_node(), refusing_node()]).await;
    let sent = driver.send(None, Retry::Always, TIMEOUT, 0, get).await;
    assert!(matches!(
        sent,
        Sent::Failed {
            maybe_sent: false,
            ..
        }
    ));
    assert_eq!(driver.counts.exhausted.load(Ordering::Relaxed), 1);
    let sent = driver.send(None, Retry::Always, TIMEOUT, 0, get).await;
    assert!(matches!(sent, Sent::NoNode));
}

/// A node that answers every request with `503` (it cannot reach enough replicas).
async fn unavailable_node() -> (SocketAddr, JoinHandle<()>) {
    node_answering(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await
}

#[tokio::test]
async fn a_503_is_retried_once_for_a_retryable_request_and_never_for_a_session_write() {
    let (first, first_task) = unavailable_node().await;
    let (second, second_task) = unavailable_node().await;
    let (answering, server) = answering_node().await;
    let driver = driver_of(&[first, second, answering]).await;
    let sent = driver.send(None, Retry::Always, TIMEOUT, 0, get).await;
    match sent {
        Sent::Answered {
            node,
            response,
            earlier_maybe_applied,
        } => {
            assert_eq!(node, second, "one retry after a 503, not two");
            assert_eq!(response.status().as_u16(), 503);
            assert!(earlier_maybe_applied);
        }
        _ => panic!("no answer"),
    }
    assert_eq!(driver.counts.retries.load(Ordering::Relaxed), 1);
    assert_eq!(
        driver.counts.failovers.load(Ordering::Relaxed),
        0,
        "a 503 node is alive"
    );
    let sent = driver.send(None, Retry::IfNotSent, TIMEOUT, 0, get).await;
    assert!(matches!(sent, Sent::Answered { node, .. } if node == first));
    assert_eq!(driver.counts.retries.load(Ordering::Relaxed), 1);
    for task in [first_task, second_task, server] {
        task.abort();
    }
}

#[tokio::test]
async fn a_node_that_keeps_failing_is_held_down_longer_each_time_and_forgiven_when_it_answers() {
    let (answering, server) = answering_node().await;
    let driver = driver_of(&[answering]).await;
    let hold = |driver: &Driver| {
        driver
            .down_until
            .lock()
            .unwrap()
            .get(&answering)
            .map(|e| e.1)
    };
    driver.hold_down(answering);
    assert_eq!(hold(&driver), Some(Duration::from_millis(SIM_NODE_DOWN_MS)));
    driver.hold_down(answering);
    assert_eq!(
        hold(&driver),
        Some(Duration::from_millis(2 * SIM_NODE_DOWN_MS))
    );
    for _ in 0..10 {
        driver.hold_down(answering);
    }
    assert_eq!(
        hold(&driver),
        Some(Duration::from_millis(SIM_NODE_DOWN_MAX_MS))
    );
    assert!(matches!(
        driver.send(None, Retry::Always, TIMEOUT, 0, get).await,
        Sent::NoNode
    ));
    driver.answered(answering);
    assert_eq!(hold(&driver), None);
    let sent = driver.send(None, Retry::Always, TIMEOUT, 0, get).await;
    assert!(matches!(sent, Sent::Answered { node, .. } if node == answering));
    server.abort();
}

#[tokio::test]
async fn a_read_to_a_silent_node_is_answered_by_the_next_one_after_the_speculation_delay() {
    let (silent, silent_task) = silent_node().await;
    let (answering, server) = answering_node().await;
    let driver = driver_of(&[silent, answering]).await;
    let started = Instant::now();
    // A long attempt timeout: without speculation the read would wait all of it.
    let sent = driver
        .send(None, Retry::Speculate, Duration::from_secs(5), 0, get)
        .await;
    let took = started.elapsed();
    assert!(
        matches!(sent, Sent::Answered { node, .. } if node == answering),
        "the speculative copy answered"
    );
    assert!(
        took < Duration::from_secs(4),
        "answered at the speculation delay, not the attempt timeout: {took:?}"
    );
    assert!(took >= Duration::from_millis(SIM_SPECULATE_MS), "{took:?}");
    assert_eq!(driver.counts.speculations.load(Ordering::Relaxed), 1);
    assert_eq!(driver.counts.retries.load(Ordering::Relaxed), 0);
    // A fast first node answers alone: nothing is sent twice.
    let driver = driver_of(&[answering, silent]).await;
    let sent = driver
        .send(None, Retry::Speculate, Duration::from_secs(5), 0, get)
        .await;
    assert!(matches!(sent, Sent::Answered { node, .. } if node == answering));
    assert_eq!(driver.counts.speculations.load(Ordering::Relaxed), 0);
    // A request that may not be sent twice never speculates.
    let driver = driver_of(&[silent, answering]).await;
    let sent = driver
        .send(None, Retry::IfNotSent, Duration::from_millis(300), 0, get)
        .await;
    assert!(matches!(sent, Sent::Failed { node, .. } if node == silent));
    assert_eq!(driver.counts.speculations.load(Ordering::Relaxed), 0);
    silent_task.abort();
    server.abort();
}

#[tokio::test]
async fn a_504_is_retried_once_elsewhere_like_a_503() {
    let (late, late_task) =
        node_answering(b"HTTP/1.1 504 Gateway Timeout\r\ncontent-length: 0\r\n\r\n").await;
    let (answering, server) = answering_node().await;
    let driver = driver_of(&[late, answering]).await;
    let sent = driver.send(None, Retry::Always, TIMEOUT, 0, get).await;
    assert!(
        matches!(sent, Sent::Answered { node, .. } if node == answering),
        "a coordinator that timed out is no reason to give up on a retryable request"
    );
    assert_eq!(driver.counts.retries.load(Ordering::Relaxed), 1);
    // Not for a request whose copy may have applied.
    let sent = driver.send(None, Retry::IfNotSent, TIMEOUT, 0, get).await;
    assert!(matches!(sent, Sent::Answered { node, .. } if node == late));
    late_task.abort();
    server.abort();
}
