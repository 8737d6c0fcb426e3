//! Membership measurements on a local cluster of processes, the figures the README
//! quotes: how fast a killed node is marked dead by every other node, and whether live
//! nodes are ever declared dead under message loss. `emulation` measures no cluster: how
//! late the transport's emulated delays end, next to tokio's timer.

pub mod emulation;

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

/// Keys written at once by the handoff and rebuild measurements.
pub const WRITES_IN_FLIGHT_MAX: usize = 32;

/// What a repair measurement saw.
#[derive(Debug, Default)]
pub struct RepairReport {
    pub keys_written: u64,
    /// Keys the restarted node is a replica of.
    pub keys_expected: u64,
    pub seconds: f64,
    pub keys_per_s: f64,
    /// Anti-entropy bytes sent and received by every node while repairing, and the
    /// bytes of the objects they fetched (a wiped node fills each partition from one).
    pub repair_bytes: u64,
    /// Key and object bytes the restarted node holds at the end (`stored_bytes`).
    pub data_bytes: u64,
}

/// Writes `keys` keys of 256 bytes through the nodes other than `skip`.
async fn write_keys(
    client: &reqwest::Client,
    cluster: &LocalCluster,
    skip: &NodeId,
    keys: u64,
    prefix: &str,
) -> Result<u64> {
    use futures::StreamExt;
    let targets: Vec<_> = cluster
        .nodes
        .iter()
        .filter(|node| node.id != *skip)
        .map(|node| node.http)
        .collect();
    let acked = futures::stream::iter(0..keys)
        .map(|i| {
            let url = format!(
                "http://{}/v1/kv/{prefix}-{i}",
                targets[i as usize % targets.len()]
            );
            let client = client.clone();
            async move {
                client
                    .put(url)
                    .body(vec![b'x'; 256])
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 204)
                    .unwrap_or(false)
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT_MAX)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    Ok(acked as u64)
}

/// Keys `node` is a replica of, by the ring of the topology's members.
fn keys_owned(settings: &Settings, node: &NodeId, keys: u64, prefix: &str) -> Result<u64> {
    let topology = &settings.topology;
    let ring = topology.initial_ring()?;
    Ok((0..keys)
        .filter(|i| {
            let key = crate::object::ObjectKey::kv(format!("{prefix}-{i}").as_bytes());
            ring.replicas(key.partition(topology.partitions))
                .iter()
                .any(|(id, _)| id == node)
        })
        .count() as u64)
}

async fn wait_dead_everywhere(
    client: &reqwest::Client,
    cluster: &LocalCluster,
    victim: &NodeId,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(DETECTION_TIMEOUT_S);
    for observer in cluster.nodes.iter().filter(|node| node.id != *victim) {
        loop {
            let dead = fetch_status(client, observer.http)
                .await
                .map(|s| {
                    s.members
                        .iter()
                        .any(|m| m.node == victim.as_str() && m.state == "dead")
                })
                .unwrap_or(false);
            if dead {
                break;
            }
            if Instant::now() > deadline {
                bail!("{victim} was not marked dead by {}", observer.id);
            }
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        }
    }
    Ok(())
}

async fn repair_bytes(client: &reqwest::Client, cluster: &LocalCluster) -> u64 {
    let mut total = 0;
    for node in &cluster.nodes {
        if let Ok(status) = fetch_status(client, node.http).await {
            total += status.anti_entropy.bytes_sent
                + status.anti_entropy.bytes_received
                + status.bytes_fetched;
        }
    }
    total
}

/// Kills a node (or, with `wipe`, also deletes its data), writes `keys` keys while it
/// is down (`wipe` writes them before), restarts it and times until it holds every key
/// it is a replica of: hint replay, or anti-entropy for a wiped node.
pub async fn repair(
    topology: &Path,
    flags: &TuningFlags,
    keys: u64,
    wipe: bool,
) -> Result<RepairReport> {
    let settings = Settings::new(Topology::load(topology)?, flags)?;
    let (mut cluster, dir) = start(topology, flags, false).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let victim = NodeId("us-east-2".into());
    let victim = cluster
        .nodes
        .iter()
        .find(|node| node.id == victim)
        .map(|node| node.id.clone())
        .unwrap_or_else(|| cluster.nodes[cluster.nodes.len() - 1].id.clone());
    let prefix = if wipe { "rebuild" } else { "hinted" };
    let result: Result<RepairReport> = async {
        let mut report = RepairReport {
            keys_expected: keys_owned(&settings, &victim, keys, prefix)?,
            ..Default::default()
        };
        if wipe {
            report.keys_written = write_keys(&client, &cluster, &victim, keys, prefix).await?;
        }
        cluster.kill(&victim)?;
        wait_dead_everywhere(&client, &cluster, &victim).await?;
        if wipe {
            cluster.wipe(&victim)?;
        } else {
            report.keys_written = write_keys(&client, &cluster, &victim, keys, prefix).await?;
        }
        let bytes_before = repair_bytes(&client, &cluster).await;
        let entry = cluster.restart(&victim).await?;
        let started = Instant::now();
        loop {
            let status = fetch_status(&client, entry.http).await.ok();
            if status
                .as_ref()
                .is_some_and(|s| s.keys >= report.keys_expected)
            {
                report.data_bytes = status.map(|s| s.stored_bytes).unwrap_or(0);
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!(
                    "{victim} holds {:?} of {} keys after 600 s",
                    status.map(|s| s.keys),
                    report.keys_expected
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        }
        report.seconds = started.elapsed().as_secs_f64();
        report.keys_per_s = report.keys_expected as f64 / report.seconds.max(0.001);
        report.repair_bytes = repair_bytes(&client, &cluster)
            .await
            .saturating_sub(bytes_before);
        Ok(report)
    }
    .await;
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests;
