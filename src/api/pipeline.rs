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
//!
//! A request's path, header values and body become the HTTP request's as slices of its
//! frame, not copies; an answer's frame is written straight from the response's
//! headers and body. [`PipelineRequest`] and [`PipelineAnswer`] are the clients' owned
//! forms of the same frames.

use super::pipeline_budget::{take, try_take, Parked, PipelineBounds};
use super::ApiError;
use super::ErrorCode;
use crate::limits;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Cow;
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

/// A request frame as the node reads it: [`PipelineRequest`]'s fields borrowed from
/// the frame (a body sent as an array of numbers is copied).
#[derive(Deserialize)]
struct RequestView<'a> {
    id: u64,
    method: &'a str,
    path: &'a str,
    #[serde(default, borrow)]
    headers: Vec<(&'a str, &'a str)>,
    #[serde(default, borrow, with = "serde_bytes")]
    body: Cow<'a, [u8]>,
}

/// A frame's request id and the HTTP request it describes (or why it is a bad one).
struct Framed {
    id: u64,
    request: Result<Request, ApiError>,
}

/// Reads a whole frame into its HTTP request, whose path, header values and body are
/// slices of `frame`.
fn read_request(frame: &Bytes, peer: Option<SocketAddr>) -> Result<Framed, FrameError> {
    let view: RequestView<'_> = rmp_serde::from_slice(frame)?;
    Ok(Framed {
        id: view.id,
        request: http_request(frame, view, peer),
    })
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
    let writer = tokio::spawn(write_answers(
        FramedWrite::new(write, codec(limits::PIPELINE_ANSWER_BYTES_MAX)),
        outgoing,
        (bounds.write_timeout, bounds.stats.clone(), cut),
        overflowed.clone(),
    ));
    let (idle_timeout, peer) = (bounds.idle_timeout, bounds.peer);
    // Kept until the writer is done: the writer reads a dropped sender as a cut.
    let overflow = Arc::new(overflow);
    let connection = Connection::new(router, bounds, answers, overflow.clone());
    loop {
        let frame = tokio::select! {
            _ = stop(&mut stopped, &mut writer_gone, &mut overflowed) => break,
            // No frame for the idle timeout: closed if nothing is in flight either
            // (a half-sent frame included); otherwise looked at again after as long.
            _ = tokio::time::sleep(idle_timeout) => {
                if connection.idle() {
                    break;
                }
                continue;
            }
            frame = frames.next() => frame,
        };
        let request = match frame {
            None => break,
            Some(Ok(frame)) => {
                let frame = frame.freeze();
                read_request(&frame, peer).map(|request| (request, frame.len()))
            }
            Some(Err(error)) => Err(FrameError::Read(error)),
        };
        let (request, length) = match request {
            Ok(request) => request,
            Err(error) => {
                connection.refuse(error).await;
                break;
            }
        };
        // Back-pressure: no further frame is read until a request slot and the
        // request's bytes are free.
        let reserved = tokio::select! {
            _ = stop(&mut stopped, &mut writer_gone, &mut overflowed) => break,
            reserved = connection.reserve(length) => reserved,
        };
        let Some(reserved) = reserved else {
            break;
        };
        connection.answer(request, reserved);
    }
    drop(connection);
    let _ = writer.await;
    drop(overflow);
}

/// Completes when the connection must stop reading: the node stops, the writer ended
/// (the client is gone) or an answer found the output budget spent.
async fn stop(
    stopped: &mut watch::Receiver<bool>,
    writer_gone: &mut watch::Receiver<()>,
    overflowed: &mut watch::Receiver<bool>,
) {
    tokio::select! {
        _ = stopped.wait_for(|stop| *stop) => {}
        _ = writer_gone.changed() => {}
        _ = overflowed.wait_for(|over| *over) => {}
    }
}

/// A request's slots: its place among the connection's and the node's requests in
/// flight, and its bytes in their request budgets.
type Reserved = (
    (
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
    ),
    super::pipeline_budget::Taken,
);

/// What the reader of one pipelined connection shares with the tasks answering its
/// requests: the router, the bounds, the queue to the writer and the budgets.
struct Connection {
    router: Router,
    bounds: PipelineBounds,
    answers: mpsc::Sender<Parked>,
    in_flight: Arc<Semaphore>,
    requests: Arc<Semaphore>,
    answer_bytes: Arc<Semaphore>,
    overflow: Arc<watch::Sender<bool>>,
}

impl Connection {
    fn new(
        router: Router,
        bounds: PipelineBounds,
        answers: mpsc::Sender<Parked>,
        overflow: Arc<watch::Sender<bool>>,
    ) -> Connection {
        Connection {
            router,
            bounds,
            answers,
            in_flight: Arc::new(Semaphore::new(limits::PIPELINE_IN_FLIGHT_MAX)),
            requests: Arc::new(Semaphore::new(
                limits::PIPELINE_CONNECTION_REQUEST_BYTES_MAX,
            )),
            answer_bytes: Arc::new(Semaphore::new(limits::PIPELINE_CONNECTION_ANSWER_BYTES_MAX)),
            overflow,
        }
    }

    /// Nothing in flight.
    fn idle(&self) -> bool {
        self.in_flight.available_permits() == limits::PIPELINE_IN_FLIGHT_MAX
    }

    /// Answers a frame that is not a request with `400 bad_frame` (the reader stops
    /// after it: the stream cannot be trusted past a bad frame).
    async fn refuse(&self, error: FrameError) {
        let error = ApiError::bad_request(ErrorCode::BadFrame, error.to_string());
        let frame = answer_frame(0, error.into_response()).await;
        let most = limits::PIPELINE_CONNECTION_ANSWER_BYTES_MAX;
        let taken = take(
            &self.answer_bytes,
            &self.bounds.node.answers,
            frame.len(),
            most,
        );
        if let Some(taken) = taken.await {
            let parked = Parked {
                frame,
                _bytes: taken,
            };
            let _ = self.answers.send(parked).await;
        }
    }

    /// A request slot on the connection and on the node, and `length` bytes of both
    /// request budgets; `None` when the node's budgets are closed.
    async fn reserve(&self, length: usize) -> Option<Reserved> {
        let mine = self.in_flight.clone().acquire_owned().await.ok()?;
        let all = self
            .bounds
            .node
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .ok()?;
        let most = limits::PIPELINE_CONNECTION_REQUEST_BYTES_MAX;
        let taken = take(&self.requests, &self.bounds.node.requests, length, most).await?;
        Some(((mine, all), taken))
    }

    /// Answers `request` in a task of its own, which parks the answer for the writer
    /// or, when the answer would pass the output budget, cuts the connection off.
    fn answer(&self, request: Framed, (permit, request_bytes): Reserved) {
        let (router, answers) = (self.router.clone(), self.answers.clone());
        let answer_bytes = self.answer_bytes.clone();
        let node_answers = self.bounds.node.answers.clone();
        let (overflow, stats) = (self.overflow.clone(), self.bounds.stats.clone());
        tokio::spawn(async move {
            let frame = answer(router, request).await;
            drop(request_bytes);
            let most = limits::PIPELINE_CONNECTION_ANSWER_BYTES_MAX;
            match try_take(&answer_bytes, &node_answers, frame.len(), most) {
                // A closed writer means the client is gone; the answer has nowhere to go.
                Some(taken) => {
                    let parked = Parked {
                        frame,
                        _bytes: taken,
                    };
                    let _ = answers.send(parked).await;
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

/// One request through the router, as HTTP would have served it; its answer's frame.
async fn answer(router: Router, Framed { id, request }: Framed) -> Bytes {
    let response = match request {
        Ok(request) => match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(error) => error.into_response(),
    };
    answer_frame(id, response).await
}

/// The HTTP request a frame describes; a bad method, path or header is a 400. `view`
/// is borrowed from `frame`, whose slices the path, header values and body become.
fn http_request(
    frame: &Bytes,
    view: RequestView<'_>,
    peer: Option<SocketAddr>,
) -> Result<Request, ApiError> {
    let bad = |message: String| ApiError::bad_request(ErrorCode::BadRequest, message);
    let invalid = |error: &dyn std::fmt::Display| bad(format!("the request is invalid: {error}"));
    let method = Method::from_bytes(view.method.as_bytes())
        .map_err(|_| bad(format!("{:?} is not an HTTP method", view.method)))?;
    if !view.path.starts_with('/') {
        return Err(bad(format!(
            "the path must start with '/', got {:?}",
            view.path
        )));
    }
    let uri = Uri::from_maybe_shared(frame.slice_ref(view.path.as_bytes()))
        .map_err(|error| invalid(&error))?;
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(peer) = peer {
        builder = builder.extension(ConnectInfo(peer));
    }
    for (name, value) in view.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("{name:?} is not a header name")))?;
        let value = HeaderValue::from_maybe_shared(frame.slice_ref(value.as_bytes()))
            .map_err(|_| bad(format!("the value of {name} is not a header value")))?;
        builder = builder.header(name, value);
    }
    let body = match view.body {
        Cow::Borrowed(body) => frame.slice_ref(body),
        Cow::Owned(body) => Bytes::from(body),
    };
    builder
        .body(Body::from(body))
        .map_err(|error| invalid(&error))
}

/// An answer frame as the node writes it: [`PipelineAnswer`]'s fields borrowed from
/// the response (the same bytes on the wire).
#[derive(Serialize)]
struct AnswerView<'a> {
    id: u64,
    status: u16,
    headers: ShownHeaders<'a>,
    #[serde(with = "serde_bytes")]
    body: &'a [u8],
}

/// A response's headers as an answer shows them: as `(name, value)` pairs, but the
/// length (the frame carries it), the connection's (it is the pipeline's) and values
/// that are not text.
struct ShownHeaders<'a>(&'a HeaderMap);

impl ShownHeaders<'_> {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter(|(name, _)| *name != CONTENT_LENGTH && *name != CONNECTION)
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
    }
}

impl Serialize for ShownHeaders<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // MessagePack writes an array's length first.
        let mut pairs = serializer.serialize_seq(Some(self.pairs().count()))?;
        for pair in self.pairs() {
            pairs.serialize_element(&pair)?;
        }
        pairs.end()
    }
}

/// The frame of a response: its status, headers (but the length, which the frame
/// carries) and whole body, encoded into one buffer sized for them.
async fn answer_frame(id: u64, response: Response) -> Bytes {
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
    let view = AnswerView {
        id,
        status: parts.status.as_u16(),
        headers: ShownHeaders(&parts.headers),
        body: &body,
    };
    // The field names and numbers take well under `ANSWER_FRAME_OVERHEAD_BYTES`;
    // each header pair takes its text and a few bytes.
    let headers: usize = (view.headers.pairs())
        .map(|(name, value)| name.len() + value.len() + 8)
        .sum();
    let mut frame = Vec::with_capacity(ANSWER_FRAME_OVERHEAD_BYTES + headers + body.len());
    // Plain numbers, text and bytes into a Vec: writing them cannot fail.
    rmp_serde::encode::write_named(&mut frame, &view).expect("a pipeline answer encodes");
    Bytes::from(frame)
}

/// Bytes an answer frame takes beside its headers' text and its body: the four field
/// names, the id, status and the lengths.
const ANSWER_FRAME_OVERHEAD_BYTES: usize = 64;

#[cfg(test)]
mod tests;
