//! Starting a node, one step per subsystem: the store, the listeners, the cluster view
//! and peer service, the coordinator, the background workers, sessions and the API.
//!
//! Each step builds its part from the ones before it and returns what later steps
//! need; none decides a protocol question. The order matters where a part needs
//! another's address or handle (the transport binds before the service that answers
//! it exists, through `LateHandler`).

use super::{check_chaos, DataDir, LateHandler, NodeDispatch, NodeError, NodeOptions, RunningNode};
use crate::api::{self, AdminState, Admission, Api, EdgeParts, KvState, SessionState, StatusState};
use crate::config::{advertised, Listener, Settings};
use crate::coordinator::reach::LevelCheck;
use crate::coordinator::requests::Op;
use crate::coordinator::Coordinator;
use crate::handoff::hints::{HintWorker, Hints};
use crate::handoff::transfer::{TransferStats, TransferWorker};
use crate::ids::{NodeId, Region};
use crate::limits;
use crate::membership::swim::{MemberInfo, Status, Swim};
use crate::object::Class;
use crate::peer::PeerService;
use crate::replica::trees::Trees;
use crate::replica::Replica;
use crate::resp;
use crate::ring::RingConfig;
use crate::runtime::batch;
use crate::runtime::clock::NodeClock;
use crate::runtime::gossip::Gossip;
use crate::runtime::hub::{self, Hub};
use crate::runtime::incarnation::{self, EarlySend, Incarnation};
use crate::runtime::regions::RegionWatch;
use crate::runtime::repair::{RepairStats, RepairWorker};
use crate::runtime::state::{now_ms, ClusterState};
use crate::session::tokens::TokenKeys;
use crate::session::{SessionService, Sweeper};
use crate::storage::{CommitGate, MemoryStorage, SledStorage, Storage, StorageOptions};
use crate::transport::{Transport, TransportConfig, WanModel};
use crate::wire::{PeerRequest, PeerResponse};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Starts a node: opens storage, binds QUIC and HTTP, joins through the seeds.
pub async fn start(options: NodeOptions) -> Result<RunningNode, NodeError> {
    check_chaos(options.chaos, options.http_bind, options.quic_bind)?;
    if let Some(bind) = options.resp_bind {
        resp::check_bind(bind, options.resp_password.as_ref())?;
    }
    // Before anything binds: a node that could not publish its addresses starts nothing.
    options
        .advertise
        .check(options.quic_bind, options.http_bind, options.resp_bind)?;
    let region = region_of(&options)?;
    let store = open_store(&options)?;
    let bound = bind_listeners(&options, &region).await?;
    let (me, http_addr) = (bound.me.clone(), bound.me.http);
    let resp_addr = bound.resp.as_ref().map(|resp| resp.advertised);
    let core = join_cluster(&options, me, store, bound.transport, &bound.late)?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let workers = spawn_workers(&options.settings, &core, &mut tasks, &stopped);
    let sessions = start_sessions(&options, &core, &workers, &mut tasks, &stopped);
    if sessions.is_none() && bound.resp.is_some() {
        // RESP keys expire like sessions: their sweeper runs without the session
        // service too (its counters then show nowhere).
        spawn_sweeper(&options, &core, Arc::default(), &mut tasks, &stopped);
    }
    let resp = bound.resp.map(|resp| {
        let stats = spawn_resp(
            &options,
            &region,
            (core.coordinator.clone(), workers.hub.clone()),
            resp.bound,
            resp.listener,
            &mut tasks,
            stopped.clone(),
        );
        (resp.advertised, stats)
    });
    spawn_api(
        &options,
        &core,
        workers,
        sessions,
        Listening {
            http: bound.http,
            resp,
        },
        &mut tasks,
        stopped,
    );
    tracing::info!(
        node = %options.id,
        %region,
        %http_addr,
        ?resp_addr,
        quic_addr = %core.me.quic,
        status = ?initial_status(&options.settings, &options.id),
        "node started"
    );
    let topology = &options.settings.topology;
    if let Some(recommended) = topology.recommended_partitions() {
        tracing::warn!(
            partitions = topology.partitions,
            recommended,
            "regions this large move more than 1.1 x the ideal share on a join or leave \
             at this many partitions (README: Balanced placement)"
        );
    }
    Ok(RunningNode {
        id: options.id,
        region,
        http_addr,
        quic_addr: core.me.quic,
        resp_addr,
        stop,
        exit: core.gossip.exit_signal(),
        tasks,
        transport: core.transport,
        storage: core.storage,
        incarnation: core.incarnation,
        gossip: core.gossip,
        clock: core.clock,
    })
}

/// The parts of a started node that the workers, sessions and the API share.
struct Core {
    me: MemberInfo,
    storage: Arc<dyn Storage>,
    incarnation: Incarnation,
    replica: Arc<Replica>,
    transport: Transport<PeerRequest, PeerResponse>,
    state: Arc<ClusterState>,
    gossip: Arc<Gossip>,
    hints: Arc<Hints>,
    service: Arc<PeerService>,
    early: Arc<EarlySend>,
    clock: Arc<NodeClock>,
    coordinator: Arc<Coordinator>,
}

/// What the store step opens: the storage, this life's incarnation and the replica.
struct Store {
    storage: Arc<dyn Storage>,
    incarnation: Incarnation,
    replica: Arc<Replica>,
    /// The store held no data when it opened (new, or wiped).
    empty: bool,
}

/// The counters the background workers keep, for `/v1/status`.
struct Workers {
    transfers: Arc<TransferStats>,
    repair: Arc<RepairStats>,
    /// The region's change feeds, read while anyone listens (`runtime::hub`).
    hub: Hub,
    /// What reads the region's feeds: the hub's readers and `GET /v1/feed`.
    feeds: hub::Sources,
}

/// The node's region: from the topology, or from `--region` for an added node.
fn region_of(options: &NodeOptions) -> Result<Region, NodeError> {
    let topology = &options.settings.topology;
    if let Some(region) = topology.region_of(&options.id) {
        return Ok(region.clone());
    }
    let region = options
        .region
        .clone()
        .ok_or_else(|| NodeError::UnknownNode(options.id.clone()))?;
    if !topology.regions.iter().any(|spec| spec.name == region) {
        let known = topology
            .regions
            .iter()
            .map(|spec| spec.name.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(NodeError::UnknownRegion { region, known });
    }
    Ok(region)
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

/// Opens the store, takes this life's incarnation and builds the replica on them (its
/// Merkle trees left to rebuild from what the store holds).
fn open_store(options: &NodeOptions) -> Result<Store, NodeError> {
    let settings = &options.settings;
    let storage = open_storage(options)?;
    let incarnation = incarnation::begin(storage.as_ref())?;
    tracing::info!(
        node = %options.id,
        incarnation = incarnation.number,
        new = incarnation.fresh,
        "incarnation"
    );
    let gate = CommitGate::new(storage.clone(), settings.durability);
    // A new store holds nothing: its trees are ready. Any other's are rebuilt in the
    // background once the node serves (`spawn_tree_rebuild`).
    let (depth, partitions) = (limits::NODE_TREE_DEPTH, settings.topology.partitions);
    // Whether the store holds any data, not whether this life's incarnation is new (a
    // crash after early sends also takes a new one, with its data kept).
    let empty = storage.is_empty()?;
    let trees = Arc::new(match empty {
        true => Trees::new(depth, partitions),
        false => Trees::unbuilt(depth, partitions),
    });
    let replica = Arc::new(Replica::new(
        incarnation.actor(&options.id),
        settings.topology.partitions,
        storage.clone(),
        gate,
        trees,
    ));
    Ok(Store {
        storage,
        incarnation,
        replica,
        empty,
    })
}

/// The bound listeners, and this node as it advertises itself.
struct Bound {
    http: TcpListener,
    resp: Option<RespListener>,
    transport: Transport<PeerRequest, PeerResponse>,
    late: Arc<LateHandler>,
    me: MemberInfo,
}

struct RespListener {
    listener: TcpListener,
    bound: SocketAddr,
    advertised: SocketAddr,
}

/// Binds HTTP, RESP and QUIC, and names the addresses the node publishes for them
/// (`config::advertised`): what peers dial and clients are handed, never 0.0.0.0.
async fn bind_listeners(options: &NodeOptions, region: &Region) -> Result<Bound, NodeError> {
    let advertise = options.advertise;
    let (http, http_bound) = bind_http(options.http_bind).await?;
    let resp = match bind_resp(options).await? {
        Some((listener, bound)) => Some(RespListener {
            listener,
            bound,
            advertised: advertised(Listener::Resp, bound, advertise.resp)?,
        }),
        None => None,
    };
    let (transport, late) = start_transport(options, region).await?;
    let quic_bound = transport.local_addr();
    let me = MemberInfo {
        node: options.id.clone(),
        region: region.clone(),
        quic: advertised(Listener::Quic, quic_bound, advertise.quic)?,
        http: advertised(Listener::Http, http_bound, advertise.http)?,
        weight: 1,
    };
    tracing::info!(
        %http_bound,
        %quic_bound,
        http_advertised = %me.http,
        quic_advertised = %me.quic,
        "listening"
    );
    Ok(Bound {
        http,
        resp,
        transport,
        late,
        me,
    })
}

/// Binds the HTTP listener (first, so a taken port fails before anything starts).
async fn bind_http(bind: SocketAddr) -> Result<(TcpListener, SocketAddr), NodeError> {
    let failed = |source| NodeError::HttpBind { addr: bind, source };
    let listener = TcpListener::bind(bind).await.map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    Ok((listener, addr))
}

/// Binds the RESP listener, if the node serves one (its address passed the password
/// rule in `start`).
async fn bind_resp(options: &NodeOptions) -> Result<Option<(TcpListener, SocketAddr)>, NodeError> {
    let Some(bind) = options.resp_bind else {
        return Ok(None);
    };
    let failed = |source| NodeError::RespBind { addr: bind, source };
    let listener = TcpListener::bind(bind).await.map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    Ok(Some((listener, addr)))
}

fn wan_model(settings: &Settings) -> WanModel {
    let latency = &settings.topology.latency;
    WanModel {
        rtt_ms: latency.rtt_ms.clone(),
        intra_region_rtt_ms: latency.intra_region_rtt_ms,
        jitter_ms: latency.jitter_ms,
    }
}

/// Binds QUIC. The transport needs its handler at start and the handler needs the
/// membership state, which needs the bound QUIC address: bind through a late-bound
/// handler that `join_cluster` fills in.
async fn start_transport(
    options: &NodeOptions,
    region: &Region,
) -> Result<(Transport<PeerRequest, PeerResponse>, Arc<LateHandler>), NodeError> {
    let config = TransportConfig {
        node: options.id.clone(),
        region: region.clone(),
        bind: options.quic_bind,
        tls: options.tls.clone(),
        wan: wan_model(&options.settings),
        request_timeout: options.settings.request_timeout,
    };
    let late = Arc::new(LateHandler(std::sync::OnceLock::new()));
    let transport = Transport::start(config, late.clone()).await?;
    Ok((transport, late))
}

/// A node the topology names starts a member; any other joins.
fn initial_status(settings: &Settings, node: &NodeId) -> Status {
    if settings.topology.region_of(node).is_some() {
        Status::Member
    } else {
        Status::Joining
    }
}

/// The SWIM state machine for this node, held to the topology's regions.
fn swim_for(settings: &Settings, me: MemberInfo) -> Swim {
    let status = initial_status(settings, &me.node);
    let mut swim = Swim::new(me, status, settings.swim.clone(), rand::random(), now_ms());
    let regions = settings
        .topology
        .regions
        .iter()
        .map(|spec| spec.name.clone())
        .collect();
    swim.set_allowed_regions(Some(regions));
    // The topology names its nodes' regions: gossip cannot move them elsewhere.
    swim.pin_regions(
        settings
            .topology
            .nodes()
            .map(|(node, region)| (node.clone(), region.clone()))
            .collect(),
    );
    swim
}

/// Builds the cluster view, gossip and the peer service, binds the service to the
/// transport, joins through the seeds and builds the coordinator.
fn join_cluster(
    options: &NodeOptions,
    me: MemberInfo,
    store: Store,
    transport: Transport<PeerRequest, PeerResponse>,
    late: &LateHandler,
) -> Result<Core, NodeError> {
    let settings = &options.settings;
    let swim = swim_for(settings, me.clone());
    let state = Arc::new(ClusterState::new(me.clone(), swim, settings)?);
    if store.empty && store.incarnation.fresh && settings.anti_entropy_rate > 0 {
        // A store that lost what the topology says this node held (a wiped disk, or the
        // cluster's first start: no data and no incarnation to keep): each partition is
        // fetched whole from one replica, as joins fetch, then compared by anti-entropy
        // (with repair off, neither runs). A node stopped cleanly before it held any
        // data lost nothing: hints and anti-entropy bring it what it missed.
        state.start_filling();
    }
    let gossip = Gossip::new(state.clone(), options.tls.clone());
    gossip.attach(transport.clone());
    let hints = Arc::new(Hints::open(store.storage.clone())?);
    let service = Arc::new(PeerService {
        replica: store.replica.clone(),
        hints: hints.clone(),
        state: state.clone(),
        gossip: gossip.clone(),
        forwards: Arc::new(tokio::sync::Semaphore::new(limits::FORWARDS_IN_FLIGHT_MAX)),
        refused: Default::default(),
        served: Default::default(),
        overview: Default::default(),
    });
    let _ = late.0.set(Arc::downgrade(&service));
    join_seeds(options, &me.region, &transport, &state, &gossip)?;
    let early = EarlySend::new(store.storage.clone(), store.incarnation);
    let dispatch = Arc::new(NodeDispatch {
        me: options.id.clone(),
        service: service.clone(),
        batcher: Arc::new(batch::Batcher::new(transport.clone())),
        early: early.clone(),
    });
    let clock = Arc::new(NodeClock::default());
    let coordinator = Arc::new(Coordinator::new(
        options.id.clone(),
        me.region.clone(),
        state.clone(),
        dispatch,
        clock.clone(),
        settings.request_timeout,
        settings.sloppy,
    ));
    Ok(Core {
        me,
        storage: store.storage,
        incarnation: store.incarnation,
        replica: store.replica,
        transport,
        state,
        gossip,
        hints,
        service,
        early,
        clock,
        coordinator,
    })
}

/// Tells the transport where the seeds are and sends them this node's join.
fn join_seeds(
    options: &NodeOptions,
    region: &Region,
    transport: &Transport<PeerRequest, PeerResponse>,
    state: &ClusterState,
    gossip: &Gossip,
) -> Result<(), NodeError> {
    let topology = &options.settings.topology;
    let mut seeds = Vec::new();
    for seed in options.seeds.iter().filter(|seed| seed.node != options.id) {
        let seed_region = topology.region_of(&seed.node).unwrap_or(region).clone();
        transport.set_peer(seed.node.clone(), seed_region, seed.addr)?;
        seeds.push(seed.node.clone());
    }
    let outputs = state.with_swim(|swim| swim.join(&seeds, now_ms()));
    gossip.send_all(outputs);
    Ok(())
}

/// Rebuilds the Merkle trees of a store opened again, one partition at a time on the
/// blocking pool while the node serves (`Trees::rebuild_pending`); a partition the store
/// cannot read is tried again after a pause. Stops between partitions when the node does.
fn spawn_tree_rebuild(
    replica: Arc<Replica>,
    tasks: &mut JoinSet<()>,
    mut stopped: watch::Receiver<bool>,
) {
    if replica.trees().pending() == 0 {
        return;
    }
    tasks.spawn(async move {
        let started = std::time::Instant::now();
        loop {
            let (trees, storage, stop) = (
                replica.trees().clone(),
                replica.storage().clone(),
                stopped.clone(),
            );
            let pass = tokio::task::spawn_blocking(move || {
                trees.rebuild_pending(storage.as_ref(), || *stop.borrow())
            })
            .await
            .map_err(|error| error.to_string())
            .and_then(|pass| pass.map_err(|error| error.to_string()));
            match pass {
                Ok(_) if replica.trees().pending() == 0 => {
                    let trees = replica.trees();
                    tracing::info!(
                        keys = trees.keys_total(),
                        bytes = trees.bytes_total(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "merkle trees rebuilt"
                    );
                    return;
                }
                Ok(_) => return, // stopped
                Err(error) => tracing::warn!(%error, "merkle tree rebuild: retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(limits::TREE_REBUILD_RETRY) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    });
}

/// Spawns the gossip driver, the transfer worker, hint replay and anti-entropy.
fn spawn_workers(
    settings: &Settings,
    core: &Core,
    tasks: &mut JoinSet<()>,
    stopped: &watch::Receiver<bool>,
) -> Workers {
    tasks.spawn(core.gossip.clone().run(stopped.clone()));
    spawn_tree_rebuild(core.replica.clone(), tasks, stopped.clone());
    let transfers = Arc::new(TransferStats::default());
    let transfer = TransferWorker {
        state: core.state.clone(),
        transport: core.transport.clone(),
        replica: core.replica.clone(),
        gossip: core.gossip.clone(),
        stats: transfers.clone(),
    };
    tasks.spawn(transfer.run(stopped.clone()));
    let hint_worker = HintWorker {
        hints: core.hints.clone(),
        state: core.state.clone(),
        transport: core.transport.clone(),
        rate_per_s: settings.hint_replay_rate,
        window_ms: settings.hint_window.as_millis() as u64,
    };
    tasks.spawn(hint_worker.run(stopped.clone()));
    let repair = Arc::new(RepairStats::default());
    let repair_worker = RepairWorker {
        clock: core.clock.clone(),
        tombstone_grace_ms: settings.tombstone_grace.as_millis() as u64,
        state: core.state.clone(),
        transport: core.transport.clone(),
        replica: core.replica.clone(),
        stats: repair.clone(),
        rate_bytes_per_s: settings.anti_entropy_rate,
    };
    tasks.spawn(repair_worker.run(stopped.clone()));
    let hub = Hub::new();
    let sources = hub::Sources {
        feed: core.replica.feed().clone(),
        state: core.state.clone(),
        transport: core.transport.clone(),
        wait: (settings.request_timeout / 2)
            .min(std::time::Duration::from_millis(limits::FEED_WAIT_MS)),
    };
    tasks.spawn(hub::run(hub.clone(), sources.clone(), stopped.clone()));
    tasks.spawn(hub::report_expired(
        core.replica.clone(),
        core.state.clone(),
        core.clock.clone(),
        stopped.clone(),
    ));
    Workers {
        transfers,
        repair,
        hub,
        feeds: sources,
    }
}

/// Starts the session service and its sweeper when the node has session keys.
fn start_sessions(
    options: &NodeOptions,
    core: &Core,
    workers: &Workers,
    tasks: &mut JoinSet<()>,
    stopped: &watch::Receiver<bool>,
) -> Option<Arc<SessionService>> {
    let keys = TokenKeys::new(options.session_keys.as_deref()?).ok()?;
    let settings = &options.settings.session;
    // The auth fence watches the other regions through the failure detector and
    // anti-entropy (`session::fence`).
    let regions = RegionWatch::new(
        core.state.clone(),
        workers.repair.clone(),
        core.clock.clone(),
    );
    let mut sessions = SessionService::new(
        core.coordinator.clone(),
        settings.clone(),
        keys,
        core.clock.clone(),
    )
    .with_region_health(Arc::new(regions));
    if settings.near_cache_bytes > 0 {
        let bound = (settings.near_cache_bytes, sessions.stats.near_cache.clone());
        match hub::near_cache(&workers.hub, bound, stopped.clone()) {
            Ok((cache, invalidations)) => {
                tasks.spawn(invalidations);
                sessions = sessions.with_near_cache(cache);
            }
            Err(error) => tracing::warn!(%error, "the near-cache is off"),
        }
    }
    let sessions = Arc::new(sessions);
    spawn_sweeper(options, core, sessions.stats.clone(), tasks, stopped);
    tasks.spawn(sessions.clone().watch_guard(stopped.clone()));
    Some(sessions)
}

/// Runs the expiry sweeper (session documents and RESP keys) until the node stops.
fn spawn_sweeper(
    options: &NodeOptions,
    core: &Core,
    stats: Arc<crate::session::SessionStats>,
    tasks: &mut JoinSet<()>,
    stopped: &watch::Receiver<bool>,
) {
    let sweeper = Sweeper {
        me: options.id.clone(),
        cluster: core.state.clone(),
        storage: core.storage.clone(),
        coordinator: core.coordinator.clone(),
        clock: core.clock.clone(),
        settings: options.settings.session.clone(),
        stats,
    };
    tasks.spawn(sweeper.run(stopped.clone()));
}

mod edges;

use edges::{spawn_api, spawn_resp, Listening};
