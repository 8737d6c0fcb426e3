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
    if dead.is_empty() {
        return Vec::new();
    }
    let regions = ring.regions();
    let live_per_region = live_per_region(ring, dead);
    // Partitions short of each (region, check), in region then check order.
    let mut short = vec![0u32; regions.len() * checks.len()];
    for p in 0..ring.partition_count() {
        let replicas = ring.replicas(PartitionId(p));
        // A level its whole replica set can meet is met while none of them is dead.
        if !replicas.iter().any(|(node, _)| dead.contains(node)) {
            continue;
        }
        let partition = Partition::of(&replicas, dead);
        for (r, local) in regions.iter().enumerate() {
            for (c, check) in checks.iter().enumerate() {
                if !partition.meets(local, check, &live_per_region) {
                    short[r * checks.len() + c] += 1;
                }
            }
        }
    }
    let mut found = Vec::new();
    for (r, local) in regions.iter().enumerate() {
        for (c, check) in checks.iter().enumerate() {
            let partitions = short[r * checks.len() + c];
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

/// One partition's replicas: their regions, and how many live and dead in each.
struct Partition {
    regions: Vec<Region>,
    live: BTreeMap<Region, usize>,
    dead: BTreeMap<Region, usize>,
}

impl Partition {
    fn of(replicas: &[(NodeId, Region)], dead: &BTreeSet<NodeId>) -> Partition {
        let mut partition = Partition {
            regions: replicas.iter().map(|(_, region)| region.clone()).collect(),
            live: BTreeMap::new(),
            dead: BTreeMap::new(),
        };
        for (node, region) in replicas {
            let counts = match dead.contains(node) {
                false => &mut partition.live,
                true => &mut partition.dead,
            };
            *counts.entry(region.clone()).or_default() += 1;
        }
        partition
    }

    /// Whether a coordinator in `local` can meet `check` with the live replicas (and,
    /// for a sloppy write, a live fallback of each dead replica's region).
    fn meets(
        &self,
        local: &Region,
        check: &LevelCheck,
        live_per_region: &BTreeMap<Region, usize>,
    ) -> bool {
        let Ok(requirement) = Requirement::new(check.level, &self.regions, local) else {
            return true;
        };
        if !(check.sloppy && check.op == Op::Write) {
            return requirement.met_by(&self.live);
        }
        let mut acked = self.live.clone();
        for (region, missing) in &self.dead {
            let live_replicas = acked.get(region).copied().unwrap_or(0);
            let fallbacks = live_per_region
                .get(region)
                .copied()
                .unwrap_or(0)
                .saturating_sub(live_replicas);
            *acked.entry(region.clone()).or_default() += (*missing).min(fallbacks);
        }
        requirement.met_by(&acked)
    }
}

#[cfg(test)]
mod tests;
