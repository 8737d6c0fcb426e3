//! The region watch: what the session service's auth fence (`session::fence`) needs
//! of this node's runtime, read from the failure detector (which regions have a node
//! alive, since when one has every node dead, stalls of this node) and from the
//! anti-entropy driver's record of which partitions it found in sync with whom.
//!
//! It only reads shared state; it decides nothing (the fence does) and never waits.
//! Its one map (since when each region has had every node dead) holds at most one
//! entry per region of the member list.

use super::clock::NodeClock;
use super::repair::RepairStats;
use super::state::ClusterState;
use crate::coordinator::{ClusterView, WallClock};
use crate::ids::{PartitionId, Region};
use crate::membership::swim::{Liveness, Status};
use crate::session::fence::{RegionLiveness, RegionsView};
use crate::session::regions::RegionHealth;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct RegionWatch {
    state: Arc<ClusterState>,
    repair: Arc<RepairStats>,
    /// The clock anti-entropy stamps `RepairStats::synced` with.
    clock: Arc<NodeClock>,
    started: Instant,
    /// Since when (monotonic milliseconds) each region has had every node dead, as
    /// first seen by this watch.
    all_dead_since: Mutex<BTreeMap<Region, u64>>,
}

impl RegionWatch {
    pub fn new(
        state: Arc<ClusterState>,
        repair: Arc<RepairStats>,
        clock: Arc<NodeClock>,
    ) -> RegionWatch {
        RegionWatch {
            state,
            repair,
            clock,
            started: Instant::now(),
            all_dead_since: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether partition `p` was found in sync, at or after `since_ms`, with a majority
    /// of its replicas in some region other than this node's.
    fn partition_caught_up(
        &self,
        p: PartitionId,
        since_ms: u64,
        synced: &BTreeMap<(crate::ids::NodeId, PartitionId), u64>,
    ) -> bool {
        let view = self.state.view();
        let ring = &view.current;
        ring.regions()
            .iter()
            .filter(|region| **region != self.state.region)
            .any(|region| {
                let replicas = ring.replicas_in_region(p, region);
                let fresh = replicas
                    .iter()
                    .filter(|node| {
                        synced
                            .get(&((*node).clone(), p))
                            .is_some_and(|at| *at >= since_ms)
                    })
                    .count();
                !replicas.is_empty() && fresh > replicas.len() / 2
            })
    }
}

impl RegionHealth for RegionWatch {
    fn view(&self) -> RegionsView {
        let now_ms = self.now_monotonic_ms();
        // Every owner the ring knows, the topology's included: one the failure
        // detector has not heard of yet counts as not alive (a node that starts sees
        // nobody yet, which must not read as "no other region").
        let liveness: BTreeMap<_, _> = self
            .state
            .members()
            .into_iter()
            .map(|member| (member.info.node, member.liveness))
            .collect();
        let mut regions: BTreeMap<Region, (usize, usize, usize)> = BTreeMap::new();
        for owner in self.state.owners() {
            let owns = matches!(
                owner.status,
                Status::Joining | Status::Member | Status::Leaving
            );
            if !owns || owner.region == self.state.region {
                continue;
            }
            let state = liveness.get(&owner.node).copied();
            let counts = regions.entry(owner.region.clone()).or_default();
            counts.0 += 1;
            counts.1 += usize::from(state == Some(Liveness::Alive));
            counts.2 += usize::from(state == Some(Liveness::Dead));
        }
        let mut since = self.all_dead_since.lock().expect("region watch lock");
        since.retain(|region, _| regions.get(region).is_some_and(|(n, _, d)| n == d));
        let others = regions
            .into_iter()
            .map(|(region, (nodes, alive, dead))| {
                let all_dead_since_ms = (nodes > 0 && dead == nodes)
                    .then(|| *since.entry(region.clone()).or_insert(now_ms));
                RegionLiveness {
                    region,
                    nodes,
                    alive,
                    all_dead_since_ms,
                }
            })
            .collect();
        drop(since);
        let (version, stalled_ms) = self
            .state
            .with_swim(|swim| (swim.version(), swim.stalled_ms()));
        RegionsView {
            others,
            version,
            stalled_ms,
        }
    }

    fn now_wall_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn now_monotonic_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn caught_up_since(&self, since_wall_ms: u64) -> bool {
        let view = self.state.view();
        let held = self.state.held();
        let synced = self.repair.synced.lock().expect("synced lock").clone();
        let caught_up = view
            .current
            .partitions_of(&self.state.me)
            .into_iter()
            .filter(|p| held.contains(p))
            .all(|p| self.partition_caught_up(p, since_wall_ms, &synced));
        self.repair.want_catch_up(!caught_up);
        caught_up
    }
}
