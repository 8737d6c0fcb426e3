//! The consistent-hash ring: key hashing, the Q fixed partitions of the hash space, the
//! placement of each partition's replicas on nodes per region (weighted rendezvous
//! scores, assigned greedily under a per-node cap of 1.05 x its weighted share) and the
//! preference lists the coordinator walks.
//!
//! A ring is a pure function of (members, config, epoch): every node that holds the same
//! member list computes the same placement, whatever the order it learnt the members in.
//! This module must never read a clock, draw randomness, do I/O or import the async
//! shell (tokio, quinn, sled, axum); changing the hash format or the scoring changes
//! every placement in a running cluster, so both are pinned by tests.

mod placement;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use crate::ids::{NodeId, PartitionId, Region};
use crate::limits::{PARTITIONS_DEFAULT, PARTITIONS_MAX, RING_MEMBERS_MAX, RING_ORDER_ENTRIES_MAX};

pub use placement::{key_hash, partition_for_hash, position_in_partition};

// The order table stores member indices as u16.
const _: () = assert!(RING_MEMBERS_MAX <= u16::MAX as usize + 1);

/// A node as the ring sees it; `weight` is its capacity relative to the others (>= 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingMember {
    pub id: NodeId,
    pub region: Region,
    pub weight: u32,
}

/// The ring's shape: Q and how many replicas each region holds of every partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConfig {
    pub partitions: u32,
    pub replicas_per_region: BTreeMap<Region, u32>,
}

impl RingConfig {
    /// The same replica count in every listed region, with the default number of partitions.
    pub fn uniform(regions: impl IntoIterator<Item = Region>, replicas: u32) -> RingConfig {
        RingConfig {
            partitions: PARTITIONS_DEFAULT,
            replicas_per_region: regions
                .into_iter()
                .map(|region| (region, replicas))
                .collect(),
        }
    }
}

/// One entry of a preference list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    pub node: NodeId,
    pub region: Region,
}

/// Who to ask for a partition: its replicas (local region first), then the fallbacks a
/// sloppy quorum may use when replicas are down.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreferenceList {
    pub replicas: Vec<Replica>,
    pub fallbacks: Vec<Replica>,
}

/// Why a member list and configuration do not make a ring.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RingError {
    #[error("the ring has no members")]
    NoMembers,
    #[error("the ring has {members} members; at most {max} are allowed")]
    TooManyMembers { members: usize, max: usize },
    #[error("node {node} is listed more than once")]
    DuplicateNode { node: NodeId },
    #[error("node {node} has weight 0; weights must be at least 1")]
    ZeroWeight { node: NodeId },
    #[error("partitions is {partitions}; it must be in 1..={max}")]
    PartitionsOutOfRange { partitions: u32, max: u32 },
    #[error("replicas_per_region for region {region} is 0; it must be at least 1")]
    ZeroReplicas { region: Region },
    #[error("node {node} is in region {region}, which has no entry in replicas_per_region")]
    RegionWithoutReplicaCount { node: NodeId, region: Region },
    #[error("region {region} has {nodes} nodes but replicas_per_region is {replicas}")]
    RegionTooSmall {
        region: Region,
        nodes: usize,
        replicas: u32,
    },
    #[error(
        "{partitions} partitions × {members} members exceeds the placement table limit of {max} entries"
    )]
    PlacementTableTooLarge {
        partitions: u32,
        members: usize,
        max: usize,
    },
}

/// Where one region's nodes sit: `start..start + len` indexes both `Ring::members` and
/// each partition's row of the order table.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RegionSpan {
    region: Region,
    start: usize,
    len: usize,
    replicas: usize,
}

impl RegionSpan {
    fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len
    }
    fn replica_range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.replicas
    }
    fn fallback_range(&self) -> std::ops::Range<usize> {
        self.start + self.replicas..self.start + self.len
    }
}

/// The placement of every partition, precomputed so lookups only copy ids.
#[derive(Clone, PartialEq, Eq)]
pub struct Ring {
    /// Sorted by (region, node id), so each region's nodes are contiguous.
    members: Vec<RingMember>,
    /// Sorted by region name.
    regions: Vec<RegionSpan>,
    partitions: u32,
    epoch: u64,
    /// `partitions` rows of `members.len()` member indices; in row p, each region's span
    /// holds that region's replicas of p, then its other nodes, each group in
    /// rendezvous order for p (see `placement::build_order`).
    order: Vec<u16>,
    /// Replicas per key over all regions.
    n: usize,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The order table is far too large to print.
        f.debug_struct("Ring")
            .field("epoch", &self.epoch)
            .field("partitions", &self.partitions)
            .field("members", &self.members.len())
            .field("regions", &self.regions)
            .finish()
    }
}

impl Ring {
    /// Validates the members against the config and computes the placement of every partition.
    pub fn new(
        mut members: Vec<RingMember>,
        config: RingConfig,
        epoch: u64,
    ) -> Result<Ring, RingError> {
        validate(&mut members, &config)?;
        // Grouping by region makes every region a contiguous span of member indices.
        members.sort_by(|a, b| (&a.region, &a.id).cmp(&(&b.region, &b.id)));
        let regions = region_spans(&members, &config);
        let order = placement::build_order(&members, &regions, config.partitions);
        let n = regions.iter().map(|span| span.replicas).sum();
        Ok(Ring {
            members,
            regions,
            partitions: config.partitions,
            epoch,
            order,
            n,
        })
    }

    /// Whether `Ring::new` would accept these members and config, without building the
    /// placement (which hashes every (partition, member) pair).
    pub fn check(members: &[RingMember], config: &RingConfig) -> Result<(), RingError> {
        validate(&mut members.to_vec(), config)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Q, the number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.partitions
    }

    /// Whether `p` names a partition of this ring; check ids that come from the network
    /// with this before any lookup, which panics on an unknown partition.
    pub fn has_partition(&self, p: PartitionId) -> bool {
        p.0 < self.partitions
    }

    /// The members sorted by region, then node id.
    pub fn members(&self) -> &[RingMember] {
        &self.members
    }

    /// The regions that hold replicas, sorted by name.
    pub fn regions(&self) -> Vec<Region> {
        self.regions
            .iter()
            .map(|span| span.region.clone())
            .collect()
    }

    /// N: replicas per key, summed over the regions.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Replicas per key in `region`; 0 for a region the ring does not know.
    pub fn replicas_per_region(&self, region: &Region) -> u32 {
        self.span_of(region).map_or(0, |span| span.replicas as u32)
    }

    pub fn partition_of(&self, hash: u64) -> PartitionId {
        partition_for_hash(hash, self.partitions)
    }

    pub fn partition_of_key(&self, class: u8, key: &[u8]) -> PartitionId {
        self.partition_of(key_hash(class, key))
    }

    /// All replicas of `p`: regions by name, each region's replicas in rendezvous order
    /// (by descending score among the replicas).
    /// Panics if `p` is not a partition of this ring (see [`Ring::has_partition`]).
    pub fn replicas(&self, p: PartitionId) -> Vec<(NodeId, Region)> {
        let row = self.row(p);
        self.regions
            .iter()
            .flat_map(|span| row[span.replica_range()].iter())
            .map(|&index| {
                let member = &self.members[usize::from(index)];
                (member.id.clone(), member.region.clone())
            })
            .collect()
    }

    /// The replicas of `p` in `region`, in rendezvous order; empty for an unknown region.
    /// Panics if `p` is not a partition of this ring.
    pub fn replicas_in_region(&self, p: PartitionId, region: &Region) -> Vec<NodeId> {
        let row = self.row(p);
        let Some(span) = self.span_of(region) else {
            return Vec::new();
        };
        row[span.replica_range()]
            .iter()
            .map(|&index| self.members[usize::from(index)].id.clone())
            .collect()
    }

    /// Replicas of `p` (local region first, then the other regions by name), then every
    /// other member as a fallback in the same region order, each region in rendezvous
    /// order. A `local` region the ring does not know simply puts no region first.
    /// Panics if `p` is not a partition of this ring.
    pub fn preference_list(&self, p: PartitionId, local: &Region) -> PreferenceList {
        let row = self.row(p);
        let local_span = self.span_of(local);
        let spans = || {
            local_span
                .into_iter()
                .chain(self.regions.iter().filter(|s| s.region != *local))
        };
        let replicas: Vec<u16> = spans()
            .flat_map(|span| row[span.replica_range()].iter().copied())
            .collect();
        let fallbacks: Vec<u16> = spans()
            .flat_map(|span| row[span.fallback_range()].iter().copied())
            .collect();
        assert!(
            all_distinct(replicas.iter().chain(&fallbacks), self.members.len()),
            "preference list of {p} repeats a node"
        );
        PreferenceList {
            replicas: self.to_replicas(&replicas),
            fallbacks: self.to_replicas(&fallbacks),
        }
    }

    /// The partitions `node` is a replica of, ascending; empty for a non-member.
    pub fn partitions_of(&self, node: &NodeId) -> Vec<PartitionId> {
        let Some(index) = self.members.iter().position(|member| member.id == *node) else {
            return Vec::new();
        };
        let span = self
            .span_of(&self.members[index].region)
            .expect("every member's region has a span");
        let index = index as u16;
        (0..self.partitions)
            .map(PartitionId)
            .filter(|&p| self.row(p)[span.replica_range()].contains(&index))
            .collect()
    }

    fn row(&self, p: PartitionId) -> &[u16] {
        assert!(
            self.has_partition(p),
            "partition {p} is outside this ring's {} partitions",
            self.partitions
        );
        let width = self.members.len();
        let start = p.0 as usize * width;
        &self.order[start..start + width]
    }

    fn span_of(&self, region: &Region) -> Option<&RegionSpan> {
        self.regions
            .binary_search_by(|span| span.region.cmp(region))
            .ok()
            .map(|position| &self.regions[position])
    }

    fn to_replicas(&self, indices: &[u16]) -> Vec<Replica> {
        indices
            .iter()
            .map(|&index| {
                let member = &self.members[usize::from(index)];
                Replica {
                    node: member.id.clone(),
                    region: member.region.clone(),
                }
            })
            .collect()
    }
}

/// How many (partition, replica) assignments of `new` `old` did not have: the replicas
/// that must be streamed to their node when moving from `old` to `new`. Nodes are matched
/// by id. Rings with different partition counts share no partitions, so then every
/// assignment of `new` counts as moved.
pub fn moved_replicas(old: &Ring, new: &Ring) -> usize {
    if old.partitions != new.partitions {
        return new.partitions as usize * new.n;
    }
    let old_index: BTreeMap<&NodeId, usize> = old
        .members
        .iter()
        .enumerate()
        .map(|(index, member)| (&member.id, index))
        .collect();
    let new_to_old: Vec<Option<usize>> = new
        .members
        .iter()
        .map(|member| old_index.get(&member.id).copied())
        .collect();
    let mut held_in_old = vec![false; old.members.len()];
    let mut moved = 0;
    for p in (0..new.partitions).map(PartitionId) {
        let old_replicas = || {
            old.regions
                .iter()
                .flat_map(|span| old.row(p)[span.replica_range()].iter())
        };
        old_replicas().for_each(|&index| held_in_old[usize::from(index)] = true);
        for span in &new.regions {
            moved += new.row(p)[span.replica_range()]
                .iter()
                .filter(|&&index| {
                    !new_to_old[usize::from(index)].is_some_and(|old| held_in_old[old])
                })
                .count();
        }
        old_replicas().for_each(|&index| held_in_old[usize::from(index)] = false);
    }
    moved
}

/// Checks everything `Ring::new` relies on; sorts `members` by id so the reported error
/// does not depend on the order the members came in.
fn validate(members: &mut [RingMember], config: &RingConfig) -> Result<(), RingError> {
    validate_sizes(members.len(), config.partitions)?;
    members.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(pair) = members.windows(2).find(|pair| pair[0].id == pair[1].id) {
        return Err(RingError::DuplicateNode {
            node: pair[0].id.clone(),
        });
    }
    if let Some(member) = members.iter().find(|member| member.weight == 0) {
        return Err(RingError::ZeroWeight {
            node: member.id.clone(),
        });
    }
    validate_regions(members, config)
}

/// The bounds on Q, on the member count and on the order table they make together.
fn validate_sizes(members: usize, partitions: u32) -> Result<(), RingError> {
    if partitions == 0 || partitions > PARTITIONS_MAX {
        return Err(RingError::PartitionsOutOfRange {
            partitions,
            max: PARTITIONS_MAX,
        });
    }
    if members == 0 {
        return Err(RingError::NoMembers);
    }
    if members > RING_MEMBERS_MAX {
        return Err(RingError::TooManyMembers {
            members,
            max: RING_MEMBERS_MAX,
        });
    }
    if partitions as usize * members > RING_ORDER_ENTRIES_MAX {
        return Err(RingError::PlacementTableTooLarge {
            partitions,
            members,
            max: RING_ORDER_ENTRIES_MAX,
        });
    }
    Ok(())
}

/// Every member's region has a replica count, and every count is at least 1 and at most
/// the region's node count.
fn validate_regions(members: &[RingMember], config: &RingConfig) -> Result<(), RingError> {
    let counts = &config.replicas_per_region;
    if let Some((region, _)) = counts.iter().find(|(_, &count)| count == 0) {
        return Err(RingError::ZeroReplicas {
            region: region.clone(),
        });
    }
    if let Some(member) = members
        .iter()
        .find(|member| !counts.contains_key(&member.region))
    {
        return Err(RingError::RegionWithoutReplicaCount {
            node: member.id.clone(),
            region: member.region.clone(),
        });
    }
    for (region, &replicas) in counts {
        let nodes = members
            .iter()
            .filter(|member| member.region == *region)
            .count();
        if nodes < replicas as usize {
            return Err(RingError::RegionTooSmall {
                region: region.clone(),
                nodes,
                replicas,
            });
        }
    }
    Ok(())
}

/// The span of each configured region in `members`, which is sorted by (region, id).
fn region_spans(members: &[RingMember], config: &RingConfig) -> Vec<RegionSpan> {
    config
        .replicas_per_region
        .iter()
        .map(|(region, &replicas)| {
            let start = members.partition_point(|member| member.region < *region);
            let len = members[start..].partition_point(|member| member.region == *region);
            RegionSpan {
                region: region.clone(),
                start,
                len,
                replicas: replicas as usize,
            }
        })
        .collect()
}

/// Whether no index repeats; indices are below `width`.
fn all_distinct<'a>(indices: impl Iterator<Item = &'a u16>, width: usize) -> bool {
    let mut seen = vec![false; width];
    indices
        .into_iter()
        .all(|&index| !std::mem::replace(&mut seen[usize::from(index)], true))
}
