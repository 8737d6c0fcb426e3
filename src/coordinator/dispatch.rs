//! The seam between the coordinator and the transport: the `Dispatch` trait a node
//! implements to carry one request to one replica, and `DispatchError`, the typed reason
//! a request got no answer.
//!
//! It owns only the shape of that seam; it never sends anything itself. The error keeps
//! what the transport reported (a timeout, an unreachable peer, a refused stream, a bad
//! frame, a replica's own refusal) so a caller can branch on it instead of parsing text.

use crate::ids::NodeId;
use crate::transport::{Refusal, TransportError};
use crate::wire::{PeerError, PeerRequest, PeerResponse};
use futures::future::BoxFuture;

/// Why one request to one replica got no answer. `Clone`, because one batch's failure
/// is the answer of every request in it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// The request's time ran out on the way or at the peer.
    #[error("request to {peer} timed out after {after_ms} ms")]
    Timeout { peer: NodeId, after_ms: u64 },
    /// No connection to the peer (unknown address, connect failed, the connection broke,
    /// the transport is shut down).
    #[error("{peer} is unreachable: {reason}")]
    Unreachable { peer: NodeId, reason: String },
    /// The peer reset the request's stream (e.g. a build that does not know the request).
    #[error("{peer} refused the request: {reason}")]
    Refused { peer: NodeId, reason: Refusal },
    /// The request or its answer is not a valid frame (too large, undecodable).
    #[error("invalid frame to or from {peer}: {reason}")]
    Frame { peer: NodeId, reason: String },
    /// The replica answered with an error of its own.
    #[error("{peer} answered: {error}")]
    Peer { peer: NodeId, error: PeerError },
    /// The peer answered with a response of another kind than was asked.
    #[error("{peer} answered with something else than was asked")]
    Unexpected { peer: NodeId },
    /// This node's queue to the peer is gone (the node is stopping).
    #[error("the queue to {peer} is closed")]
    Closed { peer: NodeId },
    /// The flush of a version this node minted for itself failed (`Durable`).
    #[error("write not durable: {reason}")]
    NotDurable { reason: String },
}

impl DispatchError {
    /// The transport's failure of a request to `peer`, kept by kind.
    pub fn of_transport(peer: &NodeId, error: &TransportError) -> DispatchError {
        let peer = peer.clone();
        match error {
            TransportError::Timeout { after_ms, .. } => DispatchError::Timeout {
                peer,
                after_ms: *after_ms,
            },
            TransportError::Refused { reason, .. } => DispatchError::Refused {
                peer,
                reason: *reason,
            },
            TransportError::Frame(error) => DispatchError::Frame {
                peer,
                reason: error.to_string(),
            },
            other => DispatchError::Unreachable {
                peer,
                reason: other.to_string(),
            },
        }
    }
}

/// The wait until a version a node minted for itself is durable (`Dispatch::mint_here`).
pub type Durable = BoxFuture<'static, Result<(), DispatchError>>;

/// Sends one request to one node (itself included) and returns its reply.
pub trait Dispatch: Send + Sync + 'static {
    fn send(
        &self,
        to: &NodeId,
        request: PeerRequest,
    ) -> BoxFuture<'static, Result<PeerResponse, DispatchError>>;

    /// A `Mint` or `Apply` addressed to this node itself: makes the version and answers
    /// at once, before it is durable, with the wait for that, so the version travels to
    /// the other replicas while this node flushes. `None` for any other node: `send`,
    /// whose answer means durable.
    fn mint_here(&self, _to: &NodeId, _request: &PeerRequest) -> Option<(PeerResponse, Durable)> {
        None
    }

    /// A read (`Get` or `Digest`) addressed to this node itself, answered in place: a
    /// lookup in the local store costs less than the task and the channel a `send`
    /// takes. `None` for any other node or request: `send`.
    fn read_here(&self, _to: &NodeId, _request: &PeerRequest) -> Option<PeerResponse> {
        None
    }

    /// Whether `to` may be asked for a digest; a node that does not understand one (of
    /// a build before digest reads) is asked for its object instead.
    fn digests(&self, _to: &NodeId) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
