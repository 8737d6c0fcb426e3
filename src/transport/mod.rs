//! Node-to-node transport: QUIC (quinn) with mutual TLS under the cluster CA, one
//! connection per peer, one bidirectional stream per request carrying one length-prefixed
//! rmp-serde frame each way, and emulated WAN delay per destination region.
//!
//! It owns sockets, certificates, framing and the address book. It is generic over the
//! request and response types and must never know the cluster protocol; it must never
//! trust a peer not signed by the cluster CA, never let a sender claim another node's id
//! or region (checked against the certificate on both ends of every connection),
//! never allocate for a frame before checking its size, and never panic on network input.
//!
//! Shape: [`Transport::start`] binds one quinn endpoint (server and client on the same
//! UDP socket) and spawns an accept loop (`server`); [`Transport::request`] (`client`)
//! reuses or opens the connection to the peer, sleeps the WAN delay (`delay`: accurate
//! below a millisecond), writes the request and waits for the response within the
//! configured timeout.

mod channel;
mod client;
pub(crate) mod delay;
pub mod faults;
pub mod frame;
mod server;
mod socket;
mod stats;
pub mod tls;
pub mod wan;

#[cfg(test)]
mod tests;

pub use client::Transport;
pub use faults::{FaultPlan, FaultPlanError};
pub use frame::{decode_frame, encode, FrameError, WIRE_VERSION};
pub use socket::WireSnapshot;
pub use stats::{RegionTrafficSnapshot, TransportStats};
pub use tls::{create_cluster_ca, issue_node_certificate, NodeTls, TlsError};
pub use wan::{WanError, WanModel};

use crate::ids::{NodeId, Region};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// What a message type must be to cross the transport.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Message for T {}

/// Serves requests arriving from peers; one call per request, possibly many at once.
pub trait Handler<Req, Resp>: Send + Sync + 'static {
    fn handle(&self, from: PeerInfo, request: Req) -> impl Future<Output = Resp> + Send;
}

/// Object-safe twin of [`Handler`], so the transport can hold any handler.
pub(crate) trait ErasedHandler<Req, Resp>: Send + Sync + 'static {
    fn handle_boxed(&self, from: PeerInfo, request: Req) -> BoxFuture<'_, Resp>;
}

impl<Req: Message, Resp: Message, H: Handler<Req, Resp>> ErasedHandler<Req, Resp> for H {
    fn handle_boxed(&self, from: PeerInfo, request: Req) -> BoxFuture<'_, Resp> {
        Box::pin(self.handle(from, request))
    }
}

/// Who sent a request. `node` and `region` are both checked against the peer's
/// certificate before the handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub node: NodeId,
    pub region: Region,
    pub addr: SocketAddr,
}

/// Everything a transport needs to start.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub node: NodeId,
    pub region: Region,
    /// Address of the UDP socket; only this address is bound.
    pub bind: SocketAddr,
    pub tls: NodeTls,
    pub wan: WanModel,
    /// Bound on a whole request: WAN delay, connecting, sending and the response.
    pub request_timeout: Duration,
}

/// Why a peer reset a request stream (the QUIC stream error code, decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    FrameRejected,
    IdentityRejected,
    ResponseUnencodable,
    /// The answer would be larger than a frame (`FRAME_BYTES_MAX`): asking for less
    /// at once (one request of a batch at a time) may get it.
    ResponseTooLarge,
    Other(u64),
}

impl Refusal {
    const FRAME_REJECTED: u32 = 1;
    const IDENTITY_REJECTED: u32 = 2;
    const RESPONSE_UNENCODABLE: u32 = 3;
    const RESPONSE_TOO_LARGE: u32 = 4;

    pub(crate) fn code(self) -> quinn::VarInt {
        match self {
            Refusal::FrameRejected => quinn::VarInt::from_u32(Self::FRAME_REJECTED),
            Refusal::IdentityRejected => quinn::VarInt::from_u32(Self::IDENTITY_REJECTED),
            Refusal::ResponseUnencodable => quinn::VarInt::from_u32(Self::RESPONSE_UNENCODABLE),
            Refusal::ResponseTooLarge => quinn::VarInt::from_u32(Self::RESPONSE_TOO_LARGE),
            Refusal::Other(code) => quinn::VarInt::from_u64(code).unwrap_or(quinn::VarInt::MAX),
        }
    }

    pub(crate) fn from_code(code: quinn::VarInt) -> Self {
        match code.into_inner() {
            code if code == u64::from(Self::FRAME_REJECTED) => Refusal::FrameRejected,
            code if code == u64::from(Self::IDENTITY_REJECTED) => Refusal::IdentityRejected,
            code if code == u64::from(Self::RESPONSE_UNENCODABLE) => Refusal::ResponseUnencodable,
            code if code == u64::from(Self::RESPONSE_TOO_LARGE) => Refusal::ResponseTooLarge,
            code => Refusal::Other(code),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::FrameRejected => formatter.write_str("it rejected the request frame"),
            Refusal::IdentityRejected => {
                formatter.write_str("the sender id does not match the sender's certificate")
            }
            Refusal::ResponseUnencodable => formatter.write_str("it could not encode its response"),
            Refusal::ResponseTooLarge => {
                formatter.write_str("its response would be larger than a frame")
            }
            Refusal::Other(code) => write!(formatter, "it reset the stream with code {code}"),
        }
    }
}

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("request to {peer} timed out after {after_ms} ms")]
    Timeout { peer: NodeId, after_ms: u64 },
    #[error("cannot connect to {peer}: {reason}")]
    Connect { peer: NodeId, reason: String },
    #[error("no address known for peer {0}")]
    UnknownPeer(NodeId),
    #[error("address book is full ({max} peers); remove a peer first")]
    TooManyPeers { max: usize },
    #[error("invalid frame: {0}")]
    Frame(#[from] FrameError),
    #[error("{peer} refused the request: {reason}")]
    Refused { peer: NodeId, reason: Refusal },
    #[error("request to {peer} failed on the connection: {reason}")]
    Stream { peer: NodeId, reason: String },
    #[error("transport is shut down")]
    Closed,
    #[error("TLS setup failed: {0}")]
    Tls(#[from] TlsError),
    #[error("WAN emulation: {0}")]
    Wan(#[from] WanError),
    #[error("cannot bind UDP socket {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// Locks a std mutex, ignoring poisoning: the guarded maps stay consistent because no
/// code panics while holding them.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
