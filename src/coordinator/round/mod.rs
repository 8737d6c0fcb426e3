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
mod write;

#[cfg(test)]
mod tests;

pub use read::{Ask, Phase, ReadAnswer, ReadEffect, ReadPlan, ReadRound};
pub use write::{MintAnswer, WriteEffect, WritePlan, WriteRound};

use super::quorum::{Level, Progress, QuorumTracker};
use super::CoordinatorError;

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
        },
    }
}
