//! One client request → the replicas of its key, until its consistency level is met.
//!
//! Writes go to every replica of the key (one makes the new version, then the others
//! merge it; when this node made it, they get it while this node's flush still runs,
//! and this node's copy counts once flushed: `node::incarnation` says why that cannot
//! hand out a dot twice). Reads ask only the replicas their level needs, nearest first
//! (this node, then the local region; suspected and slow replicas last in their region);
//! one more for each that fails, and all of them once the replicas asked are later than
//! their own observed p99 (`latency`, at most `READ_SPECULATE_MS`), within a per-node
//! speculation budget. The nearest sends its object, the
//! others its digest; a digest that differs makes the read ask again for the objects
//! (which it merges and repairs), as Cassandra's digest reads do (`read`). Either
//! returns as soon as the level is met or can no longer be met, or when the request
//! timeout passes, saying how many replicas answered. Requests already sent are not
//! cancelled: late replies still land on the replicas (writes), and feed read repair
//! (reads). Replicas a read did not ask are brought up to date by anti-entropy.
//!
//! Every decision is made by the pure rounds in `round` (who is asked, what counts,
//! when to speculate, answer and repair) over the rules in `quorum`; `write` and `read`
//! only carry their effects out with tokio, and `sim::dst` runs the same rounds.

mod dispatch;
pub mod latency;
pub mod quorum;
pub mod reach;
mod read;
pub mod requests;
pub mod round;
pub mod scan;
mod write;

pub use dispatch::{Dispatch, DispatchError, Durable};

use crate::clock::{Hlc, HybridClock, VersionVector};
use crate::crdt::DocOp;
use crate::ids::{NodeId, Region};
use crate::limits;
use crate::membership::ownership::RingView;
use crate::object::{Blob, Object, ObjectKey};
use crate::wire::{PeerRequest, PeerResponse, Refusal};
use latency::{LatencyTracker, SpeculationBudget};
use quorum::{Level, QuorumError, QuorumTracker, Requirement};
use round::Health;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// What the coordinator needs to know of the cluster: the rings in force and which
/// nodes the failure detector holds dead (skipped: a dead replica costs no timeout).
pub trait ClusterView: Send + Sync + 'static {
    fn view(&self) -> Arc<RingView>;
    fn is_dead(&self, node: &NodeId) -> bool;
    /// Whether the failure detector suspects `node` (not yet dead): a round asks it
    /// only when the level cannot be met without it.
    fn is_suspect(&self, _node: &NodeId) -> bool {
        false
    }
}

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error(
        "consistency {level} not reached: {acked} of {replicas} replicas answered, {needed} needed"
    )]
    QuorumNotReached {
        level: Level,
        needed: usize,
        acked: usize,
        replicas: usize,
    },
    #[error("consistency {level} timed out after {after_ms} ms: {answered} of {replicas} replicas answered, {acked} acknowledged, {needed} needed{short}")]
    Timeout {
        level: Level,
        needed: usize,
        acked: usize,
        answered: usize,
        replicas: usize,
        after_ms: u64,
        /// Which part of the requirement was not met, when more than the total says
        /// ("; short in us-east 1 of 2"), else "".
        short: String,
    },
    #[error("level cannot be met for this key: {0}")]
    Level(#[from] QuorumError),
    #[error("{message}")]
    Refused { refusal: Refusal, message: String },
}

/// How a class's requests use the replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Writes for dead replicas go to fallbacks as hints (sloppy quorum); off, a dead
    /// replica is a failed acknowledgement (strict quorum).
    pub sloppy: bool,
    /// Reads repair the replicas that answered with less before returning.
    pub sync_repair: bool,
}

/// The wall clock a node reads, in milliseconds since the Unix epoch. Injectable so
/// tests and chaos runs can move a node's time.
pub trait WallClock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// Counters shown in `/v1/status`.
#[derive(Debug, Default)]
pub struct CoordinatorStats {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub failures: AtomicU64,
    pub read_repairs: AtomicU64,
    /// Reads whose digests differed from the object they got, so asked again for every
    /// replica's object: replicas that disagreed (a write still replicating, or a
    /// replica behind).
    pub digest_mismatches: AtomicU64,
    /// Reads that asked more replicas than they needed because those asked were later
    /// than their observed p99.
    pub speculations: AtomicU64,
    /// Speculations the per-node budget refused (`SPECULATION_SHARE_PER_MILLE`): those
    /// reads waited for the replicas they had asked.
    pub speculations_refused: AtomicU64,
    /// Requests sent again to replicas that had not answered within the resend wait
    /// (each round's resend counts once, however many replicas it went to).
    pub resends: AtomicU64,
    /// Probes of peers silent for `PEER_SILENT_AFTER_MS` (treated as dead here).
    pub silent_probes: AtomicU64,
    /// How long each request took, by operation, class, level and outcome.
    pub latencies: requests::RequestLatencies,
}

/// Coordinates client requests on one node.
pub struct Coordinator {
    region: Region,
    node: NodeId,
    cluster: Arc<dyn ClusterView>,
    dispatch: Arc<dyn Dispatch>,
    clock: Mutex<HybridClock>,
    wall: Arc<dyn WallClock>,
    timeout: Duration,
    /// Writes for dead replicas go to fallbacks as hints (sloppy quorum).
    sloppy: bool,
    repairs: Arc<Semaphore>,
    /// The peers' response times, for speculation and the order replicas are asked in.
    latency: Arc<Mutex<LatencyTracker>>,
    /// The per-node speculation budget.
    budget: Mutex<SpeculationBudget>,
    /// The time the latency samples are taken against.
    epoch: Instant,
    pub stats: Arc<CoordinatorStats>,
}

/// Whether a request's outcome came from the peer itself (an answer, an error or a
/// refusal of its own), not from its silence (a timeout, no connection).
fn heard_from(response: &Result<PeerResponse, DispatchError>) -> bool {
    matches!(
        response,
        Ok(_)
            | Err(DispatchError::Peer { .. }
                | DispatchError::Refused { .. }
                | DispatchError::Unexpected { .. })
    )
}

/// A replica's reply to one fanned-out request. The response is boxed: a reply channel
/// allocates room for 32 replies at once, and an unboxed response is 280 bytes (a 9 KiB
/// allocation per write and read showed in profiles).
struct Reply {
    index: usize,
    response: Box<Result<PeerResponse, DispatchError>>,
}

impl Coordinator {
    pub fn new(
        node: NodeId,
        region: Region,
        cluster: Arc<dyn ClusterView>,
        dispatch: Arc<dyn Dispatch>,
        wall: Arc<dyn WallClock>,
        timeout: Duration,
        sloppy: bool,
    ) -> Self {
        Coordinator {
            region,
            node,
            cluster,
            dispatch,
            clock: Mutex::new(HybridClock::new(limits::HLC_DRIFT_MS_MAX)),
            wall,
            timeout,
            sloppy,
            repairs: Arc::new(Semaphore::new(limits::READ_REPAIRS_IN_FLIGHT_MAX)),
            latency: Arc::default(),
            budget: Mutex::default(),
            epoch: Instant::now(),
            stats: Arc::default(),
        }
    }

    /// The region this node serves from.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The replicas of a key and what `level` needs of them: the current owners, local
    /// region first (they vote), then the owners a pending ring change adds (they get
    /// every request but do not vote); also this node's index among the voters and
    /// which replicas the failure detector holds dead.
    /// A replica this node has heard nothing from for `PEER_SILENT_AFTER_MS` counts as
    /// dead here too (`latency`); one due a probe gets a digest read of `key`, whose
    /// answer ends its silence.
    fn plan(&self, key: &ObjectKey, level: Level) -> Result<Planned, CoordinatorError> {
        let partitions = self.cluster.view().current.partition_count();
        let planned = self.plan_partition(key.partition(partitions), level)?;
        if planned.dead.iter().any(|dead| *dead) {
            let now_ms = ms_since(self.epoch);
            let mut due = Vec::new();
            if let Ok(mut latency) = self.latency.lock() {
                for node in &planned.nodes {
                    if latency.probe_due(node, now_ms) {
                        due.push(node.clone());
                    }
                }
            }
            let probes = due.len() as u64;
            self.stats
                .silent_probes
                .fetch_add(probes, Ordering::Relaxed);
            for node in due {
                let probe = self.tracked_send(&node, PeerRequest::Digest { key: key.clone() });
                tokio::spawn(probe);
            }
        }
        Ok(planned)
    }

    /// `plan` of every key of `partition`.
    fn plan_partition(
        &self,
        partition: crate::ids::PartitionId,
        level: Level,
    ) -> Result<Planned, CoordinatorError> {
        let view = self.cluster.view();
        let (voting, extra) = view.replicas_for(partition, &self.region);
        let regions: Vec<Region> = voting
            .iter()
            .map(|replica| replica.region.clone())
            .collect();
        let requirement = Requirement::new(level, &regions, &self.region)?;
        let tracker = QuorumTracker::new(requirement, regions);
        let here = voting.iter().position(|replica| replica.node == self.node);
        let nodes: Vec<NodeId> = voting
            .into_iter()
            .chain(extra)
            .map(|replica| replica.node)
            .collect();
        let (dead, health) = self.dead_and_health(&nodes);
        Ok(Planned {
            nodes,
            tracker,
            here,
            dead,
            health,
        })
    }

    /// What this node knows of `nodes` beyond dead or alive: suspicion and p99.
    fn health_of(&self, nodes: &[NodeId]) -> Health {
        self.dead_and_health(nodes).1
    }

    /// Which of `nodes` count as dead here (the failure detector holds them dead, or
    /// they are silent: `latency`), and their health; one lock of the latency table.
    fn dead_and_health(&self, nodes: &[NodeId]) -> (Vec<bool>, Health) {
        let mut dead: Vec<bool> = nodes
            .iter()
            .map(|node| self.cluster.is_dead(node))
            .collect();
        let suspect = nodes
            .iter()
            .map(|node| self.cluster.is_suspect(node))
            .collect();
        let now_ms = ms_since(self.epoch);
        let latency = self.latency.lock().expect("latency lock poisoned");
        for (node, dead) in nodes.iter().zip(dead.iter_mut()) {
            *dead |= *node != self.node && latency.is_silent(node, now_ms);
        }
        let p99_ms = nodes
            .iter()
            .map(|node| latency.p99_ms(node, now_ms))
            .collect();
        (dead, Health { suspect, p99_ms })
    }

    /// `send` of a read request, timing the reply (or failure) into the peer's latency
    /// histogram. Only reads are timed: the delay is a read's, and a write's reply
    /// also waits for the replica's flush.
    fn timed_send(
        &self,
        node: &NodeId,
        request: PeerRequest,
    ) -> impl std::future::Future<Output = Result<PeerResponse, DispatchError>> + Send + 'static
    {
        self.noted_send(node, request, true)
    }

    /// `send`, noting the request and any answer in the peer's silence (`latency`).
    fn tracked_send(
        &self,
        node: &NodeId,
        request: PeerRequest,
    ) -> impl std::future::Future<Output = Result<PeerResponse, DispatchError>> + Send + 'static
    {
        self.noted_send(node, request, false)
    }

    /// `send`, noting the request in the peer's silence and, when it comes, its answer
    /// (and, `timed`, its response time): one lock of the latency table each.
    fn noted_send(
        &self,
        node: &NodeId,
        request: PeerRequest,
        timed: bool,
    ) -> impl std::future::Future<Output = Result<PeerResponse, DispatchError>> + Send + 'static
    {
        let future = self.dispatch.send(node, request);
        let latency = self.latency.clone();
        let (node, epoch) = (node.clone(), self.epoch);
        if let Ok(mut latency) = latency.lock() {
            latency.sent(&node, ms_since(epoch));
        }
        async move {
            let sent = Instant::now();
            let response = future.await;
            let heard = heard_from(&response);
            if heard || timed {
                let elapsed_ms = ms_since(sent);
                let now_ms = ms_since(epoch);
                if let Ok(mut latency) = latency.lock() {
                    if heard {
                        latency.heard(&node);
                    }
                    if timed {
                        latency.record(&node, elapsed_ms, now_ms);
                    }
                }
            }
            response
        }
    }

    /// A live fallback for each dead voter (sloppy quorum): `round::fallbacks` over
    /// the current ring's preference list.
    fn fallbacks_for(
        &self,
        key: &ObjectKey,
        nodes: &[NodeId],
        dead: &[usize],
    ) -> Vec<(usize, NodeId, Region)> {
        let view = self.cluster.view();
        let partition = key.partition(view.current.partition_count());
        let list = view.current.preference_list(partition, &self.region);
        let now_ms = ms_since(self.epoch);
        let latency = self.latency.lock().expect("latency lock poisoned");
        round::fallbacks(&list, nodes, dead, |node| {
            self.cluster.is_dead(node) || (*node != self.node && latency.is_silent(node, now_ms))
        })
    }

    /// Sends one request in its own task; its reply goes to `sender` as replica `index`.
    fn spawn_send(
        &self,
        sender: &mpsc::Sender<Reply>,
        index: usize,
        node: &NodeId,
        request: PeerRequest,
    ) {
        let future = self.tracked_send(node, request);
        let sender = sender.clone();
        tokio::spawn(async move {
            let response = future.await;
            // The receiver may be gone when the request finished early: a late reply.
            let response = Box::new(response);
            let _ = sender.send(Reply { index, response }).await;
        });
    }

    /// Writes `value` (`None` deletes) superseding what `context` has seen, at `level`.
    /// Returns the new object, whose context the client sends with its next write.
    pub async fn put(
        &self,
        key: &ObjectKey,
        value: Option<Blob>,
        context: VersionVector,
        level: Level,
    ) -> Result<Object, CoordinatorError> {
        let policy = Policy {
            sloppy: self.sloppy,
            sync_repair: false,
        };
        self.write(key, level, policy, |timestamp| PeerRequest::Mint {
            key: key.clone(),
            context,
            value,
            timestamp,
        })
        .await
        .map(|(object, _)| object)
    }

    /// Applies `op` to the document of `key` at `level` under `policy`: one replica
    /// applies it and the delta it returns goes to the others. Returns the document as
    /// that replica stored it.
    pub async fn apply(
        &self,
        key: &ObjectKey,
        op: DocOp,
        level: Level,
        policy: Policy,
    ) -> Result<Object, CoordinatorError> {
        let (object, _) = self.apply_outcome(key, op, level, policy).await?;
        Ok(object)
    }

    /// `apply`, also returning what the replica that applied a Redis command says it
    /// answers (`None` for the other documents).
    pub async fn apply_outcome(
        &self,
        key: &ObjectKey,
        op: DocOp,
        level: Level,
        policy: Policy,
    ) -> Result<(Object, Option<crate::crdt::redis::RedisOutcome>), CoordinatorError> {
        self.write(key, level, policy, |at| PeerRequest::Apply {
            key: key.clone(),
            op,
            at,
        })
        .await
    }

    /// This node's HLC time now.
    pub fn now(&self) -> Hlc {
        self.clock
            .lock()
            .expect("clock lock poisoned")
            .now(self.wall.now_ms())
    }
}

/// The replicas of one request (`Coordinator::plan`).
struct Planned {
    nodes: Vec<NodeId>,
    tracker: QuorumTracker,
    here: Option<usize>,
    dead: Vec<bool>,
    health: Health,
}

/// Milliseconds since `started`: the time a round is given.
fn ms_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The instant `ms` milliseconds after `started`: when a round wants to be woken.
fn instant_at(started: Instant, ms: u64) -> Instant {
    started + Duration::from_millis(ms)
}

/// A duration in whole milliseconds, for a round.
fn whole_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
