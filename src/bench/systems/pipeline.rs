//! The bench's pipelined client (`--protocol pipeline`): one upgraded connection per node
//! (`/v1/pipeline`, see `api::pipeline`) that carries every bench client's requests at
//! once, as the Redis client multiplexes its connection. Requests waiting together go
//! out in one write; answers are matched to requests by id.
//!
//! Bounded: at most `PIPELINE_IN_FLIGHT_MAX` requests in flight per connection (a
//! request waits for room), so the map of waiting requests is too. A connection that
//! fails fails the requests waiting on it and is opened again by the next request.

use super::answer::Answer;
use crate::api::{
    encode_pipeline_frame, pipeline_codec, PipelineAnswer, PipelineRequest, PIPELINE_PATH,
    PIPELINE_PROTOCOL,
};
use crate::limits;
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper::header::{HeaderName, HeaderValue, CONNECTION, HOST, UPGRADE};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<PipelineAnswer>>>>;

/// One pipelined connection to a node.
struct Pipeline {
    outgoing: mpsc::Sender<Bytes>,
    waiting: Waiting,
    next_id: AtomicU64,
    in_flight: Arc<Semaphore>,
    closed: Arc<AtomicBool>,
}

/// A pipelined connection per node, opened on first use and again after a failure.
pub struct Pipelines {
    nodes: tokio::sync::Mutex<HashMap<SocketAddr, Arc<Pipeline>>>,
    timeout: Duration,
}

impl Pipelines {
    pub fn new(timeout: Duration) -> Pipelines {
        Pipelines {
            nodes: tokio::sync::Mutex::new(HashMap::new()),
            timeout,
        }
    }

    /// Sends one request and waits for its answer, within the timeout.
    pub async fn send(
        &self,
        node: SocketAddr,
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, &str)],
        body: Bytes,
    ) -> Result<Answer> {
        let exchange = async {
            let pipeline = self.pipeline(node).await?;
            let request = PipelineRequest {
                id: 0,
                method: method.to_string(),
                path: path_and_query.to_string(),
                headers: headers
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_string()))
                    .collect(),
                // The bench's own buffer, not a copy (it holds the only reference).
                body: Vec::from(body),
            };
            pipeline.exchange(request).await
        };
        let answer = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(answer) => answer.with_context(|| format!("pipelined request to {node}"))?,
            Err(_) => bail!(
                "{node} did not answer within {} ms",
                self.timeout.as_millis()
            ),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in answer.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.append(name, value);
            }
        }
        Ok(Answer {
            status: answer.status,
            headers,
            body: Bytes::from(answer.body),
        })
    }

    /// The open pipeline to `node`, or a new one.
    async fn pipeline(&self, node: SocketAddr) -> Result<Arc<Pipeline>> {
        let mut nodes = self.nodes.lock().await;
        if let Some(pipeline) = nodes.get(&node) {
            if !pipeline.closed.load(Ordering::Acquire) {
                return Ok(pipeline.clone());
            }
        }
        let pipeline = Arc::new(Pipeline::open(node).await?);
        nodes.insert(node, pipeline.clone());
        Ok(pipeline)
    }
}

impl Pipeline {
    /// Connects, upgrades the connection and starts its writer and reader.
    async fn open(node: SocketAddr) -> Result<Pipeline> {
        let connecting = tokio::net::TcpStream::connect(node);
        let stream = match tokio::time::timeout(super::CONNECT_TIMEOUT, connecting).await {
            Ok(stream) => stream.with_context(|| format!("cannot connect to {node}"))?,
            Err(_) => anyhow::bail!("cannot connect to {node} in time"),
        };
        stream.set_nodelay(true)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {node}"))?;
        tokio::spawn(connection.with_upgrades());
        let request = Request::builder()
            .method(Method::GET)
            .uri(PIPELINE_PATH)
            .header(HOST, node.to_string())
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, PIPELINE_PROTOCOL)
            .body(Empty::<Bytes>::new())?;
        let response = sender
            .send_request(request)
            .await
            .with_context(|| format!("pipeline upgrade at {node}"))?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            bail!(
                "{node} refused the pipeline upgrade ({}); is it an older cartwheel?",
                response.status()
            );
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .with_context(|| format!("pipeline upgrade at {node}"))?;
        let (read, write) = tokio::io::split(TokioIo::new(upgraded));
        let (outgoing, requests) = mpsc::channel(limits::PIPELINE_IN_FLIGHT_MAX);
        let waiting = Waiting::default();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(write_requests(
            FramedWrite::new(write, pipeline_codec(limits::PIPELINE_REQUEST_BYTES_MAX)),
            requests,
            closed.clone(),
        ));
        tokio::spawn(read_answers(
            FramedRead::new(read, pipeline_codec(limits::PIPELINE_ANSWER_BYTES_MAX)),
            waiting.clone(),
            closed.clone(),
        ));
        Ok(Pipeline {
            outgoing,
            waiting,
            next_id: AtomicU64::new(1),
            in_flight: Arc::new(Semaphore::new(limits::PIPELINE_IN_FLIGHT_MAX)),
            closed,
        })
    }

    async fn exchange(&self, mut request: PipelineRequest) -> Result<PipelineAnswer> {
        let _permit = self.in_flight.acquire().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        request.id = id;
        let (answer, answered) = oneshot::channel();
        self.waiting
            .lock()
            .expect("waiting lock")
            .insert(id, answer);
        // Forgets the request however this ends (answered, failed, timed out).
        let _forget = Forget(&self.waiting, id);
        if self.closed.load(Ordering::Acquire) {
            bail!("the connection closed");
        }
        self.outgoing
            .send(encode_pipeline_frame(&request))
            .await
            .map_err(|_| anyhow!("the connection closed"))?;
        answered
            .await
            .map_err(|_| anyhow!("the connection closed before the answer"))
    }
}

/// Removes a request from the waiting map when its exchange ends.
struct Forget<'a>(&'a Waiting, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.lock().expect("waiting lock").remove(&self.1);
    }
}

/// Writes requests as they come; those waiting together go out in one write.
async fn write_requests<W: tokio::io::AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, tokio_util::codec::LengthDelimitedCodec>,
    mut requests: mpsc::Receiver<Bytes>,
    closed: Arc<AtomicBool>,
) {
    while let Some(frame) = requests.recv().await {
        let mut sent = sink.feed(frame).await.is_ok();
        while let (true, Ok(frame)) = (sent, requests.try_recv()) {
            sent = sink.feed(frame).await.is_ok();
        }
        if !sent || SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
            break;
        }
    }
    closed.store(true, Ordering::Release);
}

/// Hands each answer to the request waiting for it; on the connection's end, fails
/// every request still waiting (dropping their senders).
async fn read_answers<R: tokio::io::AsyncRead + Unpin>(
    mut frames: FramedRead<R, tokio_util::codec::LengthDelimitedCodec>,
    waiting: Waiting,
    closed: Arc<AtomicBool>,
) {
    while let Some(Ok(frame)) = frames.next().await {
        let Ok(answer) = rmp_serde::from_slice::<PipelineAnswer>(&frame) else {
            break;
        };
        // id 0: the node could not read a frame of ours and closes the connection.
        let waiter = waiting.lock().expect("waiting lock").remove(&answer.id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(answer);
        }
    }
    closed.store(true, Ordering::Release);
    waiting.lock().expect("waiting lock").clear();
}

#[cfg(test)]
mod tests;
