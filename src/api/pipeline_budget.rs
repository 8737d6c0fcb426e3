//! The byte budgets of pipelined connections: request frames read and not yet
//! answered, and answer frames not yet written, bounded per connection and per node
//! (semaphores of bytes), plus the other bounds one connection is served under.
//!
//! It only counts: a frame takes its bytes before it is handed on and gives them back
//! when it is dropped, so a connection cut off frees everything it held. It never
//! reads or writes a socket.

use crate::limits;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The byte budgets all pipelined connections of a node draw from.
#[derive(Clone)]
pub(crate) struct NodeBudgets {
    pub(super) requests: Arc<Semaphore>,
    pub(super) answers: Arc<Semaphore>,
    /// Requests in flight over all pipelined connections (`PIPELINE_NODE_IN_FLIGHT_MAX`).
    pub(super) in_flight: Arc<Semaphore>,
}

impl NodeBudgets {
    pub(crate) fn new() -> Self {
        NodeBudgets {
            requests: Arc::new(Semaphore::new(limits::PIPELINE_NODE_REQUEST_BYTES_MAX)),
            answers: Arc::new(Semaphore::new(limits::PIPELINE_NODE_ANSWER_BYTES_MAX)),
            in_flight: Arc::new(Semaphore::new(limits::PIPELINE_NODE_IN_FLIGHT_MAX)),
        }
    }
}

// A connection's budget must hold one frame at its limit, or that frame waits forever.
const _: () =
    assert!(limits::PIPELINE_CONNECTION_REQUEST_BYTES_MAX >= limits::PIPELINE_REQUEST_BYTES_MAX);
const _: () =
    assert!(limits::PIPELINE_CONNECTION_ANSWER_BYTES_MAX >= limits::PIPELINE_ANSWER_BYTES_MAX);
const _: () = assert!(
    limits::PIPELINE_NODE_REQUEST_BYTES_MAX >= limits::PIPELINE_CONNECTION_REQUEST_BYTES_MAX
);
const _: () =
    assert!(limits::PIPELINE_NODE_ANSWER_BYTES_MAX >= limits::PIPELINE_CONNECTION_ANSWER_BYTES_MAX);

/// What bounds one pipelined connection besides its frame limits.
pub(crate) struct PipelineBounds {
    pub(crate) node: NodeBudgets,
    /// A write of answers that makes no progress this long cuts the client off.
    pub(crate) write_timeout: std::time::Duration,
    /// A connection with nothing in flight and no frame arriving this long is closed.
    pub(crate) idle_timeout: std::time::Duration,
    /// The client's address, handed to every request as `ConnectInfo`.
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) stats: Arc<super::server::EdgeStats>,
}

impl PipelineBounds {
    /// Bounds of a connection served on its own (tests, the bench's echo target).
    #[cfg(test)]
    pub(crate) fn standalone() -> Self {
        PipelineBounds {
            node: NodeBudgets::new(),
            write_timeout: std::time::Duration::from_millis(limits::HTTP_WRITE_TIMEOUT_MS_DEFAULT),
            idle_timeout: std::time::Duration::from_millis(limits::HTTP_IDLE_TIMEOUT_MS_DEFAULT),
            peer: None,
            stats: Default::default(),
        }
    }
}

/// Bytes taken from a connection's budget and the node's, given back on drop.
pub(super) struct Taken {
    _connection: OwnedSemaphorePermit,
    _node: OwnedSemaphorePermit,
}

/// Takes `bytes` from `connection` and then `node` (never more than either holds).
pub(super) async fn take(
    connection: &Arc<Semaphore>,
    node: &Arc<Semaphore>,
    bytes: usize,
    most: usize,
) -> Option<Taken> {
    let bytes = permits(bytes, most)?;
    let mine = connection.clone().acquire_many_owned(bytes).await.ok()?;
    let all = node.clone().acquire_many_owned(bytes).await.ok()?;
    Some(Taken {
        _connection: mine,
        _node: all,
    })
}

/// Takes `bytes` from `connection` and then `node` at once, or nothing when either has
/// too little left (an answer that does not fit cuts its connection off, as Redis's
/// output buffer limit does, instead of waiting while it holds its frame).
pub(super) fn try_take(
    connection: &Arc<Semaphore>,
    node: &Arc<Semaphore>,
    bytes: usize,
    most: usize,
) -> Option<Taken> {
    let bytes = permits(bytes, most)?;
    Some(Taken {
        _connection: connection.clone().try_acquire_many_owned(bytes).ok()?,
        _node: node.clone().try_acquire_many_owned(bytes).ok()?,
    })
}

/// The permits `bytes` takes: at least one, at most `most`.
fn permits(bytes: usize, most: usize) -> Option<u32> {
    u32::try_from(bytes.clamp(1, most)).ok()
}

/// An answer waiting to be written, with the bytes it holds.
pub(super) struct Parked {
    pub(super) frame: Bytes,
    pub(super) _bytes: Taken,
}
