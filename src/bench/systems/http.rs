//! The bench's HTTP/1.1 client for cartwheel nodes: hyper's connection API over kept-alive
//! TCP connections, a few idle ones kept per node. It does what a session store's client
//! library does per request (pick a connection, write the request, read the whole answer)
//! and nothing else: no URL parsing, redirect or proxy logic, no per-request pool
//! bookkeeping beyond a pop and a push. Through reqwest, which does all of that, the
//! bench spent about 60 µs of CPU per kv request on the machine it shares with the nodes
//! it measures; through this, 45-47 µs (README, Performance).

use super::answer::Answer;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Connections to the nodes, reused; at most `idle_per_node` idle ones kept per node
/// (a request finding none idle opens another, so concurrency is never capped here).
/// The map has one entry per node the bench has talked to.
pub struct Connections {
    /// With `--protocol pipeline`: one pipelined connection per node instead.
    pipelines: Option<super::pipeline::Pipelines>,
    idle: Mutex<HashMap<SocketAddr, Vec<SendRequest<Full<Bytes>>>>>,
    idle_per_node: usize,
    timeout: Duration,
}

impl Connections {
    pub fn new(idle_per_node: usize, timeout: Duration) -> Connections {
        Connections {
            pipelines: None,
            idle: Mutex::new(HashMap::new()),
            idle_per_node: idle_per_node.max(1),
            timeout,
        }
    }

    /// Requests pipelined over one connection per node (`/v1/pipeline`).
    pub fn pipelined(timeout: Duration) -> Connections {
        Connections {
            pipelines: Some(super::pipeline::Pipelines::new(timeout)),
            ..Connections::new(1, timeout)
        }
    }

    /// Sends one request and reads its whole answer, within the timeout.
    pub async fn send(
        &self,
        node: SocketAddr,
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, &str)],
        body: Bytes,
    ) -> Result<Answer> {
        if let Some(pipelines) = &self.pipelines {
            return pipelines
                .send(node, method, path_and_query, headers, body)
                .await;
        }
        let mut request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, node.to_string());
        for (name, value) in headers {
            request = request.header(name, HeaderValue::from_str(value)?);
        }
        let request = request.body(Full::new(body))?;
        match tokio::time::timeout(self.timeout, self.exchange(node, request)).await {
            Ok(answer) => answer,
            Err(_) => bail!(
                "{node} did not answer within {} ms",
                self.timeout.as_millis()
            ),
        }
    }

    async fn exchange(&self, node: SocketAddr, request: Request<Full<Bytes>>) -> Result<Answer> {
        let mut sender = self.checkout(node).await?;
        let response = sender
            .send_request(request)
            .await
            .with_context(|| format!("request to {node}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .with_context(|| format!("answer from {node}"))?
            .to_bytes();
        self.checkin(node, sender);
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// An idle connection to `node` that is still open, or a new one.
    async fn checkout(&self, node: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
        loop {
            let idle = self
                .idle
                .lock()
                .expect("connections lock")
                .get_mut(&node)
                .and_then(Vec::pop);
            match idle {
                Some(mut sender) => {
                    if sender.is_closed() {
                        continue;
                    }
                    if sender.ready().await.is_ok() {
                        return Ok(sender);
                    }
                }
                None => return connect(node).await,
            }
        }
    }

    fn checkin(&self, node: SocketAddr, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().expect("connections lock");
        let senders = idle.entry(node).or_default();
        if senders.len() < self.idle_per_node {
            senders.push(sender);
        }
    }
}

async fn connect(node: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream =
        match tokio::time::timeout(super::CONNECT_TIMEOUT, tokio::net::TcpStream::connect(node))
            .await
        {
            Ok(stream) => stream.with_context(|| format!("cannot connect to {node}"))?,
            Err(_) => bail!(
                "cannot connect to {node} within {} ms",
                super::CONNECT_TIMEOUT.as_millis()
            ),
        };
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("HTTP handshake with {node}"))?;
    tokio::spawn(async move {
        // Ends when the node closes the connection or the sender is dropped.
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests;
