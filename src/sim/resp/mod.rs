//! The RESP workload of `cartwheel sim` (a `[resp]` scenario table): paced clients in
//! every region talk to their own region's nodes over the Redis protocol (strings with
//! `SET`, `SET EX`, `DEL` and `GET`; counters with `INCR`/`INCRBY` and `GET`; hashes
//! with `HSET`, `HDEL` and `HGET`), beside whatever other workload the scenario runs,
//! each on keys only it writes so the check is exact. After the run `verify` reads
//! every key back through every region and counts the RESP invariants: acknowledged
//! writes lost, deleted values resurrected, counters out of their bounds and reads
//! behind the reader's own acknowledged writes. This module owns the `[resp]` table,
//! the wiring into the sim and the report's RESP figures; it never changes the other
//! workloads (its clients are seeded apart from theirs).

mod client;
pub mod history;
mod verify;

pub use client::{run_client, RespClientResult, RespClientSpec};
pub use verify::{verify, RespVerdict};

use crate::sim::report::{OpStats, Table};
use crate::sim::sessions::Shared;
use crate::sim::timeline::Sample;
use anyhow::{bail, Result};
use serde::Deserialize;
use serde_json::{json, Value};

/// Most RESP clients per region a scenario may ask for.
pub const RESP_CLIENTS_PER_REGION_MAX: u32 = 64;
/// Most keys of each kind (strings, counters, hashes) one client owns.
pub const KEYS_PER_KIND_MAX: u32 = 1_000;
/// Most fields of one hash key (below the server's `RESP_HASH_FIELDS_MAX`).
pub const FIELDS_PER_HASH_MAX: u32 = 64;
/// Highest pace of one client, operations per second.
pub const OPS_PER_S_MAX: f64 = 10_000.0;

/// A validated `[resp]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct RespMix {
    pub clients_per_region: u32,
    /// Operations one client sends per second (it waits for each answer, so fewer
    /// when answers are slow).
    pub ops_per_s: f64,
    /// String keys, counter keys and hash keys each client owns (this many of each).
    pub keys_per_kind: u32,
    pub fields_per_hash: u32,
}

/// The `[resp]` table as written; every field has a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResp {
    clients_per_region: Option<u32>,
    ops_per_s: Option<f64>,
    keys_per_kind: Option<u32>,
    fields_per_hash: Option<u32>,
}

impl RespMix {
    pub fn from_raw(raw: &RawResp) -> Result<RespMix> {
        let clients_per_region = raw.clients_per_region.unwrap_or(2);
        if clients_per_region == 0 || clients_per_region > RESP_CLIENTS_PER_REGION_MAX {
            bail!("resp.clients_per_region: must be between 1 and {RESP_CLIENTS_PER_REGION_MAX}");
        }
        let ops_per_s = raw.ops_per_s.unwrap_or(40.0);
        if !(ops_per_s > 0.0 && ops_per_s <= OPS_PER_S_MAX) {
            bail!("resp.ops_per_s: must be above 0 and at most {OPS_PER_S_MAX}");
        }
        let keys_per_kind = raw.keys_per_kind.unwrap_or(6);
        if keys_per_kind == 0 || keys_per_kind > KEYS_PER_KIND_MAX {
            bail!("resp.keys_per_kind: must be between 1 and {KEYS_PER_KIND_MAX}");
        }
        let fields_per_hash = raw.fields_per_hash.unwrap_or(4);
        if fields_per_hash == 0 || fields_per_hash > FIELDS_PER_HASH_MAX {
            bail!("resp.fields_per_hash: must be between 1 and {FIELDS_PER_HASH_MAX}");
        }
        Ok(RespMix {
            clients_per_region,
            ops_per_s,
            keys_per_kind,
            fields_per_hash,
        })
    }
}

/// Starts the mix's clients in every region of `shared.regions`.
pub fn spawn(
    mix: &RespMix,
    shared: &Shared,
    seed: u64,
) -> Vec<tokio::task::JoinHandle<RespClientResult>> {
    super::clients::spawn_per_region(
        shared.regions.len(),
        mix.clients_per_region,
        seed,
        |region, index, seed| {
            let spec = RespClientSpec {
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
/// RESP client ran.
pub async fn check(
    shared: &Shared,
    results: &[RespClientResult],
    table: &mut Table,
) -> Option<RespVerdict> {
    if results.is_empty() {
        return None;
    }
    let mut all = OpStats::default();
    for result in results {
        for ((region, row), stats) in &result.table {
            table
                .entry((region.clone(), row.clone()))
                .or_default()
                .merge(stats);
            if !row.ends_with("_during_fault") {
                all.merge(stats);
            }
        }
    }
    let mut verdict = verify(results, &shared.routes, &shared.regions).await;
    let errors = results.iter().flat_map(|result| result.errors.iter());
    verdict.error_answers = errors.take(client::ERRORS_KEPT_MAX).cloned().collect();
    verdict.p99_ms = if all.latency_us.is_empty() {
        0.0
    } else {
        all.latency_us.value_at_quantile(0.99) as f64 / 1000.0
    };
    Some(verdict)
}

/// Every RESP operation as a timeline sample, in its client's region.
pub fn samples(results: &[RespClientResult], regions: &[String]) -> Vec<Sample> {
    let mut samples = Vec::new();
    for result in results {
        let Some(region) = regions.get(result.region as usize) else {
            continue;
        };
        samples.extend(result.samples.iter().map(|sample| Sample {
            region: region.clone(),
            start_s: sample.start_us as f64 / 1e6,
            latency_ms: sample.end_us.saturating_sub(sample.start_us) as f64 / 1000.0,
            ok: sample.ok,
        }));
    }
    samples
}

/// Prints the RESP invariants and whatever examples the check kept.
pub fn print(verdict: &RespVerdict) {
    println!(
        "resp invariants: resp_lost = {}, resp_resurrected = {}, resp_counters_out_of_range = {}, resp_read_your_writes = {}, resp_keys_unreadable = {}",
        verdict.lost, verdict.resurrected, verdict.counters_out_of_range, verdict.read_your_writes, verdict.unreadable,
    );
    println!(
        "resp checked: {} keys ({} with an acknowledged write) x {} regions; {} / {} operations answered, p99 {:.1} ms",
        verdict.keys_checked,
        verdict.acked_keys_checked,
        verdict.regions,
        verdict.ops_ok,
        verdict.ops_attempted,
        verdict.p99_ms,
    );
    if verdict.truncated {
        println!("note: a RESP client filled its record list and stopped early (SIM_RESP_RECORDS_PER_CLIENT_MAX)");
    }
    for example in &verdict.examples {
        println!("  {example}");
    }
    for error in &verdict.error_answers {
        println!("  resp error answer: {error}");
    }
}

/// Adds the RESP invariants and figures to the JSON summary.
pub fn add_to_summary(value: &mut Value, verdict: &RespVerdict) {
    let invariants = &mut value["invariants"];
    invariants["resp_lost"] = json!(verdict.lost);
    invariants["resp_resurrected"] = json!(verdict.resurrected);
    invariants["resp_counters_out_of_range"] = json!(verdict.counters_out_of_range);
    invariants["resp_read_your_writes"] = json!(verdict.read_your_writes);
    invariants["resp_keys_unreadable"] = json!(verdict.unreadable);
    value["resp"] = json!({
        "keys_checked": verdict.keys_checked,
        "acked_keys_checked": verdict.acked_keys_checked,
        "ops_ok": verdict.ops_ok,
        "ops_attempted": verdict.ops_attempted,
        "p99_ms": verdict.p99_ms,
        "truncated": verdict.truncated,
    });
}

#[cfg(test)]
mod tests;
