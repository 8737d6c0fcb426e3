//! Faults injected through the nodes' admin endpoints (nodes started with `--chaos`):
//! partitions, lossy links and clock skew, each applied for a while and then healed;
//! and the process-level rolling restart.

use super::faults::Routes;
use super::scenario::NetworkTarget;
use crate::cluster::{load_admin_secret, LocalCluster};
use crate::ids::NodeId;
use crate::transport::FaultPlan;
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

async fn put(
    http: &reqwest::Client,
    node: SocketAddr,
    path: &str,
    secret: &str,
    body: &serde_json::Value,
) -> Result<()> {
    let response = http
        .put(format!("http://{node}{path}"))
        .bearer_auth(secret)
        .json(body)
        .send()
        .await
        .with_context(|| format!("{path} on {node}"))?;
    if !response.status().is_success() {
        bail!(
            "{path} on {node} answered {}: {} (are the nodes started with --chaos?)",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

async fn set_plans(cluster: &LocalCluster, plans: Vec<(SocketAddr, FaultPlan)>) -> Result<()> {
    let secret = load_admin_secret(&cluster.launcher.dir)?;
    let http = reqwest::Client::new();
    for (node, plan) in plans {
        put(&http, node, "/v1/admin/faults", &secret, &serde_json::to_value(plan)?).await?;
    }
    Ok(())
}

/// Clears every node's injected network faults.
pub async fn heal_network(cluster: &LocalCluster) -> Result<()> {
    let plans = cluster
        .nodes
        .iter()
        .map(|node| (node.http, FaultPlan::default()))
        .collect();
    set_plans(cluster, plans).await
}

/// Cuts `target` off from every other node for `for_s`, then heals. One way: only the
/// target's own requests are lost (the others still reach it and hear its answers).
pub async fn partition(
    cluster: &LocalCluster,
    target: &NetworkTarget,
    one_way: bool,
    for_s: f64,
) -> Result<String> {
    let inside: BTreeSet<NodeId> = cluster
        .nodes
        .iter()
        .filter(|node| match target {
            NetworkTarget::Region(region) => node.region.as_str() == region,
            NetworkTarget::Node(id) => node.id.as_str() == id,
        })
        .map(|node| node.id.clone())
        .collect();
    if inside.is_empty() {
        bail!("no running node in {target:?}");
    }
    let mut plans = Vec::new();
    for node in &cluster.nodes {
        let (mine, theirs) = if inside.contains(&node.id) {
            (true, all_but(cluster, &inside))
        } else {
            (false, inside.clone())
        };
        let mut plan = FaultPlan::default();
        if mine || !one_way {
            plan.blocked_to_nodes = theirs.clone();
        }
        if !one_way {
            plan.blocked_from_nodes = theirs;
        }
        plans.push((node.http, plan));
    }
    set_plans(cluster, plans).await?;
    tokio::time::sleep(Duration::from_secs_f64(for_s)).await;
    heal_network(cluster).await?;
    let how = if one_way { "one way (outbound)" } else { "both ways" };
    Ok(format!("{target:?} partitioned {how} for {for_s} s, healed"))
}

fn all_but(cluster: &LocalCluster, inside: &BTreeSet<NodeId>) -> BTreeSet<NodeId> {
    cluster
        .nodes
        .iter()
        .map(|node| node.id.clone())
        .filter(|id| !inside.contains(id))
        .collect()
}

/// Drops, duplicates and delays messages between every node for `for_s`, then heals.
pub async fn lossy(cluster: &LocalCluster, plan: FaultPlan, for_s: f64) -> Result<String> {
    let plans = cluster.nodes.iter().map(|node| (node.http, plan.clone())).collect();
    set_plans(cluster, plans).await?;
    tokio::time::sleep(Duration::from_secs_f64(for_s)).await;
    heal_network(cluster).await?;
    Ok(format!(
        "lossy network for {for_s} s (drop {}, duplicate {}, delay {} ms + jitter {} ms), healed",
        plan.drop_rate, plan.duplicate_rate, plan.extra_delay_ms, plan.extra_jitter_ms
    ))
}

/// Moves one node's data clock by `offset_ms` for `for_s`, then back.
pub async fn clock_skew(
    cluster: &LocalCluster,
    node: &NodeId,
    offset_ms: i64,
    for_s: f64,
) -> Result<String> {
    let entry = cluster.entry(node)?;
    let secret = load_admin_secret(&cluster.launcher.dir)?;
    let http = reqwest::Client::new();
    let set = |offset: i64| serde_json::json!({ "offset_ms": offset });
    put(&http, entry.http, "/v1/admin/clock", &secret, &set(offset_ms)).await?;
    tokio::time::sleep(Duration::from_secs_f64(for_s)).await;
    put(&http, entry.http, "/v1/admin/clock", &secret, &set(0)).await?;
    Ok(format!("{node} clock moved {offset_ms} ms for {for_s} s"))
}

/// Stops (SIGTERM, so it announces itself gone) and restarts every node in turn.
pub async fn rolling_restart(cluster: &mut LocalCluster, routes: &Routes, gap_s: f64) -> Result<String> {
    let nodes: Vec<NodeId> = cluster.nodes.iter().map(|node| node.id.clone()).collect();
    for node in &nodes {
        routes.remove(node);
        cluster.terminate(node).await?;
        let entry = cluster.restart(node).await?;
        routes.add(&entry.region, entry.id.clone(), entry.http);
        tokio::time::sleep(Duration::from_secs_f64(gap_s)).await;
    }
    Ok(format!("{} nodes restarted one by one, {gap_s} s apart", nodes.len()))
}
