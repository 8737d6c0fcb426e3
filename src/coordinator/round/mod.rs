//! The coordinator's rounds as plain state machines ("sans-I/O"): a `WriteRound` and a
//! `ReadRound` take the plan of one request (its replicas, its level, which replica is
//! this node, which are dead), the replicas' replies and the time in milliseconds as
//! arguments, and answer with effects: send this request to that replica, read this
//! node's copy in place, mint here, repair that replica, answer the client. Each also
//! says when it next wants to be woken (`next_wake_ms`).
//!
//! They never send, wait, spawn, lock or read a clock: the node's driver
//! (`coordinator`, with tokio) and the deterministic simulation (`sim::dst`, with a
//! virtual network and clock) both carry out the same effects, so the simulation checks
//! the code that ships. Effects queue inside the round (`poll_effect`), reusing one
//! buffer, so a reply costs no allocation of its own.

mod read;
mod resend;
mod speculation;
mod write;

#[cfg(test)]
mod tests;

pub use read::{Ask, Phase, ReadAnswer, ReadEffect, ReadPlan, ReadRound};
pub use resend::{p99_patience_ms, resend_after_ms, Resends};
pub use speculation::{preferred_order, speculate_after_ms, Health};
pub use write::{MintAnswer, WriteEffect, WritePlan, WriteRound};

use super::quorum::{Level, Progress, QuorumTracker};
use super::CoordinatorError;
use crate::ids::{NodeId, Region};
use crate::ring::{PreferenceList, Replica};

/// A live fallback for each dead voter of `nodes` (indexes in `dead`) under a sloppy
/// quorum: the next node of `list`'s fallbacks in rendezvous order, from the dead
/// voter's region if one is alive there, else from any region (so during a region
/// outage its hints spread over the surviving regions); never a replica, never one
/// chosen twice. Each as (voter index, fallback, fallback's region).
pub fn fallbacks(
    list: &PreferenceList,
    nodes: &[NodeId],
    dead: &[usize],
    is_dead: impl Fn(&NodeId) -> bool,
) -> Vec<(usize, NodeId, Region)> {
    let mut used: Vec<NodeId> = Vec::new();
    let mut chosen = Vec::new();
    for index in dead {
        let usable = |candidate: &&Replica| {
            !nodes.contains(&candidate.node)
                && !used.contains(&candidate.node)
                && !is_dead(&candidate.node)
        };
        let region = list.replicas.get(*index).map(|replica| &replica.region);
        let same_region = list
            .fallbacks
            .iter()
            .filter(usable)
            .find(|candidate| Some(&candidate.region) == region);
        let pick = same_region.or_else(|| list.fallbacks.iter().find(usable));
        if let Some(fallback) = pick {
            used.push(fallback.node.clone());
            chosen.push((*index, fallback.node.clone(), fallback.region.clone()));
        }
    }
    chosen
}

/// The live voters of a key, nearest first: this node if it is one, then the others in
/// preference order (which lists the local region first).
fn nearest_first(voters: usize, here: Option<usize>, dead: &[bool]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..voters)
        .filter(|index| !dead.get(*index).copied().unwrap_or(false))
        .collect();
    if let Some(me) = here.filter(|me| *me < voters) {
        order.retain(|index| *index != me);
        order.insert(0, me);
    }
    order
}

/// The error of a request that ended at `progress` (`Pending`: its time ran out,
/// `after_ms` after it started).
fn error_for(
    tracker: &QuorumTracker,
    level: Level,
    progress: Progress,
    after_ms: u64,
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
            after_ms,
            short: tracker.shortfall(),
        },
    }
}
