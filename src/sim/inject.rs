//! Faults injected through the nodes' admin endpoints (nodes started with `--chaos`):
//! partitions, lossy links, clock skew and slow nodes, each applied at once and healed by a task
//! after its duration (later steps of the schedule run meanwhile); and the
//! process-level rolling restart.

use super::routes::Routes;
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
        put(
            &http,
            node,
            "/v1/admin/faults",
            &secret,
            &serde_json::to_value(plan)?,
        )
        .await?;
    }
    Ok(())
}

/// A timed fault's end: the task that undoes it.
pub type Healing = tokio::task::JoinHandle<()>;

/// After `for_s`, sends `body` to `path` on every node of `nodes`. A node that is gone
/// by then (killed by a later step) is skipped.
fn heal_later(
    cluster: &LocalCluster,
    nodes: Vec<SocketAddr>,
    path: &'static str,
    body: serde_json::Value,
    for_s: f64,
) -> Result<Healing> {
    let secret = load_admin_secret(&cluster.launcher.dir)?;
    Ok(tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs_f64(for_s)).await;
        let http = reqwest::Client::new();
        for node in nodes {
            if let Err(error) = put(&http, node, path, &secret, &body).await {
                eprintln!("sim: heal skipped a node: {error:#}");
            }
        }
    }))
}

/// Heals every node's network faults after `for_s`.
fn heal_network_later(cluster: &LocalCluster, for_s: f64) -> Result<Healing> {
    let nodes = cluster.nodes.iter().map(|node| node.http).collect();
    let clear = serde_json::to_value(FaultPlan::default())?;
    heal_later(cluster, nodes, "/v1/admin/faults", clear, for_s)
}

/// Cuts `target` off from every other node for `for_s`, then heals. One way: only the
/// target's own requests are lost (the others still reach it and hear its answers).
pub async fn partition(
    cluster: &LocalCluster,
    target: &NetworkTarget,
    one_way: bool,
    for_s: f64,
) -> Result<(String, Healing)> {
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
    let how = if one_way {
        "one way (outbound)"
    } else {
        "both ways"
    };
    let line = format!("{target:?} partitioned {how} for {for_s} s");
    Ok((line, heal_network_later(cluster, for_s)?))
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
pub async fn lossy(
    cluster: &LocalCluster,
    plan: FaultPlan,
    for_s: f64,
) -> Result<(String, Healing)> {
    let plans = cluster
        .nodes
        .iter()
        .map(|node| (node.http, plan.clone()))
        .collect();
    set_plans(cluster, plans).await?;
    let line = format!(
        "lossy network for {for_s} s (drop {}, duplicate {}, delay {} ms + jitter {} ms)",
        plan.drop_rate, plan.duplicate_rate, plan.extra_delay_ms, plan.extra_jitter_ms
    );
    Ok((line, heal_network_later(cluster, for_s)?))
}

/// Moves one node's data clock by `offset_ms` for `for_s`, then back.
pub async fn clock_skew(
    cluster: &LocalCluster,
    node: &NodeId,
    offset_ms: i64,
    for_s: f64,
) -> Result<(String, Healing)> {
    let entry = cluster.entry(node)?;
    let secret = load_admin_secret(&cluster.launcher.dir)?;
    let http = reqwest::Client::new();
    let set = |offset: i64| serde_json::json!({ "offset_ms": offset });
    put(
        &http,
        entry.http,
        "/v1/admin/clock",
        &secret,
        &set(offset_ms),
    )
    .await?;
    let healing = heal_later(cluster, vec![entry.http], "/v1/admin/clock", set(0), for_s)?;
    Ok((
        format!("{node} clock moved {offset_ms} ms for {for_s} s"),
        healing,
    ))
}

/// Makes `node` answer every peer `delay_ms` late for `for_s` (it stays alive and
/// reachable: a gray failure), then heals.
pub async fn slow(
    cluster: &LocalCluster,
    node: &NodeId,
    delay_ms: f64,
    for_s: f64,
) -> Result<(String, Healing)> {
    let entry = cluster.entry(node)?;
    let plan = FaultPlan {
        reply_delay_ms: delay_ms,
        ..Default::default()
    };
    set_plans(cluster, vec![(entry.http, plan)]).await?;
    let clear = serde_json::to_value(FaultPlan::default())?;
    let healing = heal_later(cluster, vec![entry.http], "/v1/admin/faults", clear, for_s)?;
    Ok((
        format!("{node} answers peers {delay_ms} ms late for {for_s} s"),
        healing,
    ))
}

/// Stops (SIGTERM, so it announces itself gone) and restarts every node in turn.
pub async fn rolling_restart(
    cluster: &mut LocalCluster,
    routes: &Routes,
    gap_s: f64,
) -> Result<String> {
    let nodes: Vec<NodeId> = cluster.nodes.iter().map(|node| node.id.clone()).collect();
    for node in &nodes {
        routes.remove(node);
        cluster.terminate(node).await?;
        let entry = cluster.restart(node).await?;
        routes.add_entry(&entry);
        tokio::time::sleep(Duration::from_secs_f64(gap_s)).await;
    }
    Ok(format!(
        "{} nodes restarted one by one, {gap_s} s apart",
        nodes.len()
    ))
}
