//! The node's view of the cluster: the SWIM state machine behind a lock, and the ring
//! view derived from it, rebuilt whenever the member list changes.
//!
//! Readers (the coordinator, the transfer worker, the API) take cheap snapshots; only
//! the gossip driver and the peer service feed the state machine.

use crate::config::Settings;
use crate::coordinator::ClusterView;
use crate::ids::{NodeId, PartitionId, Region};
use crate::membership::ownership::{Owner, RingView};
use crate::membership::swim::{Liveness, MemberInfo, MemberState, Output, Status, Swim};
use crate::ring::RingConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds on the wall clock, plus the node's injected skew (`--chaos`).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Shared membership and ownership state of one node.
pub struct ClusterState {
    pub me: NodeId,
    pub region: Region,
    swim: Mutex<Swim>,
    view: RwLock<Arc<RingView>>,
    seen_version: Mutex<u64>,
    ring_config: RingConfig,
    /// Members named by the topology file: owners from the start, even before gossip
    /// has told us their addresses.
    initial: BTreeMap<NodeId, Region>,
    /// Partitions whose data this node holds (fetched, or owned since bootstrap).
    held: Mutex<BTreeSet<PartitionId>>,
    /// Held partitions whose data this node lost with its store (`start_filling`): each
    /// is fetched whole from one other replica (the transfer worker) before anti-entropy
    /// compares it, so a wiped node's data crosses the network once, not from every
    /// replica that would otherwise push it.
    filling: Mutex<BTreeSet<PartitionId>>,
    /// Partition transfers running now.
    pub transfers_in_flight: std::sync::atomic::AtomicU64,
}

impl ClusterState {
    pub fn new(
        me: MemberInfo,
        swim: Swim,
        settings: &Settings,
    ) -> Result<ClusterState, crate::ring::RingError> {
        let initial: BTreeMap<NodeId, Region> = settings
            .topology
            .nodes()
            .map(|(node, region)| (node.clone(), region.clone()))
            .collect();
        let ring_config = RingConfig {
            partitions: settings.topology.partitions,
            replicas_per_region: settings.topology.replicas_per_region(),
        };
        let owners = owners_of(&initial, swim.members());
        let view = view_of(
            owners,
            &ring_config,
            epoch_of(&initial, swim.members()),
            None,
        )?;
        // A member of the initial topology owns its partitions from the start; a joiner
        // holds nothing until it has fetched.
        let held: BTreeSet<PartitionId> = if initial.contains_key(&me.node) {
            view.current.partitions_of(&me.node).into_iter().collect()
        } else {
            BTreeSet::new()
        };
        let version = swim.version();
        Ok(ClusterState {
            me: me.node,
            region: me.region,
            swim: Mutex::new(swim),
            view: RwLock::new(Arc::new(view)),
            seen_version: Mutex::new(version),
            ring_config,
            initial,
            held: Mutex::new(held),
            filling: Mutex::default(),
            transfers_in_flight: Default::default(),
        })
    }

    /// Runs `f` on the state machine, then rebuilds the ring view if members changed.
    pub fn with_swim<T>(&self, f: impl FnOnce(&mut Swim) -> T) -> T {
        let result = {
            let mut swim = self.swim.lock().expect("swim lock");
            f(&mut swim)
        };
        self.refresh();
        result
    }

    /// A snapshot of every member's state.
    pub fn members(&self) -> Vec<MemberState> {
        self.swim
            .lock()
            .expect("swim lock")
            .members()
            .cloned()
            .collect()
    }

    /// The nodes of this node's region that are members or on their way in or out
    /// (not left or removed), this node included: whose change feeds may hold changes
    /// of the region's keys (`runtime::hub`, `GET /v1/feed`).
    pub fn region_nodes(&self) -> BTreeSet<NodeId> {
        let mut nodes: BTreeSet<NodeId> = self
            .members()
            .into_iter()
            .filter(|member| member.info.region == self.region)
            .filter(|member| !matches!(member.status, Status::Left | Status::Removed))
            .map(|member| member.info.node)
            .collect();
        nodes.insert(self.me.clone());
        nodes
    }

    pub fn member(&self, node: &NodeId) -> Option<MemberState> {
        self.swim.lock().expect("swim lock").member(node).cloned()
    }

    fn refresh(&self) {
        let (version, owners, epoch) = {
            let swim = self.swim.lock().expect("swim lock");
            let version = swim.version();
            if *self.seen_version.lock().expect("version lock") == version {
                return;
            }
            (
                version,
                owners_of(&self.initial, swim.members()),
                epoch_of(&self.initial, swim.members()),
            )
        };
        // Most version changes are liveness only; the rings of an unchanged member list
        // are reused. A real change builds here: 8-17 ms at 3 x 100 nodes and Q = 1024,
        // 0.35 s at Q = 32768 (release, `ring_build_cost`); on a multi-threaded runtime
        // the worker hands its other tasks away meanwhile (`--threads 1` just waits).
        let previous = self.view();
        let build = || view_of(owners, &self.ring_config, epoch, Some(&previous));
        let built = match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(build)
            }
            _ => build(),
        };
        match built {
            Ok(view) => {
                *self.view.write().expect("view lock") = Arc::new(view);
                *self.seen_version.lock().expect("version lock") = version;
            }
            Err(error) => {
                tracing::warn!(%error, "member list gives no valid ring; keeping the previous one")
            }
        }
    }

    pub fn owners(&self) -> Vec<Owner> {
        owners_of(
            &self.initial,
            self.swim.lock().expect("swim lock").members(),
        )
    }

    pub fn held(&self) -> BTreeSet<PartitionId> {
        self.held.lock().expect("held lock").clone()
    }

    pub fn mark_held(&self, partition: PartitionId) {
        self.held.lock().expect("held lock").insert(partition);
    }

    pub fn unmark_held(&self, partition: PartitionId) {
        self.held.lock().expect("held lock").remove(&partition);
    }

    /// Marks every partition held now as filling: the store is new, so whatever the
    /// topology says this node held is gone and must come from the other replicas.
    pub fn start_filling(&self) {
        let held = self.held();
        *self.filling.lock().expect("filling lock") = held;
    }

    /// Held partitions still waiting to be fetched whole from one replica.
    pub fn filling(&self) -> Vec<PartitionId> {
        let held = self.held();
        let filling = self.filling.lock().expect("filling lock");
        filling
            .iter()
            .filter(|p| held.contains(p))
            .copied()
            .collect()
    }

    /// `partition` was fetched whole (or is no longer held): anti-entropy may compare it.
    pub fn filled(&self, partition: PartitionId) {
        self.filling
            .lock()
            .expect("filling lock")
            .remove(&partition);
    }

    /// Whether anti-entropy may compare `partition` here: held and not filling.
    pub fn comparable(&self, partition: PartitionId) -> bool {
        self.held.lock().expect("held lock").contains(&partition)
            && !self
                .filling
                .lock()
                .expect("filling lock")
                .contains(&partition)
    }

    /// Partitions this node owns (now or in the pending change) without holding them.
    pub fn missing_partitions(&self) -> Vec<PartitionId> {
        let view = self.view();
        let held = self.held.lock().expect("held lock");
        let mut wanted: BTreeSet<PartitionId> =
            view.current.partitions_of(&self.me).into_iter().collect();
        if let Some(target) = &view.target {
            wanted.extend(target.partitions_of(&self.me));
        }
        wanted.into_iter().filter(|p| !held.contains(p)).collect()
    }

    /// Sends each output through `send`.
    pub fn dispatch(
        outputs: Vec<Output>,
        mut send: impl FnMut(NodeId, crate::membership::swim::SwimMessage),
    ) {
        for output in outputs {
            match output {
                Output::Send { to, message } => send(to, message),
            }
        }
    }
}

impl ClusterView for ClusterState {
    fn view(&self) -> Arc<RingView> {
        self.view.read().expect("view lock").clone()
    }

    fn is_dead(&self, node: &NodeId) -> bool {
        *node != self.me && self.swim.lock().expect("swim lock").is_dead(node)
    }

    fn is_suspect(&self, node: &NodeId) -> bool {
        let swim = self.swim.lock().expect("swim lock");
        let suspect = swim.member(node).map(|state| state.liveness) == Some(Liveness::Suspect);
        *node != self.me && suspect
    }
}

/// The ring view of a member list, reusing `previous`'s rings where nothing changed. A
/// leaving member that the failure detector holds dead once every gaining node is ready
/// has left, even if its last word was lost.
fn view_of(
    mut owners: Vec<Owner>,
    config: &RingConfig,
    epoch: u64,
    previous: Option<&RingView>,
) -> Result<RingView, crate::ring::RingError> {
    let build = |owners: &[Owner], epoch: u64| match previous {
        Some(previous) => RingView::refreshed(previous, owners, config, epoch),
        None => RingView::new(owners, config, epoch),
    };
    let view = build(&owners, epoch)?;
    let gone: Vec<NodeId> = owners
        .iter()
        .filter(|owner| owner.status == Status::Leaving && owner.dead)
        .map(|owner| owner.node.clone())
        .collect();
    if gone.is_empty() || !view.ready_to_commit(&owners) {
        return Ok(view);
    }
    owners.retain(|owner| !gone.contains(&owner.node));
    build(&owners, epoch + gone.len() as u64)
}

/// Initial topology members are members unless gossip says otherwise; gossip adds the
/// rest with their own status.
fn owners_of<'a>(
    initial: &BTreeMap<NodeId, Region>,
    members: impl Iterator<Item = &'a MemberState>,
) -> Vec<Owner> {
    let mut owners: BTreeMap<NodeId, Owner> = initial
        .iter()
        .map(|(node, region)| {
            (
                node.clone(),
                Owner {
                    node: node.clone(),
                    region: region.clone(),
                    weight: 1,
                    status: Status::Member,
                    ready_for: 0,
                    dead: false,
                },
            )
        })
        .collect();
    for member in members {
        let status = match (initial.contains_key(&member.info.node), member.status) {
            // A topology member that gossip still calls joining is an owner already.
            (true, Status::Joining) => Status::Member,
            (_, status) => status,
        };
        owners.insert(
            member.info.node.clone(),
            Owner {
                node: member.info.node.clone(),
                region: member.info.region.clone(),
                weight: member.info.weight.max(1),
                status,
                ready_for: member.ready_for,
                dead: member.liveness == Liveness::Dead,
            },
        );
    }
    owners
        .into_values()
        .filter(|owner| !matches!(owner.status, Status::Left | Status::Removed))
        .collect()
}

/// The ring epoch: one more than the committed ring changes the member list records
/// (a joiner that became a member, a member that left or was removed).
fn epoch_of<'a>(
    initial: &BTreeMap<NodeId, Region>,
    members: impl Iterator<Item = &'a MemberState>,
) -> u64 {
    let changes: u64 = members
        .map(|member| {
            let joined =
                !initial.contains_key(&member.info.node) && member.status != Status::Joining;
            let departed = matches!(member.status, Status::Left | Status::Removed);
            u64::from(joined) + u64::from(departed)
        })
        .sum();
    1 + changes
}

/// Liveness in words for status output.
pub fn liveness_name(liveness: Liveness) -> &'static str {
    match liveness {
        Liveness::Alive => "alive",
        Liveness::Suspect => "suspect",
        Liveness::Dead => "dead",
    }
}

/// Status in words for status output.
pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Joining => "joining",
        Status::Member => "member",
        Status::Leaving => "leaving",
        Status::Left => "left",
        Status::Removed => "removed",
    }
}
