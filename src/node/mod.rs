//! One cartwheel node: storage, transport, membership, coordinator, ownership transfer
//! and the HTTP API, started together and stopped together.
//!
//! This is the composition root: it starts and stops things and nothing else. Every
//! part it wires lives in a layer below it (`runtime`, `handoff`, `peer`, `api`, ...),
//! none of which may import `node`; `startup` holds one short step per subsystem.

mod startup;

pub use startup::start;

use crate::config::Settings;
use crate::coordinator::{Dispatch, DispatchError, Durable};
use crate::ids::{NodeId, Region};
use crate::limits;
use crate::peer::PeerService;
use crate::runtime::gossip::{Exit, Gossip};
use crate::runtime::{batch, clock, incarnation};
use crate::storage::Storage;
use crate::transport::{Handler, NodeTls, PeerInfo, Transport};
use crate::wire::{PeerRequest, PeerResponse};
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {0} is not in the topology; a new node must name its region (--region)")]
    UnknownNode(NodeId),
    #[error("region {region} is not in the topology (its regions are {known})")]
    UnknownRegion { region: Region, known: String },
    #[error("ring: {0}")]
    Ring(#[from] crate::ring::RingError),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("transport: {0}")]
    Transport(#[from] crate::transport::TransportError),
    #[error("cannot bind the HTTP API to {addr}: {source}")]
    HttpBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind the RESP listener to {addr}: {source}")]
    RespBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("RESP: {0}")]
    Resp(#[from] crate::resp::RespConfigError),
    #[error("{0}")]
    Advertise(#[from] crate::config::AdvertiseError),
    /// `--chaos` serves fault injection (clock skew, dropped messages) to anyone with
    /// the admin secret; it is for a test cluster on one machine, never a reachable one.
    #[error(
        "--chaos is refused: the {what} address {addr} is not loopback \
         (127.0.0.0/8 or ::1); fault injection is for local test clusters only"
    )]
    ChaosNotLoopback {
        what: &'static str,
        addr: SocketAddr,
    },
}

/// Refuses `--chaos` unless both addresses the node binds are loopback ones.
fn check_chaos(chaos: bool, http: SocketAddr, quic: SocketAddr) -> Result<(), NodeError> {
    if !chaos {
        return Ok(());
    }
    for (what, addr) in [("HTTP", http), ("QUIC", quic)] {
        if !addr.ip().is_loopback() {
            return Err(NodeError::ChaosNotLoopback { what, addr });
        }
    }
    Ok(())
}

/// A seed: a member to join the cluster through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    pub node: NodeId,
    pub addr: SocketAddr,
}

impl std::str::FromStr for Seed {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (node, addr) = text
            .split_once('@')
            .ok_or_else(|| format!("seed {text:?} must look like NODE@HOST:PORT"))?;
        let node = NodeId::new(node).map_err(|error| format!("seed {text:?}: {error}"))?;
        let addr = addr
            .parse()
            .map_err(|error| format!("seed {text:?}: bad address: {error}"))?;
        Ok(Seed { node, addr })
    }
}

/// Where the node keeps its data.
#[derive(Clone, Debug)]
pub enum DataDir {
    Disk(PathBuf),
    /// In memory, gone when the node stops (tests).
    Memory,
}

/// Everything a node needs to start.
pub struct NodeOptions {
    pub id: NodeId,
    /// Needed for a node the topology does not name (a node added later).
    pub region: Option<Region>,
    pub settings: Settings,
    pub tls: NodeTls,
    pub data: DataDir,
    pub cache_bytes: u64,
    pub http_bind: SocketAddr,
    pub quic_bind: SocketAddr,
    /// The addresses published for the listeners (gossip, `/v1/ring`, `/v1/status`)
    /// when they are not the bound ones: a node bound to 0.0.0.0 must name them.
    pub advertise: crate::config::Advertise,
    pub seeds: Vec<Seed>,
    /// Serve the fault-injection admin endpoint.
    pub chaos: bool,
    /// What admin requests' bearer token is checked against (a hash of the admin
    /// secret); `None` disables the admin endpoints.
    pub admin_key: Option<crate::api::AdminKey>,
    /// The cluster's session keys, newest first, each with its id: tokens and causal
    /// contexts are made with the newest and checked by the id they carry, so a new key
    /// logs nobody out. `None` turns the session API off.
    pub session_keys: Option<Vec<(u8, [u8; 32])>>,
    /// Where the RESP (Redis protocol) listener binds; `None` serves none.
    pub resp_bind: Option<SocketAddr>,
    /// The password RESP clients must give (`AUTH`); without one the listener binds
    /// only a loopback address.
    pub resp_password: Option<crate::resp::Password>,
    /// TLS on the RESP listener, with the operator's certificate.
    pub resp_tls: Option<crate::config::EdgeTls>,
    /// TLS on the HTTP listener, with the operator's certificate.
    pub http_tls: Option<crate::config::EdgeTls>,
}

/// Local requests skip the network; remote ones go through the transport.
struct NodeDispatch {
    me: NodeId,
    service: Arc<PeerService>,
    batcher: Arc<batch::Batcher>,
    early: Arc<incarnation::EarlySend>,
}

impl Dispatch for NodeDispatch {
    fn send(
        &self,
        to: &NodeId,
        request: PeerRequest,
    ) -> BoxFuture<'static, Result<PeerResponse, DispatchError>> {
        if *to == self.me {
            let service = self.service.clone();
            return Box::pin(async move { Ok(service.serve(None, request).await) });
        }
        let batcher = self.batcher.clone();
        let to = to.clone();
        Box::pin(async move { batcher.send(&to, request).await })
    }

    fn digests(&self, to: &NodeId) -> bool {
        self.batcher.digests(to)
    }

    fn read_here(&self, to: &NodeId, request: &PeerRequest) -> Option<PeerResponse> {
        if *to != self.me {
            return None;
        }
        self.service.read(request)
    }

    fn mint_here(&self, to: &NodeId, request: &PeerRequest) -> Option<(PeerResponse, Durable)> {
        if *to != self.me || !self.early.ready() {
            return None;
        }
        let stored = self.service.mint_stored(None, request);
        let replica = self.service.replica.clone();
        let durable: Durable = Box::pin(async move {
            replica
                .durable()
                .await
                .map_err(|error| DispatchError::NotDurable {
                    reason: error.to_string(),
                })
        });
        Some((stored, durable))
    }
}

/// A started node. Dropping it does not stop it: call [`RunningNode::shutdown`].
pub struct RunningNode {
    pub id: NodeId,
    pub region: Region,
    /// The addresses the node advertises (where others reach it), which are the bound
    /// ones unless `NodeOptions::advertise` names others.
    pub http_addr: SocketAddr,
    pub quic_addr: SocketAddr,
    /// The RESP listener's address, when the node serves one.
    pub resp_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    exit: watch::Receiver<Exit>,
    tasks: JoinSet<()>,
    transport: Transport<PeerRequest, PeerResponse>,
    storage: Arc<dyn Storage>,
    incarnation: incarnation::Incarnation,
    gossip: Arc<Gossip>,
    /// The node's data clock; tests move it to pass days in no time.
    pub clock: Arc<clock::NodeClock>,
}

impl RunningNode {
    /// Resolves when the node must stop on its own (it left, or its id is taken).
    pub async fn exited(&mut self) -> Exit {
        let _ = self.exit.wait_for(|exit| *exit != Exit::Running).await;
        self.exit.borrow().clone()
    }

    /// Stops every task and flushes storage; first tells the members it is stopping.
    pub async fn shutdown(mut self) {
        self.gossip.announce_stop().await;
        let _ = self.stop.send(true);
        self.transport.shutdown().await;
        let deadline = Duration::from_secs(limits::NODE_EXIT_TIMEOUT_S);
        let _ = tokio::time::timeout(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
        // Everything this node minted is on disk only once the final flush succeeded;
        // only then may the next start mint under the same actor.
        let stopped = self
            .storage
            .flush()
            .and_then(|()| incarnation::end_cleanly(self.storage.as_ref(), self.incarnation));
        if let Err(error) = stopped {
            tracing::error!(%error, "final flush failed: the next start takes a new incarnation");
        }
    }
}

/// Hands requests to the peer service once it exists (requests before that are
/// answered as overloaded).
/// Holds the service weakly: the service reaches the transport (through gossip), so a
/// strong link back would keep both, and the store, alive after shutdown.
struct LateHandler(std::sync::OnceLock<std::sync::Weak<PeerService>>);

impl Handler<PeerRequest, PeerResponse> for LateHandler {
    async fn handle(&self, from: PeerInfo, request: PeerRequest) -> PeerResponse {
        match self.0.get().and_then(std::sync::Weak::upgrade) {
            Some(service) => service.serve(Some(&from), request).await,
            None => PeerResponse::Error(crate::wire::PeerError::Overloaded),
        }
    }
}

/// Raises this process's soft limit of open files to its hard limit, as Redis does for
/// its client limit (many systems start processes at 1,024, below the connections a
/// node takes); returns the soft limit in force, `None` if it cannot be read.
pub fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

#[cfg(test)]
mod tests;
