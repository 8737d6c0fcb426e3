//! Channels over real QUIC: many requests on one stream, coalesced writes, and hostile
//! records refused one by one without harming the channel.

use super::super::channel::{ANSWER_HEADER_BYTES, CHANNEL_FRAME_BYTES_MAX, ID_BYTES, MAGIC};
use super::*;

/// Opens a channel on a raw connection and checks the server's echo.
async fn raw_channel(connection: &quinn::Connection) -> (quinn::SendStream, quinn::RecvStream) {
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&MAGIC).await.unwrap();
    let mut echo = [0u8; 4];
    recv.read_exact(&mut echo).await.unwrap();
    assert_eq!(echo, MAGIC);
    (send, recv)
}

/// Node `b` of region `local` with `request_timeout`, a raw peer `raw` connected to it
/// (the connection, kept open while it is held) and a channel opened on that connection.
async fn raw_channel_to_b(
    dir: &Path,
    request_timeout: Duration,
) -> (
    TestNode,
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
) {
    let b = start_node(dir, "b", "local", WanModel::disabled(), request_timeout).await;
    let raw_tls = issue_node_certificate(dir, &node_id("raw"), &region("local")).unwrap();
    let connection = raw_connection(&raw_tls, &b).await;
    let (send, recv) = raw_channel(&connection).await;
    (b, connection, send, recv)
}

/// Sends `count` echoes from `a` to `b` all at once and checks every answer.
async fn echo_burst(a: &TestNode, b: &TestNode, count: usize) {
    let requests = (0..count).map(|index| {
        let transport = a.transport.clone();
        let to = b.node.clone();
        async move {
            transport
                .request(&to, &TestRequest::Echo(format!("{index}")))
                .await
        }
    });
    let answers = futures::future::join_all(requests).await;
    for (index, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap(), TestResponse::Echo(format!("b:{index}")));
    }
}

/// A request record: the id, then the frame (its length prefix included).
fn record(id: u64, frame: &[u8]) -> Vec<u8> {
    let mut record = id.to_be_bytes().to_vec();
    record.extend_from_slice(frame);
    record
}

/// Reads one answer record: its id, and the response or the refusal.
async fn read_answer(recv: &mut quinn::RecvStream) -> (u64, Result<TestResponse, Refusal>) {
    let mut header = [0u8; ANSWER_HEADER_BYTES];
    recv.read_exact(&mut header).await.unwrap();
    let id = u64::from_be_bytes(header[..ID_BYTES].try_into().unwrap());
    if header[ID_BYTES] != 0 {
        return (id, Err(super::super::channel::refusal_of(header[ID_BYTES])));
    }
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    recv.read_exact(&mut body).await.unwrap();
    let mut frame = prefix.to_vec();
    frame.extend_from_slice(&body);
    (id, Ok(decode_frame(&frame).unwrap()))
}

#[tokio::test]
async fn concurrent_requests_travel_on_one_channel_in_few_writes() {
    bounded(async {
        let dir = cluster_dir();
        let a = simple_node(dir.path(), "a").await;
        let b = simple_node(dir.path(), "b").await;
        introduce(&a, &b);
        // Connect and open the channel first, so the burst below finds it ready.
        a.transport
            .request(&b.node, &TestRequest::Echo("warm".into()))
            .await
            .unwrap();
        let before = a.transport.wire();
        const REQUESTS: usize = 200;
        echo_burst(&a, &b, REQUESTS).await;
        let after = a.transport.wire();
        let stats = a.transport.stats();
        assert_eq!(stats.channels_opened, 1);
        assert_eq!(stats.channels_refused, 0);
        assert_eq!(stats.connections_opened, 1);
        let calls = after.send_calls - before.send_calls;
        assert!(
            calls * 2 < REQUESTS as u64,
            "{REQUESTS} requests took {calls} send calls: they were not coalesced"
        );
        assert!(after.datagrams_sent >= after.send_calls);
    })
    .await;
}

#[tokio::test]
async fn a_bad_record_is_refused_alone_and_the_channel_goes_on() {
    bounded(async {
        let dir = cluster_dir();
        let b = simple_node(dir.path(), "b").await;
        let raw_node = node_id("raw");
        let raw_tls = issue_node_certificate(dir.path(), &raw_node, &region("local")).unwrap();
        let connection = raw_connection(&raw_tls, &b).await;
        let (mut send, mut recv) = raw_channel(&connection).await;

        let junk = [0, 0, 0, 6, WIRE_VERSION, 0xc1, 0xc1, 0xde, 0xad, 0xbe];
        send.write_all(&record(1, &junk)).await.unwrap();
        assert_eq!(
            read_answer(&mut recv).await,
            (1, Err(Refusal::FrameRejected))
        );

        let forged = who_am_i_from(&node_id("a"), "local");
        send.write_all(&record(2, &forged)).await.unwrap();
        assert_eq!(
            read_answer(&mut recv).await,
            (2, Err(Refusal::IdentityRejected))
        );

        let genuine = who_am_i_from(&raw_node, "local");
        send.write_all(&record(3, &genuine)).await.unwrap();
        assert_eq!(
            read_answer(&mut recv).await,
            (
                3,
                Ok(TestResponse::YouAre {
                    node: raw_node.clone(),
                    region: region("local"),
                })
            )
        );
        let stats = b.transport.stats();
        assert_eq!(stats.frames_rejected, 1);
        assert_eq!(stats.impersonations_rejected, 1);
        assert_eq!(stats.requests_received, 1);
    })
    .await;
}

#[tokio::test]
async fn an_oversized_record_resets_the_channel_before_its_body() {
    bounded(async {
        let dir = cluster_dir();
        // A long server timeout: only an early rejection answers within the test bound.
        let (b, _connection, mut send, mut recv) =
            raw_channel_to_b(dir.path(), Duration::from_secs(60)).await;
        let mut header = 1u64.to_be_bytes().to_vec();
        header.extend_from_slice(&((CHANNEL_FRAME_BYTES_MAX + 1) as u32).to_be_bytes());
        send.write_all(&header).await.unwrap();
        let result = recv.read_to_end(1024).await;
        assert_eq!(reset_code(result), Some(Refusal::FrameRejected));
        assert_eq!(b.transport.stats().frames_rejected, 1);
    })
    .await;
}

#[tokio::test]
async fn a_record_cut_short_resets_the_channel_after_the_timeout() {
    bounded(async {
        let dir = cluster_dir();
        let (_b, _connection, mut send, mut recv) =
            raw_channel_to_b(dir.path(), Duration::from_millis(300)).await;
        // Declares 100 bytes, sends 3, and keeps the stream open.
        let mut partial = 1u64.to_be_bytes().to_vec();
        partial.extend_from_slice(&100u32.to_be_bytes());
        partial.extend_from_slice(&[WIRE_VERSION, 0x90, 0x90]);
        send.write_all(&partial).await.unwrap();
        let result = recv.read_to_end(1024).await;
        assert_eq!(reset_code(result), Some(Refusal::FrameRejected));
    })
    .await;
}

#[tokio::test]
async fn a_connection_holds_a_bounded_number_of_channels() {
    bounded(async {
        let dir = cluster_dir();
        let (_b, connection, first_send, first_recv) =
            raw_channel_to_b(dir.path(), Duration::from_secs(5)).await;
        let mut open = vec![(first_send, first_recv)];
        for _ in 1..server::CHANNELS_PER_CONNECTION_MAX {
            open.push(raw_channel(&connection).await);
        }
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        send.write_all(&MAGIC).await.unwrap();
        let result = recv.read_to_end(1024).await;
        assert_eq!(reset_code(result), Some(Refusal::FrameRejected));
        // Closing one makes room for another.
        let (mut first_send, _first_recv) = open.remove(0);
        first_send.finish().unwrap();
        let reopened = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let (mut send, mut recv) = connection.open_bi().await.unwrap();
                send.write_all(&MAGIC).await.unwrap();
                let mut echo = [0u8; 4];
                if recv.read_exact(&mut echo).await.is_ok() && echo == MAGIC {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(
            reopened.is_ok(),
            "no channel could be opened after one closed"
        );
    })
    .await;
}

#[tokio::test]
async fn a_request_too_large_for_the_channel_takes_its_own_stream() {
    bounded(async {
        let dir = cluster_dir();
        let a = simple_node(dir.path(), "a").await;
        let b = simple_node(dir.path(), "b").await;
        introduce(&a, &b);
        let large = "x".repeat(CHANNEL_FRAME_BYTES_MAX + 1);
        let echoed = a
            .transport
            .request(&b.node, &TestRequest::Echo(large.clone()))
            .await
            .unwrap();
        assert_eq!(echoed, TestResponse::Echo(format!("b:{large}")));
        let small = a
            .transport
            .request(&b.node, &TestRequest::Echo("small".into()))
            .await
            .unwrap();
        assert_eq!(small, TestResponse::Echo("b:small".into()));
        assert_eq!(a.transport.stats().channels_opened, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_several_workers_handlers_run_apart_and_still_cancel() {
    bounded(async {
        let dir = cluster_dir();
        let a = start_node(
            dir.path(),
            "a",
            "local",
            WanModel::disabled(),
            Duration::from_millis(300),
        )
        .await;
        let b = simple_node(dir.path(), "b").await;
        introduce(&a, &b);
        echo_burst(&a, &b, 50).await;
        let error = a
            .transport
            .request(&b.node, &TestRequest::Hang)
            .await
            .unwrap_err();
        assert!(matches!(error, TransportError::Timeout { .. }), "{error}");
        // The cancel record reaches b, which aborts the handler's task.
        let cancelled = b.hangs_cancelled.acquire().await.unwrap();
        cancelled.forget();
        assert_eq!(a.transport.stats().channels_opened, 1);
    })
    .await;
}
