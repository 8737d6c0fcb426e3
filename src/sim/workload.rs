//! Simulated clients: closed-loop readers and writers in every region, each talking to
//! its own region's nodes over the HTTP API through its region's driver (token-aware,
//! failing over to another node of the region), recording every acknowledged write;
//! and the final check that reads each of them back.

use super::driver::{Driver, Retry, Sent};
use super::report::{Table, Verdict};
use super::routes::Routes;
use crate::api::{SiblingsBody, CONTEXT_HEADER};
use crate::coordinator::quorum::Level;
use base64::Engine;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Values written after the last acknowledged one whose outcome is unknown (timeouts);
/// a client keeps at most this many per key, newest first.
pub const UNCERTAIN_WRITES_PER_KEY_MAX: usize = 64;
/// Final-check reads in flight at once.
pub const VERIFY_CONCURRENCY_MAX: usize = 32;
/// Attempts of one final-check read before the key counts as unreadable.
pub const VERIFY_ATTEMPTS_MAX: u32 = 3;

/// One simulated client.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    pub region: String,
    pub index: u32,
    /// The region's driver: picks the node and retries elsewhere.
    pub driver: Arc<Driver>,
    /// Whether a fault is on (its operations are also counted apart).
    pub faulted: Arc<super::report::FaultsOn>,
    pub keys: u32,
    pub read_fraction: f64,
    pub value_bytes: usize,
    pub read: Option<Level>,
    pub write: Option<Level>,
    /// Share of writes that are deletes (sent with the key's context).
    pub delete_fraction: f64,
    /// Time zero of the run, for the timeline's samples.
    pub epoch: Instant,
    pub seed: u64,
}

/// Operations a client keeps for the timeline; past it the timeline thins out.
pub const TIMELINE_SAMPLES_PER_CLIENT_MAX: usize = 200_000;

/// One finished operation of the recorded history: start (s since the run began),
/// latency (ms, so end = start + latency), the node asked, the request and its outcome.
#[derive(Clone, Debug)]
pub struct Sample {
    pub start_s: f64,
    pub latency_ms: f64,
    pub node: SocketAddr,
    /// `read`, `write` or `delete`.
    pub op: &'static str,
    pub key: String,
    pub ok: bool,
}

/// What a client knows about one of its keys. A delete is recorded as an empty value
/// (written values are never empty).
#[derive(Clone, Debug, Default)]
pub struct KeyState {
    context: Option<String>,
    last_acked: Option<Vec<u8>>,
    /// When the last acknowledged write or delete was sent (or the first attempt of
    /// unknown outcome before it).
    last_acked_sent: Option<Instant>,
    /// When the first write of unknown outcome since the last acknowledged one was sent.
    uncertain_since: Option<Instant>,
    uncertain: Vec<Vec<u8>>,
}

/// What the final read of a key found, against what the client was told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyCheck {
    Fine,
    /// The last acknowledged value is gone (and no later write of unknown outcome shows).
    Lost,
    /// The last acknowledged operation deleted the key, yet a value it did not write
    /// after the delete is there.
    Resurrected,
}

/// Judges the values read at the end for a key whose last acknowledged operation wrote
/// `acked` (empty: deleted), with later operations of unknown outcome `uncertain`.
pub fn check_key(values: &[Vec<u8>], acked: &[u8], uncertain: &[Vec<u8>]) -> KeyCheck {
    let later_delete = uncertain.iter().any(Vec::is_empty);
    let known = |value: &Vec<u8>| uncertain.contains(value);
    if acked.is_empty() {
        return if values.iter().all(known) {
            KeyCheck::Fine
        } else {
            KeyCheck::Resurrected
        };
    }
    let present = values.iter().any(|value| *value == acked || known(value));
    if present || (values.is_empty() && later_delete) {
        KeyCheck::Fine
    } else {
        KeyCheck::Lost
    }
}

/// A finished client: its latencies and the writes to check.
pub struct ClientResult {
    pub region: String,
    pub table: Table,
    pub keys: BTreeMap<String, KeyState>,
    /// Reads that found nothing for a key with an acknowledged write.
    pub acked_reads_not_found: u64,
    pub samples: Vec<Sample>,
}

impl ClientResult {
    /// Each key whose last acknowledged operation wrote a value, with when it (or an
    /// attempt of unknown outcome before it) was sent: every region's readers see that
    /// value appear. A key left deleted is not listed: a region whose replicas were
    /// sent the writes and the delete together saw nothing change (deleted before,
    /// deleted after), and its feed rightly reports nothing.
    pub fn acknowledged_writes(&self) -> impl Iterator<Item = (&String, Instant)> + '_ {
        self.keys.iter().filter_map(|(key, state)| {
            let written = state
                .last_acked
                .as_ref()
                .is_some_and(|value| !value.is_empty());
            state
                .last_acked_sent
                .filter(|_| written)
                .map(|sent| (key, sent))
        })
    }
}

/// Pause of a client whose region has every node held down by its driver.
const NO_NODE_PAUSE_MS: u64 = 50;

fn read_timeout() -> Duration {
    Duration::from_millis(crate::limits::SIM_READ_ATTEMPT_TIMEOUT_MS)
}

fn write_timeout() -> Duration {
    Duration::from_millis(crate::limits::SIM_WRITE_ATTEMPT_TIMEOUT_MS)
}

fn push_uncertain(state: &mut KeyState, value: Vec<u8>) {
    if state.uncertain.len() == UNCERTAIN_WRITES_PER_KEY_MAX {
        state.uncertain.remove(0);
    }
    state.uncertain.push(value);
}

fn value_for(key: &str, sequence: u64, size: usize) -> Vec<u8> {
    let mut value = format!("{key}#{sequence}#").into_bytes();
    value.resize(size.max(value.len()), b'.');
    value
}

fn level_query(name: &str, level: Option<Level>) -> String {
    level
        .map(|level| format!("?{name}={level}"))
        .unwrap_or_default()
}

/// The answer of a driven request: its status (`None`: no node answered), the node that
/// answered or was tried last, and whether an earlier attempt may have been applied.
struct Driven {
    status: Option<u16>,
    node: Option<SocketAddr>,
    response: Option<reqwest::Response>,
    earlier_maybe_applied: bool,
}

fn driven(sent: Sent) -> Driven {
    match sent {
        Sent::Answered {
            node,
            response,
            earlier_maybe_applied,
        } => Driven {
            status: Some(response.status().as_u16()),
            node: Some(node),
            response: Some(response),
            earlier_maybe_applied,
        },
        Sent::Failed { node, maybe_sent } => Driven {
            status: None,
            node: Some(node),
            response: None,
            earlier_maybe_applied: maybe_sent,
        },
        Sent::NoNode => Driven {
            status: None,
            node: None,
            response: None,
            earlier_maybe_applied: false,
        },
    }
}

/// Runs one client until `stop` turns true.
pub async fn run_client(
    spec: ClientSpec,
    mut stop: watch::Receiver<bool>,
    live: Arc<crate::sim::live::LiveCounts>,
) -> ClientResult {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut keys: BTreeMap<String, KeyState> = BTreeMap::new();
    let mut table = Table::new();
    let mut sequence = 0u64;
    let mut acked_reads_not_found = 0;
    let mut samples = Vec::new();
    while !*stop.borrow() {
        let key = format!(
            "{}-c{}-k{}",
            spec.region,
            spec.index,
            rng.gen_range(0..spec.keys)
        );
        let is_read = rng.gen_bool(spec.read_fraction);
        let mut request_kind = if is_read { "read" } else { "write" };
        let state = keys.entry(key.clone()).or_default();
        let started = Instant::now();
        let turn: usize = rng.gen();
        let (ok, node) = if is_read {
            let path = format!("/v1/kv/{key}{}", level_query("consistency", spec.read));
            let answer = driven(
                spec.driver
                    .send(
                        Some(key.as_bytes()),
                        Retry::Speculate,
                        read_timeout(),
                        turn,
                        |http, node| http.get(format!("http://{node}{path}")),
                    )
                    .await,
            );
            let Some(node) = answer.node else {
                // Every node of the region is held down (a fault): wait for one.
                tokio::time::sleep(Duration::from_millis(NO_NODE_PAUSE_MS)).await;
                continue;
            };
            // Not found is fine after a delete, acknowledged or maybe applied.
            let written = state.last_acked.as_ref().is_some_and(|v| !v.is_empty())
                && !state.uncertain.iter().any(Vec::is_empty);
            if answer.status == Some(404) && written {
                acked_reads_not_found += 1;
            }
            (matches!(answer.status, Some(200 | 300 | 404)), node)
        } else {
            // A delete needs the context of the value it removes (else it is a sibling).
            let delete = state.context.is_some() && rng.gen_bool(spec.delete_fraction);
            let value = if delete {
                Vec::new()
            } else {
                value_for(&key, sequence + 1, spec.value_bytes)
            };
            let path = format!("/v1/kv/{key}{}", level_query("consistency", spec.write));
            let context = state.context.clone();
            // Retried with the same context: a copy an earlier attempt applied is the
            // same write, at worst a sibling the next write with its context replaces.
            let answer = driven(
                spec.driver
                    .send(
                        Some(key.as_bytes()),
                        Retry::Always,
                        write_timeout(),
                        turn,
                        |http, node| {
                            let url = format!("http://{node}{path}");
                            let request = if delete {
                                http.delete(url)
                            } else {
                                http.put(url).body(value.clone())
                            };
                            match &context {
                                Some(context) => request.header(CONTEXT_HEADER, context),
                                None => request,
                            }
                        },
                    )
                    .await,
            );
            let Some(node) = answer.node else {
                tokio::time::sleep(Duration::from_millis(NO_NODE_PAUSE_MS)).await;
                continue;
            };
            sequence += 1;
            if delete {
                request_kind = "delete";
            }
            let acked = answer.status == Some(204);
            if acked {
                state.context = answer
                    .response
                    .as_ref()
                    .and_then(|response| response.headers().get(CONTEXT_HEADER))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
            }
            if acked {
                // Earlier writes of unknown outcome stay possible: this one carried the
                // context of the last acknowledged write, which did not cover them, so
                // any that a replica applied survives next to it as a sibling.
                if answer.earlier_maybe_applied {
                    // A retried attempt may have applied a copy under another version:
                    // it may survive a later delete as a sibling.
                    push_uncertain(state, value.clone());
                }
                // The change a feed must report: this write's, or that of an attempt
                // of unknown outcome since the last acknowledged one, which may have
                // made it first.
                let since = state.uncertain_since.take();
                state.last_acked_sent = Some(since.unwrap_or(started));
                state.last_acked = Some(value);
            } else {
                state.uncertain_since.get_or_insert(started);
                push_uncertain(state, value);
            }
            (acked, node)
        };
        let op = if is_read { "read" } else { "write" };
        let micros = started.elapsed().as_micros() as u64;
        if samples.len() < TIMELINE_SAMPLES_PER_CLIENT_MAX {
            samples.push(Sample {
                start_s: started.duration_since(spec.epoch).as_secs_f64(),
                latency_ms: micros as f64 / 1000.0,
                node,
                op: request_kind,
                key: key.clone(),
                ok,
            });
        }
        let mut names = vec![op.to_string()];
        if spec.faulted.any() {
            // Also counted apart: latency while a region is down.
            names.push(format!("{op}_during_fault"));
        }
        for name in names {
            let stats = table.entry((spec.region.clone(), name)).or_default();
            if ok {
                stats.record_ok(micros);
            } else {
                stats.errors += 1;
            }
        }
        live.record(&spec.region, micros, ok);
        if stop.has_changed().unwrap_or(true) && *stop.borrow_and_update() {
            break;
        }
    }
    ClientResult {
        region: spec.region,
        table,
        keys,
        acked_reads_not_found,
        samples,
    }
}

/// Reads a key's live values at `quorum`; `None` when no node answered.
async fn read_values(
    http: &reqwest::Client,
    nodes: &[SocketAddr],
    key: &str,
    attempt: u32,
) -> Option<Vec<Vec<u8>>> {
    let node = nodes[attempt as usize % nodes.len()];
    let response = http
        .get(format!("http://{node}/v1/kv/{key}?consistency=quorum"))
        .send()
        .await
        .ok()?;
    match response.status().as_u16() {
        200 => Some(vec![response.bytes().await.ok()?.to_vec()]),
        300 => {
            let body: SiblingsBody = response.json().await.ok()?;
            body.siblings
                .iter()
                .map(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
                .collect()
        }
        404 => Some(Vec::new()),
        _ => None,
    }
}

/// Reads every key with an acknowledged write back and counts the writes that are gone:
/// a key is lost when neither its last acknowledged value nor any later write of unknown
/// outcome is among its values.
pub async fn verify(http: &reqwest::Client, results: &[ClientResult], routes: &Routes) -> Verdict {
    let checks = results.iter().flat_map(|result| {
        // A region that is still down is read from the others.
        let mut nodes = routes.all(&result.region);
        if nodes.is_empty() {
            nodes = routes.everywhere();
        }
        result.keys.iter().filter_map(move |(key, state)| {
            state.last_acked.as_ref().map(|acked| {
                (
                    nodes.clone(),
                    key.clone(),
                    acked.clone(),
                    state.uncertain.clone(),
                )
            })
        })
    });
    let outcomes: Vec<(String, Option<KeyCheck>)> = futures::stream::iter(checks)
        .map(|(nodes, key, acked, uncertain)| async move {
            for attempt in 0..VERIFY_ATTEMPTS_MAX {
                if let Some(values) = read_values(http, &nodes, &key, attempt).await {
                    return (key, Some(check_key(&values, &acked, &uncertain)));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (key, None)
        })
        .buffer_unordered(VERIFY_CONCURRENCY_MAX)
        .collect()
        .await;
    let mut verdict = Verdict {
        acked_reads_not_found: results
            .iter()
            .map(|result| result.acked_reads_not_found)
            .sum(),
        ..Verdict::default()
    };
    for (key, outcome) in outcomes {
        verdict.keys_checked += 1;
        match outcome {
            Some(KeyCheck::Fine) => {}
            Some(KeyCheck::Lost) => {
                verdict.lost_acked_writes += 1;
                if verdict.examples.len() < 10 {
                    verdict
                        .examples
                        .push(format!("{key}: last acknowledged value missing"));
                }
            }
            Some(KeyCheck::Resurrected) => {
                verdict.resurrected_deletes += 1;
                if verdict.examples.len() < 10 {
                    verdict
                        .examples
                        .push(format!("{key}: deleted, yet a value came back"));
                }
            }
            None => {
                verdict.unreadable_keys += 1;
                if verdict.examples.len() < 10 {
                    verdict
                        .examples
                        .push(format!("{key}: no node answered the check"));
                }
            }
        }
    }
    verdict
}

/// Merges the clients' tables into one.
pub fn merge_tables(results: &[ClientResult]) -> Table {
    let mut table = Table::new();
    for result in results {
        for (key, stats) in &result.table {
            table.entry(key.clone()).or_default().merge(stats);
        }
    }
    table
}

#[cfg(test)]
mod tests;
