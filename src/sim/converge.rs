//! Waits on the cluster: before the workload, until every node validates sessions from
//! its own region; after a run and a heal, until every replica of every partition
//! reports the same Merkle root, and says how long that took.

use crate::cluster::NodeEntry;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Longest wait for convergence before the run counts as not converged.
pub const CONVERGENCE_TIMEOUT_S: u64 = 180;
/// Pause between two checks.
pub const CONVERGENCE_POLL_MS: u64 = 500;

/// Partitions whose replicas disagree, by asking every node for its roots.
pub async fn divergent_partitions(http: &reqwest::Client, nodes: &[NodeEntry]) -> Option<usize> {
    let mut roots: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for node in nodes {
        let response = http
            .get(format!("http://{}/v1/roots", node.http))
            .send()
            .await
            .ok()?;
        let map: BTreeMap<u32, String> = response.json().await.ok()?;
        for (partition, root) in map {
            roots.entry(partition).or_default().push(root);
        }
    }
    Some(
        roots
            .values()
            .filter(|list| list.windows(2).any(|pair| pair[0] != pair[1]))
            .count(),
    )
}

/// Waits, once the workload has stopped, until no partition's replicas disagree; the
/// time from `since` (the end of the last fault), or `None` when the timeout passed
/// first. Under a running workload replicas differ for the moment a write travels, so
/// the check waits for the workload to end: the figure includes whatever part of the
/// run came after the last fault.
pub async fn wait_converged(
    http: &reqwest::Client,
    nodes: &[NodeEntry],
    since: Instant,
) -> Option<Duration> {
    let deadline = Instant::now() + Duration::from_secs(CONVERGENCE_TIMEOUT_S);
    let mut last_said = None;
    loop {
        let divergent = divergent_partitions(http, nodes).await;
        if divergent == Some(0) {
            return Some(since.elapsed());
        }
        if divergent != last_said {
            let count = divergent
                .map(|d| d.to_string())
                .unwrap_or_else(|| "? (a node did not answer)".into());
            println!(
                "sim: {:>5.1} s after the last fault, partitions whose replicas differ: {count}",
                since.elapsed().as_secs_f64()
            );
            last_said = divergent;
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(CONVERGENCE_POLL_MS)).await;
    }
}

/// Longest wait, before the workload, for every node to validate from its own region.
pub const GUARD_LOCAL_TIMEOUT_S: u64 = 30;

/// Nodes whose auth guard (`sessions.auth_guard` in `/v1/status`) is not `local` yet,
/// unanswering ones included.
async fn nodes_not_local(http: &reqwest::Client, nodes: &[NodeEntry]) -> Vec<String> {
    let mut waiting = Vec::new();
    for node in nodes {
        let guard = async {
            let status: serde_json::Value = http
                .get(format!("http://{}/v1/status", node.http))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            status["sessions"]["auth_guard"]
                .as_str()
                .map(str::to_string)
        };
        if guard.await.as_deref() != Some("local") {
            waiting.push(node.id.to_string());
        }
    }
    waiting
}

/// Waits until every node of a fresh cluster has caught up its auth data with the other
/// regions and validates from its own region (a node starts catching up: it may have
/// been away), as an operator waits for a cluster to be ready before sending it traffic.
/// Says which nodes had not when the timeout passed, and goes on.
pub async fn wait_guards_local(http: &reqwest::Client, nodes: &[NodeEntry]) {
    let started = Instant::now();
    loop {
        let waiting = nodes_not_local(http, nodes).await;
        if waiting.is_empty() {
            println!(
                "sim: every node validates from its own region ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        if started.elapsed() > Duration::from_secs(GUARD_LOCAL_TIMEOUT_S) {
            println!(
                "sim: still catching up after {GUARD_LOCAL_TIMEOUT_S} s, starting anyway: {}",
                waiting.join(", ")
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(CONVERGENCE_POLL_MS / 5)).await;
    }
}
