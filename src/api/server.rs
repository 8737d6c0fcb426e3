//! The node's HTTP listener: accepts client connections, caps them per node and per
//! client address, serves each with hyper under timeouts that fire, and closes them
//! cleanly.
//!
//! It owns everything about a client connection that is not a request (the caps,
//! accept loop and lingering close are `crate::edge`'s, shared with RESP): TLS when
//! the listener has a certificate; a connection beyond a cap answered a short 503
//! `overloaded` and closed;
//! the header timeout (hyper's, with a timer installed, as a backstop, and a precise
//! one of ours: from the first byte of a head to its end), the idle timeout (no
//! request open and no byte moving) and the write timeout (a write that makes no
//! progress); the client's address in every request's extensions
//! (`ConnectInfo<SocketAddr>`); graceful shutdown when the node stops; and a lingering
//! close, so a client still sending a refused body reads its answer rather than a
//! reset. It never looks into a request: bodies, limits and routes are the router's.

use super::Api;
use crate::config::{EdgeTls, HttpSettings};
use crate::edge::{self, linger, Cap, Caps, Slot};
use crate::limits;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::either::Either;
use tower::ServiceExt;

/// A client connection's bytes: plain TCP, or TLS over TCP when the listener has a
/// certificate (`--http-tls-cert`); the watchdog, the lingering close and the pipeline
/// upgrade never care which.
type EdgeStream = Either<TcpStream, tokio_rustls::server::TlsStream<TcpStream>>;

/// What the edge counted since the node started (in `/v1/status` as `edge`).
#[derive(Debug, Default)]
pub struct EdgeStats {
    pub(super) refused_node: AtomicU64,
    pub(super) refused_address: AtomicU64,
    pub(super) header_timeouts: AtomicU64,
    pub(super) idle_closed: AtomicU64,
    pub(super) write_timeouts: AtomicU64,
    pub(super) output_limit_cuts: AtomicU64,
    pub(super) tls_failures: AtomicU64,
}

/// The edge's counters as `/v1/status` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeCounters {
    /// Connections answered 503 `overloaded`: the node had `--http-connections-max` open.
    pub connections_refused_node: u64,
    /// The same for `--http-connections-per-address-max` from one client address.
    pub connections_refused_address: u64,
    /// Connections closed because a request head took longer than the header timeout.
    pub header_timeouts: u64,
    /// Connections closed after the idle timeout.
    pub idle_closed: u64,
    /// Connections (HTTP or pipelined) cut off because the client stopped reading.
    pub write_timeouts: u64,
    /// Pipelined connections cut off at once because their unwritten answers would
    /// have passed the connection's (or the node's) output budget.
    #[serde(default)]
    pub output_limit_cuts: u64,
    /// TLS connections whose handshake failed or outlasted the header timeout.
    #[serde(default)]
    pub tls_failures: u64,
}

impl EdgeStats {
    pub fn counters(&self) -> EdgeCounters {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        EdgeCounters {
            connections_refused_node: load(&self.refused_node),
            connections_refused_address: load(&self.refused_address),
            header_timeouts: load(&self.header_timeouts),
            idle_closed: load(&self.idle_closed),
            write_timeouts: load(&self.write_timeouts),
            output_limit_cuts: load(&self.output_limit_cuts),
            tls_failures: load(&self.tls_failures),
        }
    }
}

/// Accepts and serves client connections until `stopped` turns true, then lets open
/// connections finish their requests (graceful shutdown) and returns.
pub async fn serve(listener: TcpListener, api: Api, stopped: watch::Receiver<bool>) {
    let edge = Edge {
        settings: api.edge.http.clone(),
        stats: api.edge.stats.clone(),
        tls: api.edge.tls.clone(),
    };
    serve_router(listener, super::router(api), edge, stopped).await;
}

/// What every connection of the listener shares.
#[derive(Clone)]
struct Edge {
    settings: HttpSettings,
    stats: Arc<EdgeStats>,
    tls: Option<EdgeTls>,
}

/// [`serve`] for any router.
async fn serve_router(
    listener: TcpListener,
    router: Router,
    edge: Edge,
    stopped: watch::Receiver<bool>,
) {
    let caps = Caps::new(
        edge.settings.connections_max,
        edge.settings.connections_per_address_max,
    );
    let admitted = |stream, peer, slot| {
        let connection = Connection {
            router: router.clone(),
            settings: edge.settings.clone(),
            stats: edge.stats.clone(),
            peer,
        };
        let (tls, stopped) = (edge.tls.clone(), stopped.clone());
        async move {
            if let Some(stream) = connection.secure(stream, tls.as_ref()).await {
                connection.serve(stream, slot, stopped).await;
            }
        }
    };
    let refused = |stream, cap| {
        let counter = match cap {
            Cap::Node => &edge.stats.refused_node,
            Cap::Address => &edge.stats.refused_address,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let tls = edge.tls.clone();
        async move { refuse(stream, tls.as_ref(), cap).await }
    };
    let refusals = limits::HTTP_REFUSALS_IN_FLIGHT_MAX;
    edge::accept_loop(listener, caps, refusals, stopped.clone(), admitted, refused).await;
}

/// Answers a connection over a cap with 503 `overloaded` and closes it (over TLS when the
/// listener has it: the handshake, like the answer, within the linger bound).
async fn refuse(stream: TcpStream, tls: Option<&EdgeTls>, cap: Cap) {
    let bound = Duration::from_millis(limits::HTTP_LINGER_MS);
    let mut stream = match tls {
        None => Either::Left(stream),
        Some(tls) => match tokio::time::timeout(bound, tls.acceptor().accept(stream)).await {
            Ok(Ok(stream)) => Either::Right(stream),
            _ => return,
        },
    };
    let message = match cap {
        Cap::Node => "too many open connections on this node; retry later",
        Cap::Address => "too many open connections from your address; reuse connections",
    };
    let body =
        serde_json::json!({"code": super::ErrorCode::Overloaded, "message": message}).to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = Duration::from_millis(limits::HTTP_LINGER_MS);
    if let Ok(Ok(())) = tokio::time::timeout(write, stream.write_all(answer.as_bytes())).await {
        linger(stream).await;
    }
}

/// What serving one connection needs.
struct Connection {
    router: Router,
    settings: HttpSettings,
    stats: Arc<EdgeStats>,
    peer: SocketAddr,
}

impl Connection {
    /// The connection's stream once its TLS handshake (if the listener has TLS) ended
    /// within the header timeout; `None` (counted) when it failed or took longer.
    async fn secure(&self, stream: TcpStream, tls: Option<&EdgeTls>) -> Option<EdgeStream> {
        let Some(tls) = tls else {
            return Some(Either::Left(stream));
        };
        let handshake = tls.acceptor().accept(stream);
        match tokio::time::timeout(self.settings.header_timeout, handshake).await {
            Ok(Ok(stream)) => Some(Either::Right(stream)),
            Ok(Err(error)) => {
                tracing::debug!(%error, peer = %self.peer, "TLS handshake failed");
                self.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(_) => {
                self.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    async fn serve(self, stream: EdgeStream, slot: Slot, mut stopped: watch::Receiver<bool>) {
        let activity = Arc::new(Activity::new());
        let (returned, mut back) = oneshot::channel();
        let io = WatchedIo {
            stream: Some(stream),
            activity: activity.clone(),
            returned: Some(returned),
            _slot: slot,
        };
        let (router, peer, opened) = (self.router.clone(), self.peer, activity.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let open = RequestOpen::new(opened.clone());
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await;
                drop(open);
                response
            }
        });
        // hyper's header timer starts when it waits for a head, so it also covers the
        // idle wait before one: set to both, it is only a backstop for ours.
        let backstop = self.settings.header_timeout + self.settings.idle_timeout;
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(backstop)
            .keep_alive(true);
        {
            let connection = builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(connection);
            let mut stopping = false;
            loop {
                let deadline = activity.deadline(&self.settings);
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(%error, peer = %self.peer, "HTTP connection ended");
                        }
                        break;
                    }
                    _ = stopped.wait_for(|stop| *stop), if !stopping => {
                        connection.as_mut().graceful_shutdown();
                        stopping = true;
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        if let Some(expiry) = activity.expired(&self.settings, Instant::now()) {
                            self.count(expiry);
                            break;
                        }
                    }
                }
            }
        }
        // Back unless the connection was upgraded (the pipeline holds it then).
        if let Ok(stream) = back.try_recv() {
            linger(stream).await;
        }
    }

    fn count(&self, expiry: Expiry) {
        let counter = match expiry {
            Expiry::Header => &self.stats.header_timeouts,
            Expiry::Idle => &self.stats.idle_closed,
            Expiry::Write => &self.stats.write_timeouts,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(?expiry, peer = %self.peer, "HTTP connection timed out");
    }
}

/// Which timeout closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Header,
    Idle,
    Write,
}

/// What a connection's watchdog needs to know: instants as ms since the connection
/// opened, 0 for "not now".
struct Activity {
    opened: Instant,
    /// Requests whose handler is running.
    open: AtomicU64,
    /// The last byte read or written, or the last handler ending.
    last_ms: AtomicU64,
    /// The first byte of a head not yet complete.
    head_ms: AtomicU64,
    /// A write that has not made progress since.
    blocked_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            open: AtomicU64::new(0),
            last_ms: AtomicU64::new(1),
            head_ms: AtomicU64::new(0),
            blocked_ms: AtomicU64::new(0),
        }
    }

    /// Milliseconds since the connection opened, never 0 (0 means "not now").
    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    fn read(&self) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        if self.open.load(Ordering::Relaxed) == 0 {
            let _ = self
                .head_ms
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
        self.blocked_ms.store(0, Ordering::Relaxed);
    }

    fn write_blocked(&self) {
        let now = self.now_ms();
        let _ = self
            .blocked_ms
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Which timeout has run out at `now`, if any.
    fn expired(&self, settings: &HttpSettings, now: Instant) -> Option<Expiry> {
        let passed = |ms: u64, limit: Duration| ms != 0 && now >= self.at(ms) + limit;
        if passed(
            self.blocked_ms.load(Ordering::Relaxed),
            settings.write_timeout,
        ) {
            return Some(Expiry::Write);
        }
        if self.open.load(Ordering::Relaxed) > 0 {
            // The request deadline bounds a running handler.
            return None;
        }
        if passed(
            self.head_ms.load(Ordering::Relaxed),
            settings.header_timeout,
        ) {
            return Some(Expiry::Header);
        }
        if passed(self.last_ms.load(Ordering::Relaxed), settings.idle_timeout) {
            return Some(Expiry::Idle);
        }
        None
    }

    /// When to look again: the earliest instant a timeout could run out.
    fn deadline(&self, settings: &HttpSettings) -> Instant {
        let mut deadline = self.at(self.last_ms.load(Ordering::Relaxed)) + settings.idle_timeout;
        for (ms, limit) in [
            (
                self.head_ms.load(Ordering::Relaxed),
                settings.header_timeout,
            ),
            (
                self.blocked_ms.load(Ordering::Relaxed),
                settings.write_timeout,
            ),
        ] {
            if ms != 0 {
                deadline = deadline.min(self.at(ms) + limit);
            }
        }
        // A later byte may have moved a deadline on: look again at least this often.
        deadline.min(Instant::now() + settings.header_timeout.min(settings.write_timeout))
    }
}

/// A request whose handler runs; its end counts as activity.
struct RequestOpen(Arc<Activity>);

impl RequestOpen {
    fn new(activity: Arc<Activity>) -> Self {
        activity.open.fetch_add(1, Ordering::Relaxed);
        activity.head_ms.store(0, Ordering::Relaxed);
        RequestOpen(activity)
    }
}

impl Drop for RequestOpen {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.last_ms.store(self.0.now_ms(), Ordering::Relaxed);
    }
}

/// The client's socket as hyper sees it: every read and write is noted for the
/// watchdog; when hyper is done with it the socket comes back (for a lingering close)
/// with the connection's slot, which is given back only when the socket closes.
struct WatchedIo {
    stream: Option<EdgeStream>,
    activity: Arc<Activity>,
    returned: Option<oneshot::Sender<EdgeStream>>,
    _slot: Slot,
}

impl WatchedIo {
    fn stream(&mut self) -> std::io::Result<Pin<&mut EdgeStream>> {
        match self.stream.as_mut() {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// Notes what a write did (bytes out, or blocked on the client) and hands it on.
    fn noted_write(&self, result: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        match &result {
            Poll::Ready(Ok(written)) if *written > 0 => self.activity.wrote(),
            Poll::Pending => self.activity.write_blocked(),
            _ => {}
        }
        result
    }
}

impl Drop for WatchedIo {
    fn drop(&mut self) {
        if let (Some(stream), Some(returned)) = (self.stream.take(), self.returned.take()) {
            // Nobody waits once the connection was upgraded: the socket just closes.
            let _ = returned.send(stream);
        }
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = match self.stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(error) => return Poll::Ready(Err(error)),
        };
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        result
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = match self.stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(error) => return Poll::Ready(Err(error)),
        };
        self.noted_write(result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = match self.stream() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(error) => return Poll::Ready(Err(error)),
        };
        self.noted_write(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|stream| stream.is_write_vectored())
    }
}

#[cfg(test)]
mod tests;
