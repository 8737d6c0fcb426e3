use super::*;
use crate::api::server::EdgeCounters;

/// The owned request a whole frame carries, as a client's own decoder reads it: the
/// oracle the node's borrowed reading (`read_request`) is held to.
fn decode_request(frame: &[u8]) -> Result<PipelineRequest, FrameError> {
    Ok(rmp_serde::from_slice(frame)?)
}
use axum::routing::{get, put};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Echoes `/echo/{word}`; `/slow` answers only once `release` is notified.
fn echo_router(release: Arc<tokio::sync::Notify>) -> Router {
    Router::new()
        .route(
            "/echo/{word}",
            put(
                |axum::extract::Path(word): axum::extract::Path<String>,
                 headers: axum::http::HeaderMap,
                 body: Bytes| async move {
                    let tag = headers
                        .get("x-tag")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let mut answer = word.into_bytes();
                    answer.extend_from_slice(&body);
                    (StatusCode::CREATED, [("x-tag", tag)], answer)
                },
            ),
        )
        .route(
            "/slow",
            get(|| async move {
                release.notified().await;
                "slow"
            }),
        )
}

fn request(id: u64, method: &str, path: &str, body: &[u8]) -> PipelineRequest {
    PipelineRequest {
        id,
        method: method.into(),
        path: path.into(),
        headers: vec![("x-tag".into(), format!("t{id}"))],
        body: body.to_vec(),
    }
}

/// A connection to `serve` over an in-memory duplex, framed on the client's side.
struct Client {
    sink: FramedWrite<tokio::io::WriteHalf<tokio::io::DuplexStream>, LengthDelimitedCodec>,
    frames: FramedRead<tokio::io::ReadHalf<tokio::io::DuplexStream>, LengthDelimitedCodec>,
    stop: watch::Sender<bool>,
    served: tokio::task::JoinHandle<()>,
    release: Arc<tokio::sync::Notify>,
}

/// A connection to `serve` over an in-memory duplex, framed on the client's side.
fn connect() -> Client {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (stop, stopped) = watch::channel(false);
    let release = Arc::new(tokio::sync::Notify::new());
    let served = tokio::spawn(serve(
        echo_router(release.clone()),
        server,
        stopped,
        PipelineBounds::standalone(),
    ));
    let (read, write) = tokio::io::split(client);
    Client {
        sink: FramedWrite::new(write, codec(limits::PIPELINE_REQUEST_BYTES_MAX)),
        frames: FramedRead::new(read, codec(limits::PIPELINE_ANSWER_BYTES_MAX)),
        stop,
        served,
        release,
    }
}

async fn next_answer(
    frames: &mut FramedRead<tokio::io::ReadHalf<tokio::io::DuplexStream>, LengthDelimitedCodec>,
) -> PipelineAnswer {
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), frames.next())
        .await
        .expect("an answer within 5 s")
        .expect("the connection is open")
        .expect("a whole frame");
    rmp_serde::from_slice(&frame).expect("an answer frame")
}

#[tokio::test]
async fn answers_carry_their_ids_and_are_not_held_behind_a_slow_request() {
    let Client {
        mut sink,
        mut frames,
        release,
        stop: _stop,
        ..
    } = connect();
    sink.feed(encode(&request(1, "GET", "/slow", b"")))
        .await
        .unwrap();
    for id in 2..=11 {
        let word = format!("w{id}");
        let path = format!("/echo/{word}");
        sink.feed(encode(&request(id, "PUT", &path, b"-body")))
            .await
            .unwrap();
    }
    SinkExt::<Bytes>::flush(&mut sink).await.unwrap();
    // The ten later requests are answered while the first is still in flight.
    let mut seen = Vec::new();
    for _ in 0..10 {
        let answer = next_answer(&mut frames).await;
        assert_eq!(answer.status, 201);
        assert_eq!(answer.body, format!("w{}-body", answer.id).into_bytes());
        let tag = format!("t{}", answer.id);
        assert!(answer.headers.contains(&("x-tag".into(), tag)));
        assert!(!answer
            .headers
            .iter()
            .any(|(name, _)| name == "content-length"));
        seen.push(answer.id);
    }
    seen.sort_unstable();
    assert_eq!(seen, (2..=11).collect::<Vec<_>>());
    release.notify_one();
    let slow = next_answer(&mut frames).await;
    assert_eq!((slow.id, slow.body.as_slice()), (1, &b"slow"[..]));
}

#[tokio::test]
async fn a_bad_request_inside_a_good_frame_is_answered_and_the_connection_stays() {
    let Client {
        mut sink,
        mut frames,
        stop: _stop,
        ..
    } = connect();
    let mut bad_header = request(1, "GET", "/echo/x", b"");
    bad_header.headers.push(("bad header".into(), "v".into()));
    for (id, bad) in [
        (1, bad_header),
        (2, request(2, "G ET", "/echo/x", b"")),
        (3, request(3, "GET", "no-slash", b"")),
    ] {
        sink.send(encode(&bad)).await.unwrap();
        let answer = next_answer(&mut frames).await;
        assert_eq!((answer.id, answer.status), (id, 400), "{answer:?}");
        let body: super::super::ErrorBody = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body.code, "bad_request");
    }
    let missing = request(4, "GET", "/nowhere", b"");
    sink.send(encode(&missing)).await.unwrap();
    assert_eq!(next_answer(&mut frames).await.status, 404);
    sink.send(encode(&request(5, "PUT", "/echo/ok", b"")))
        .await
        .unwrap();
    let answer = next_answer(&mut frames).await;
    assert_eq!((answer.id, answer.status), (5, 201));
}

#[tokio::test]
async fn garbage_and_oversized_frames_are_answered_bad_frame_and_close() {
    for garbage in [
        Bytes::from_static(b"\xc1\xc1 not msgpack"),
        encode(&serde_json::json!({"id": 1})),
    ] {
        let Client {
            mut sink,
            mut frames,
            served,
            stop: _stop,
            ..
        } = connect();
        sink.send(garbage).await.unwrap();
        let answer = next_answer(&mut frames).await;
        assert_eq!((answer.id, answer.status), (0, 400));
        let body: super::super::ErrorBody = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body.code, "bad_frame");
        tokio::time::timeout(std::time::Duration::from_secs(5), served)
            .await
            .expect("the connection is closed")
            .unwrap();
    }
    // A length prefix over the limit: the node does not wait for (or buffer) it.
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (_stop, stopped) = watch::channel(false);
    let router = echo_router(Arc::new(tokio::sync::Notify::new()));
    let served = tokio::spawn(serve(router, server, stopped, PipelineBounds::standalone()));
    let (mut read, mut write) = tokio::io::split(client);
    let length = (limits::PIPELINE_REQUEST_BYTES_MAX as u32) + 1;
    write.write_all(&length.to_be_bytes()).await.unwrap();
    write.write_all(b"abc").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        read.read_to_end(&mut answer),
    )
    .await
    .expect("closed within 5 s")
    .unwrap();
    let answer: PipelineAnswer = rmp_serde::from_slice(&answer[4..]).unwrap();
    assert_eq!((answer.id, answer.status), (0, 400));
    served.await.unwrap();
}

#[tokio::test]
async fn a_stopping_node_closes_the_connection_after_answering_what_it_read() {
    let Client {
        mut sink,
        mut frames,
        stop,
        served,
        release,
    } = connect();
    sink.send(encode(&request(7, "GET", "/slow", b"")))
        .await
        .unwrap();
    // The echo answer of a later request proves the node has read both frames.
    sink.send(encode(&request(8, "PUT", "/echo/x", b"")))
        .await
        .unwrap();
    assert_eq!(next_answer(&mut frames).await.id, 8);
    stop.send(true).unwrap();
    release.notify_one();
    assert_eq!(next_answer(&mut frames).await.id, 7);
    tokio::time::timeout(std::time::Duration::from_secs(5), served)
        .await
        .expect("the connection is closed")
        .unwrap();
    assert!(frames.next().await.is_none());
}

#[test]
fn a_pipelined_request_carries_the_client_address_of_its_connection() {
    let peer: SocketAddr = "127.0.0.2:4242".parse().unwrap();
    let frame = encode(&request(1, "GET", "/echo/x", b""));
    let built = read_request(&frame, Some(peer)).unwrap().request.unwrap();
    let carried = built.extensions().get::<ConnectInfo<SocketAddr>>();
    assert_eq!(carried.map(|ConnectInfo(address)| *address), Some(peer));
}

#[tokio::test]
async fn a_request_s_path_and_body_are_slices_of_its_frame() {
    let mut sent = request(2, "PUT", "/v1/kv/k?w=2", b"a session's bytes");
    sent.headers
        .push(("x-request-id".to_string(), "abc".to_string()));
    let frame = encode(&sent);
    let built = read_request(&frame, None).unwrap().request.unwrap();
    let within = |bytes: &[u8]| frame.as_ptr_range().contains(&bytes.as_ptr());
    assert_eq!(built.uri().to_string(), "/v1/kv/k?w=2");
    assert_eq!(built.headers()["x-request-id"], "abc");
    assert!(within(built.headers()["x-request-id"].as_bytes()));
    let body = axum::body::to_bytes(built.into_body(), 1024).await.unwrap();
    assert_eq!(&body[..], b"a session's bytes");
    assert!(within(&body));
}

#[tokio::test]
async fn an_answer_frame_is_the_bytes_of_its_pipeline_answer() {
    let response = Response::builder()
        .status(StatusCode::CREATED)
        .header("content-type", "application/json")
        .header("content-length", "7")
        .header("connection", "keep-alive")
        .header("x-binary", HeaderValue::from_bytes(b"\xff").unwrap())
        .header("etag", "\"1\"")
        .body(Body::from("{\"a\":1}"))
        .unwrap();
    // What the answer was built as before it was written from the response itself.
    let headers: Vec<(String, String)> = (response.headers().iter())
        .filter(|(name, _)| *name != CONTENT_LENGTH && *name != CONNECTION)
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    assert_eq!(headers.len(), 2, "{headers:?}");
    let expected = PipelineAnswer {
        id: 7,
        status: 201,
        headers,
        body: b"{\"a\":1}".to_vec(),
    };
    assert_eq!(answer_frame(7, response).await, encode(&expected));
}

#[test]
fn frames_round_trip_and_accept_a_request_without_headers_or_body() {
    let full = request(9, "PUT", "/v1/kv/k?w=2", b"\x00\xff");
    let back: PipelineRequest = rmp_serde::from_slice(&encode(&full)).unwrap();
    assert_eq!(back, full);
    let minimal = encode(&serde_json::json!({"id": 3, "method": "GET", "path": "/v1/ring"}));
    let minimal: PipelineRequest = rmp_serde::from_slice(&minimal).unwrap();
    assert!(minimal.headers.is_empty() && minimal.body.is_empty());
}

/// Sends `answers` requests whose answers echo 256 KiB each and reads none of them;
/// returns the edge's counters once the node has cut the client off, after checking
/// that every byte the connection held came back.
async fn never_read(write_timeout: std::time::Duration, answers: u64) -> EdgeCounters {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (_stop, stopped) = watch::channel(false);
    let bounds = PipelineBounds {
        write_timeout,
        ..PipelineBounds::standalone()
    };
    let (node, stats) = (bounds.node.clone(), bounds.stats.clone());
    let router = echo_router(Arc::new(tokio::sync::Notify::new()));
    let served = tokio::spawn(serve(router, server, stopped, bounds));
    let (_read, write) = tokio::io::split(client);
    let mut sink = FramedWrite::new(write, codec(limits::PIPELINE_REQUEST_BYTES_MAX));
    let body = vec![1_u8; 256 * 1024];
    let sending = async {
        for id in 1..=answers {
            let frame = encode(&request(id, "PUT", "/echo/x", &body));
            if sink.send(frame).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), sending).await;
    tokio::time::timeout(std::time::Duration::from_secs(10), served)
        .await
        .expect("the silent client is cut off")
        .unwrap();
    // Every byte the connection held comes back once its answer tasks end.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while node.requests.available_permits() < limits::PIPELINE_NODE_REQUEST_BYTES_MAX
        || node.answers.available_permits() < limits::PIPELINE_NODE_ANSWER_BYTES_MAX
    {
        assert!(tokio::time::Instant::now() < deadline, "bytes still held");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stats.counters()
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_its_answers_freed() {
    // 25 MiB of answers, within the output budget: the write timeout cuts it off.
    let counters = never_read(std::time::Duration::from_millis(200), 100).await;
    assert_eq!(
        (counters.write_timeouts, counters.output_limit_cuts),
        (1, 0)
    );
}

#[tokio::test]
async fn answers_past_the_output_budget_cut_the_client_off_before_its_write_timeout() {
    // 50 MiB of answers against a 32 MiB budget, with a write timeout of an hour.
    let counters = never_read(std::time::Duration::from_secs(3600), 200).await;
    assert_eq!(
        (counters.output_limit_cuts, counters.write_timeouts),
        (1, 0)
    );
}

#[tokio::test]
async fn a_connection_with_nothing_in_flight_is_closed_after_the_idle_timeout() {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (_stop, stopped) = watch::channel(false);
    let bounds = PipelineBounds {
        idle_timeout: std::time::Duration::from_millis(200),
        ..PipelineBounds::standalone()
    };
    let router = echo_router(Arc::new(tokio::sync::Notify::new()));
    let served = tokio::spawn(serve(router, server, stopped, bounds));
    let (read, write) = tokio::io::split(client);
    let mut sink = FramedWrite::new(write, codec(limits::PIPELINE_REQUEST_BYTES_MAX));
    let mut frames = FramedRead::new(read, codec(limits::PIPELINE_ANSWER_BYTES_MAX));
    sink.send(encode(&request(1, "PUT", "/echo/x", b"")))
        .await
        .unwrap();
    assert_eq!(next_answer(&mut frames).await.id, 1);
    // Then silence, with half a frame sent: the node closes the connection.
    sink.get_mut().write_all(&[0, 0]).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), served)
        .await
        .expect("the idle connection is closed")
        .unwrap();
    assert!(frames.next().await.is_none());
}

proptest::proptest! {
    /// The decoder (length framing, then MessagePack) fed arbitrary bytes returns
    /// frames or typed errors, never a panic; a frame it accepts re-encodes to a
    /// frame that decodes to the same request.
    #[test]
    fn the_frame_decoder_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096),
        small in proptest::bool::ANY,
    ) {
        use tokio_util::codec::Decoder;
        let max = if small { 64 } else { limits::PIPELINE_REQUEST_BYTES_MAX };
        let mut codec = codec(max);
        let mut buffer = bytes::BytesMut::from(bytes.as_slice());
        // Each round consumes at least a four-byte prefix or ends.
        for _ in 0..=bytes.len() {
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => {
                    let frame = frame.freeze();
                    let read = read_request(&frame, None).ok().map(|framed| framed.id);
                    let decoded = decode_request(&frame);
                    // The node reads exactly the frames a client's decoder accepts.
                    let decoded_id = decoded.as_ref().ok().map(|request| request.id);
                    proptest::prop_assert_eq!(read, decoded_id);
                    if let Ok(request) = decoded {
                        let again = decode_request(&encode(&request));
                        proptest::prop_assert_eq!(again.ok(), Some(request));
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
}
