//! One cartwheel node: storage, transport, coordinator, address exchange and the HTTP
//! API, started together and stopped together.
//!
//! This is the async shell: it owns every task and socket of the node and nothing else
//! decides protocol questions here; it hands requests to `replica`, `coordinator` and
//! `membership` and carries out what they return.

use crate::api::{self, ApiState};
use crate::config::Settings;
use crate::coordinator::{Coordinator, Dispatch};
use crate::ids::{NodeId, Region};
use crate::limits;
use crate::membership::AddressBook;
use crate::replica::Replica;
use crate::ring::{Ring, RingConfig, RingMember};
use crate::storage::{CommitGate, MemoryStorage, SledStorage, Storage, StorageOptions};
use crate::transport::{Handler, NodeTls, PeerInfo, Transport, TransportConfig, WanModel};
use crate::wire::{MemberAddress, PeerError, PeerRequest, PeerResponse};
use futures::future::BoxFuture;
use rand::seq::SliceRandom;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {0} is not in the topology")]
    UnknownNode(NodeId),
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
    #[error("cannot write the ready file {path}: {source}")]
    ReadyFile {
        path: String,
        source: std::io::Error,
    },
}

/// A seed: a member to ask for the address book when starting.
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
    pub settings: Settings,
    pub tls: NodeTls,
    pub data: DataDir,
    pub cache_bytes: u64,
    pub http_bind: SocketAddr,
    pub quic_bind: SocketAddr,
    pub seeds: Vec<Seed>,
}

/// Answers the requests of other nodes (and of this node's own coordinator).
struct PeerService {
    replica: Arc<Replica>,
    book: Arc<Mutex<AddressBook>>,
    transport: OnceLock<Transport<PeerRequest, PeerResponse>>,
}

impl PeerService {
    async fn serve(&self, request: PeerRequest) -> PeerResponse {
        let storage_error = |error: crate::replica::ReplicaError| {
            PeerResponse::Error(PeerError::Storage(error.to_string()))
        };
        match request {
            PeerRequest::Get { key } => match self.replica.get(&key) {
                Ok(object) => PeerResponse::Object(object),
                Err(error) => storage_error(error),
            },
            PeerRequest::Mint {
                key,
                context,
                value,
                timestamp,
            } => match self.replica.mint(&key, &context, value, timestamp).await {
                Ok(object) => PeerResponse::Stored(object),
                Err(error) => storage_error(error),
            },
            PeerRequest::Merge { key, object } => match self.replica.merge(&key, &object).await {
                Ok(object) => PeerResponse::Stored(object),
                Err(error) => storage_error(error),
            },
            PeerRequest::Members { known } => {
                if known.len() > limits::MEMBERS_MAX {
                    return PeerResponse::Error(PeerError::BadRequest(format!(
                        "{} members is over the limit of {}",
                        known.len(),
                        limits::MEMBERS_MAX
                    )));
                }
                self.learn(&known);
                PeerResponse::Members(self.book.lock().expect("address book lock").known())
            }
        }
    }

    fn learn(&self, heard: &[MemberAddress]) {
        let learned = self.book.lock().expect("address book lock").merge(heard);
        if let Some(transport) = self.transport.get() {
            for member in learned {
                if let Err(error) = transport.set_peer(member.node, member.region, member.quic) {
                    tracing::warn!(%error, "cannot add a peer");
                }
            }
        }
    }
}

struct PeerHandler(Arc<PeerService>);

impl Handler<PeerRequest, PeerResponse> for PeerHandler {
    fn handle(
        &self,
        _from: PeerInfo,
        request: PeerRequest,
    ) -> impl std::future::Future<Output = PeerResponse> + Send {
        let service = self.0.clone();
        async move { service.serve(request).await }
    }
}

/// Local requests skip the network; remote ones go through the transport.
struct NodeDispatch {
    me: NodeId,
    service: Arc<PeerService>,
    transport: Transport<PeerRequest, PeerResponse>,
}

impl Dispatch for NodeDispatch {
    fn send(
        &self,
        to: &NodeId,
        request: PeerRequest,
    ) -> BoxFuture<'static, Result<PeerResponse, String>> {
        if *to == self.me {
            let service = self.service.clone();
            return Box::pin(async move { Ok(service.serve(request).await) });
        }
        let transport = self.transport.clone();
        let to = to.clone();
        Box::pin(async move {
            match transport.request(&to, &request).await {
                Ok(PeerResponse::Error(error)) => Err(error.to_string()),
                Ok(response) => Ok(response),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

/// A started node. Dropping it does not stop it: call [`RunningNode::shutdown`].
pub struct RunningNode {
    pub id: NodeId,
    pub region: Region,
    pub http_addr: SocketAddr,
    pub quic_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    transport: Transport<PeerRequest, PeerResponse>,
    storage: Arc<dyn Storage>,
}

impl RunningNode {
    pub fn address(&self) -> MemberAddress {
        MemberAddress {
            node: self.id.clone(),
            region: self.region.clone(),
            quic: self.quic_addr,
            http: self.http_addr,
        }
    }

    /// Resolves when the node has stopped (by [`RunningNode::shutdown`] or a fatal error).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.transport.shutdown().await;
        let deadline = Duration::from_secs(limits::NODE_EXIT_TIMEOUT_S);
        let _ = tokio::time::timeout(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
        if let Err(error) = self.storage.flush() {
            tracing::error!(%error, "final flush failed");
        }
    }
}

fn build_ring(settings: &Settings) -> Result<Ring, NodeError> {
    let topology = &settings.topology;
    let members = topology
        .nodes()
        .map(|(node, region)| RingMember {
            id: node.clone(),
            region: region.clone(),
            weight: 1,
        })
        .collect();
    let config = RingConfig {
        partitions: topology.partitions,
        replicas_per_region: topology.replicas_per_region(),
    };
    Ok(Ring::new(members, config, 1)?)
}

fn wan_model(settings: &Settings) -> WanModel {
    let latency = &settings.topology.latency;
    WanModel {
        rtt_ms: latency.rtt_ms.clone(),
        intra_region_rtt_ms: latency.intra_region_rtt_ms,
        jitter_ms: latency.jitter_ms,
    }
}

fn open_storage(options: &NodeOptions) -> Result<Arc<dyn Storage>, NodeError> {
    let partitions = options.settings.topology.partitions;
    Ok(match &options.data {
        DataDir::Memory => Arc::new(MemoryStorage::new(partitions)?),
        DataDir::Disk(path) => Arc::new(SledStorage::open(
            path,
            StorageOptions {
                partitions,
                cache_bytes: options.cache_bytes,
                durability: options.settings.durability,
            },
        )?),
    })
}

/// Starts a node: opens storage, binds QUIC and HTTP, starts the address exchange.
pub async fn start(options: NodeOptions) -> Result<RunningNode, NodeError> {
    let settings = &options.settings;
    let region = settings
        .topology
        .region_of(&options.id)
        .cloned()
        .ok_or_else(|| NodeError::UnknownNode(options.id.clone()))?;
    let ring = Arc::new(build_ring(settings)?);
    let storage = open_storage(&options)?;
    let gate = CommitGate::new(storage.clone(), settings.durability);
    let replica = Arc::new(Replica::new(
        &options.id,
        settings.topology.partitions,
        storage.clone(),
        gate,
    ));
    let http_listener = tokio::net::TcpListener::bind(options.http_bind)
        .await
        .map_err(|source| NodeError::HttpBind {
            addr: options.http_bind,
            source,
        })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| NodeError::HttpBind {
            addr: options.http_bind,
            source,
        })?;
    let expected = settings
        .topology
        .nodes()
        .map(|(node, region)| (node.clone(), region.clone()))
        .collect();
    let placeholder = MemberAddress {
        node: options.id.clone(),
        region: region.clone(),
        quic: options.quic_bind,
        http: http_addr,
    };
    let book = Arc::new(Mutex::new(AddressBook::new(expected, placeholder)));
    let service = Arc::new(PeerService {
        replica: replica.clone(),
        book: book.clone(),
        transport: OnceLock::new(),
    });
    let transport_config = TransportConfig {
        node: options.id.clone(),
        region: region.clone(),
        bind: options.quic_bind,
        tls: options.tls,
        wan: wan_model(settings),
        request_timeout: settings.request_timeout,
    };
    let transport =
        Transport::start(transport_config, Arc::new(PeerHandler(service.clone()))).await?;
    let quic_addr = transport.local_addr();
    let me = MemberAddress {
        node: options.id.clone(),
        region: region.clone(),
        quic: quic_addr,
        http: http_addr,
    };
    book.lock()
        .expect("address book lock")
        .merge(std::slice::from_ref(&me));
    let _ = service.transport.set(transport.clone());
    for seed in &options.seeds {
        if let Some(seed_region) = settings.topology.region_of(&seed.node) {
            transport.set_peer(seed.node.clone(), seed_region.clone(), seed.addr)?;
        }
    }
    let dispatch = Arc::new(NodeDispatch {
        me: options.id.clone(),
        service: service.clone(),
        transport: transport.clone(),
    });
    let coordinator = Arc::new(Coordinator::new(
        options.id.clone(),
        region.clone(),
        ring.clone(),
        dispatch,
        settings.request_timeout,
    ));
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let seeds: Vec<NodeId> = options.seeds.iter().map(|seed| seed.node.clone()).collect();
    tasks.spawn(exchange_addresses(
        options.id.clone(),
        service.clone(),
        transport.clone(),
        seeds,
        stopped.clone(),
    ));
    let state = ApiState::new(
        me.clone(),
        options.settings.clone(),
        coordinator,
        book,
        storage.clone(),
        transport.clone(),
    );
    let mut http_stopped = stopped.clone();
    tasks.spawn(async move {
        let shutdown = async move {
            let _ = http_stopped.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(http_listener, api::router(state))
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "HTTP server failed");
        }
    });
    tracing::info!(node = %options.id, %region, %http_addr, %quic_addr, "node started");
    Ok(RunningNode {
        id: options.id,
        region,
        http_addr,
        quic_addr,
        stop,
        tasks,
        transport,
        storage,
    })
}

/// Exchanges address books with the seeds until every member is known, and with one
/// random known member every interval after that (so a restarted member's new address
/// spreads).
async fn exchange_addresses(
    me: NodeId,
    service: Arc<PeerService>,
    transport: Transport<PeerRequest, PeerResponse>,
    seeds: Vec<NodeId>,
    mut stopped: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(limits::ADDRESS_GOSSIP_INTERVAL_MS);
    loop {
        let (complete, known) = {
            let book = service.book.lock().expect("address book lock");
            (book.is_complete(), book.known())
        };
        let mut targets: Vec<NodeId> = if complete { Vec::new() } else { seeds.clone() };
        let others: Vec<&MemberAddress> = known.iter().filter(|member| member.node != me).collect();
        if let Some(peer) = others.choose(&mut rand::thread_rng()) {
            targets.push(peer.node.clone());
        }
        for target in targets {
            if target == me {
                continue;
            }
            if let Ok(PeerResponse::Members(heard)) = transport
                .request(
                    &target,
                    &PeerRequest::Members {
                        known: known.clone(),
                    },
                )
                .await
            {
                if heard.len() <= limits::MEMBERS_MAX {
                    service.learn(&heard);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}
