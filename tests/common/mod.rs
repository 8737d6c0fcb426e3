//! Helpers shared by the integration tests: local clusters of real `cartwheel`
//! processes, and in-process nodes with real QUIC and TLS.

#![allow(dead_code)]

use cartwheel::cluster::{ClusterFile, NodeEntry};
use cartwheel::config::{Settings, Topology, TuningFlags};
use cartwheel::ids::NodeId;
use cartwheel::node::{self, DataDir, NodeOptions, RunningNode};
use cartwheel::transport;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_cartwheel")
}

pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A topology with one region of `nodes` nodes, every key on `replicas` of them.
pub fn single_region(nodes: u32, replicas: u32) -> String {
    format!("[cluster]\npartitions = 64\nreplicas_per_region = {replicas}\n[[regions]]\nname = \"local\"\nnodes = {nodes}\n[latency]\nintra_region_rtt_ms = 0.0\n")
}

/// A cluster of processes started by `cartwheel cluster up`, stopped on drop.
pub struct ProcessCluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<NodeEntry>,
}

impl ProcessCluster {
    pub fn up(topology_text: &str, flags: &[&str]) -> ProcessCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let topology = dir.path().join("topology.toml");
        std::fs::write(&topology, topology_text).expect("write topology");
        let output = Command::new(binary())
            .args(["cluster", "up", "--dir"])
            .arg(dir.path())
            .arg("--topology")
            .arg(&topology)
            .args(flags)
            .output()
            .expect("run cluster up");
        assert!(
            output.status.success(),
            "cluster up failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let nodes = ClusterFile::load(dir.path()).expect("cluster.json").nodes;
        ProcessCluster { dir, nodes }
    }

    pub fn node(&self, id: &str) -> &NodeEntry {
        self.nodes
            .iter()
            .find(|node| node.id.as_str() == id)
            .expect("node in cluster")
    }

    pub fn url(&self, id: &str, path: &str) -> String {
        format!("http://{}{path}", self.node(id).http)
    }

    pub fn kill(&self, id: &str) {
        let pid = self.node(id).pid;
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        wait_until(Duration::from_secs(10), || {
            !cartwheel::cluster::process_is_node(pid)
        });
    }

    pub fn down(&self) -> std::process::Output {
        Command::new(binary())
            .args(["cluster", "down", "--dir"])
            .arg(self.dir.path())
            .output()
            .expect("run cluster down")
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        if ClusterFile::path(self.dir.path()).exists() {
            let _ = self.down();
        }
    }
}

/// Polls `condition` every 20 ms until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// In-process nodes of one topology, with certificates in a temporary directory.
pub struct InProcessCluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<RunningNode>,
}

impl InProcessCluster {
    pub async fn start(topology_text: &str, flags: TuningFlags) -> InProcessCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let settings = Settings::new(Topology::parse(topology_text).expect("topology"), &flags)
            .expect("settings");
        let tls_dir = dir.path().join("tls");
        std::fs::create_dir_all(&tls_dir).unwrap();
        transport::create_cluster_ca(&tls_dir).unwrap();
        let ids: Vec<NodeId> = settings
            .topology
            .nodes()
            .map(|(node, _)| node.clone())
            .collect();
        let mut nodes: Vec<RunningNode> = Vec::new();
        for id in ids {
            let seeds = nodes
                .first()
                .map(|first| {
                    vec![node::Seed {
                        node: first.id.clone(),
                        addr: first.quic_addr,
                    }]
                })
                .unwrap_or_default();
            let options = NodeOptions {
                id: id.clone(),
                settings: settings.clone(),
                tls: transport::issue_node_certificate(&tls_dir, &id).unwrap(),
                data: DataDir::Memory,
                cache_bytes: 16 << 20,
                http_bind: "127.0.0.1:0".parse().unwrap(),
                quic_bind: "127.0.0.1:0".parse().unwrap(),
                seeds,
            };
            nodes.push(node::start(options).await.expect("node starts"));
        }
        let cluster = InProcessCluster { dir, nodes };
        cluster.wait_connected().await;
        cluster
    }

    async fn wait_connected(&self) {
        let client = reqwest::Client::new();
        for node in &self.nodes {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let status = cartwheel::cluster::fetch_status(&client, node.http_addr).await;
                if matches!(&status, Ok(s) if s.members_known == s.members_expected) {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} never learned every member",
                    node.id
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    pub fn url(&self, index: usize, path: &str) -> String {
        format!("http://{}{path}", self.nodes[index].http_addr)
    }

    pub async fn shutdown(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
    }
}
