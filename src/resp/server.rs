//! The node's RESP listener: accepts client connections under a cap, and serves each
//! one's pipelined requests (answered in order) under a byte budget and timeouts that
//! fire.
//!
//! It owns everything about a RESP connection that is not a command (the caps, accept
//! loop and lingering close are `crate::edge`'s, shared with HTTP): a connection beyond
//! the node's cap is answered `-ERR max number of clients reached` and closed, as Redis
//! does, one beyond its address's cap `-ERR max number of clients from your address
//! reached`; the idle timeout (no request open, no byte moving), the
//! request timeout (a request begun and not finished, as the HTTP edge's header
//! timeout) and the write timeout; the input budget (unanswered request bytes,
//! `RESP_BUFFERED_BYTES_MAX`); pipelining (every complete request in the buffer is
//! answered in order, and the answers go out in one write, at most
//! `RESP_OUTPUT_BYTES_MAX` held; consecutive data commands on distinct keys run at
//! once, at most `RESP_PIPELINE_WAVE_MAX` of them, as a Redis Cluster client's
//! pipeline runs on several shards at once, while requests on one key keep their
//! order); a protocol error answered `-ERR Protocol error: ...` before the connection
//! closes; and closing every connection when the node stops. It
//! never decides a command ([`super::commands`] does).

use super::codec::{Args, Decoder, ProtocolError};
use super::commands::{After, Commands};
use super::connection::ConnectionState;
use super::pushes::{Notifications, Pushes};
use super::reply::Reply;
use crate::config::RespSettings;
use crate::edge::{self, linger, Cap, Caps, Slot};
use crate::limits;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// What the RESP edge counted since the node started.
#[derive(Debug, Default)]
pub struct RespStats {
    refused: AtomicU64,
    refused_address: AtomicU64,
    idle_closed: AtomicU64,
    request_timeouts: AtomicU64,
    write_timeouts: AtomicU64,
    protocol_errors: AtomicU64,
    commands: AtomicU64,
    tls_failures: AtomicU64,
    next_id: AtomicU64,
}

/// [`RespStats`] as a status shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RespCounters {
    /// Connections refused: the node had `--resp-connections-max` open.
    pub connections_refused: u64,
    /// The same for `--resp-connections-per-address-max` from one client address.
    #[serde(default)]
    pub connections_refused_address: u64,
    pub idle_closed: u64,
    pub request_timeouts: u64,
    pub write_timeouts: u64,
    /// Connections closed after a malformed request or one over the input budget.
    pub protocol_errors: u64,
    pub commands: u64,
    /// TLS handshakes that failed (a plain client on a TLS port, an untrusted cert).
    pub tls_failures: u64,
}

impl RespStats {
    pub fn counters(&self) -> RespCounters {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RespCounters {
            connections_refused: load(&self.refused),
            connections_refused_address: load(&self.refused_address),
            idle_closed: load(&self.idle_closed),
            request_timeouts: load(&self.request_timeouts),
            write_timeouts: load(&self.write_timeouts),
            protocol_errors: load(&self.protocol_errors),
            commands: load(&self.commands),
            tls_failures: load(&self.tls_failures),
        }
    }
}

/// Everything the listener needs: settings, the command table, the counters.
pub struct RespEdge {
    pub settings: RespSettings,
    pub commands: Commands,
    pub stats: Arc<RespStats>,
    /// TLS on every connection (`rediss://`), when the operator gave a certificate.
    pub tls: Option<crate::config::EdgeTls>,
    /// Permits for pipelined requests running beside their connection's first
    /// (`RESP_PIPELINED_IN_FLIGHT_MAX`).
    pub pipelined: Arc<Semaphore>,
    /// The region's changes, for client tracking and keyspace notifications (`None`:
    /// a listener without a store behind it, in tests).
    pub hub: Option<crate::runtime::hub::Hub>,
    /// The node's `notify-keyspace-events` and the connections' redirect inboxes.
    pub notifications: Arc<Notifications>,
}

/// Accepts and serves connections until `stopped` turns true; then every connection
/// closes after the request it is answering, and this returns.
pub async fn serve(listener: TcpListener, edge: Arc<RespEdge>, stopped: watch::Receiver<bool>) {
    let caps = Caps::new(
        edge.settings.connections_max,
        edge.settings.connections_per_address_max,
    );
    let admitted = |stream, peer, slot| {
        let id = edge.stats.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        open(edge.clone(), stream, peer, id, slot, stopped.clone())
    };
    let refused = |stream, cap| {
        let (counter, message) = match cap {
            Cap::Node => (&edge.stats.refused, "max number of clients reached"),
            Cap::Address => (
                &edge.stats.refused_address,
                "max number of clients from your address reached",
            ),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let write = edge.settings.write_timeout;
        async move {
            // In RESP2, as Redis writes it: the client has said nothing yet.
            let answer = Reply::err(message).to_bytes(super::reply::Protocol::Resp2);
            let _ = send_and_close(stream, &answer, write).await;
        }
    };
    let refusals = limits::RESP_REFUSALS_IN_FLIGHT_MAX;
    edge::accept_loop(listener, caps, refusals, stopped.clone(), admitted, refused).await;
}

/// Serves one admitted connection: over TLS once its handshake ended within the
/// request timeout, or plain.
async fn open(
    edge: Arc<RespEdge>,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    slot: Slot,
    stopped: watch::Receiver<bool>,
) {
    let Some(tls) = edge.tls.clone() else {
        return Session::new(edge, stream, peer, id)
            .run(slot, stopped)
            .await;
    };
    let handshake =
        tokio::time::timeout(edge.settings.request_timeout, tls.acceptor().accept(stream));
    match handshake.await {
        Ok(Ok(stream)) => {
            Session::new(edge, stream, peer, id)
                .run(slot, stopped)
                .await
        }
        Ok(Err(error)) => {
            edge.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%error, %peer, "RESP TLS handshake failed");
        }
        Err(_) => {
            edge.stats.request_timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes the last answers and closes.
async fn send_and_close<S: Stream>(
    mut stream: S,
    bytes: &[u8],
    write: Duration,
) -> std::io::Result<()> {
    tokio::time::timeout(write, stream.write_all(bytes))
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
    linger(stream).await;
    Ok(())
}

/// Why a connection ended.
#[derive(Debug)]
enum Ending {
    /// The client's close, a read or write error, or the node stopping.
    Closed,
    /// `QUIT`, answered.
    Quit,
    Idle,
    RequestTimeout,
    WriteTimeout,
    Protocol(ProtocolError),
}

/// What a connection is carried over: a TCP stream, or TLS over one.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// One connection being served.
struct Session<S> {
    edge: Arc<RespEdge>,
    stream: S,
    state: ConnectionState,
    decoder: Decoder,
    /// Bytes read and not yet decoded.
    input: BytesMut,
    /// Answers encoded and not yet written.
    output: BytesMut,
    /// When the request now arriving began, if one is.
    request_started: Option<Instant>,
    /// Requests gathered to run at once.
    wave: Wave,
    /// Client tracking and subscriptions, and the pushes they make.
    pushes: Pushes,
}

/// Consecutive pipelined requests on distinct keys, run at once (`Commands::runs_beside`);
/// each past the first holds a permit of the node's `RespEdge::pipelined`.
#[derive(Default)]
struct Wave {
    requests: Vec<Args>,
    keys: Vec<Bytes>,
    permits: Vec<OwnedSemaphorePermit>,
}

impl Wave {
    /// Takes a request on `key` if the wave has room, no request on that key, and (past
    /// the first) a permit.
    fn admits(&mut self, key: &Bytes, pipelined: &Arc<Semaphore>) -> bool {
        if self.requests.len() >= limits::RESP_PIPELINE_WAVE_MAX || self.keys.contains(key) {
            return false;
        }
        if !self.requests.is_empty() {
            match pipelined.clone().try_acquire_owned() {
                Ok(permit) => self.permits.push(permit),
                Err(_) => return false,
            }
        }
        true
    }

    fn push(&mut self, key: Bytes, args: Args) {
        self.keys.push(key);
        self.requests.push(args);
    }
}

impl<S: Stream> Session<S> {
    fn new(edge: Arc<RespEdge>, stream: S, peer: SocketAddr, id: u64) -> Session<S> {
        let authenticated = edge.commands.password.is_none();
        let pushes = Pushes::new(id, edge.notifications.clone(), edge.hub.clone());
        Session {
            edge,
            stream,
            state: ConnectionState::new(id, peer, authenticated),
            decoder: Decoder::new(),
            input: BytesMut::new(),
            output: BytesMut::new(),
            request_started: None,
            wave: Wave::default(),
            pushes,
        }
    }

    async fn run(mut self, slot: Slot, stopped: watch::Receiver<bool>) {
        let ending = self.serve(stopped).await;
        let stats = &self.edge.stats;
        let counter = match &ending {
            Ending::Closed | Ending::Quit => None,
            Ending::Idle => Some(&stats.idle_closed),
            Ending::RequestTimeout => Some(&stats.request_timeouts),
            Ending::WriteTimeout => Some(&stats.write_timeouts),
            Ending::Protocol(_) => Some(&stats.protocol_errors),
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(?ending, peer = %self.state.peer, "RESP connection ended");
        match ending {
            Ending::Protocol(error) => {
                // The answers to the requests before it go out first.
                let answer = Reply::err(format!("Protocol error: {error}"));
                answer.encode(self.state.protocol, &mut self.output);
                let write = self.edge.settings.write_timeout;
                let _ = send_and_close(self.stream, &self.output, write).await;
            }
            Ending::Quit => linger(self.stream).await,
            _ => {}
        }
        drop(slot);
    }

    /// Answers requests until the connection ends.
    async fn serve(&mut self, mut stopped: watch::Receiver<bool>) -> Ending {
        loop {
            match self.answer_ready().await {
                Ok(After::Continue) => {}
                Ok(After::Close) => {
                    return self.flush().await.err().unwrap_or(Ending::Quit);
                }
                Err(ending) => return ending,
            }
            if let Err(ending) = self.flush().await {
                return ending;
            }
            let held = self.input.len() + self.decoder.held_bytes();
            if held >= limits::RESP_BUFFERED_BYTES_MAX {
                return Ending::Protocol(ProtocolError::BudgetExceeded(
                    limits::RESP_BUFFERED_BYTES_MAX,
                ));
            }
            let pending = self.decoder.in_request() || !self.input.is_empty();
            let deadline = match (pending, self.request_started) {
                (true, Some(started)) => started + self.edge.settings.request_timeout,
                _ => Instant::now() + self.edge.settings.idle_timeout,
            };
            let room = (limits::RESP_BUFFERED_BYTES_MAX - held).min(limits::RESP_READ_CHUNK_BYTES);
            self.input.reserve(room);
            // Reads at most `room` bytes: the buffer grows only as bytes arrive.
            let mut limited = (&mut self.input).limit(room);
            // Pushes go out only here, between answers: never inside a reply, and a
            // change made while a command ran after that command's answer.
            let read = tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => return Ending::Closed,
                _ = self.pushes.ready() => None,
                read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut limited)) => Some(read),
            };
            let Some(read) = read else {
                if let Err(ending) = self.push().await {
                    return ending;
                }
                continue;
            };
            match read {
                Err(_) if pending => return Ending::RequestTimeout,
                // Subscribed connections wait for messages as long as they like, as
                // Redis exempts pub/sub clients from its `timeout`.
                Err(_) if self.pushes.subscribed() => {}
                Err(_) => return Ending::Idle,
                Ok(Ok(0)) | Ok(Err(_)) => return Ending::Closed,
                Ok(Ok(_)) => {
                    self.request_started.get_or_insert_with(Instant::now);
                }
            }
        }
    }

    /// Answers every complete request in the buffer into `output`, in order; writes
    /// when `output` passes its bound. Consecutive requests on distinct keys run at
    /// once (a wave); any other request waits for those before it and holds those
    /// after it, as a request on a key already in the wave does.
    async fn answer_ready(&mut self) -> Result<After, Ending> {
        let mut answered = false;
        loop {
            let args = match self.decoder.decode(&mut self.input) {
                Ok(Some(args)) => args,
                Ok(None) => break,
                Err(error) => return Err(Ending::Protocol(error)),
            };
            answered = true;
            self.edge.stats.commands.fetch_add(1, Ordering::Relaxed);
            // Before the request runs: the keys a tracked read reads are registered
            // now, so a change racing the read is pushed after its answer.
            if let Some(refusal) = self.pushes.before_command(&self.state, &args) {
                self.run_wave().await?;
                self.answer(refusal).await?;
                continue;
            }
            let key = match self.pushes.subscribed_mode(&self.state) {
                true => None,
                false => self.edge.commands.runs_beside(&self.state, &args).cloned(),
            };
            if let Some(key) = &key {
                if self.wave.admits(key, &self.edge.pipelined) {
                    self.wave.push(key.clone(), args);
                    continue;
                }
            }
            self.run_wave().await?;
            match key {
                // It starts the next wave (the first of a wave needs no permit).
                Some(key) => self.wave.push(key, args),
                None => {
                    if let Some(replies) = self.pushes.command(&self.state, &args) {
                        for reply in replies {
                            self.answer(reply).await?;
                        }
                        continue;
                    }
                    let reset = args
                        .first()
                        .is_some_and(|name| name.eq_ignore_ascii_case(b"RESET"));
                    let (reply, after) = self.edge.commands.execute(&mut self.state, args).await;
                    if reset {
                        self.pushes.reset();
                    }
                    self.answer(reply).await?;
                    if after == After::Close {
                        return Ok(After::Close);
                    }
                }
            }
        }
        self.run_wave().await?;
        // A request begun behind answered ones starts its clock now; one still
        // arriving keeps the instant of its first bytes.
        let pending = self.decoder.in_request() || !self.input.is_empty();
        self.request_started = match (pending, answered) {
            (false, _) => None,
            (true, true) => Some(Instant::now()),
            (true, false) => Some(self.request_started.unwrap_or_else(Instant::now)),
        };
        Ok(After::Continue)
    }

    /// Runs the wave gathered, its requests at once, and answers them in order. The
    /// wave's lists are emptied, not replaced: their room serves the next wave.
    async fn run_wave(&mut self) -> Result<(), Ending> {
        self.wave.keys.clear();
        if self.wave.requests.len() <= 1 {
            let Some(args) = self.wave.requests.pop() else {
                return Ok(());
            };
            let (reply, _) = self.edge.commands.execute(&mut self.state, args).await;
            self.wave.permits.clear();
            return self.answer(reply).await;
        }
        let (commands, state) = (&self.edge.commands, &self.state);
        let run = self.wave.requests.drain(..).map(|args| async move {
            // These commands read the connection's state and change none of it.
            commands.execute(&mut state.clone(), args).await.0
        });
        let replies = futures::future::join_all(run).await;
        self.wave.permits.clear();
        for reply in replies {
            self.answer(reply).await?;
        }
        Ok(())
    }

    /// Encodes `reply` into `output`, writing when `output` passes its bound.
    async fn answer(&mut self, reply: Reply) -> Result<(), Ending> {
        reply.encode(self.state.protocol, &mut self.output);
        if self.output.len() >= limits::RESP_OUTPUT_BYTES_MAX {
            self.flush().await?;
        }
        Ok(())
    }

    /// Encodes the pushes waiting into `output` and writes them, under the same bound
    /// and write timeout as answers.
    async fn push(&mut self) -> Result<(), Ending> {
        for push in self.pushes.take(self.state.protocol) {
            self.answer(push).await?;
        }
        self.flush().await
    }

    /// Writes the answers gathered, under the write timeout.
    async fn flush(&mut self) -> Result<(), Ending> {
        if self.output.is_empty() {
            return Ok(());
        }
        let write = self.stream.write_all(&self.output);
        match tokio::time::timeout(self.edge.settings.write_timeout, write).await {
            Ok(Ok(())) => {
                self.output.clear();
                Ok(())
            }
            Ok(Err(_)) => Err(Ending::Closed),
            Err(_) => Err(Ending::WriteTimeout),
        }
    }
}
