//! After a run and a heal: waits until every replica of every partition reports the
//! same Merkle root, and says how long that took.

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
