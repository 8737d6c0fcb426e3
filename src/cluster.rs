//! Local clusters: one OS process per node of a topology, on 127.0.0.1, with free ports.
//!
//! `cluster up` creates the cluster's certificates, starts the seeds (the first node of
//! each region) one after another and then the rest, waits until every node knows every
//! other, and writes `cluster.json`. `cluster down` stops every process listed there.
//! The simulation uses the same launcher with the processes tied to its own life.

use crate::api::{Status, STATUS_TIMEOUT};
use crate::config::{Settings, TuningFlags};
use crate::ids::{NodeId, Region};
use crate::limits;
use crate::transport;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One node of a running local cluster, as written to `cluster.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeEntry {
    pub id: NodeId,
    pub region: Region,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    pub pid: u32,
}

/// `cluster.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClusterFile {
    pub topology: PathBuf,
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

    fn save(&self, dir: &Path) -> Result<()> {
        write_atomically(&ClusterFile::path(dir), &serde_json::to_vec_pretty(self)?)
    }
}

/// What a node writes once it listens: the launcher learns its ports from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReadyFile {
    pub id: NodeId,
    pub region: Region,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    pub pid: u32,
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}

/// How started processes relate to the launcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// They outlive the launcher (`cluster up`); `cluster down` stops them.
    Detached,
    /// They die with the launcher, even if it is killed (`sim`).
    Attached,
}

/// Processes started by this launcher.
pub struct LocalCluster {
    pub dir: PathBuf,
    pub nodes: Vec<NodeEntry>,
    children: Vec<(NodeId, Child)>,
}

/// Creates the cluster CA and a certificate per node of the topology, unless present.
pub fn ensure_certificates(dir: &Path, settings: &Settings) -> Result<PathBuf> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).with_context(|| format!("cannot create {}", tls.display()))?;
    if !tls.join("ca.pem").exists() {
        transport::create_cluster_ca(&tls)?;
    }
    for (node, _) in settings.topology.nodes() {
        if !tls.join(format!("node-{node}.pem")).exists() {
            transport::issue_node_certificate(&tls, node)?.write_files(&tls, node)?;
        }
    }
    Ok(tls)
}

fn node_command(
    exe: &Path,
    dir: &Path,
    topology: &Path,
    node: &NodeId,
    seeds: &[String],
    flags: &TuningFlags,
    lifetime: Lifetime,
) -> Result<Command> {
    let log_path = dir.join("logs").join(format!("{node}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut command = Command::new(exe);
    command
        .arg("node")
        .arg("--id")
        .arg(node.as_str())
        .arg("--dir")
        .arg(dir)
        .arg("--topology")
        .arg(topology)
        .arg("--ready-file")
        .arg(dir.join("ready").join(format!("{node}.json")))
        .args(flags.to_args())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if !seeds.is_empty() {
        command.arg("--seeds").arg(seeds.join(","));
    }
    // SAFETY: both calls are async-signal-safe and touch only the child's own state.
    unsafe {
        command.pre_exec(move || {
            match lifetime {
                Lifetime::Detached => {
                    libc::setsid();
                }
                Lifetime::Attached => {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                }
            }
            Ok(())
        });
    }
    Ok(command)
}

impl LocalCluster {
    /// Starts every node of the topology as a process and waits until all are ready.
    pub async fn start(
        exe: &Path,
        topology_path: &Path,
        dir: &Path,
        settings: &Settings,
        flags: &TuningFlags,
        lifetime: Lifetime,
    ) -> Result<LocalCluster> {
        if ClusterFile::path(dir).exists() {
            if let Ok(existing) = ClusterFile::load(dir) {
                if existing.nodes.iter().any(|node| process_is_node(node.pid)) {
                    bail!("a cluster is already running in {} (stop it with `cartwheel cluster down --dir {}`)", dir.display(), dir.display());
                }
            }
        }
        for sub in ["logs", "ready", "data"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
        }
        ensure_certificates(dir, settings)?;
        let topology_path = std::fs::canonicalize(topology_path)
            .with_context(|| format!("cannot find {}", topology_path.display()))?;
        let mut cluster = LocalCluster {
            dir: dir.to_path_buf(),
            nodes: Vec::new(),
            children: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(limits::CLUSTER_READY_TIMEOUT_S);
        let seeds: Vec<NodeId> = settings
            .topology
            .regions
            .iter()
            .map(|spec| spec.nodes[0].clone())
            .collect();
        let mut seed_args: Vec<String> = Vec::new();
        let result = async {
            for seed in &seeds {
                cluster.spawn(exe, &topology_path, seed, &seed_args, flags, lifetime)?;
                let entry = cluster.wait_ready(seed, deadline).await?;
                seed_args.push(format!("{}@{}", entry.id, entry.quic));
            }
            let rest: Vec<NodeId> = settings
                .topology
                .nodes()
                .map(|(node, _)| node.clone())
                .filter(|node| !seeds.contains(node))
                .collect();
            for node in &rest {
                cluster.spawn(exe, &topology_path, node, &seed_args, flags, lifetime)?;
            }
            for node in &rest {
                cluster.wait_ready(node, deadline).await?;
            }
            cluster.wait_connected(deadline).await
        }
        .await;
        if let Err(error) = result {
            cluster.stop().await;
            return Err(error);
        }
        ClusterFile {
            topology: topology_path,
            nodes: cluster.nodes.clone(),
        }
        .save(dir)?;
        Ok(cluster)
    }

    fn spawn(
        &mut self,
        exe: &Path,
        topology: &Path,
        node: &NodeId,
        seeds: &[String],
        flags: &TuningFlags,
        lifetime: Lifetime,
    ) -> Result<()> {
        let _ = std::fs::remove_file(self.dir.join("ready").join(format!("{node}.json")));
        let child = node_command(exe, &self.dir, topology, node, seeds, flags, lifetime)?
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        self.children.push((node.clone(), child));
        Ok(())
    }

    async fn wait_ready(&mut self, node: &NodeId, deadline: Instant) -> Result<NodeEntry> {
        let path = self.dir.join("ready").join(format!("{node}.json"));
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let ready: ReadyFile = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a ready file", path.display()))?;
                let entry = NodeEntry {
                    id: ready.id,
                    region: ready.region,
                    http: ready.http,
                    quic: ready.quic,
                    pid: ready.pid,
                };
                self.nodes.push(entry.clone());
                return Ok(entry);
            }
            if let Some((_, child)) = self.children.iter_mut().find(|(id, _)| id == node) {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!(
                        "node {node} exited with {status} before it was ready; its log:\n{}",
                        log_tail(&self.dir, node)
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "node {node} was not ready within {} s; its log:\n{}",
                    limits::CLUSTER_READY_TIMEOUT_S,
                    log_tail(&self.dir, node)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls every node's status until each knows the address of every member.
    async fn wait_connected(&self, deadline: Instant) -> Result<()> {
        let client = reqwest::Client::builder().timeout(STATUS_TIMEOUT).build()?;
        for entry in &self.nodes {
            loop {
                let status = fetch_status(&client, entry.http).await;
                if let Ok(status) = &status {
                    if status.members_known == status.members_expected {
                        break;
                    }
                }
                if Instant::now() > deadline {
                    bail!(
                        "node {} did not learn every member's address in time (last status: {:?})",
                        entry.id,
                        status.map(|s| (s.members_known, s.members_expected))
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Kills one node at once (SIGKILL), as a crash would.
    pub fn kill(&mut self, node: &NodeId) -> Result<()> {
        let (_, child) = self
            .children
            .iter_mut()
            .find(|(id, _)| id == node)
            .with_context(|| format!("no node {node} in this cluster"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Stops every node: SIGTERM, then SIGKILL after the exit timeout.
    pub async fn stop(&mut self) {
        for (_, child) in &self.children {
            signal(child.id(), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(limits::NODE_EXIT_TIMEOUT_S);
        for (_, child) in &mut self.children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }

    /// Leaves the processes running (for `cluster up`).
    pub fn detach(mut self) -> Vec<NodeEntry> {
        self.children.clear();
        std::mem::take(&mut self.nodes)
    }
}

fn log_tail(dir: &Path, node: &NodeId) -> String {
    let text =
        std::fs::read_to_string(dir.join("logs").join(format!("{node}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a pid we started; a stale pid only makes it fail.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// The pid is alive and is a cartwheel node (guards against a recycled pid).
pub fn process_is_node(pid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
            let is_zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| stat.contains(") Z "))
                .unwrap_or(true);
            !is_zombie
                && args.iter().any(|arg| arg.ends_with(b"cartwheel"))
                && args.iter().any(|arg| *arg == b"node")
        }
        Err(_) => false,
    }
}

/// `cluster down`: stops every node of the cluster in `dir` and waits until they are gone.
pub async fn down(dir: &Path) -> Result<usize> {
    let file = ClusterFile::load(dir)?;
    let running: Vec<u32> = file
        .nodes
        .iter()
        .map(|node| node.pid)
        .filter(|pid| process_is_node(*pid))
        .collect();
    for pid in &running {
        signal(*pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(limits::NODE_EXIT_TIMEOUT_S);
    while running.iter().any(|pid| process_is_node(*pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for pid in running.iter().filter(|pid| process_is_node(**pid)) {
        signal(*pid, libc::SIGKILL);
    }
    while running.iter().any(|pid| process_is_node(*pid)) {
        if Instant::now() > deadline + Duration::from_secs(5) {
            bail!("some nodes did not exit even after SIGKILL");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(ClusterFile::path(dir))
        .with_context(|| format!("cannot remove {}", ClusterFile::path(dir).display()))?;
    Ok(running.len())
}

/// Reads one node's `/v1/status`.
pub async fn fetch_status(client: &reqwest::Client, http: SocketAddr) -> Result<Status> {
    let response = client
        .get(format!("http://{http}/v1/status"))
        .send()
        .await?;
    Ok(response.error_for_status()?.json().await?)
}
