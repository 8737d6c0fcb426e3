//! Who owns which partition while the member list changes.
//!
//! The ring is a pure function of the member list. During a change there are two:
//! `current` (members and leaving members: the owners that hold the data) and `target`
//! (members and joining members: the owners once the change commits). Writes go to both;
//! reads and quorums count the current owners. A node that gains partitions in the
//! target fetches them and then announces `ready_for = generation`; the change commits
//! when every gaining node is ready (the joiner becomes a member, the leaver leaves).
//! Pure: no I/O, no clock.

use super::swim::Status;
use crate::ids::{NodeId, PartitionId, Region};
use crate::ring::{Ring, RingConfig, RingError, RingMember};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One member as ownership sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub node: NodeId,
    pub region: Region,
    pub weight: u32,
    pub status: Status,
    /// The target generation this node has fetched all its gained partitions for.
    pub ready_for: u64,
    /// The failure detector holds it dead.
    pub dead: bool,
}

/// The rings in force.
#[derive(Clone, Debug)]
pub struct RingView {
    pub current: Arc<Ring>,
    /// The ring after the pending change, when one is pending.
    pub target: Option<Arc<Ring>>,
    /// Identifies the target member set; 0 when nothing is pending.
    pub generation: u64,
    /// Ring epoch: how many ownership changes the member list records.
    pub epoch: u64,
}

fn in_current(status: Status) -> bool {
    matches!(status, Status::Member | Status::Leaving)
}

fn in_target(status: Status) -> bool {
    matches!(status, Status::Member | Status::Joining)
}

/// The ring of the owners `keep` selects; one of `reuse` when it was built from the same
/// members, config and epoch (a build hashes every (partition, member) pair, so views
/// rebuilt for a liveness change only must not pay for it again).
fn ring_of(
    owners: &[Owner],
    keep: impl Fn(Status) -> bool,
    config: &RingConfig,
    epoch: u64,
    reuse: &[&Arc<Ring>],
) -> Result<Arc<Ring>, RingError> {
    let mut members: Vec<RingMember> = owners
        .iter()
        .filter(|owner| keep(owner.status))
        .map(|owner| RingMember {
            id: owner.node.clone(),
            region: owner.region.clone(),
            weight: owner.weight,
        })
        .collect();
    members.sort_by(|a, b| (&a.region, &a.id).cmp(&(&b.region, &b.id)));
    let same = |ring: &&&Arc<Ring>| {
        ring.epoch() == epoch
            && ring.partition_count() == config.partitions
            && ring.regions().len() == config.replicas_per_region.len()
            && config
                .replicas_per_region
                .iter()
                .all(|(region, &count)| ring.replicas_per_region(region) == count)
            && ring.members() == members.as_slice()
    };
    if let Some(ring) = reuse.iter().find(same) {
        return Ok(Arc::clone(ring));
    }
    Ring::new(members, config.clone(), epoch).map(Arc::new)
}

/// The generation of a target ring: a digest of its member set.
pub fn generation_of(owners: &[Owner]) -> u64 {
    let mut hasher = blake3::Hasher::new();
    let mut ids: Vec<&NodeId> = owners
        .iter()
        .filter(|owner| in_target(owner.status))
        .map(|owner| &owner.node)
        .collect();
    ids.sort();
    for id in ids {
        hasher.update(id.as_str().as_bytes());
        hasher.update(&[0]);
    }
    let digest = hasher.finalize();
    // Never 0: 0 means "nothing pending".
    u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes")).max(1)
}

impl RingView {
    /// The rings of a member list. `epoch` is passed in by the caller (it counts the
    /// status changes it has seen).
    pub fn new(owners: &[Owner], config: &RingConfig, epoch: u64) -> Result<RingView, RingError> {
        RingView::build(owners, config, epoch, &[])
    }

    /// Whether [`RingView::new`] would succeed, without building any ring.
    pub fn check(owners: &[Owner], config: &RingConfig) -> Result<(), RingError> {
        let members = |keep: fn(Status) -> bool| -> Vec<RingMember> {
            owners
                .iter()
                .filter(|owner| keep(owner.status))
                .map(|owner| RingMember {
                    id: owner.node.clone(),
                    region: owner.region.clone(),
                    weight: owner.weight,
                })
                .collect()
        };
        Ring::check(&members(in_current), config)?;
        let pending = owners
            .iter()
            .any(|owner| matches!(owner.status, Status::Joining | Status::Leaving));
        if pending {
            Ring::check(&members(in_target), config)?;
        }
        Ok(())
    }

    /// As [`RingView::new`], taking `previous`'s rings wherever their members and epoch
    /// are unchanged, so a liveness change costs no ring build.
    pub fn refreshed(
        previous: &RingView,
        owners: &[Owner],
        config: &RingConfig,
        epoch: u64,
    ) -> Result<RingView, RingError> {
        let reuse: Vec<&Arc<Ring>> = std::iter::once(&previous.current)
            .chain(&previous.target)
            .collect();
        RingView::build(owners, config, epoch, &reuse)
    }

    fn build(
        owners: &[Owner],
        config: &RingConfig,
        epoch: u64,
        reuse: &[&Arc<Ring>],
    ) -> Result<RingView, RingError> {
        let current = ring_of(owners, in_current, config, epoch, reuse)?;
        let pending = owners
            .iter()
            .any(|owner| matches!(owner.status, Status::Joining | Status::Leaving));
        let (target, generation) = if pending {
            (
                Some(ring_of(owners, in_target, config, epoch + 1, reuse)?),
                generation_of(owners),
            )
        } else {
            (None, 0)
        };
        Ok(RingView {
            current,
            target,
            generation,
            epoch,
        })
    }

    /// Partitions `node` owns in the target but not in the current ring: what it must
    /// fetch before the change can commit.
    pub fn gained_by(&self, node: &NodeId) -> Vec<PartitionId> {
        let Some(target) = &self.target else {
            return Vec::new();
        };
        let now: BTreeSet<PartitionId> = self.current.partitions_of(node).into_iter().collect();
        target
            .partitions_of(node)
            .into_iter()
            .filter(|p| !now.contains(p))
            .collect()
    }

    /// Nodes that gain at least one partition in the pending change.
    pub fn gaining_nodes(&self) -> BTreeSet<NodeId> {
        let Some(target) = &self.target else {
            return BTreeSet::new();
        };
        target
            .members()
            .iter()
            .map(|member| member.id.clone())
            .filter(|node| !self.gained_by(node).is_empty())
            .collect()
    }

    /// The pending change may commit: every gaining node has fetched its partitions.
    pub fn ready_to_commit(&self, owners: &[Owner]) -> bool {
        if self.target.is_none() {
            return false;
        }
        let ready: BTreeMap<&NodeId, u64> = owners
            .iter()
            .map(|owner| (&owner.node, owner.ready_for))
            .collect();
        self.gaining_nodes()
            .iter()
            .all(|node| ready.get(node) == Some(&self.generation))
    }

    /// Replicas of partition `p` a request must reach: the current owners (which count
    /// for quorums) and the extra target owners (which only receive writes and reads).
    pub fn replicas_for(
        &self,
        p: PartitionId,
        local: &Region,
    ) -> (Vec<crate::ring::Replica>, Vec<crate::ring::Replica>) {
        let voting = self.current.preference_list(p, local).replicas;
        let extra = match &self.target {
            Some(target) => target
                .preference_list(p, local)
                .replicas
                .into_iter()
                .filter(|replica| !voting.iter().any(|v| v.node == replica.node))
                .collect(),
            None => Vec::new(),
        };
        (voting, extra)
    }
}

#[cfg(test)]
mod tests;
