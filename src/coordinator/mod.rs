//! One client request → the replicas of its key, until its consistency level is met.
//!
//! Writes go to every replica of the key (one makes the new version, then the others
//! merge it; when this node made it, they get it while this node's flush still runs,
//! and this node's copy counts once flushed: `node::incarnation` says why that cannot
//! hand out a dot twice). Reads ask only the replicas their level needs, nearest first
//! (this node, then the local region); one more for each that fails, and all of them once
//! `READ_SPECULATE_MS` passes without an answer. The nearest sends its object, the
//! others its digest; a digest that differs makes the read ask again for the objects
//! (which it merges and repairs), as Cassandra's digest reads do (`read`). Either
//! returns as soon as the level is met or can no longer be met, or when the request
//! timeout passes, saying how many replicas answered. Requests already sent are not
//! cancelled: late replies still land on the replicas (writes), and feed read repair
//! (reads). Replicas a read did not ask are brought up to date by anti-entropy. The
//! pure rules live in `quorum`.

mod dispatch;
pub mod quorum;
mod read;
pub mod round;

pub use dispatch::{Dispatch, DispatchError, Durable};

use crate::clock::{Hlc, HybridClock, VersionVector};
use crate::crdt::DocOp;
use crate::ids::{NodeId, Region};
use crate::limits;
use crate::membership::ownership::RingView;
use crate::object::{Blob, Object, ObjectKey};
use crate::wire::{PeerError, PeerRequest, PeerResponse, Refusal};
use quorum::{Level, Progress, QuorumError, QuorumTracker, Requirement};
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
    #[error("consistency {level} timed out after {after_ms} ms: {answered} of {replicas} replicas answered, {acked} acknowledged, {needed} needed")]
    Timeout {
        level: Level,
        needed: usize,
        acked: usize,
        answered: usize,
        replicas: usize,
        after_ms: u64,
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
    pub stats: Arc<CoordinatorStats>,
}

/// A replica's reply to one fanned-out request.
struct Reply {
    index: usize,
    response: Result<PeerResponse, DispatchError>,
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
            stats: Arc::default(),
        }
    }

    /// The region this node serves from.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The replicas of a key and what `level` needs of them: the current owners, local
    /// region first (they vote), then the owners a pending ring change adds (they get
    /// every request but do not vote). Dead voters count as failed at once.
    fn plan(
        &self,
        key: &ObjectKey,
        level: Level,
    ) -> Result<(Vec<NodeId>, QuorumTracker), CoordinatorError> {
        let (nodes, mut tracker, dead) = self.plan_with_dead(key, level)?;
        for index in dead {
            tracker.record(index, false);
        }
        Ok((nodes, tracker))
    }

    /// Like `plan`, but leaves dead voters pending and names them (for hints).
    fn plan_with_dead(
        &self,
        key: &ObjectKey,
        level: Level,
    ) -> Result<(Vec<NodeId>, QuorumTracker, Vec<usize>), CoordinatorError> {
        let view = self.cluster.view();
        let partition = key.partition(view.current.partition_count());
        let (voting, extra) = view.replicas_for(partition, &self.region);
        let regions: Vec<Region> = voting
            .iter()
            .map(|replica| replica.region.clone())
            .collect();
        let requirement = Requirement::new(level, &regions, &self.region)?;
        let tracker = QuorumTracker::new(requirement, regions);
        let dead = (0..voting.len())
            .filter(|index| self.cluster.is_dead(&voting[*index].node))
            .collect();
        let nodes = voting
            .into_iter()
            .chain(extra)
            .map(|replica| replica.node)
            .collect();
        Ok((nodes, tracker, dead))
    }

    /// A live fallback for each dead voter (sloppy quorum): the next node in rendezvous
    /// order, from the dead voter's region if one is alive there, else from any region
    /// (so during a region outage its hints spread over the surviving regions).
    fn fallbacks_for(
        &self,
        key: &ObjectKey,
        nodes: &[NodeId],
        dead: &[usize],
    ) -> Vec<(usize, NodeId, Region)> {
        let view = self.cluster.view();
        let partition = key.partition(view.current.partition_count());
        let list = view.current.preference_list(partition, &self.region);
        let regions: Vec<Region> = list
            .replicas
            .iter()
            .map(|replica| replica.region.clone())
            .collect();
        let mut used: Vec<NodeId> = Vec::new();
        let mut chosen = Vec::new();
        for index in dead {
            let usable = |candidate: &&crate::ring::Replica| {
                !nodes.contains(&candidate.node)
                    && !used.contains(&candidate.node)
                    && !self.cluster.is_dead(&candidate.node)
            };
            let same_region = list
                .fallbacks
                .iter()
                .filter(usable)
                .find(|candidate| Some(&candidate.region) == regions.get(*index));
            let pick = same_region.or_else(|| list.fallbacks.iter().find(usable));
            if let Some(fallback) = pick {
                used.push(fallback.node.clone());
                chosen.push((*index, fallback.node.clone(), fallback.region.clone()));
            }
        }
        chosen
    }

    /// The live voters of a key, nearest first: this node if it is one, then the others
    /// in preference order (which lists the local region first).
    fn nearest_first(&self, nodes: &[NodeId], voters: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..voters)
            .filter(|index| !self.cluster.is_dead(&nodes[*index]))
            .collect();
        if let Some(me) = nodes[..voters].iter().position(|node| *node == self.node) {
            order.retain(|index| *index != me);
            order.insert(0, me);
        }
        order
    }

    /// Sends one request in its own task; its reply goes to `sender` as replica `index`.
    fn spawn_send(
        &self,
        sender: &mpsc::Sender<Reply>,
        index: usize,
        node: &NodeId,
        request: PeerRequest,
    ) {
        let future = self.dispatch.send(node, request);
        let sender = sender.clone();
        tokio::spawn(async move {
            let response = future.await;
            // The receiver may be gone when the request finished early: a late reply.
            let _ = sender.send(Reply { index, response }).await;
        });
    }

    fn error_for(
        &self,
        tracker: &QuorumTracker,
        level: Level,
        progress: Progress,
        started: Instant,
    ) -> CoordinatorError {
        let replicas = tracker.replicas();
        match progress {
            Progress::Failed { needed, acked } => CoordinatorError::QuorumNotReached {
                level,
                needed,
                acked,
                replicas,
            },
            _ => CoordinatorError::Timeout {
                level,
                needed: tracker.requirement().total,
                acked: tracker.acked(),
                answered: tracker.answered(),
                replicas,
                after_ms: started.elapsed().as_millis() as u64,
            },
        }
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
        self.write(key, level, policy, |at| PeerRequest::Apply {
            key: key.clone(),
            op,
            at,
        })
        .await
    }

    /// The write path shared by `put` and `apply`: one replica makes the new version
    /// (`first`, given this node's HLC time), then it travels to the other replicas and,
    /// for dead ones under a sloppy policy, to fallbacks as hints.
    async fn write(
        &self,
        key: &ObjectKey,
        level: Level,
        policy: Policy,
        first: impl FnOnce(Hlc) -> PeerRequest,
    ) -> Result<Object, CoordinatorError> {
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let deadline = started + self.timeout;
        let (nodes, mut tracker, dead) = self.plan_with_dead(key, level)?;
        let fallbacks = if policy.sloppy {
            self.fallbacks_for(key, &nodes, &dead)
        } else {
            Vec::new()
        };
        for index in dead
            .iter()
            .filter(|index| !fallbacks.iter().any(|(hinted, _, _)| hinted == *index))
        {
            tracker.record(*index, false);
        }
        let timestamp = self.now();
        let Minted {
            minter,
            stored,
            object,
            durable,
        } = match self
            .mint(&nodes, &mut tracker, first(timestamp), deadline)
            .await
        {
            Ok(minted) => minted,
            Err(refused) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                return Err(refused.unwrap_or_else(|| {
                    self.error_for(&tracker, level, tracker.progress(), started)
                }));
            }
        };
        // A version minted here counts once this node's flush covers it; the others
        // get it meanwhile. Minted elsewhere, the answer already meant durable.
        let mut flushing = durable.map(|wait| (minter, wait));
        let mut progress = match flushing {
            Some(_) => tracker.progress(),
            None => tracker.record(minter, true),
        };
        let mut replies = self.replicate(key, &object, &nodes, minter, &fallbacks);
        while progress == Progress::Pending {
            let Ok(Some(reply)) =
                tokio::time::timeout_at(deadline, next_answer(&mut replies, &mut flushing)).await
            else {
                break;
            };
            if let Some(counted) = count_reply(&mut tracker, &fallbacks, &reply) {
                progress = counted;
            }
        }
        if progress != Progress::Met {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
            return Err(self.error_for(&tracker, level, progress, started));
        }
        Ok(stored)
    }

    /// Sends the new version to every live replica but the minter, and as hints to the
    /// fallbacks of dead ones; their replies arrive on the returned channel.
    fn replicate(
        &self,
        key: &ObjectKey,
        object: &Object,
        nodes: &[NodeId],
        minter: usize,
        fallbacks: &[(usize, NodeId, Region)],
    ) -> mpsc::Receiver<Reply> {
        let merge = PeerRequest::Merge {
            key: key.clone(),
            object: object.clone(),
        };
        let (sender, replies) = mpsc::channel(nodes.len() + fallbacks.len());
        for (index, node) in nodes.iter().enumerate() {
            if index != minter && !self.cluster.is_dead(node) {
                self.spawn_send(&sender, index, node, merge.clone());
            }
        }
        for (index, fallback, _) in fallbacks {
            let hint = PeerRequest::Hint {
                owner: nodes[*index].clone(),
                key: key.clone(),
                object: object.clone(),
            };
            self.spawn_send(&sender, *index, fallback, hint);
        }
        replies
    }

    /// This node's HLC time now.
    pub fn now(&self) -> Hlc {
        self.clock
            .lock()
            .expect("clock lock poisoned")
            .now(self.wall.now_ms())
    }

    /// Asks one replica after another (this node first if it is one, then in preference
    /// order) to make the new version; a replica that fails counts as a failed ack.
    /// Returns who made it, what it stored and what to send the others; or, when no
    /// replica did, the refusal a replica gave (`None`: the level cannot be met).
    async fn mint(
        &self,
        nodes: &[NodeId],
        tracker: &mut QuorumTracker,
        request: PeerRequest,
        deadline: Instant,
    ) -> Result<Minted, Option<CoordinatorError>> {
        let order = self.nearest_first(nodes, tracker.replicas());
        for index in order.into_iter().take(limits::MINT_ATTEMPTS_MAX) {
            let (reply, durable) = match self.dispatch.mint_here(&nodes[index], &request) {
                Some((reply, durable)) => (Ok(Ok(reply)), Some(durable)),
                None => {
                    let sent = self.dispatch.send(&nodes[index], request.clone());
                    (tokio::time::timeout_at(deadline, sent).await, None)
                }
            };
            let minted = |stored, object| Minted {
                minter: index,
                stored,
                object,
                durable,
            };
            match reply {
                Ok(Ok(PeerResponse::Stored(object))) => return Ok(minted(object.clone(), object)),
                Ok(Ok(PeerResponse::Applied { stored, delta })) => {
                    return Ok(minted(*stored, *delta))
                }
                Ok(Ok(PeerResponse::Error(PeerError::Refused { refusal, message }))) => {
                    return Err(Some(CoordinatorError::Refused { refusal, message }))
                }
                Ok(_) => {
                    if matches!(tracker.record(index, false), Progress::Failed { .. }) {
                        return Err(None);
                    }
                }
                Err(_) => return Err(None),
            }
        }
        Err(None)
    }
}

/// A new version: who made it, what it stored, what goes to the other replicas, and,
/// when this node made it, the wait until it is durable here.
struct Minted {
    minter: usize,
    stored: Object,
    object: Object,
    durable: Option<Durable>,
}

/// Counts a write's reply toward its level (a hint in the region of the node that
/// holds it); `None` for a reply from no replica of the plan.
fn count_reply(
    tracker: &mut QuorumTracker,
    fallbacks: &[(usize, NodeId, Region)],
    reply: &Reply,
) -> Option<Progress> {
    if reply.index >= tracker.replicas() {
        return None;
    }
    let ok = matches!(
        reply.response,
        Ok(PeerResponse::Stored(_) | PeerResponse::Done)
    );
    let hinted_in = fallbacks
        .iter()
        .find(|(index, _, _)| *index == reply.index)
        .map(|(_, _, region)| region.clone());
    Some(match hinted_in {
        Some(region) => tracker.record_in_region(reply.index, ok, region),
        None => tracker.record(reply.index, ok),
    })
}

/// The next answer to a write: a replica's reply or, while it runs, this node's own
/// flush of the version it minted (as a reply from the minter). `None` once neither
/// can come.
async fn next_answer(
    replies: &mut mpsc::Receiver<Reply>,
    flushing: &mut Option<(usize, Durable)>,
) -> Option<Reply> {
    let Some((minter, wait)) = flushing.as_mut() else {
        return replies.recv().await;
    };
    let minter = *minter;
    let flushed = tokio::select! {
        outcome = wait => outcome,
        Some(reply) = replies.recv() => return Some(reply),
    };
    *flushing = None;
    Some(Reply {
        index: minter,
        response: flushed.map(|()| PeerResponse::Done),
    })
}

#[cfg(test)]
mod tests;
