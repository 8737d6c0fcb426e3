//! Membership measurements on a local cluster of processes, the figures the README
//! quotes: how fast a killed node is marked dead by every other node, and whether live
//! nodes are ever declared dead under message loss.

use crate::cluster::{fetch_status, load_admin_secret, Lifetime, LocalCluster};
use crate::config::{Settings, Topology, TuningFlags};
use crate::ids::NodeId;
use crate::transport::FaultPlan;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the measurements poll every node's status.
pub const POLL_INTERVAL_MS: u64 = 25;
/// Longest wait for one detection before the trial counts as failed.
pub const DETECTION_TIMEOUT_S: u64 = 60;

async fn start(
    topology: &Path,
    flags: &TuningFlags,
    chaos: bool,
) -> Result<(LocalCluster, PathBuf)> {
    let settings = Settings::new(Topology::load(topology)?, flags)?;
    let dir = std::env::temp_dir().join(format!("cartwheel-measure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    let mut extra = flags.clone();
    if chaos {
        extra.chaos = true;
    }
    let cluster =
        LocalCluster::start(&exe, topology, &dir, &settings, &extra, Lifetime::Attached).await?;
    Ok((cluster, dir))
}

/// Kills each node in turn (`trials` times), and times until every other node marks it
/// dead; restarts it and waits until it is alive everywhere before the next trial.
pub async fn detection(
    topology: &Path,
    flags: &TuningFlags,
    trials: usize,
) -> Result<Vec<Duration>> {
    let (mut cluster, dir) = start(topology, flags, false).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let mut times = Vec::new();
    let result: Result<()> = async {
        for trial in 0..trials {
            let victim: NodeId = cluster.nodes[trial % cluster.nodes.len()].id.clone();
            let observers: Vec<_> = cluster.nodes.iter().filter(|node| node.id != victim).cloned().collect();
            cluster.kill(&victim)?;
            let killed = Instant::now();
            let mut pending = observers.clone();
            while !pending.is_empty() {
                if killed.elapsed() > Duration::from_secs(DETECTION_TIMEOUT_S) {
                    bail!("trial {trial}: {victim} not marked dead by {} within {DETECTION_TIMEOUT_S} s", pending.len());
                }
                let mut still = Vec::new();
                for observer in pending {
                    let dead = fetch_status(&client, observer.http).await.map(|status| status.members.iter().any(|m| m.node == victim.as_str() && m.state == "dead")).unwrap_or(false);
                    if !dead {
                        still.push(observer);
                    }
                }
                pending = still;
                tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
            }
            let took = killed.elapsed();
            println!("trial {}: {victim} marked dead by all {} others after {:.2} s", trial + 1, observers.len(), took.as_secs_f64());
            times.push(took);
            cluster.restart(&victim).await?;
            let ids: Vec<NodeId> = cluster.nodes.iter().map(|node| node.id.clone()).collect();
            crate::cluster::wait_members_alive(&cluster.nodes, &ids, Instant::now() + Duration::from_secs(DETECTION_TIMEOUT_S)).await?;
        }
        Ok(())
    }
    .await;
    cluster.stop().await;
    match &result {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(_) => eprintln!("measure: logs kept in {}", dir.display()),
    }
    result.map(|()| times)
}

/// What a false-alarm run saw.
#[derive(Debug, Default)]
pub struct AlarmReport {
    /// (observer, member) pairs seen marked dead at a poll; every node is alive.
    pub dead_sightings: u64,
    pub deaths_declared: u64,
    pub suspicions_raised: u64,
    pub refutations: u64,
    pub faults_injected: u64,
    pub polls: u64,
}

/// Runs the cluster for `duration` with `drop_rate` of every node's messages lost,
/// polling every node's view; no live node should ever be declared dead.
pub async fn false_alarms(
    topology: &Path,
    flags: &TuningFlags,
    duration: Duration,
    drop_rate: f64,
) -> Result<AlarmReport> {
    let (mut cluster, dir) = start(topology, flags, true).await?;
    let result: Result<AlarmReport> = async {
        let secret = load_admin_secret(&dir)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let plan = FaultPlan {
            drop_rate,
            ..Default::default()
        };
        for node in &cluster.nodes {
            let response = client
                .put(format!("http://{}/v1/admin/faults", node.http))
                .bearer_auth(&secret)
                .json(&plan)
                .send()
                .await
                .context("set faults")?;
            if !response.status().is_success() {
                bail!(
                    "{} refused the fault plan: {}",
                    node.id,
                    response.text().await.unwrap_or_default()
                );
            }
        }
        let mut report = AlarmReport::default();
        let started = Instant::now();
        while started.elapsed() < duration {
            for node in &cluster.nodes {
                if let Ok(status) = fetch_status(&client, node.http).await {
                    report.dead_sightings +=
                        status.members.iter().filter(|m| m.state == "dead").count() as u64;
                }
            }
            report.polls += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for node in &cluster.nodes {
            let status = fetch_status(&client, node.http).await?;
            report.deaths_declared += status.swim.deaths_declared;
            report.suspicions_raised += status.swim.suspicions_raised;
            report.refutations += status.swim.refutations;
            report.faults_injected += status.faults_injected;
        }
        Ok(report)
    }
    .await;
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Median and maximum of a set of durations.
pub fn median_and_max(times: &[Duration]) -> (Duration, Duration) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let median = if sorted.is_empty() {
        Duration::ZERO
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2
    };
    (median, sorted.last().copied().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd_counts() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_millis(*m))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            median_and_max(&ms(&[3, 1, 2])),
            (Duration::from_millis(2), Duration::from_millis(3))
        );
        assert_eq!(
            median_and_max(&ms(&[4, 1, 2, 3])),
            (Duration::from_micros(2500), Duration::from_millis(4))
        );
        assert_eq!(median_and_max(&[]), (Duration::ZERO, Duration::ZERO));
    }
}
