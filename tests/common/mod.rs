//! Helpers shared by the integration tests: local clusters of real `cartwheel`
//! processes, and in-process nodes with real QUIC and TLS.

#![allow(dead_code)]

use cartwheel::cluster::{ClusterFile, NodeEntry};
use cartwheel::config::{Settings, Topology, TuningFlags};
use cartwheel::ids::NodeId;
use cartwheel::node::{self, DataDir, NodeOptions, RunningNode};
use cartwheel::transport;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub mod sessions;

/// Whether a test that drives a real third-party client (`redis-cli`, a Flask app in a
/// virtual environment) can run: `found` says the client is installed. Without it the
/// test is skipped, loudly, so the test command works on a machine with only a Rust
/// toolchain; with `CARTWHEEL_REAL_CLIENTS=require` (what `.ci/run` sets, after
/// installing them) a missing client fails the test with `hint`.
pub fn real_client_available(what: &str, found: bool, hint: &str) -> bool {
    if found {
        return true;
    }
    let required = std::env::var("CARTWHEEL_REAL_CLIENTS").is_ok_and(|value| value == "require");
    assert!(
        !required,
        "{what} is missing and CARTWHEEL_REAL_CLIENTS=require: {hint}"
    );
    eprintln!(
        "SKIPPED: {what} is missing ({hint}); set CARTWHEEL_REAL_CLIENTS=require to fail instead"
    );
    false
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_cartwheel")
}

/// Runs `sim/<script>` with `args` against this build, its output directory given in
/// the variable `out_variable`; prints what it printed and keeps that directory when it
/// failed (its table names it for the logs). Whether it succeeded, and its stdout.
pub fn run_sim_script(script: &str, args: &[&str], out_variable: &str) -> (bool, String) {
    let out = tempfile::tempdir().expect("temporary directory");
    let output = Command::new("bash")
        .arg(repo_file(&format!("sim/{script}")))
        .args(args)
        .env("CARTWHEEL", binary())
        .env(out_variable, out.path())
        .output()
        .unwrap_or_else(|error| panic!("bash cannot run sim/{script}: {error}"));
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{table}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        let kept = out.keep();
        eprintln!("kept {} for the failed run", kept.display());
    }
    (output.status.success(), table)
}

pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The options of the one node of a fresh one-node cluster with `flags`, in memory:
/// its cluster CA and certificate under `dir/tls`, loopback ports, no session secret,
/// no RESP listener (callers change what they test).
pub fn lone_node_options(dir: &Path, flags: &TuningFlags) -> NodeOptions {
    let topology = Topology::parse(&single_region(1, 1)).unwrap();
    let settings = Settings::new(topology, flags).unwrap();
    let (id, region) = settings.topology.nodes().next().unwrap();
    let (id, region) = (id.clone(), region.clone());
    let tls_dir = dir.join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    transport::create_cluster_ca(&tls_dir).unwrap();
    NodeOptions {
        tls: transport::issue_node_certificate(&tls_dir, &id, &region).unwrap(),
        id,
        region: None,
        chaos: false,
        admin_key: None,
        session_keys: None,
        settings,
        data: DataDir::Memory,
        cache_bytes: 16 << 20,
        http_bind: "127.0.0.1:0".parse().unwrap(),
        quic_bind: "127.0.0.1:0".parse().unwrap(),
        advertise: Default::default(),
        seeds: Vec::new(),
        resp_bind: None,
        resp_password: None,
        resp_tls: None,
        http_tls: None,
    }
}

/// A temporary `ROOT` with a one-node topology (`ROOT/topology.toml`) and the cluster
/// directory `cartwheel init` makes from it (`ROOT/cluster`); with `bundles`, its node
/// bundles too (`ROOT/bundles`).
pub fn init_one_node(bundles: bool) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    init_in(root.path(), &single_region(1, 1), bundles);
    root
}

/// Writes `topology_text` to `root/topology.toml` and runs `cartwheel init` on it into
/// `root/cluster`, with the node bundles in `root/bundles` when `bundles`.
pub fn init_in(root: &std::path::Path, topology_text: &str, bundles: bool) {
    let topology = root.join("topology.toml");
    std::fs::write(&topology, topology_text).unwrap();
    let init = Command::new(binary())
        .args(["init", "--dir"])
        .arg(root.join("cluster"))
        .arg("--topology")
        .arg(&topology)
        .args(match bundles {
            true => vec!["--bundles".into(), root.join("bundles").into_os_string()],
            false => Vec::<std::ffi::OsString>::new(),
        })
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
}

/// A topology with one region of `nodes` nodes, every key on `replicas` of them.
/// Two regions of two nodes, two replicas in each, 10 ms apart (the change feed's and
/// the near-cache's tests).
pub const TWO_REGIONS_OF_TWO: &str = r#"
[cluster]
replicas_per_region = 2
partitions = 64
[[regions]]
name = "east"
nodes = 2
[[regions]]
name = "west"
nodes = 2
[latency.rtt_ms]
"east/west" = 10
"#;

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
        ProcessCluster::up_with_environment(topology_text, flags, &[])
    }

    /// `up` with `variables` set for `cluster up`, which its nodes inherit (`RUST_LOG`,
    /// `CARTWHEEL_LOG_FORMAT`).
    pub fn up_with_environment(
        topology_text: &str,
        flags: &[&str],
        variables: &[(&str, &str)],
    ) -> ProcessCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let topology = dir.path().join("topology.toml");
        std::fs::write(&topology, topology_text).expect("write topology");
        let output = Command::new(binary())
            .envs(variables.iter().copied())
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
        let node = self.node(id);
        let pid = node.pid;
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        wait_until(Duration::from_secs(10), || {
            !cartwheel::cluster::process_is_node(pid, &node.id)
        });
    }

    /// Runs `cartwheel cluster <args> --dir <dir>`.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary())
            .arg("cluster")
            .args(args)
            .arg("--dir")
            .arg(self.dir.path())
            .output()
            .expect("run cartwheel")
    }

    /// Reloads the node list from cluster.json (after add, leave, remove).
    pub fn reload(&mut self) {
        self.nodes = ClusterFile::load(self.dir.path())
            .expect("cluster.json")
            .nodes;
    }

    pub async fn status(&self, id: &str) -> cartwheel::api::Status {
        cartwheel::cluster::fetch_status(&reqwest::Client::new(), self.node(id).http)
            .await
            .expect("status")
    }

    /// Polls `id`'s status until `condition` holds; panics after `limit`.
    pub async fn wait_status(
        &self,
        id: &str,
        limit: Duration,
        condition: impl Fn(&cartwheel::api::Status) -> bool,
    ) -> cartwheel::api::Status {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let seen =
                cartwheel::cluster::fetch_status(&reqwest::Client::new(), self.node(id).http).await;
            if let Ok(status) = &seen {
                if condition(status) {
                    return seen.expect("checked");
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id}: condition not met within {limit:?}; last status: {}",
                match &seen {
                    Ok(status) => serde_json::to_string(status).unwrap_or_default(),
                    Err(error) => error.to_string(),
                }
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

/// A `cartwheel node` process a test started, killed on drop (a panic included).
pub struct NodeProcess(pub Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The ready file a node started with `--ready-file path` writes once it listens; fails
/// if the node exits first or is not ready within 30 s.
pub fn wait_ready(path: &Path, child: &mut Child) -> cartwheel::cluster::ReadyFile {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(ready) = serde_json::from_str(&text) {
                return ready;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the node exited");
        assert!(Instant::now() < deadline, "the node was not ready in time");
        std::thread::sleep(Duration::from_millis(20));
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
/// The admin secret of in-process nodes (`Authorization: Bearer` on `/v1/admin/*`).
pub const ADMIN_SECRET: &str = "in-process-admin-secret-of-32-bytes!";

pub struct InProcessCluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<RunningNode>,
    settings: Settings,
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
        let mut cluster = InProcessCluster {
            dir,
            nodes: Vec::new(),
            settings,
        };
        for id in ids {
            let node = cluster.start_node(&id).await;
            cluster.nodes.push(node);
        }
        cluster.wait_connected().await;
        cluster
    }

    async fn start_node(&self, id: &NodeId) -> RunningNode {
        let tls_dir = self.dir.path().join("tls");
        let tls = match transport::NodeTls::load(&tls_dir, id) {
            Ok(tls) => tls,
            Err(_) => {
                let region = self.settings.topology.region_of(id).expect("topology node");
                let tls = transport::issue_node_certificate(&tls_dir, id, region).unwrap();
                tls.write_files(&tls_dir, id).unwrap();
                tls
            }
        };
        let seeds = self
            .nodes
            .iter()
            .filter(|node| node.id != *id)
            .take(1)
            .map(|first| node::Seed {
                node: first.id.clone(),
                addr: first.quic_addr,
            })
            .collect();
        let options = NodeOptions {
            id: id.clone(),
            region: None,
            chaos: false,
            admin_key: Some(cartwheel::api::AdminKey::from_secret(ADMIN_SECRET)),
            session_keys: Some(vec![(0, [3; 32])]),
            settings: self.settings.clone(),
            tls,
            data: DataDir::Disk(self.dir.path().join("data").join(id.as_str())),
            cache_bytes: 16 << 20,
            http_bind: "127.0.0.1:0".parse().unwrap(),
            quic_bind: "127.0.0.1:0".parse().unwrap(),
            advertise: Default::default(),
            seeds,
            // Every in-process node serves RESP on a loopback port of its own, so the
            // RESP tests drive the same clusters the HTTP tests do.
            resp_bind: Some("127.0.0.1:0".parse().unwrap()),
            resp_password: None,
            resp_tls: None,
            http_tls: None,
        };
        node::start(options).await.expect("node starts")
    }

    /// Stops node `index` (it tells the others it is stopping).
    pub async fn stop(&mut self, index: usize) -> NodeId {
        let node = self.nodes.remove(index);
        let id = node.id.clone();
        node.shutdown().await;
        id
    }

    /// Starts a stopped node again with its data at position `index`, and waits until
    /// every node sees it alive at its new address.
    pub async fn start_again(&mut self, index: usize, id: &NodeId) {
        let fresh = self.start_node(id).await;
        self.nodes.insert(index, fresh);
        self.wait_connected_to(index).await;
    }

    /// Stops node `index`, wipes its data directory and starts it again on new ports;
    /// waits until every node knows its new address.
    pub async fn restart_empty(&mut self, index: usize) {
        let id = self.nodes[index].id.clone();
        let old = self.nodes.remove(index);
        old.shutdown().await;
        std::fs::remove_dir_all(self.dir.path().join("data").join(id.as_str()))
            .expect("wipe the data directory");
        let fresh = self.start_node(&id).await;
        self.nodes.insert(index, fresh);
        self.wait_connected_to(index).await;
    }

    async fn wait_connected_to(&self, index: usize) {
        let client = reqwest::Client::new();
        let target = self.nodes[index].http_addr.to_string();
        for node in &self.nodes {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let status = cartwheel::cluster::fetch_status(&client, node.http_addr).await;
                if matches!(&status, Ok(s) if s.members.iter().any(|m| m.http == target && m.state == "alive"))
                {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} never learned the new address",
                    node.id
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Waits (at most 10 s) until node `index` holds `node` dead.
    pub async fn wait_dead(&self, index: usize, node: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self
            .status(index)
            .await
            .members
            .iter()
            .any(|m| m.node == node && m.state == "dead")
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {index} did not notice {node} stopped"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET path` on node `index`, its JSON answer parsed.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, index: usize, path: &str) -> T {
        cartwheel::cluster::fetch_json(&reqwest::Client::new(), self.nodes[index].http_addr, path)
            .await
            .unwrap_or_else(|error| panic!("GET {path} at node {index}: {error:#}"))
    }

    pub async fn status(&self, index: usize) -> cartwheel::api::Status {
        cartwheel::cluster::fetch_status(&reqwest::Client::new(), self.nodes[index].http_addr)
            .await
            .expect("status")
    }

    async fn wait_connected(&self) {
        let client = reqwest::Client::new();
        for node in &self.nodes {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let status = cartwheel::cluster::fetch_status(&client, node.http_addr).await;
                if matches!(&status, Ok(s) if s.members.len() == self.nodes.len() && s.members.iter().all(|m| m.state == "alive"))
                {
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

/// The body of a `300 Multiple Choices` read, and its siblings (base64) sorted.
pub async fn siblings(read: reqwest::Response) -> (serde_json::Value, Vec<String>) {
    assert_eq!(read.status(), 300, "siblings expected");
    let body: serde_json::Value = read.json().await.expect("JSON body");
    let mut siblings: Vec<String> = body["siblings"]
        .as_array()
        .expect("a list of siblings")
        .iter()
        .map(|sibling| sibling.as_str().expect("base64 text").to_string())
        .collect();
    siblings.sort();
    (body, siblings)
}
