//! The ring change a run draws and the member list it changes: none, a spare node
//! joining or a member leaving, as `membership::ownership::Owner`s and the real
//! `RingView` over them. `membership` carries the change out; this file only holds
//! what the world is built with, so the world never imports the code that acts on it.

use crate::ids::{NodeId, PartitionId, Region};
use crate::membership::ownership::{Owner, RingView};
use crate::membership::swim::Status;
use crate::ring::RingConfig;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};

/// The ring change a run makes, and how far it got.
pub(super) struct RingChange {
    /// The node that joins or leaves.
    pub node: usize,
    pub joins: bool,
    /// Virtual time at which it starts, in ms.
    pub at_ms: u64,
    pub started: bool,
    /// Partitions each gaining node still has to fetch.
    pub missing: BTreeMap<usize, BTreeSet<PartitionId>>,
}

/// The owners of the members drawn for a run (weight 1, none pending).
pub(super) fn owners_of(members: &[(String, String)]) -> Vec<Owner> {
    members
        .iter()
        .map(|(id, region)| Owner {
            node: NodeId(id.clone()),
            region: Region(region.clone()),
            weight: 1,
            status: Status::Member,
            ready_for: 0,
            dead: false,
        })
        .collect()
}

/// The rings of `owners`; the simulation's member lists are always valid.
pub(super) fn view_of(owners: &[Owner], config: &RingConfig, epoch: u64) -> RingView {
    RingView::new(owners, config, epoch).expect("the simulated member list is valid")
}

/// The ring change of a run, drawn from the seed: none (half the runs), a spare node (added to
/// `members`, outside the ring until it joins) joining, or a member leaving; it starts
/// within the first third of the workload.
pub(super) fn draw_ring_change(
    rng: &mut StdRng,
    members: &mut Vec<(String, String)>,
    workload_ms: u64,
) -> Option<RingChange> {
    let at_ms = rng.gen_range(workload_ms / 10..=workload_ms / 3);
    let (node, joins) = match rng.gen_range(0..4) {
        0 | 1 => return None,
        2 => {
            let region = members[rng.gen_range(0..members.len())].1.clone();
            members.push((format!("{region}-spare"), region));
            (members.len() - 1, true)
        }
        _ => (rng.gen_range(0..members.len()), false),
    };
    Some(RingChange {
        node,
        joins,
        at_ms,
        started: false,
        missing: BTreeMap::new(),
    })
}
