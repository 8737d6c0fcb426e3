//! What the client-facing listeners (HTTP in `api`, RESP in `resp`) share below their
//! protocols: the caps on open connections (per node and per client address), the
//! accept loop that admits or refuses each connection and, when the node stops, waits
//! for the open ones to end, and the lingering close.
//!
//! It owns no protocol: what an admitted connection is served, and what a refused one
//! is told, are the listener's (the closures it passes). It must never hold more than
//! the caps allow: the per-address map holds only addresses with a connection open,
//! and refusals in flight are bounded too.

use crate::limits;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Which cap a refused connection hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// The node had its most connections open.
    Node,
    /// The client's address had its most connections open.
    Address,
}

/// Open connections per node and per client address.
pub struct Caps {
    node: Arc<Semaphore>,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    per_address_max: usize,
}

/// One open connection's place under both caps; given back on drop.
pub struct Slot {
    caps: Arc<Caps>,
    address: IpAddr,
    _node: OwnedSemaphorePermit,
}

impl Caps {
    pub fn new(connections_max: usize, per_address_max: usize) -> Arc<Caps> {
        Arc::new(Caps {
            node: Arc::new(Semaphore::new(connections_max)),
            per_address: Mutex::new(HashMap::new()),
            per_address_max,
        })
    }

    /// A slot for one more connection from `address`. The map holds only addresses
    /// with a connection open, so it is bounded by the node cap.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Slot, Cap> {
        let node = self
            .node
            .clone()
            .try_acquire_owned()
            .map_err(|_| Cap::Node)?;
        let mut open = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= self.per_address_max {
            return Err(Cap::Address);
        }
        *count += 1;
        Ok(Slot {
            caps: self.clone(),
            address,
            _node: node,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .caps
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Accepts connections until `stopped` turns true, then waits for every connection it
/// started to end. An admitted connection (TCP_NODELAY set) is served by the future
/// `admitted` makes of it; one over a cap by the future `refused` makes, at most
/// `refusals_max` of those at once (beyond, the connection is closed unanswered).
pub async fn accept_loop<A, AF, R, RF>(
    listener: TcpListener,
    caps: Arc<Caps>,
    refusals_max: usize,
    mut stopped: watch::Receiver<bool>,
    mut admitted: A,
    mut refused: R,
) where
    A: FnMut(TcpStream, SocketAddr, Slot) -> AF,
    AF: Future<Output = ()> + Send + 'static,
    R: FnMut(TcpStream, Cap) -> RF,
    RF: Future<Output = ()> + Send + 'static,
{
    let refusals = Arc::new(Semaphore::new(refusals_max));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, usually: wait for some to close.
                tracing::debug!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(limits::HTTP_ACCEPT_BACKOFF_MS)).await;
                continue;
            }
        };
        // Answers go out at once rather than waiting on Nagle's algorithm for the
        // client's acknowledgement of the previous segment.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        match caps.admit(peer.ip()) {
            Ok(slot) => {
                connections.spawn(admitted(stream, peer, slot));
            }
            Err(cap) => {
                let answer = refused(stream, cap);
                if let Ok(permit) = refusals.clone().try_acquire_owned() {
                    connections.spawn(async move {
                        answer.await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Closes the node's side, then reads and discards what the client still sends for a
/// bounded time and byte count: closing a socket with unread bytes resets it, and a
/// reset can reach the client before it read the answer.
pub async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let _ = stream.shutdown().await;
    let mut scratch = [0_u8; 8192];
    let mut drained = 0;
    let _ = tokio::time::timeout(Duration::from_millis(limits::HTTP_LINGER_MS), async {
        while drained < limits::HTTP_LINGER_BYTES_MAX {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(read) => drained += read,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests;
