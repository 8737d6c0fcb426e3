//! Injected network faults, applied by the requesting side because loopback has no
//! traffic shaper: lost requests, lost responses, duplicates, extra delay (which also
//! reorders), and partitions by node or region, each direction on its own. One fault is
//! applied by the serving side: a slow node (`reply_delay_ms`, a gray failure), whose
//! every response to a peer leaves late while it stays alive and reachable.
//!
//! A node only uses a plan when it was started with `--chaos`; the plan is set through
//! the admin API. A lost message is never retried here: the caller sees a timeout, as it
//! would on a real network.

use crate::ids::{NodeId, Region};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The plan in force (`None`: no faults), shared by a transport's requesting and
/// serving sides.
pub type SharedFaults = Arc<Mutex<Option<Arc<FaultPlan>>>>;

/// Most nodes or regions one plan may name.
pub const FAULT_TARGETS_MAX: usize = 1024;

/// What to do to this node's traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultPlan {
    /// Probability that a request, and independently its response, is lost.
    pub drop_rate: f64,
    /// Probability that a request is delivered twice.
    pub duplicate_rate: f64,
    /// Extra one-way delay, plus up to `extra_jitter_ms` at random (reorders messages).
    pub extra_delay_ms: f64,
    pub extra_jitter_ms: f64,
    /// Requests to these never arrive.
    pub blocked_to_nodes: BTreeSet<NodeId>,
    pub blocked_to_regions: BTreeSet<Region>,
    /// Messages from these never arrive: requests to them are processed but their
    /// responses are lost.
    pub blocked_from_nodes: BTreeSet<NodeId>,
    pub blocked_from_regions: BTreeSet<Region>,
    /// Every response this node sends to a peer leaves this much late (the handler has
    /// run: writes are stored on time, only their acknowledgements are late). A node
    /// that answers slowly but answers: the gray failure of the `slow-node` scenario.
    pub reply_delay_ms: f64,
}

/// Why a plan was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultPlanError {
    #[error("{field} must be between 0 and 1, got {value}")]
    Rate { field: &'static str, value: f64 },
    #[error("{field} must be between 0 and 60000 ms, got {value}")]
    Delay { field: &'static str, value: f64 },
    #[error("a plan may name at most {max} nodes and regions")]
    TooManyTargets { max: usize },
}

/// The fate of one request, drawn from a plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fate {
    pub request_lost: bool,
    pub response_lost: bool,
    pub duplicated: bool,
    pub extra_delay: Duration,
}

impl FaultPlan {
    pub fn validate(&self) -> Result<(), FaultPlanError> {
        for (field, value) in [
            ("drop_rate", self.drop_rate),
            ("duplicate_rate", self.duplicate_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultPlanError::Rate { field, value });
            }
        }
        for (field, value) in [
            ("extra_delay_ms", self.extra_delay_ms),
            ("extra_jitter_ms", self.extra_jitter_ms),
            ("reply_delay_ms", self.reply_delay_ms),
        ] {
            if !(0.0..=60_000.0).contains(&value) {
                return Err(FaultPlanError::Delay { field, value });
            }
        }
        let targets = self.blocked_to_nodes.len()
            + self.blocked_to_regions.len()
            + self.blocked_from_nodes.len()
            + self.blocked_from_regions.len();
        if targets > FAULT_TARGETS_MAX {
            return Err(FaultPlanError::TooManyTargets {
                max: FAULT_TARGETS_MAX,
            });
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == FaultPlan::default()
    }

    /// How late this node's responses to peers leave (zero: on time).
    pub fn reply_delay(&self) -> Duration {
        Duration::from_secs_f64(self.reply_delay_ms.max(0.0) / 1000.0)
    }

    /// Draws what happens to one request to `peer` in `region`.
    pub fn fate(&self, peer: &NodeId, region: &Region, rng: &mut impl Rng) -> Fate {
        let blocked_to =
            self.blocked_to_nodes.contains(peer) || self.blocked_to_regions.contains(region);
        let blocked_from =
            self.blocked_from_nodes.contains(peer) || self.blocked_from_regions.contains(region);
        let chance = |rng: &mut dyn rand::RngCore, p: f64| p > 0.0 && rng.gen_bool(p.min(1.0));
        let jitter = if self.extra_jitter_ms > 0.0 {
            rng.gen_range(0.0..self.extra_jitter_ms)
        } else {
            0.0
        };
        Fate {
            request_lost: blocked_to || chance(rng, self.drop_rate),
            response_lost: blocked_from || chance(rng, self.drop_rate),
            duplicated: chance(rng, self.duplicate_rate),
            extra_delay: Duration::from_secs_f64((self.extra_delay_ms + jitter) / 1000.0),
        }
    }
}

#[cfg(test)]
mod tests;
