//! Cluster directories: the certificates, secrets and node bundles `cartwheel init`
//! makes and a node loads, and the files (`cluster.json`, ready files) through which the
//! tools and the nodes they start find each other. A node build has this part only.
//!
//! With the `tools` feature, also local clusters: one OS process per node of a topology,
//! on 127.0.0.1, with free ports (`local`). `cluster up` creates the cluster's
//! certificates and admin secret, starts the seeds (the first node of each region) one
//! after another and then the rest, waits until every node sees every other alive, and
//! writes `cluster.json`. The other operations (`add`, `leave`, `remove`, `down`) read
//! and update that file. The simulation uses the same launcher with the processes tied
//! to its own life.

pub mod bundle;
#[cfg(feature = "tools")]
mod driver_map;
#[cfg(feature = "tools")]
mod local;
#[cfg(feature = "tools")]
mod ops;
pub mod secrets;

#[cfg(feature = "tools")]
pub use driver_map::{fetch_ring, spawn_refresher, SharedRing};
#[cfg(feature = "tools")]
pub use local::{
    fetch_json, fetch_status, log_tail, next_node_id, process_is_node, seeds_of, sharing_cores,
    signal, wait_members_alive, Launcher, Lifetime, LocalCluster,
};
#[cfg(feature = "tools")]
pub use ops::{add, down, leave, remove};
pub use secrets::{
    admin_secret_path, ensure_secrets, load_admin_key, load_admin_secret, load_session_secret,
    load_session_secrets, rotate_session_secret, session_secret_path,
};

use crate::config::Settings;
use crate::ids::{NodeId, Region};
use crate::transport;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// One node of a running local cluster, as written to `cluster.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeEntry {
    pub id: NodeId,
    pub region: Region,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    /// The node's RESP (Redis protocol) address, when it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<SocketAddr>,
    pub pid: u32,
}

/// The Prometheus configuration written beside `cluster.json`.
pub const PROMETHEUS_FILE: &str = "prometheus.yml";

/// `cluster.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClusterFile {
    pub topology: PathBuf,
    /// Tuning flags every node of the cluster was started with.
    #[serde(default)]
    pub args: Vec<String>,
    pub nodes: Vec<NodeEntry>,
}

impl ClusterFile {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("cluster.json")
    }

    pub fn load(dir: &Path) -> Result<ClusterFile> {
        let path = ClusterFile::path(dir);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no running cluster in {}: cannot read {}",
                dir.display(),
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a cluster file", path.display()))
    }

    /// Writes `cluster.json`, and `prometheus.yml` beside it so that a Prometheus
    /// pointed at the directory scrapes every node the file lists.
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_atomically(&ClusterFile::path(dir), &serde_json::to_vec_pretty(self)?)?;
        write_atomically(
            &dir.join(PROMETHEUS_FILE),
            self.prometheus_config().as_bytes(),
        )
    }

    /// A Prometheus configuration that scrapes `/metrics` of every node, each target
    /// labelled with its node and region. Every value is written as a JSON string,
    /// which YAML reads as the same string.
    pub fn prometheus_config(&self) -> String {
        let quoted = |text: &str| serde_json::Value::from(text).to_string();
        let mut config = String::from(
            "# Written by `cartwheel cluster` with cluster.json: every node of this cluster.\n\
             # Run: prometheus --config.file=prometheus.yml\n\
             global:\n  scrape_interval: 5s\n  scrape_timeout: 4s\n\
             scrape_configs:\n  - job_name: cartwheel\n    metrics_path: /metrics\n    \
             static_configs:\n",
        );
        for node in &self.nodes {
            config.push_str(&format!(
                "      - targets: [{}]\n        labels: {{node: {}, region: {}}}\n",
                quoted(&node.http.to_string()),
                quoted(node.id.as_str()),
                quoted(node.region.as_str()),
            ));
        }
        config
    }

    pub fn node(&self, id: &str) -> Result<&NodeEntry> {
        self.nodes
            .iter()
            .find(|node| node.id.as_str() == id)
            .with_context(|| {
                let known: Vec<&str> = self.nodes.iter().map(|node| node.id.as_str()).collect();
                format!(
                    "no node {id} in this cluster (its nodes are {})",
                    known.join(", ")
                )
            })
    }
}

/// What a node writes once it listens: the launcher learns its ports from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReadyFile {
    pub id: NodeId,
    pub region: Region,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<SocketAddr>,
    pub pid: u32,
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Deletes the data directory of `node` under the cluster directory `dir`.
pub fn wipe_data(dir: &Path, node: &NodeId) -> Result<()> {
    let data = dir.join("data").join(node.as_str());
    match std::fs::remove_dir_all(&data) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot delete {}", data.display()))
        }
        _ => Ok(()),
    }
}

/// Creates the cluster CA, the admin and session secrets and a certificate per topology node,
/// unless present.
pub fn ensure_certificates(dir: &Path, settings: &Settings) -> Result<PathBuf> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).with_context(|| format!("cannot create {}", tls.display()))?;
    if !tls.join("ca.pem").exists() {
        transport::create_cluster_ca(&tls)?;
    }
    ensure_secrets(dir)?;
    for (node, region) in settings.topology.nodes() {
        ensure_node_certificate(&tls, node, region)?;
    }
    Ok(tls)
}

/// Issues a node certificate for `node` in `region` under the cluster CA unless one
/// exists. One of an older build, naming no region (a node refuses to start with it), is
/// moved aside to `*.no-region` (never overwritten) and replaced; one naming another
/// region than the topology is an error.
pub fn ensure_node_certificate(tls: &Path, node: &NodeId, region: &Region) -> Result<()> {
    let cert_path = tls.join(transport::tls::node_cert_file(node));
    if cert_path.exists() {
        let existing = transport::NodeTls::load(tls, node)?;
        match transport::tls::certificate_region(&existing.cert_der, node)? {
            Some(certified) if certified == *region => return Ok(()),
            Some(certified) => bail!(
                "the certificate of {node} ({}) names region {certified}, the topology {region}; delete it and its key to issue a new one",
                cert_path.display()
            ),
            None => {
                for file in [
                    transport::tls::node_cert_file(node),
                    transport::tls::node_key_file(node),
                ] {
                    let from = tls.join(&file);
                    let to = tls.join(format!("{file}.no-region"));
                    if to.exists() {
                        bail!("{} already exists; refusing to overwrite it", to.display());
                    }
                    std::fs::rename(&from, &to).with_context(|| {
                        format!("cannot move {} aside", from.display())
                    })?;
                }
            }
        }
    }
    transport::issue_node_certificate(tls, node, region)?.write_files(tls, node)?;
    Ok(())
}

#[cfg(test)]
mod tests;
