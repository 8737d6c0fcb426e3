//! The session workload of `cartwheel sim` (`[workload] kind = "sessions"`): closed-loop
//! clients in every region log users in, read their sessions, change carts, prefs and
//! history, rotate tokens and log out, over the session HTTP API of their own region's
//! nodes; users are shared across regions (client i of every region drives the same
//! users, each region with its own devices). Every request is recorded with its start
//! and end; after the run the checks in `verify` decide the invariants: no retired
//! token accepted, no acknowledged cart add missing, fresh tokens valid in every
//! region, live tokens never refused. This module owns the `[sessions]` scenario table
//! and the wiring into the sim; it never changes the kv workload.

mod client;
pub mod history;
mod verify;

pub use client::{run_client, SessionClientResult, SessionClientSpec, Shared};
pub use verify::{verify, SessionVerdict};

use crate::sim::timeline::Sample;
use anyhow::{bail, Result};
use serde::Deserialize;
use serde_json::{json, Value};

/// Most users one client drives (user indices are `u16`).
pub const USERS_PER_CLIENT_MAX: u32 = 64;
/// Most live cart lines a client keeps per user (below the server's `CART_LINES_MAX`
/// with every region's client adding to the same cart).
pub const CART_LINES_PER_USER_MAX: usize = 150;

/// Relative weights of the operations a client picks once its user is logged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    pub read: u32,
    pub cart_add: u32,
    pub cart_remove: u32,
    pub pref_set: u32,
    pub history_add: u32,
    pub rotate: u32,
    pub logout: u32,
    /// Present a token this client rotated or logged out (it must be refused).
    pub replay: u32,
}

/// One pick of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Read,
    CartAdd,
    CartRemove,
    PrefSet,
    HistoryAdd,
    Rotate,
    Logout,
    Replay,
}

impl Weights {
    fn table(&self) -> [(Choice, u32); 8] {
        [
            (Choice::Read, self.read),
            (Choice::CartAdd, self.cart_add),
            (Choice::CartRemove, self.cart_remove),
            (Choice::PrefSet, self.pref_set),
            (Choice::HistoryAdd, self.history_add),
            (Choice::Rotate, self.rotate),
            (Choice::Logout, self.logout),
            (Choice::Replay, self.replay),
        ]
    }

    pub fn total(&self) -> u32 {
        self.table().iter().map(|(_, weight)| weight).sum()
    }

    /// The choice a roll in `0..total()` lands on.
    pub fn pick(&self, roll: u32) -> Choice {
        let mut left = roll;
        for (choice, weight) in self.table() {
            if left < weight {
                return choice;
            }
            left -= weight;
        }
        Choice::Read
    }
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            read: 60,
            cart_add: 12,
            cart_remove: 5,
            pref_set: 6,
            history_add: 6,
            rotate: 3,
            logout: 2,
            replay: 3,
        }
    }
}

/// A validated `[sessions]` table.
#[derive(Clone, Debug)]
pub struct SessionMix {
    pub users_per_client: u32,
    pub weights: Weights,
    /// Share of logins (and of rotations and logouts) followed at once by a check of
    /// the token in every other region.
    pub cross_region_sample: f64,
    pub cart_lines_per_user: usize,
}

/// The `[sessions]` table as written; every field has a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessions {
    /// Session clients per region beside a kv workload (only there; a session
    /// workload's count is `workload.clients_per_region`).
    pub(crate) clients_per_region: Option<u32>,
    users_per_client: Option<u32>,
    cross_region_sample: Option<f64>,
    cart_lines_per_user: Option<usize>,
    #[serde(default)]
    weights: RawWeights,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeights {
    read: Option<u32>,
    cart_add: Option<u32>,
    cart_remove: Option<u32>,
    pref_set: Option<u32>,
    history_add: Option<u32>,
    rotate: Option<u32>,
    logout: Option<u32>,
    replay: Option<u32>,
}

impl SessionMix {
    pub fn from_raw(raw: &RawSessions) -> Result<SessionMix> {
        let users_per_client = raw.users_per_client.unwrap_or(4);
        if users_per_client == 0 || users_per_client > USERS_PER_CLIENT_MAX {
            bail!("sessions.users_per_client: must be between 1 and {USERS_PER_CLIENT_MAX}");
        }
        let cross_region_sample = raw.cross_region_sample.unwrap_or(0.25);
        if !(0.0..=1.0).contains(&cross_region_sample) {
            bail!(
                "sessions.cross_region_sample: must be between 0 and 1, got {cross_region_sample}"
            );
        }
        let cart_lines_per_user = raw.cart_lines_per_user.unwrap_or(40);
        if cart_lines_per_user == 0 || cart_lines_per_user > CART_LINES_PER_USER_MAX {
            bail!("sessions.cart_lines_per_user: must be between 1 and {CART_LINES_PER_USER_MAX}");
        }
        let w = &raw.weights;
        let d = Weights::default();
        let weights = Weights {
            read: w.read.unwrap_or(d.read),
            cart_add: w.cart_add.unwrap_or(d.cart_add),
            cart_remove: w.cart_remove.unwrap_or(d.cart_remove),
            pref_set: w.pref_set.unwrap_or(d.pref_set),
            history_add: w.history_add.unwrap_or(d.history_add),
            rotate: w.rotate.unwrap_or(d.rotate),
            logout: w.logout.unwrap_or(d.logout),
            replay: w.replay.unwrap_or(d.replay),
        };
        if weights
            .table()
            .iter()
            .any(|(_, weight)| *weight > 1_000_000)
            || weights.total() == 0
        {
            bail!("sessions.weights: each at most 1000000, and not all 0");
        }
        Ok(SessionMix {
            users_per_client,
            weights,
            cross_region_sample,
            cart_lines_per_user,
        })
    }
}

/// Starts `clients_per_region` clients in every region of `shared.regions`.
pub fn spawn(
    clients_per_region: u32,
    mix: &SessionMix,
    shared: &Shared,
    seed: u64,
) -> Vec<tokio::task::JoinHandle<SessionClientResult>> {
    super::clients::spawn_per_region(
        shared.regions.len(),
        clients_per_region,
        seed,
        |region, index, seed| {
            let spec = SessionClientSpec {
                region,
                index,
                mix: mix.clone(),
                seed,
            };
            run_client(spec, shared.clone())
        },
    )
}

/// Adds the clients' latencies to `table` and runs the final checks; `None` when no
/// session client ran (a kv workload).
pub async fn check(
    shared: &Shared,
    results: &[SessionClientResult],
    table: &mut crate::sim::report::Table,
) -> Option<SessionVerdict> {
    if results.is_empty() {
        return None;
    }
    for result in results {
        for (key, stats) in &result.table {
            table.entry(key.clone()).or_default().merge(stats);
        }
    }
    Some(verify(&shared.http, results, &shared.routes, &shared.regions).await)
}

/// Every recorded session operation as a timeline sample, in the region of the node
/// it asked (a probe of a region that is down counts against that region), ok when it
/// got the answer it should (`OpRecord::met`).
pub fn samples(results: &[SessionClientResult], regions: &[String]) -> Vec<Sample> {
    let samples = results.iter().flat_map(|result| result.ops.iter());
    samples
        .filter_map(|op| {
            Some(Sample {
                region: regions.get(op.region as usize)?.clone(),
                start_s: op.start_us as f64 / 1e6,
                latency_ms: op.end_us.saturating_sub(op.start_us) as f64 / 1000.0,
                ok: op.met(),
            })
        })
        .collect()
}

/// Prints the session invariants and whatever examples the check kept.
pub fn print(verdict: &SessionVerdict) {
    println!(
        "invariants: revoked_token_accepted = {}, cart_adds_missing = {}, cross_region_validation_failures = {}, valid_token_rejected = {}, carts_unreadable = {}",
        verdict.revoked_token_accepted,
        verdict.cart_adds_missing,
        verdict.cross_region_validation_failures,
        verdict.valid_token_rejected,
        verdict.carts_unreadable,
    );
    println!(
        "checked: {} acknowledged cart adds in {} carts x {} regions, {} retired tokens probed in every region ({} probes unanswered), {} cross-region validations",
        verdict.cart_adds_checked,
        verdict.carts_checked,
        verdict.regions,
        verdict.retired_tokens_probed,
        verdict.retired_probes_unanswered,
        verdict.cross_region_validations,
    );
    if verdict.truncated {
        println!("note: a client filled a record list and stopped early (see the limits in src/sim/sessions)");
    }
    for example in &verdict.examples {
        println!("  {example}");
    }
}

/// Adds the session invariants to the JSON summary.
pub fn add_to_summary(value: &mut Value, verdict: &SessionVerdict) {
    let invariants = &mut value["invariants"];
    invariants["revoked_token_accepted"] = json!(verdict.revoked_token_accepted);
    invariants["cart_adds_missing"] = json!(verdict.cart_adds_missing);
    invariants["cross_region_validation_failures"] =
        json!(verdict.cross_region_validation_failures);
    invariants["valid_token_rejected"] = json!(verdict.valid_token_rejected);
    invariants["carts_unreadable"] = json!(verdict.carts_unreadable);
    value["sessions"] = json!({
        "cart_adds_checked": verdict.cart_adds_checked,
        "carts_checked": verdict.carts_checked,
        "retired_tokens_probed": verdict.retired_tokens_probed,
        "retired_probes_unanswered": verdict.retired_probes_unanswered,
        "cross_region_validations": verdict.cross_region_validations,
        "truncated": verdict.truncated,
    });
}

#[cfg(test)]
mod tests;
