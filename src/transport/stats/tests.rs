use super::*;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn snapshot_reports_each_counter_separately() {
    let counters = Counters::default();
    counters.bump(Counter::FramesRejected);
    counters.bump(Counter::FramesRejected);
    counters.bump(Counter::ConnectionsOverloaded);
    counters.bump(Counter::HandshakesRefused);
    let stats = counters.snapshot();
    assert_eq!(stats.frames_rejected, 2);
    assert_eq!(stats.connections_overloaded, 1);
    assert_eq!(stats.handshakes_refused, 1);
    assert_eq!(stats.requests_sent, 0);
    assert_eq!(stats.handshakes_retried, 0);
}

#[tokio::test]
async fn wait_until_wakes_on_a_later_bump() {
    let counters = Arc::new(Counters::default());
    let waiter = {
        let counters = counters.clone();
        tokio::spawn(async move {
            counters
                .wait_until(|stats| stats.connections_refused >= 1)
                .await
        })
    };
    tokio::task::yield_now().await;
    counters.bump(Counter::ConnectionsRefused);
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("waiter should wake")
        .unwrap();
}
