//! Operations on a running local cluster through its `cluster.json`: add a node, make
//! one leave, remove one that is gone, stop them all.

use super::{
    ensure_node_certificate, fetch_status, load_admin_secret, next_node_id, process_is_node,
    seeds_of, signal, wait_members_alive, ClusterFile, Launcher, Lifetime, NodeEntry,
};
use crate::api::STATUS_TIMEOUT;
use crate::ids::{NodeId, Region};
use crate::limits;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// `cluster add`: starts a new node in `region` that joins through the seeds, and
/// records it in `cluster.json` once every node sees it alive.
pub async fn add(exe: &Path, dir: &Path, region: &Region) -> Result<NodeEntry> {
    let mut file = ClusterFile::load(dir)?;
    let settings = crate::config::Topology::load(&file.topology)?;
    if !settings.regions.iter().any(|spec| spec.name == *region) {
        let known: Vec<String> = settings
            .regions
            .iter()
            .map(|spec| spec.name.to_string())
            .collect();
        bail!(
            "region {region} is not in the topology (its regions are {})",
            known.join(", ")
        );
    }
    let node = next_node_id(&file.nodes, region)?;
    ensure_node_certificate(&dir.join("tls"), &node, region)?;
    let launcher = Launcher::new(
        exe,
        dir,
        &file.topology,
        file.args.clone(),
        Lifetime::Detached,
    )?;
    let live: Vec<NodeEntry> = file
        .nodes
        .iter()
        .filter(|entry| process_is_node(entry.pid, &entry.id))
        .cloned()
        .collect();
    let mut child = launcher.spawn(&node, Some(region), &seeds_of(&live))?;
    let deadline = Instant::now() + Duration::from_secs(limits::CLUSTER_READY_TIMEOUT_S);
    let entry = launcher.wait_ready(&node, &mut child, deadline).await?;
    file.nodes.push(entry.clone());
    file.save(dir)?;
    let mut everyone = live;
    everyone.push(entry.clone());
    wait_members_alive(&everyone, std::slice::from_ref(&node), deadline).await?;
    Ok(entry)
}

async fn admin_post(
    dir: &Path,
    entry: &NodeEntry,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<()> {
    let secret = load_admin_secret(dir)?;
    let client = reqwest::Client::builder().timeout(STATUS_TIMEOUT).build()?;
    let mut request = client
        .post(format!("http://{}{path}", entry.http))
        .bearer_auth(secret);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {}", entry.id))?;
    if !response.status().is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        bail!(
            "{}: {}",
            entry.id,
            body["message"].as_str().unwrap_or("refused")
        );
    }
    Ok(())
}

/// `cluster leave`: the node streams every partition it loses to its new owner, then
/// exits; waits for that (bounded) and drops it from `cluster.json`.
pub async fn leave(dir: &Path, node: &str, mut progress: impl FnMut(&str)) -> Result<()> {
    let mut file = ClusterFile::load(dir)?;
    let entry = file.node(node)?.clone();
    if !process_is_node(entry.pid, &entry.id) {
        bail!("{node} is not running; a node that is gone is taken out with `cluster remove`");
    }
    admin_post(dir, &entry, "/v1/admin/leave", None).await?;
    let client = reqwest::Client::builder().timeout(STATUS_TIMEOUT).build()?;
    let deadline = Instant::now() + Duration::from_secs(limits::LEAVE_TIMEOUT_S);
    while process_is_node(entry.pid, &entry.id) {
        if Instant::now() > deadline {
            bail!(
                "{node} did not finish leaving within {} s; it keeps its partitions until it does",
                limits::LEAVE_TIMEOUT_S
            );
        }
        if let Ok(status) = fetch_status(&client, entry.http).await {
            progress(&format!(
                "{node}: {} transfers in flight, ring change pending: {}",
                status.transfers_in_flight, status.ring_change_pending
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    file.nodes.retain(|existing| existing.id != entry.id);
    file.save(dir)
}

/// `cluster remove`: the node is gone (its process is killed if it still runs); the
/// other members take it out of the ring and rebuild its partitions elsewhere.
pub async fn remove(dir: &Path, node: &str) -> Result<()> {
    let mut file = ClusterFile::load(dir)?;
    let entry = file.node(node)?.clone();
    if process_is_node(entry.pid, &entry.id) {
        signal(entry.pid, libc::SIGKILL);
    }
    let others: Vec<NodeEntry> = file
        .nodes
        .iter()
        .filter(|other| other.id != entry.id && process_is_node(other.pid, &other.id))
        .cloned()
        .collect();
    let Some(peer) = others.first() else {
        bail!("no other running node to remove {node} through")
    };
    let signature = removal_signature(dir, &entry)?;
    let body = serde_json::json!({ "signature": signature });
    admin_post(dir, peer, &format!("/v1/admin/remove/{node}"), Some(body)).await?;
    let client = reqwest::Client::builder().timeout(STATUS_TIMEOUT).build()?;
    let deadline = Instant::now() + Duration::from_secs(limits::CLUSTER_READY_TIMEOUT_S);
    for other in &others {
        loop {
            let status = fetch_status(&client, other.http).await;
            if matches!(&status, Ok(s) if s.members.iter().any(|m| m.node == node && m.status == "removed"))
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("{} did not learn of the removal in time", other.id);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    file.nodes.retain(|existing| existing.id != entry.id);
    file.save(dir)
}

/// The removal of `entry` signed with the cluster CA key (which only the operator's
/// cluster directory holds; every member checks the signature), base64.
fn removal_signature(dir: &Path, entry: &NodeEntry) -> Result<String> {
    use base64::Engine as _;
    let key_path = dir.join("tls").join(crate::transport::tls::CA_KEY_FILE);
    let key = std::fs::read_to_string(&key_path).with_context(|| {
        format!(
            "removing a node needs the cluster CA key, {}",
            key_path.display()
        )
    })?;
    let proof = crate::runtime::proof::sign_removal(&key, &entry.id, &entry.region)
        .with_context(|| format!("cannot sign with {}", key_path.display()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(proof.signature))
}

/// `cluster down`: stops every node of the cluster in `dir` and waits until they are gone.
pub async fn down(dir: &Path) -> Result<usize> {
    let file = ClusterFile::load(dir)?;
    let running: Vec<(u32, &NodeId)> = file
        .nodes
        .iter()
        .map(|node| (node.pid, &node.id))
        .filter(|(pid, id)| process_is_node(*pid, id))
        .collect();
    let alive = |(pid, id): &&(u32, &NodeId)| process_is_node(*pid, id);
    for (pid, _) in &running {
        signal(*pid, libc::SIGCONT);
        signal(*pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(limits::NODE_EXIT_TIMEOUT_S);
    while running.iter().any(|node| alive(&node)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (pid, _) in running.iter().filter(alive) {
        signal(*pid, libc::SIGKILL);
    }
    while running.iter().any(|node| alive(&node)) {
        if Instant::now() > deadline + Duration::from_secs(5) {
            bail!("some nodes did not exit even after SIGKILL");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(ClusterFile::path(dir))
        .with_context(|| format!("cannot remove {}", ClusterFile::path(dir).display()))?;
    // Written with cluster.json; gone with it (absent if an older build wrote the file).
    let _ = std::fs::remove_file(dir.join(super::PROMETHEUS_FILE));
    Ok(running.len())
}
