//! Which consistency levels the nodes held dead make impossible, and for how many
//! partitions, from each region's point of view: the dashboard's warning banner.
//!
//! Pure: it takes the ring and the dead set and decides nothing else. A read needs its
//! level from live replicas. A sloppy write (hinted handoff) may count a live node of
//! the dead replica's region outside the replica set as a fallback, one per dead
//! replica, as the write round does; a strict write may not.

use super::quorum::{Level, Requirement};
use super::requests::Op;
use crate::ids::{NodeId, PartitionId, Region};
use crate::object::Class;
use crate::ring::Ring;
use std::collections::{BTreeMap, BTreeSet};

/// One level a node uses, to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelCheck {
    pub class: Class,
    pub op: Op,
    pub level: Level,
    /// Writes for dead replicas go to fallbacks as hints.
    pub sloppy: bool,
}

/// A level a coordinator in `region` cannot meet now for `partitions` partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmet {
    pub region: Region,
    pub check: LevelCheck,
    pub partitions: u32,
}

/// Every (coordinator region, check) that some partition cannot meet with `dead` down,
/// in region then check order. A level no replica set could ever meet (a configuration
/// the node already refused at start) is not reported.
pub fn unmet(ring: &Ring, dead: &BTreeSet<NodeId>, checks: &[LevelCheck]) -> Vec<Unmet> {
    let regions = ring.regions();
    let mut found = Vec::new();
    if dead.is_empty() {
        return found;
    }
    let live_per_region = live_per_region(ring, dead);
    for local in &regions {
        for check in checks {
            let partitions = (0..ring.partition_count())
                .filter(|&p| !met(ring, PartitionId(p), dead, &live_per_region, local, check))
                .count() as u32;
            if partitions > 0 {
                found.push(Unmet {
                    region: local.clone(),
                    check: *check,
                    partitions,
                });
            }
        }
    }
    found
}

fn live_per_region(ring: &Ring, dead: &BTreeSet<NodeId>) -> BTreeMap<Region, usize> {
    let mut live = BTreeMap::new();
    for member in ring.members() {
        if !dead.contains(&member.id) {
            *live.entry(member.region.clone()).or_default() += 1;
        }
    }
    live
}

/// Whether a coordinator in `local` can meet `check` for partition `p`.
fn met(
    ring: &Ring,
    p: PartitionId,
    dead: &BTreeSet<NodeId>,
    live_per_region: &BTreeMap<Region, usize>,
    local: &Region,
    check: &LevelCheck,
) -> bool {
    let replicas = ring.replicas(p);
    let regions: Vec<Region> = replicas.iter().map(|(_, region)| region.clone()).collect();
    let Ok(requirement) = Requirement::new(check.level, &regions, local) else {
        return true;
    };
    let mut acked: BTreeMap<Region, usize> = BTreeMap::new();
    let mut dead_in: BTreeMap<Region, usize> = BTreeMap::new();
    for (node, region) in &replicas {
        match dead.contains(node) {
            false => *acked.entry(region.clone()).or_default() += 1,
            true => *dead_in.entry(region.clone()).or_default() += 1,
        }
    }
    if check.sloppy && check.op == Op::Write {
        for (region, missing) in dead_in {
            let live_replicas = acked.get(&region).copied().unwrap_or(0);
            let fallbacks = live_per_region
                .get(&region)
                .copied()
                .unwrap_or(0)
                .saturating_sub(live_replicas);
            *acked.entry(region).or_default() += missing.min(fallbacks);
        }
    }
    requirement.met_by(&acked)
}

#[cfg(test)]
mod tests;
