//! `/v1/pipeline`: the same API over one connection that carries many requests at once.
//!
//! A client upgrades an HTTP/1.1 connection (`Connection: upgrade`, `Upgrade:
//! cartwheel-pipeline/1`, answered 101) and from then on both sides send frames: a
//! four-byte big-endian length, then a MessagePack map. A request names its `id`,
//! `method`, `path` (with its query), `headers` and `body`; the node answers each with
//! the same `id`, the `status`, `headers` and `body` the HTTP API gives, in the order
//! they finish, not the order they came. Every request goes through the HTTP router
//! itself, so checks, limits, errors and codes are the HTTP API's, with no parsing of
//! HTTP, no TCP exchange and no task wake-up per request: answers ready together leave
//! in one write, and a client's requests arrive together in one read. Redis's clients
//! multiplex a connection the same way.
//!
//! Bounded: at most `PIPELINE_CONNECTIONS_MAX` such connections per node and
//! `PIPELINE_IN_FLIGHT_MAX` requests in flight on each (the node stops reading the
//! connection until one is answered). A frame that is too long or not a request is
//! answered `bad_frame` with id 0 and the node closes the connection, as it cannot tell
//! where the next frame starts or which request it was; it never panics on one.

use super::pipeline_budget::{take, try_take, Parked, PipelineBounds};
use super::ApiError;
use super::ErrorCode;
use crate::limits;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tower::ServiceExt;

/// The path a client upgrades.
pub const PIPELINE_PATH: &str = "/v1/pipeline";
/// The protocol (and its version) a client names in `Upgrade`.
pub const PIPELINE_PROTOCOL: &str = "cartwheel-pipeline/1";

/// One request frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRequest {
    /// Chosen by the client, echoed in the answer; 0 is what a `bad_frame` answer
    /// carries, so clients start at 1.
    pub id: u64,
    pub method: String,
    /// The path and query, as in an HTTP request line (`/v1/kv/k?w=2`).
    pub path: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default, with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// One answer frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineAnswer {
    pub id: u64,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// The framing of both directions: a `u32` big-endian length, at most `max_bytes`.
pub fn codec(max_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(max_bytes)
        .new_codec()
}

/// A frame's bytes (MessagePack, field names included).
pub fn encode<T: Serialize>(frame: &T) -> Bytes {
    // Both frame types are plain structs of strings, numbers and bytes: encoding them
    // cannot fail.
    Bytes::from(rmp_serde::to_vec_named(frame).expect("a pipeline frame encodes"))
}

/// Why a frame is not a request.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Too long (over `PIPELINE_REQUEST_BYTES_MAX`) or the connection failed.
    #[error("the frame could not be read: {0}")]
    Read(#[from] std::io::Error),
    #[error("the frame is not a pipeline request: {0}")]
    NotARequest(#[from] rmp_serde::decode::Error),
}

/// The request a whole frame carries.
pub fn decode_request(frame: &[u8]) -> Result<PipelineRequest, FrameError> {
    Ok(rmp_serde::from_slice(frame)?)
}

/// Serves one pipelined connection: reads request frames, answers each through `router`
/// on its own task, and writes the answers as they finish. Ends when the client closes
/// the connection, sends a bad frame, stays idle, stops reading (cut off after the
/// write timeout, its parked answers freed), or `stopped` turns true; answers in flight
/// are then still written to a client that reads.
pub(crate) async fn serve<Io>(
    router: Router,
    io: Io,
    mut stopped: watch::Receiver<bool>,
    bounds: PipelineBounds,
) where
    Io: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let mut frames = FramedRead::new(read, codec(limits::PIPELINE_REQUEST_BYTES_MAX));
    let (answers, outgoing) = mpsc::channel::<Parked>(limits::PIPELINE_IN_FLIGHT_MAX);
    // Dropped by the writer when it ends: the reader stops then too.
    let (cut, mut writer_gone) = watch::channel(());
    // Set by an answer that finds the output budget spent: reader and writer stop, and
    // everything parked is freed with them.
    let (overflow, mut overflowed) = watch::channel(false);
    let overflow = Arc::new(overflow);
    let writer = tokio::spawn(write_answers(
        FramedWrite::new(write, codec(limits::PIPELINE_ANSWER_BYTES_MAX)),
        outgoing,
        (bounds.write_timeout, bounds.stats.clone(), cut),
        overflowed.clone(),
    ));
    let in_flight = Arc::new(Semaphore::new(limits::PIPELINE_IN_FLIGHT_MAX));
    let requests = Arc::new(Semaphore::new(
        limits::PIPELINE_CONNECTION_REQUEST_BYTES_MAX,
    ));
    let answer_bytes = Arc::new(Semaphore::new(limits::PIPELINE_CONNECTION_ANSWER_BYTES_MAX));
    loop {
        let frame = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            _ = writer_gone.changed() => break,
            _ = overflowed.wait_for(|over| *over) => break,
            // No frame for the idle timeout: closed if nothing is in flight either
            // (a half-sent frame included); otherwise looked at again after as long.
            _ = tokio::time::sleep(bounds.idle_timeout) => {
                if in_flight.available_permits() == limits::PIPELINE_IN_FLIGHT_MAX {
                    break;
                }
                continue;
            }
            frame = frames.next() => frame,
        };
        let request = match frame {
            None => break,
            Some(Ok(frame)) => decode_request(&frame).map(|request| (request, frame.len())),
            Some(Err(error)) => Err(FrameError::Read(error)),
        };
        let (request, length) = match request {
            Ok(request) => request,
            Err(error) => {
                let error = ApiError::bad_request(ErrorCode::BadFrame, error.to_string());
                let frame = encode(&answer_of(0, error.into_response()).await);
                let most = limits::PIPELINE_CONNECTION_ANSWER_BYTES_MAX;
                let taken = take(&answer_bytes, &bounds.node.answers, frame.len(), most);
                if let Some(taken) = taken.await {
                    let _ = answers
                        .send(Parked {
                            frame,
                            _bytes: taken,
                        })
                        .await;
                }
                break;
            }
        };
        // Back-pressure: no further frame is read until a request slot and the
        // request's bytes are free.
        let reserved = async {
            let mine = in_flight.clone().acquire_owned().await.ok()?;
            let all = bounds.node.in_flight.clone().acquire_owned().await.ok()?;
            let most = limits::PIPELINE_CONNECTION_REQUEST_BYTES_MAX;
            let taken = take(&requests, &bounds.node.requests, length, most).await?;
            Some(((mine, all), taken))
        };
        let reserved = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            _ = writer_gone.changed() => break,
            _ = overflowed.wait_for(|over| *over) => break,
            reserved = reserved => reserved,
        };
        let Some((permit, request_bytes)) = reserved else {
            break;
        };
        let peer = bounds.peer;
        let (router, answers) = (router.clone(), answers.clone());
        let (answer_bytes, node_answers) = (answer_bytes.clone(), bounds.node.answers.clone());
        let (overflow, stats) = (overflow.clone(), bounds.stats.clone());
        tokio::spawn(async move {
            let frame = encode(&answer(router, request, peer).await);
            drop(request_bytes);
            let most = limits::PIPELINE_CONNECTION_ANSWER_BYTES_MAX;
            match try_take(&answer_bytes, &node_answers, frame.len(), most) {
                // A closed writer means the client is gone; the answer has nowhere to go.
                Some(taken) => {
                    let _ = answers
                        .send(Parked {
                            frame,
                            _bytes: taken,
                        })
                        .await;
                }
                // Over its output budget (or the node's): the client is not keeping up;
                // waiting here would hold this frame, and every later one, in memory.
                None => {
                    if !overflow.send_replace(true) {
                        stats.output_limit_cuts.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("pipelined client over its output budget: cut off");
                    }
                }
            }
            drop(permit);
        });
    }
    drop(answers);
    let _ = writer.await;
}

/// Writes answers as they come; those ready together go out in one write. A write that
/// makes no progress within the write timeout ends it: the connection is cut off and
/// the answers parked in `outgoing` are dropped with it.
async fn write_answers<W: AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, LengthDelimitedCodec>,
    mut outgoing: mpsc::Receiver<Parked>,
    (write_timeout, stats, _cut): (
        std::time::Duration,
        Arc<super::server::EdgeStats>,
        watch::Sender<()>,
    ),
    mut overflowed: watch::Receiver<bool>,
) {
    let mut written = Vec::new();
    loop {
        let parked = tokio::select! {
            parked = outgoing.recv() => parked,
            _ = overflowed.wait_for(|over| *over) => return,
        };
        let Some(parked) = parked else { return };
        let mut next = Some(parked);
        let batch = async {
            while let Some(parked) = next.take().or_else(|| outgoing.try_recv().ok()) {
                sink.feed(parked.frame.clone()).await?;
                written.push(parked);
            }
            SinkExt::<Bytes>::flush(&mut sink).await
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(write_timeout, batch) => outcome,
            _ = overflowed.wait_for(|over| *over) => return,
        };
        match outcome {
            Ok(Ok(())) => written.clear(),
            Ok(Err(_)) => return,
            Err(_) => {
                stats.write_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("pipelined client stopped reading: cut off");
                return;
            }
        }
    }
}

/// One request through the router, as HTTP would have served it.
async fn answer(
    router: Router,
    request: PipelineRequest,
    peer: Option<SocketAddr>,
) -> PipelineAnswer {
    let id = request.id;
    let response = match http_request(request, peer) {
        Ok(request) => match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(error) => error.into_response(),
    };
    answer_of(id, response).await
}

/// The HTTP request a frame describes; a bad method, path or header is a 400.
fn http_request(request: PipelineRequest, peer: Option<SocketAddr>) -> Result<Request, ApiError> {
    let bad = |message: String| ApiError::bad_request(ErrorCode::BadRequest, message);
    let method = Method::from_bytes(request.method.as_bytes())
        .map_err(|_| bad(format!("{:?} is not an HTTP method", request.method)))?;
    if !request.path.starts_with('/') {
        return Err(bad(format!(
            "the path must start with '/', got {:?}",
            request.path
        )));
    }
    let mut builder = Request::builder().method(method).uri(request.path.as_str());
    if let Some(peer) = peer {
        builder = builder.extension(ConnectInfo(peer));
    }
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("{name:?} is not a header name")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| bad(format!("the value of {name} is not a header value")))?;
        builder = builder.header(name, value);
    }
    builder
        .body(Body::from(request.body))
        .map_err(|error| bad(format!("the request is invalid: {error}")))
}

/// The frame of a response: its status, headers (but the length, which the frame
/// carries) and whole body.
async fn answer_of(id: u64, response: Response) -> PipelineAnswer {
    let (parts, body) = response.into_parts();
    // Room for the frame's other fields within the answer limit.
    let body_max = limits::PIPELINE_ANSWER_BYTES_MAX - 64 * 1024;
    let (parts, body) = match axum::body::to_bytes(body, body_max).await {
        Ok(body) => (parts, body),
        Err(_) => {
            let error = ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::AnswerTooLarge,
                "the answer is over the pipeline's frame limit; use HTTP for it",
            );
            let (parts, body) = error.into_response().into_parts();
            // An error body is a short JSON object: it fits.
            (
                parts,
                axum::body::to_bytes(body, body_max)
                    .await
                    .unwrap_or_default(),
            )
        }
    };
    let headers = parts
        .headers
        .iter()
        // The frame carries the length, and the connection is the pipeline's.
        .filter(|(name, _)| *name != CONTENT_LENGTH && *name != CONNECTION)
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    PipelineAnswer {
        id,
        status: parts.status.as_u16(),
        headers,
        body: body.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::server::EdgeCounters;
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
        let built = http_request(request(1, "GET", "/echo/x", b""), Some(peer)).unwrap();
        let carried = built.extensions().get::<ConnectInfo<SocketAddr>>();
        assert_eq!(carried.map(|ConnectInfo(address)| *address), Some(peer));
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
                        if let Ok(request) = decode_request(&frame) {
                            let again = decode_request(&encode(&request));
                            proptest::prop_assert_eq!(again.ok(), Some(request));
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
