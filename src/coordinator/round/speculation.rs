//! Which replicas a round asks first and when a read speculates, from what the driver
//! measured of each replica: the failure detector's suspicion and the replica's own
//! observed p99 response time (`coordinator::latency`).
//!
//! A replica that is suspected, or answers slower than a read's speculation ceiling
//! (`READ_SPECULATE_MS`), is asked after the others of its region, so a level the others
//! can meet never waits for it; and a read speculates once the replicas it asked are
//! later than their own p99 (Cassandra's `speculative_retry = 99p`), within
//! `READ_SPECULATE_FLOOR_MS..=READ_SPECULATE_MS`. Pure: the measurements are inputs.

use super::nearest_first;
use crate::coordinator::quorum::QuorumTracker;
use crate::limits;

/// What the driver knows of each replica beyond dead or alive (indexes as the plan's;
/// a missing entry means "not suspected", "not measured").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// The failure detector suspects it: asked only when the level cannot be met
    /// without it (or when a read speculates).
    pub suspect: Vec<bool>,
    /// Its observed p99 response time; `None`: too few samples to say.
    pub p99_ms: Vec<Option<u64>>,
}

impl Health {
    fn suspect(&self, index: usize) -> bool {
        self.suspect.get(index).copied().unwrap_or(false)
    }

    fn p99_ms(&self, index: usize) -> Option<u64> {
        self.p99_ms.get(index).copied().flatten()
    }

    /// How much a replica is to be avoided: 0 for a healthy one (asked in preference
    /// order), its p99 when that is beyond the speculation ceiling (slower last), and
    /// more than any p99 when suspected.
    fn avoidance(&self, index: usize) -> u64 {
        if self.suspect(index) {
            return u64::MAX;
        }
        self.p99_ms(index)
            .filter(|p99_ms| *p99_ms > limits::READ_SPECULATE_MS)
            .unwrap_or(0)
    }
}

/// The live voters in the order a round asks them: this node first if it is one, then
/// region by region in preference order (the local region first), each region's
/// healthy replicas before its slow ones (slowest last) and its suspects after those.
pub fn preferred_order(
    tracker: &QuorumTracker,
    here: Option<usize>,
    dead: &[bool],
    health: &Health,
) -> Vec<usize> {
    let order = nearest_first(tracker.replicas(), here, dead);
    if order.iter().all(|index| health.avoidance(*index) == 0) {
        // Nothing to avoid (the usual case, and a plan without measurements): the
        // preference order as it is.
        return order;
    }
    let mut regions = Vec::new();
    for index in &order {
        let region = tracker.region(*index);
        if !regions.contains(&region) {
            regions.push(region);
        }
    }
    let mut ranked: Vec<(bool, usize, u64, usize)> = order
        .iter()
        .enumerate()
        .map(|(at, index)| {
            let region = tracker.region(*index);
            let region_rank = regions.iter().position(|seen| *seen == region);
            let not_here = Some(*index) != here;
            let avoid = health.avoidance(*index);
            (not_here, region_rank.unwrap_or(0), avoid, at)
        })
        .collect();
    ranked.sort_unstable();
    ranked.into_iter().map(|(.., at)| order[at]).collect()
}

/// How long after asking `asked` a read speculates: the slowest p99 among them (this
/// node's own copy is read in place, at once), within the floor and the ceiling. A
/// replica not measured yet (new, or tried again after a slow spell left its window)
/// counts as the slowest healthy replica of the plan (p99 within the ceiling): were it
/// given the ceiling, every read that tries a still-slow replica again would cost the
/// ceiling until its samples add up. The ceiling when no healthy replica is measured,
/// or nothing was measured at all (a plan without measurements, as the DST's, keeps
/// the fixed delay).
pub fn speculate_after_ms(asked: &[bool], here: Option<usize>, health: &Health) -> u64 {
    let healthy_ms = health
        .p99_ms
        .iter()
        .flatten()
        .filter(|p99_ms| **p99_ms <= limits::READ_SPECULATE_MS)
        .max()
        .copied();
    let Some(healthy_ms) = healthy_ms else {
        return limits::READ_SPECULATE_MS;
    };
    let mut slowest_ms = 0;
    for (index, _) in asked.iter().enumerate().filter(|(_, asked)| **asked) {
        if Some(index) != here {
            slowest_ms = slowest_ms.max(health.p99_ms(index).unwrap_or(healthy_ms));
        }
    }
    slowest_ms.clamp(limits::READ_SPECULATE_FLOOR_MS, limits::READ_SPECULATE_MS)
}
