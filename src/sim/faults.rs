//! Carries out a scenario's fault schedule against the local cluster while the
//! workload runs, and keeps two address books in step: the nodes that are up (what the
//! final checks read from, knowing what the schedule did) and the nodes a client
//! knows of (its contact points: every node started and not gone for good). Clients are
//! never told of a kill or a pause; their driver (`sim::driver`) finds out as a real
//! one does, from refused connections, timeouts and the ring map.

use super::report::FaultsOn;
use super::routes::Routes;
use super::scenario::{FaultAction, FaultStep};
use crate::cluster::{load_admin_secret, LocalCluster};
use crate::ids::{NodeId, Region};
use crate::limits;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn nodes_in(cluster: &LocalCluster, region: &str) -> Vec<NodeId> {
    cluster
        .nodes
        .iter()
        .filter(|node| node.region.as_str() == region)
        .map(|node| node.id.clone())
        .collect()
}

fn node_id(text: &str) -> Result<NodeId> {
    NodeId::new(text).map_err(|error| anyhow::anyhow!("{error}"))
}

/// What the schedule did, for the report.
#[derive(Debug, Default)]
pub struct FaultLog {
    pub lines: Vec<String>,
    /// (start s, end s, label) of each fault, for the timeline: a kill lasts until the
    /// restart of the same node or region, a timed fault for its duration.
    pub windows: Vec<(f64, f64, String)>,
    /// When the last step finished: convergence is timed from here.
    pub healed_at: Option<Instant>,
}

/// Runs every step at its time, with `faulted` counting the faults on.
pub async fn run(
    cluster: &mut LocalCluster,
    steps: &[FaultStep],
    routes: &Routes,
    started: Instant,
    faulted: &Arc<FaultsOn>,
) -> Result<FaultLog> {
    let mut log = FaultLog::default();
    let mut open: BTreeMap<String, f64> = BTreeMap::new();
    let mut healings = Vec::new();
    for step in steps {
        let at = started + Duration::from_secs_f64(step.at_s);
        tokio::time::sleep_until(at.into()).await;
        let begun = started.elapsed().as_secs_f64();
        let window = window_key(&step.action);
        match window {
            Some((_, false)) => {}
            _ => faulted.begin(),
        }
        let (line, healing) = apply(cluster, &step.action, routes)
            .await
            .with_context(|| format!("fault at {} s: {:?}", step.at_s, step.action))?;
        let mut ended = started.elapsed().as_secs_f64();
        match (&window, healing) {
            (Some((_, true)), _) => {}
            (_, Some(healing)) => {
                let faulted = faulted.clone();
                healings.push(tokio::spawn(async move {
                    let _ = healing.await;
                    faulted.end();
                }));
                ended = begun + step.action.duration_s().unwrap_or(0.0);
            }
            (_, None) => faulted.end(),
        }
        let shown = if step.action.duration_s().is_some() {
            begun
        } else {
            ended
        };
        faulted.note(&line);
        log.lines.push(format!("{shown:>6.1} s  {line}"));
        match window {
            Some((key, true)) => {
                open.insert(key, begun);
            }
            Some((key, false)) => {
                if let Some(start) = open.remove(&key) {
                    log.windows.push((start, ended, format!("{key} down")));
                }
            }
            None => log.windows.push((begun, ended, label(&step.action))),
        }
        log.healed_at = Some(Instant::now());
    }
    // The schedule ends when its last timed fault has healed.
    for healing in healings {
        let _ = healing.await;
        log.healed_at = Some(Instant::now());
    }
    let now = started.elapsed().as_secs_f64();
    for (key, start) in open {
        log.windows.push((start, now, format!("{key} down")));
    }
    Ok(log)
}

/// For faults that last until a later step ends them: the node or region, and whether
/// this step begins (true) or ends the fault.
fn window_key(action: &FaultAction) -> Option<(String, bool)> {
    match action {
        FaultAction::Kill { node } | FaultAction::Wipe { node } => Some((node.clone(), true)),
        FaultAction::Restart { node } => Some((node.clone(), false)),
        FaultAction::KillRegion { region } => Some((region.clone(), true)),
        FaultAction::RestartRegion { region } => Some((region.clone(), false)),
        _ => None,
    }
}

fn label(action: &FaultAction) -> String {
    match action {
        FaultAction::Join { region } => format!("join {region}"),
        FaultAction::Leave { node } => format!("{node} leaves"),
        FaultAction::Pause { node, .. } => format!("{node} paused"),
        FaultAction::Partition { target, .. } => match target {
            super::scenario::NetworkTarget::Region(name)
            | super::scenario::NetworkTarget::Node(name) => format!("{name} cut off"),
        },
        FaultAction::Lossy { .. } => "lossy network".to_string(),
        FaultAction::ClockSkew { node, .. } => format!("{node} clock skewed"),
        FaultAction::Slow { node, .. } => format!("{node} slow"),
        FaultAction::RollingRestart { .. } => "rolling restart".to_string(),
        other => format!("{other:?}"),
    }
}

async fn apply(
    cluster: &mut LocalCluster,
    action: &FaultAction,
    routes: &Routes,
) -> Result<(String, Option<super::inject::Healing>)> {
    if let Some(timed) = timed(cluster, action).await? {
        return Ok((timed.0, Some(timed.1)));
    }
    let line = untimed(cluster, action, routes).await?;
    Ok((line, None))
}

/// Starts a fault that heals by itself after its duration.
async fn timed(
    cluster: &LocalCluster,
    action: &FaultAction,
) -> Result<Option<(String, super::inject::Healing)>> {
    let started = match action {
        FaultAction::Partition {
            target,
            one_way,
            for_s,
        } => super::inject::partition(cluster, target, *one_way, *for_s).await?,
        FaultAction::Lossy {
            drop,
            duplicate,
            delay_ms,
            jitter_ms,
            for_s,
        } => {
            let plan = crate::transport::FaultPlan {
                drop_rate: *drop,
                duplicate_rate: *duplicate,
                extra_delay_ms: *delay_ms,
                extra_jitter_ms: *jitter_ms,
                ..Default::default()
            };
            super::inject::lossy(cluster, plan, *for_s).await?
        }
        FaultAction::ClockSkew {
            node,
            offset_ms,
            for_s,
        } => super::inject::clock_skew(cluster, &node_id(node)?, *offset_ms, *for_s).await?,
        FaultAction::Slow {
            node,
            delay_ms,
            for_s,
        } => super::inject::slow(cluster, &node_id(node)?, *delay_ms, *for_s).await?,
        _ => return Ok(None),
    };
    Ok(Some(started))
}

async fn untimed(
    cluster: &mut LocalCluster,
    action: &FaultAction,
    routes: &Routes,
) -> Result<String> {
    match action {
        FaultAction::KillRegion { region } => {
            let victims = nodes_in(cluster, region);
            if victims.is_empty() {
                bail!("no node in region {region}");
            }
            for node in &victims {
                routes.remove(node);
                cluster.kill(node)?;
            }
            Ok(format!(
                "region {region} down ({} nodes killed)",
                victims.len()
            ))
        }
        FaultAction::RestartRegion { region } => {
            let victims = nodes_in(cluster, region);
            for node in &victims {
                let entry = cluster.restart(node).await?;
                routes.add_entry(&entry);
            }
            Ok(format!(
                "region {region} back ({} nodes restarted)",
                victims.len()
            ))
        }
        FaultAction::Join { region } => {
            let region = Region::new(region).map_err(|error| anyhow::anyhow!("{error}"))?;
            let entry = cluster.add(&region).await?;
            routes.add_entry(&entry);
            Ok(format!("{} joined {}", entry.id, entry.region))
        }
        FaultAction::Leave { node } => {
            let node = node_id(node)?;
            let entry = cluster.entry(&node)?.clone();
            routes.forget(&node);
            let secret = load_admin_secret(&cluster.launcher.dir)?;
            let response = reqwest::Client::new()
                .post(format!("http://{}/v1/admin/leave", entry.http))
                .bearer_auth(secret)
                .send()
                .await?;
            if !response.status().is_success() {
                bail!(
                    "{node} refused to leave: {}",
                    response.text().await.unwrap_or_default()
                );
            }
            let began = Instant::now();
            while !cluster.has_exited(&node) {
                if began.elapsed() > Duration::from_secs(limits::LEAVE_TIMEOUT_S) {
                    bail!("{node} did not finish leaving in time");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            cluster.forget(&node)?;
            Ok(format!(
                "{node} left after {:.1} s of handover",
                began.elapsed().as_secs_f64()
            ))
        }
        FaultAction::Kill { node } => {
            let node = node_id(node)?;
            routes.remove(&node);
            cluster.kill(&node)?;
            Ok(format!("{node} killed"))
        }
        FaultAction::Restart { node } => {
            let node = node_id(node)?;
            let entry = cluster.restart(&node).await?;
            routes.add_entry(&entry);
            Ok(format!("{node} restarted"))
        }
        FaultAction::Partition { .. }
        | FaultAction::Lossy { .. }
        | FaultAction::ClockSkew { .. }
        | FaultAction::Slow { .. } => unreachable!("timed faults are started by `timed`"),
        FaultAction::Wipe { node } => {
            let node = node_id(node)?;
            routes.remove(&node);
            cluster.kill(&node)?;
            cluster.wipe(&node)?;
            Ok(format!("{node} killed and its data directory deleted"))
        }
        FaultAction::RollingRestart { gap_s } => {
            super::inject::rolling_restart(cluster, routes, *gap_s).await
        }
        FaultAction::Pause { node, for_s } => {
            let node = node_id(node)?;
            let entry = cluster.entry(&node)?.clone();
            routes.remove(&node);
            cluster.pause(&node, true)?;
            tokio::time::sleep(Duration::from_secs_f64(*for_s)).await;
            cluster.pause(&node, false)?;
            routes.add_entry(&entry);
            Ok(format!("{node} paused for {for_s} s"))
        }
    }
}
