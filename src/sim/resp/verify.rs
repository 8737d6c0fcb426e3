//! The final check of the RESP workload, once the run has stopped and the replicas have
//! converged: the reads each client made during the run are judged against its own
//! acknowledged writes (read-your-writes), then every key is read back over RESP
//! through a node of every region (`GET` for strings and counters, `HGETALL` for
//! hashes) and judged by `history`'s rules; a key that does not yet show an allowed
//! state is read again for a bounded settle time before it counts.

use super::client::{connect, RespClientResult};
use super::history::{
    counter_bounds, counter_in_range, counter_reads_behind, judge_register, register_reads_behind,
    version_of, Counter, Judgement, Register,
};
use crate::limits::{SIM_RESP_POLL_MS, SIM_RESP_RESPONSE_TIMEOUT_MS, SIM_RESP_SETTLE_MS};
use crate::sim::routes::Routes;
use crate::sim::workload::VERIFY_CONCURRENCY_MAX;
use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Examples of violations kept for the report.
pub const EXAMPLES_MAX: usize = 12;

/// What the RESP checks found.
#[derive(Clone, Debug, Default)]
pub struct RespVerdict {
    /// (register, region) pairs read back older than, or without, what the history
    /// allows: a lost acknowledged `SET`, `HSET` or `DEL`/`HDEL` undone by an older value
    /// is counted as resurrected instead.
    pub lost: u64,
    /// (register, region) pairs holding a value after an acknowledged `DEL`/`HDEL` that
    /// no later write may explain.
    pub resurrected: u64,
    /// (counter, region) pairs below the acknowledged increments or above every send.
    pub counters_out_of_range: u64,
    /// Reads during the run that missed the reading client's own acknowledged writes.
    pub read_your_writes: u64,
    /// (key, region) pairs no final read answered.
    pub unreadable: u64,
    /// Registers and counters with an acknowledged write, each read back in every region.
    pub acked_keys_checked: u64,
    pub keys_checked: u64,
    pub regions: usize,
    pub ops_ok: u64,
    pub ops_attempted: u64,
    pub p99_ms: f64,
    pub truncated: bool,
    pub examples: Vec<String>,
    /// The first error answers the clients got (not timeouts or refused connections).
    pub error_answers: Vec<String>,
}

impl RespVerdict {
    fn example(&mut self, text: String) {
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(text);
        }
    }
}

/// A key to read back: a string, a counter, or a hash with its field registers.
enum Target<'a> {
    String(&'a Register),
    Counter(&'a Counter),
    Hash(&'a str, Vec<&'a Register>),
}

impl Target<'_> {
    fn key(&self) -> &str {
        match self {
            Target::String(register) => &register.key,
            Target::Counter(counter) => &counter.key,
            Target::Hash(key, _) => key,
        }
    }

    fn acked(&self) -> bool {
        match self {
            Target::String(register) => register.writes.iter().any(|write| write.acked),
            Target::Counter(counter) => counter.writes.iter().any(|write| write.acked),
            Target::Hash(_, fields) => fields.iter().any(|f| f.writes.iter().any(|w| w.acked)),
        }
    }
}

/// A violation one read back found.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Finding {
    Lost(String),
    Resurrected(String),
    OutOfRange(String),
}

/// The findings of one read back of `target` (empty: it holds an allowed state);
/// `None` when the node gave no usable answer.
async fn read_back(
    connection: &mut MultiplexedConnection,
    target: &Target<'_>,
) -> Option<Vec<Finding>> {
    let timeout = Duration::from_millis(SIM_RESP_RESPONSE_TIMEOUT_MS);
    let mut command = redis::cmd(match target {
        Target::Hash(..) => "HGETALL",
        _ => "GET",
    });
    command.arg(target.key());
    let findings = match target {
        Target::String(register) => {
            let value =
                tokio::time::timeout(timeout, command.query_async::<Option<Vec<u8>>>(connection));
            let observed = value.await.ok()?.ok()?.map(|bytes| version_of(&bytes));
            judge(register, observed).into_iter().collect()
        }
        Target::Counter(counter) => {
            let value =
                tokio::time::timeout(timeout, command.query_async::<Option<i64>>(connection));
            let observed = value.await.ok()?.ok()?.unwrap_or(0);
            if counter_in_range(&counter.writes, observed) {
                Vec::new()
            } else {
                let (low, high) = counter_bounds(&counter.writes);
                let text = format!("{} = {observed}, not in {low}..={high}", counter.key);
                vec![Finding::OutOfRange(text)]
            }
        }
        Target::Hash(_, fields) => {
            let value = tokio::time::timeout(
                timeout,
                command.query_async::<HashMap<String, Vec<u8>>>(connection),
            );
            let map = value.await.ok()?.ok()?;
            fields
                .iter()
                .filter_map(|register| {
                    let field = register.field.as_deref().unwrap_or_default();
                    let observed = map.get(field).map(|bytes| version_of(bytes));
                    judge(register, observed)
                })
                .collect()
        }
    };
    Some(findings)
}

fn judge(register: &Register, observed: Option<u64>) -> Option<Finding> {
    let name = match &register.field {
        Some(field) => format!("{} field {field}", register.key),
        None => register.key.clone(),
    };
    let last = register.writes.iter().rposition(|write| write.acked);
    let text = format!(
        "{name} read {observed:?}, last acknowledged write {:?} of {}",
        last.map(|index| register.writes[index].version),
        register.writes.len()
    );
    match judge_register(&register.writes, register.merge(), observed) {
        Judgement::Allowed => None,
        Judgement::Lost => Some(Finding::Lost(text)),
        Judgement::Resurrected => Some(Finding::Resurrected(text)),
    }
}

/// Reads `target` through the nodes of one region until it shows an allowed state or
/// the settle time passes; the last findings, `None` if no read answered.
async fn settle(nodes: Vec<MultiplexedConnection>, target: &Target<'_>) -> Option<Vec<Finding>> {
    let deadline = Instant::now() + Duration::from_millis(SIM_RESP_SETTLE_MS);
    let mut last = None;
    for attempt in 0.. {
        let mut connection = nodes.get(attempt % nodes.len().max(1))?.clone();
        if let Some(findings) = read_back(&mut connection, target).await {
            let clean = findings.is_empty();
            last = Some(findings);
            if clean {
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(SIM_RESP_POLL_MS)).await;
    }
    last
}

/// Open connections to every node that is up, per region with a node up (nodes that
/// refuse are left out: a region none of whose nodes connects reads as unreadable).
async fn connections(
    routes: &Routes,
    regions: &[String],
) -> BTreeMap<String, Vec<MultiplexedConnection>> {
    let mut by_region = BTreeMap::new();
    for region in regions {
        let nodes: Vec<SocketAddr> = routes.resp_up(region);
        if nodes.is_empty() {
            continue;
        }
        let mut open = Vec::new();
        for node in nodes {
            if let Some(connection) = connect(node).await {
                open.push(connection);
            }
        }
        by_region.insert(region.clone(), open);
    }
    by_region
}

/// Judges the reads the clients made during the run.
fn check_reads(results: &[RespClientResult], verdict: &mut RespVerdict) {
    for result in results {
        verdict.truncated |= result.truncated;
        for register in &result.registers {
            let behind = register_reads_behind(register);
            if behind > 0 {
                verdict.example(format!(
                    "read behind its own acknowledged write: {} {}",
                    register.key,
                    register.field.as_deref().unwrap_or("")
                ));
            }
            verdict.read_your_writes += behind as u64;
        }
        for counter in &result.counters {
            let behind = counter_reads_behind(counter);
            if behind > 0 {
                verdict.example(format!(
                    "counter read below its own acknowledged increments: {}",
                    counter.key
                ));
            }
            verdict.read_your_writes += behind as u64;
        }
        verdict.ops_attempted += result.samples.len() as u64;
        verdict.ops_ok += result.samples.iter().filter(|sample| sample.ok).count() as u64;
    }
}

/// Every key of every client, with its registers.
fn targets(results: &[RespClientResult]) -> Vec<Target<'_>> {
    let mut targets = Vec::new();
    for result in results {
        let mut hashes: BTreeMap<&str, Vec<&Register>> = BTreeMap::new();
        for register in &result.registers {
            match &register.field {
                None => targets.push(Target::String(register)),
                Some(_) => hashes.entry(&register.key).or_default().push(register),
            }
        }
        targets.extend(
            hashes
                .into_iter()
                .map(|(key, fields)| Target::Hash(key, fields)),
        );
        targets.extend(result.counters.iter().map(Target::Counter));
    }
    targets
}

/// Runs every check of the RESP workload.
pub async fn verify(
    results: &[RespClientResult],
    routes: &Routes,
    regions: &[String],
) -> RespVerdict {
    let mut verdict = RespVerdict {
        regions: regions.len(),
        ..RespVerdict::default()
    };
    check_reads(results, &mut verdict);
    let open = connections(routes, regions).await;
    let targets = targets(results);
    verdict.keys_checked = targets.len() as u64;
    verdict.acked_keys_checked = targets.iter().filter(|target| target.acked()).count() as u64;
    let checks = targets.iter().flat_map(|target| {
        let open = &open;
        regions.iter().filter_map(move |region| {
            let nodes = open.get(region)?;
            Some((target, region, nodes.clone()))
        })
    });
    let answers: Vec<_> = futures::stream::iter(checks)
        .map(|(target, region, nodes)| async move {
            (target.key(), region, settle(nodes, target).await)
        })
        .buffer_unordered(VERIFY_CONCURRENCY_MAX)
        .collect()
        .await;
    for (key, region, findings) in answers {
        let Some(findings) = findings else {
            verdict.unreadable += 1;
            verdict.example(format!("{key} unreadable in {region}"));
            continue;
        };
        for finding in findings {
            let (count, label, text) = match finding {
                Finding::Lost(text) => (&mut verdict.lost, "lost", text),
                Finding::Resurrected(text) => (&mut verdict.resurrected, "resurrected", text),
                Finding::OutOfRange(text) => (
                    &mut verdict.counters_out_of_range,
                    "counter out of range",
                    text,
                ),
            };
            *count += 1;
            verdict.example(format!("{label} in {region}: {text}"));
        }
    }
    verdict
}

#[cfg(test)]
mod tests;
