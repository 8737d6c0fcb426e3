//! A ring change in the simulation: in some runs a spare node joins, or a member leaves,
//! during the workload, through the shipping ownership code. The member list is a list
//! of `membership::ownership::Owner`s; `RingView` (the real pure function) gives the
//! current ring (members and leavers: who votes) and the target ring (members and
//! joiners), so writes reach the owners the change adds, as the node's coordinator
//! plans them. Each node that gains partitions fetches them from a current owner (a
//! leaver first, then its own region, as `handoff::transfer` orders its sources),
//! merging every object with the replica's pure step (`replica::merged`, as
//! `Replica::merge_entries` does), then says it is ready for the target generation;
//! once `RingView::ready_to_commit` holds, the change commits (the joiner becomes a
//! member, the leaver has left) under the next epoch. Transfers run at every
//! anti-entropy tick and before the final sync.
//!
//! It never reads a clock or draws randomness but from the world's generator; the
//! partitions a node still misses are bounded by `DST_PARTITIONS` per node.

use super::change::owners_of;
use super::world::World;
use super::{DstViolation, ViolationKind};
use crate::ids::{NodeId, PartitionId};
use crate::membership::ownership::RingView;
use crate::membership::swim::Status;
use crate::object::ObjectKey;
use std::collections::{BTreeMap, BTreeSet};

impl World {
    /// Whether `node` serves requests: it is a current or target owner.
    fn serves(&self, node: usize) -> bool {
        let id = &self.nodes[node].id;
        self.owners
            .iter()
            .any(|owner| owner.node == *id && owner.status != Status::Left)
    }

    /// A node a client sends its request to: any that serves.
    pub(super) fn serving_node(&mut self) -> usize {
        use rand::Rng;
        let serving: Vec<usize> = (0..self.nodes.len())
            .filter(|node| self.serves(*node))
            .collect();
        serving[self.rng.gen_range(0..serving.len())]
    }

    /// Starts the drawn change once its time has come: the node becomes a joiner or a
    /// leaver, and the nodes that gain partitions start fetching them.
    pub(super) fn start_ring_change(&mut self) -> Result<(), DstViolation> {
        let Some(change) = &self.ring_change else {
            return Ok(());
        };
        if change.started || self.now < change.at_ms {
            return Ok(());
        }
        let (node, joins) = (change.node, change.joins);
        let id = self.nodes[node].id.clone();
        if joins {
            let region = self.nodes[node].region.clone();
            let mut owner = owners_of(&[(id.0.clone(), region.0)]).remove(0);
            owner.status = Status::Joining;
            self.owners.push(owner);
        } else if let Some(owner) = self.owners.iter_mut().find(|owner| owner.node == id) {
            owner.status = Status::Leaving;
        }
        self.set_view()?;
        let mut missing = BTreeMap::new();
        for gaining in self.view.gaining_nodes() {
            let gained = self.view.gained_by(&gaining);
            missing.insert(self.node_index(&gaining), gained.into_iter().collect());
        }
        let verb = if joins { "joins" } else { "leaves" };
        self.trace.record(format!(
            "{} ring change: {id} {verb}, generation {}, {} nodes gain partitions",
            self.now,
            self.view.generation,
            missing.len()
        ));
        if let Some(change) = &mut self.ring_change {
            change.started = true;
            change.missing = missing;
        }
        Ok(())
    }

    fn set_view(&mut self) -> Result<(), DstViolation> {
        self.view =
            RingView::new(&self.owners, &self.ring_config, self.epoch).map_err(|error| {
                let detail = format!("the ring of the changed member list: {error}");
                self.violation(ViolationKind::Internal, detail)
            })?;
        Ok(())
    }

    /// One transfer round: every up gaining node fetches what it misses from a live,
    /// reachable current owner, says it is ready once it misses nothing, and the change
    /// commits once every gaining node is ready.
    pub(super) fn transfer_round(&mut self) -> Result<(), DstViolation> {
        self.start_ring_change()?;
        let Some(change) = &self.ring_change else {
            return Ok(());
        };
        if !change.started || self.view.target.is_none() {
            return Ok(());
        }
        let gaining: Vec<usize> = change.missing.keys().copied().collect();
        for node in gaining {
            if self.nodes[node].up {
                self.fetch_missing(node)?;
            }
        }
        if self.view.ready_to_commit(&self.owners) {
            self.commit_ring_change()?;
        }
        Ok(())
    }

    /// `node` fetches each partition it misses from the first source that can serve it.
    fn fetch_missing(&mut self, node: usize) -> Result<(), DstViolation> {
        let missing: Vec<PartitionId> = self
            .ring_change
            .as_ref()
            .and_then(|change| change.missing.get(&node))
            .map(|missing| missing.iter().copied().collect())
            .unwrap_or_default();
        for partition in missing {
            let Some(source) = self.sources(node, partition).into_iter().next() else {
                continue;
            };
            let entries: Vec<(Vec<u8>, crate::object::Object)> = self.nodes[source]
                .store
                .partitions
                .get(&partition)
                .map(|store| store.iter().map(|(k, o)| (k.clone(), o.clone())).collect())
                .unwrap_or_default();
            for (key, object) in &entries {
                self.nodes[node]
                    .store
                    .merge_bytes(partition, key, object)
                    .map_err(|error| {
                        let detail = format!("a transferred object was refused: {error}");
                        self.violation(ViolationKind::Internal, detail)
                    })?;
            }
            self.report.partitions_transferred += 1;
            let (to, from) = (&self.nodes[node].id, &self.nodes[source].id);
            self.trace.record(format!(
                "{} transfer {partition} {from}>{to}: {} keys",
                self.now,
                entries.len()
            ));
            if let Some(change) = &mut self.ring_change {
                if let Some(missing) = change.missing.get_mut(&node) {
                    missing.remove(&partition);
                }
            }
        }
        self.drain_dropped();
        let done = self
            .ring_change
            .as_ref()
            .and_then(|change| change.missing.get(&node))
            .is_some_and(BTreeSet::is_empty);
        if done {
            let (id, generation) = (self.nodes[node].id.clone(), self.view.generation);
            if let Some(owner) = self.owners.iter_mut().find(|owner| owner.node == id) {
                owner.ready_for = generation;
            }
        }
        Ok(())
    }

    /// Current owners of `partition` that `node` can fetch from, best first: up and
    /// reachable, a leaver first (it has everything it acknowledged), then its region.
    fn sources(&self, node: usize, partition: PartitionId) -> Vec<usize> {
        let leaving = |id: &NodeId| {
            self.owners
                .iter()
                .any(|owner| owner.node == *id && owner.status == Status::Leaving)
        };
        let mut sources: Vec<(bool, bool, usize)> = self
            .view
            .current
            .replicas(partition)
            .into_iter()
            .map(|(id, region)| (!leaving(&id), region != self.nodes[node].region, id))
            .map(|(stays, far, id)| (stays, far, self.node_index(&id)))
            .filter(|(_, _, source)| {
                *source != node && self.nodes[*source].up && self.net.connected(node, *source)
            })
            .collect();
        sources.sort();
        sources.into_iter().map(|(_, _, source)| source).collect()
    }

    /// The change commits: the joiner is a member, the leaver has left; next epoch.
    fn commit_ring_change(&mut self) -> Result<(), DstViolation> {
        self.note_moved();
        for owner in &mut self.owners {
            owner.status = match owner.status {
                Status::Joining => Status::Member,
                Status::Leaving => Status::Left,
                other => other,
            };
        }
        self.epoch += 1;
        self.set_view()?;
        self.report.ring_changes += 1;
        self.trace.record(format!(
            "{} ring change committed, epoch {}",
            self.now, self.epoch
        ));
        self.ring_change = None;
        Ok(())
    }

    /// Tells the checkers what each gaining node holds of the acknowledged keys it
    /// gained: reads are no longer held to what it lacks (`Checker::moved`), nor to
    /// writes planned before and acknowledged after (`planned_before_change`).
    fn note_moved(&mut self) {
        let moved = self
            .view
            .gaining_nodes()
            .iter()
            .flat_map(|node| self.view.gained_by(node))
            .collect();
        self.moved = Some((self.event, moved));
        let partitions = self.view.current.partition_count();
        let mut keys = self.checker.keys();
        keys.extend(self.documents.keys());
        for gaining in self.view.gaining_nodes() {
            let node = self.node_index(&gaining);
            let gained: BTreeSet<PartitionId> = self.view.gained_by(&gaining).into_iter().collect();
            for key in &keys {
                let Some(partition) = ObjectKey::from_storage_bytes(key)
                    .map(|key| key.partition(partitions))
                    .filter(|partition| gained.contains(partition))
                else {
                    continue;
                };
                let object = self.nodes[node].store.get_bytes(partition, key);
                self.checker.moved(key, object);
                self.documents.moved(key, object);
            }
        }
    }

    /// A change that started must have committed by the end (every node is up then).
    pub(super) fn check_ring_change_done(&self) -> Result<(), DstViolation> {
        match &self.ring_change {
            Some(change) if change.started => Err(self.violation(
                ViolationKind::Stuck,
                format!("the ring change of node {} never committed", change.node),
            )),
            _ => Ok(()),
        }
    }
}
