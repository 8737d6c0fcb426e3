//! The serving side: accept connections (at most CONNECTIONS_MAX at once), then for each
//! bidirectional stream read one request frame, check the sender's claimed id and
//! region against the connection's certificate, run the handler and write one response frame.
//!
//! A handshake holds only a handshake slot (at most HANDSHAKES_IN_PROGRESS_MAX, each for
//! at most HANDSHAKE_TIMEOUT_MS); a connection slot is taken once it has succeeded, so
//! peers that start handshakes and never finish cannot lock real peers out. Above
//! HANDSHAKES_BEFORE_RETRY handshakes in progress, attempts from unvalidated addresses
//! get a stateless QUIC Retry first.
//!
//! A bad stream never harms its connection or others: it is reset, counted and logged
//! at debug. Tasks form a tree of `JoinSet`s, so aborting the accept loop aborts every
//! connection and every in-flight handler.

mod channel;

#[cfg(test)]
pub(crate) use channel::CHANNELS_PER_CONNECTION_MAX;

use super::frame::{self, Envelope, ReadFrameError};
use super::stats::{Counter, Counters};
use super::tls::{IdentityVerifier, TlsError};
use super::{lock, ErasedHandler, Message, PeerInfo, Refusal};
use crate::ids::{NodeId, Region};
use crate::limits;
use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// What the accept loop and its tasks share.
pub(crate) struct ServerContext<Req, Resp> {
    pub endpoint: quinn::Endpoint,
    pub handler: Arc<dyn ErasedHandler<Req, Resp>>,
    pub counters: Arc<Counters>,
    pub identity: IdentityVerifier,
    /// Also bounds how long a peer may take to send its request frame.
    pub request_timeout: Duration,
    pub limits: ServerLimits,
    /// Connection slots (`limits.connections_max`), taken after the handshake.
    pub connections: Arc<Semaphore>,
    /// Handshake slots (`limits.handshakes_max`), held while a handshake is in progress.
    pub handshakes: Arc<Semaphore>,
    /// Injected faults (`--chaos` only): a slow node's responses leave late.
    pub faults: super::faults::SharedFaults,
}

/// The bounds of the accept side (from `limits`; tests use smaller ones).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerLimits {
    pub connections_max: usize,
    pub handshakes_max: usize,
    pub handshakes_before_retry: usize,
    pub handshake_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            connections_max: limits::CONNECTIONS_MAX,
            handshakes_max: limits::HANDSHAKES_IN_PROGRESS_MAX,
            handshakes_before_retry: limits::HANDSHAKES_BEFORE_RETRY,
            handshake_timeout: Duration::from_millis(limits::HANDSHAKE_TIMEOUT_MS),
        }
    }
}

/// Runs until the endpoint closes (or the task is aborted).
pub(crate) async fn accept_loop<Req: Message, Resp: Message>(
    context: Arc<ServerContext<Req, Resp>>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            incoming = context.endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                if let Some(handshake) = admit_handshake(&context, &incoming) {
                    connections.spawn(serve_connection(context.clone(), incoming, handshake));
                } else {
                    decline(&context, incoming);
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A handshake slot for `incoming`, or `None` when it must be declined (retried or
/// refused).
fn admit_handshake<Req, Resp>(
    context: &ServerContext<Req, Resp>,
    incoming: &quinn::Incoming,
) -> Option<OwnedSemaphorePermit> {
    let in_progress = context.limits.handshakes_max - context.handshakes.available_permits();
    let unvalidated = !incoming.remote_address_validated() && incoming.may_retry();
    if in_progress >= context.limits.handshakes_before_retry && unvalidated {
        return None;
    }
    context.handshakes.clone().try_acquire_owned().ok()
}

/// Answers an attempt `admit_handshake` turned down: a Retry while the address is not
/// validated and handshake slots remain, a refusal otherwise. Neither keeps state.
fn decline<Req, Resp>(context: &ServerContext<Req, Resp>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let full = context.handshakes.available_permits() == 0;
    if !full && !incoming.remote_address_validated() && incoming.may_retry() {
        context.counters.bump(Counter::HandshakesRetried);
        tracing::debug!(%remote, "many handshakes in progress; validating the address");
        if let Err(error) = incoming.retry() {
            error.into_incoming().refuse();
        }
        return;
    }
    context.counters.bump(Counter::HandshakesRefused);
    tracing::debug!(%remote, "handshake limit reached; refusing");
    incoming.refuse();
}

/// The authenticated peer of one connection.
struct ConnectionPeer {
    addr: SocketAddr,
    certificate: CertificateDer<'static>,
    /// The node id and region this connection proved; one connection speaks for one
    /// node in one region.
    verified: Mutex<Option<(NodeId, Region)>>,
    /// Channels open on this connection (at most `CHANNELS_PER_CONNECTION_MAX`).
    channels: AtomicUsize,
}

impl ConnectionPeer {
    fn check_identity(
        &self,
        identity: &IdentityVerifier,
        claimed: &NodeId,
        claimed_region: &Region,
    ) -> Result<(), TlsError> {
        let mut verified = lock(&self.verified);
        match verified.as_ref() {
            Some((node, region)) if node == claimed && region == claimed_region => Ok(()),
            Some((node, region)) => Err(TlsError::Untrusted {
                node: claimed.clone(),
                reason: format!("connection already authenticated as {node} in {region}"),
            }),
            None => {
                identity.verify_in(&self.certificate, claimed, claimed_region)?;
                *verified = Some((claimed.clone(), claimed_region.clone()));
                Ok(())
            }
        }
    }
}

async fn serve_connection<Req: Message, Resp: Message>(
    context: Arc<ServerContext<Req, Resp>>,
    incoming: quinn::Incoming,
    handshake: OwnedSemaphorePermit,
) {
    let remote = incoming.remote_address();
    let Some(connection) = complete_handshake(&context, incoming).await else {
        return;
    };
    drop(handshake);
    let Ok(_slot) = context.connections.clone().try_acquire_owned() else {
        context.counters.bump(Counter::ConnectionsOverloaded);
        tracing::debug!(%remote, "connection limit reached; refusing");
        connection.close(quinn::VarInt::from_u32(0), b"connection limit reached");
        return;
    };
    let Some(certificate) = peer_certificate(&connection) else {
        // Unreachable with a verifier that requires client certificates; refuse anyway.
        context.counters.bump(Counter::ConnectionsRefused);
        connection.close(quinn::VarInt::from_u32(0), b"client certificate required");
        return;
    };
    context.counters.bump(Counter::ConnectionsAccepted);
    let peer = Arc::new(ConnectionPeer {
        addr: remote,
        certificate,
        verified: Mutex::new(None),
        channels: AtomicUsize::new(0),
    });
    serve_streams(context, peer, connection).await;
}

/// The handshake of `incoming`, within the handshake timeout. Dropping an unfinished
/// handshake closes its connection.
async fn complete_handshake<Req, Resp>(
    context: &ServerContext<Req, Resp>,
    incoming: quinn::Incoming,
) -> Option<quinn::Connection> {
    let remote = incoming.remote_address();
    context.counters.bump(Counter::HandshakesStarted);
    match tokio::time::timeout(context.limits.handshake_timeout, incoming).await {
        Ok(Ok(connection)) => Some(connection),
        Ok(Err(error)) => {
            context.counters.bump(Counter::ConnectionsRefused);
            tracing::debug!(%remote, %error, "inbound handshake failed");
            None
        }
        Err(_elapsed) => {
            context.counters.bump(Counter::HandshakesTimedOut);
            tracing::debug!(%remote, "inbound handshake did not complete in time");
            None
        }
    }
}

async fn serve_streams<Req: Message, Resp: Message>(
    context: Arc<ServerContext<Req, Resp>>,
    peer: Arc<ConnectionPeer>,
    connection: quinn::Connection,
) {
    let remote = peer.addr;
    // Bounded by the STREAMS_PER_CONNECTION_MAX streams quinn lets the peer open.
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            accepted = connection.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    streams.spawn(serve_stream(context.clone(), peer.clone(), send, recv));
                }
                Err(error) => {
                    tracing::debug!(%remote, %error, "connection ended");
                    break;
                }
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
}

pub(crate) fn peer_certificate(connection: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain.into_iter().next()
}

async fn serve_stream<Req: Message, Resp: Message>(
    context: Arc<ServerContext<Req, Resp>>,
    peer: Arc<ConnectionPeer>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let read = tokio::time::timeout(context.request_timeout, async {
        let prefix = frame::read_prefix(&mut recv).await?;
        if channel::is_channel(prefix) {
            return Ok(None);
        }
        frame::read_frame_after::<Envelope<Req>>(&mut recv, prefix)
            .await
            .map(|(envelope, _)| Some(envelope))
    })
    .await;
    let envelope = match read {
        Ok(Ok(Some(envelope))) => envelope,
        Ok(Ok(None)) => return channel::serve(context, peer, send, recv).await,
        Ok(Err(ReadFrameError::Frame(error))) => {
            reject(&context, &mut send, &mut recv, Refusal::FrameRejected);
            tracing::debug!(remote = %peer.addr, %error, "rejected request frame");
            return;
        }
        Ok(Err(ReadFrameError::Stream(error))) => {
            tracing::debug!(remote = %peer.addr, %error, "stream failed before its request arrived");
            return;
        }
        Err(_elapsed) => {
            reject(&context, &mut send, &mut recv, Refusal::FrameRejected);
            tracing::debug!(remote = %peer.addr, "request frame not received within the timeout");
            return;
        }
    };
    if let Err(error) =
        peer.check_identity(&context.identity, &envelope.from, &envelope.from_region)
    {
        context.counters.bump(Counter::ImpersonationsRejected);
        let _ = send.reset(Refusal::IdentityRejected.code());
        let _ = recv.stop(Refusal::IdentityRejected.code());
        tracing::debug!(remote = %peer.addr, %error, "sender id or region does not match its certificate");
        return;
    }
    context.counters.bump(Counter::RequestsReceived);
    let from = PeerInfo {
        node: envelope.from,
        region: envelope.from_region,
        addr: peer.addr,
    };
    // A requester that gave up (timeout) stops the stream; stop working for it too.
    let requester_gone = send.stopped();
    let response = tokio::select! {
        response = context.handler.handle_boxed(from, envelope.body) => response,
        _ = requester_gone => {
            tracing::debug!(remote = %peer.addr, "requester abandoned the request");
            return;
        }
    };
    let frame = match frame::encode(&response) {
        Ok(frame) => frame,
        Err(error) => {
            // Too large is the requester's to fix (it asked for too much at once), so
            // it gets its own code; anything else is this node's fault.
            let refusal = match error {
                frame::FrameError::Oversized { .. } => Refusal::ResponseTooLarge,
                _ => Refusal::ResponseUnencodable,
            };
            tracing::warn!(remote = %peer.addr, %error, "cannot send the response");
            let _ = send.reset(refusal.code());
            return;
        }
    };
    let reply_delay = lock(&context.faults)
        .as_ref()
        .map(|plan| plan.reply_delay())
        .unwrap_or_default();
    super::delay::sleep(reply_delay).await;
    if let Err(error) = send.write_all(&frame).await {
        tracing::debug!(remote = %peer.addr, %error, "cannot write response");
        return;
    }
    let _ = send.finish();
}

/// Counts a bad request frame, then resets both halves of its stream (counting first so
/// that a requester seeing the reset also sees the count).
fn reject<Req, Resp>(
    context: &ServerContext<Req, Resp>,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    refusal: Refusal,
) {
    context.counters.bump(Counter::FramesRejected);
    let _ = send.reset(refusal.code());
    let _ = recv.stop(refusal.code());
}
