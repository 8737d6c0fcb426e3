//! Local clusters' processes: the launcher that starts `cartwheel node` processes of one
//! cluster directory, the set a launcher started, and the status polls that wait for
//! them. Only the tools use it (`cluster`, `sim`, `measure`, the tests); a node never
//! starts another node. Bounded waits only: every loop ends at a deadline.

use super::{
    ensure_certificates, ensure_node_certificate, wipe_data, ClusterFile, NodeEntry, ReadyFile,
};
use crate::api::{Status, STATUS_TIMEOUT};
use crate::config::{Settings, TuningFlags};
use crate::ids::{NodeId, Region};
use crate::limits;
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How started processes relate to the launcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// They outlive the launcher (`cluster up`); `cluster down` stops them.
    Detached,
    /// They die with the launcher, even if it is killed (`sim`).
    Attached,
}

/// `flags` for `nodes` node processes on this machine: unless the user chose
/// `--threads`, each node gets its share of the cores (at least one), so the nodes'
/// schedulers do not fight over them (one worker per node on two cores carried 17 %
/// more operations than two; README, "Performance").
pub fn sharing_cores(flags: &TuningFlags, nodes: usize) -> TuningFlags {
    let mut flags = flags.clone();
    if flags.threads.is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let share = (cores / nodes.max(1)).clamp(1, limits::NODE_THREADS_MAX as usize);
        flags.threads = u16::try_from(share).ok();
    }
    flags
}

/// Starts node processes of one cluster directory.
#[derive(Clone, Debug)]
pub struct Launcher {
    pub exe: PathBuf,
    pub dir: PathBuf,
    pub topology: PathBuf,
    pub args: Vec<String>,
    pub lifetime: Lifetime,
}

impl Launcher {
    pub fn new(
        exe: &Path,
        dir: &Path,
        topology: &Path,
        args: Vec<String>,
        lifetime: Lifetime,
    ) -> Result<Launcher> {
        for sub in ["logs", "ready", "data"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
        }
        let topology = std::fs::canonicalize(topology)
            .with_context(|| format!("cannot find {}", topology.display()))?;
        Ok(Launcher {
            exe: exe.to_path_buf(),
            dir: dir.to_path_buf(),
            topology,
            args,
            lifetime,
        })
    }

    /// Starts one node process; `region` is needed for nodes the topology does not name.
    pub fn spawn(&self, node: &NodeId, region: Option<&Region>, seeds: &[String]) -> Result<Child> {
        let ready = self.dir.join("ready").join(format!("{node}.json"));
        let _ = std::fs::remove_file(&ready);
        let log_path = self.dir.join("logs").join(format!("{node}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut command = Command::new(&self.exe);
        command
            .arg("node")
            .arg("--id")
            .arg(node.as_str())
            .arg("--dir")
            .arg(&self.dir)
            .arg("--topology")
            .arg(&self.topology)
            .arg("--ready-file")
            .arg(&ready)
            .args(&self.args);
        if let Some(region) = region {
            command.arg("--region").arg(region.as_str());
        }
        if !seeds.is_empty() {
            command.arg("--seeds").arg(seeds.join(","));
        }
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let lifetime = self.lifetime;
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
        command
            .spawn()
            .with_context(|| format!("cannot start {}", self.exe.display()))
    }

    /// Waits for a node's ready file; fails early if its process exits.
    pub async fn wait_ready(
        &self,
        node: &NodeId,
        child: &mut Child,
        deadline: Instant,
    ) -> Result<NodeEntry> {
        let path = self.dir.join("ready").join(format!("{node}.json"));
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let ready: ReadyFile = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a ready file", path.display()))?;
                return Ok(NodeEntry {
                    id: ready.id,
                    region: ready.region,
                    http: ready.http,
                    quic: ready.quic,
                    resp: ready.resp,
                    pid: ready.pid,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "node {node} exited with {status} before it was ready; its log:\n{}",
                    log_tail(&self.dir, node)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "node {node} was not ready in time; its log:\n{}",
                    log_tail(&self.dir, node)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits (at most `RESTART_WAIT_DEAD_S`) until no reachable node of `others` holds
/// `node` alive or suspect: a restart before the failure detector has marked the old
/// process dead would be refused as a duplicate id. Nodes that do not answer (down
/// themselves) do not hold it up.
async fn held_dead_by(others: &[NodeEntry], node: &NodeId) {
    let Ok(client) = reqwest::Client::builder().timeout(STATUS_TIMEOUT).build() else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(limits::RESTART_WAIT_DEAD_S);
    while Instant::now() < deadline {
        let mut held_alive = false;
        for other in others {
            if let Ok(status) = fetch_status(&client, other.http).await {
                held_alive |= status
                    .members
                    .iter()
                    .any(|member| member.node == node.as_str() && member.state != "dead");
            }
        }
        if !held_alive {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Seeds for a new process: the first listed node of each region.
pub fn seeds_of(nodes: &[NodeEntry]) -> Vec<String> {
    let mut seen = Vec::new();
    let mut seeds = Vec::new();
    for node in nodes {
        if !seen.contains(&node.region) {
            seen.push(node.region.clone());
            seeds.push(format!("{}@{}", node.id, node.quic));
        }
    }
    seeds
}

/// Processes started by this launcher.
pub struct LocalCluster {
    pub launcher: Launcher,
    pub nodes: Vec<NodeEntry>,
    children: Vec<(NodeId, Child)>,
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
        if let Ok(existing) = ClusterFile::load(dir) {
            if existing
                .nodes
                .iter()
                .any(|node| process_is_node(node.pid, &node.id))
            {
                bail!("a cluster is already running in {} (stop it with `cartwheel cluster down --dir {}`)", dir.display(), dir.display());
            }
        }
        let node_count: usize = settings
            .topology
            .regions
            .iter()
            .map(|region| region.nodes.len())
            .sum();
        let flags = sharing_cores(flags, node_count);
        let launcher = Launcher::new(exe, dir, topology_path, flags.to_args(), lifetime)?;
        ensure_certificates(dir, settings)?;
        let mut cluster = LocalCluster {
            launcher,
            nodes: Vec::new(),
            children: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(limits::CLUSTER_READY_TIMEOUT_S);
        let result = cluster.start_all(settings, deadline).await;
        if let Err(error) = result {
            cluster.stop().await;
            return Err(error);
        }
        cluster.save()?;
        Ok(cluster)
    }

    async fn start_all(&mut self, settings: &Settings, deadline: Instant) -> Result<()> {
        let seeds: Vec<NodeId> = settings
            .topology
            .regions
            .iter()
            .map(|spec| spec.nodes[0].clone())
            .collect();
        for seed in &seeds {
            let entry = self.start_node(seed, None, deadline).await?;
            self.nodes.push(entry);
        }
        let rest: Vec<NodeId> = settings
            .topology
            .nodes()
            .map(|(node, _)| node.clone())
            .filter(|node| !seeds.contains(node))
            .collect();
        let mut pending = Vec::new();
        for node in &rest {
            let child = self.launcher.spawn(node, None, &seeds_of(&self.nodes))?;
            pending.push((node.clone(), child));
        }
        for (node, mut child) in pending {
            let entry = self.launcher.wait_ready(&node, &mut child, deadline).await;
            self.children.push((node, child));
            self.nodes.push(entry?);
        }
        let ids: Vec<NodeId> = self.nodes.iter().map(|node| node.id.clone()).collect();
        wait_members_alive(&self.nodes, &ids, deadline).await
    }

    /// Starts one node (new or restarted) and waits for its ready file.
    async fn start_node(
        &mut self,
        node: &NodeId,
        region: Option<&Region>,
        deadline: Instant,
    ) -> Result<NodeEntry> {
        let mut child = self.launcher.spawn(node, region, &seeds_of(&self.nodes))?;
        let entry = self.launcher.wait_ready(node, &mut child, deadline).await;
        self.children.retain(|(id, _)| id != node);
        self.children.push((node.clone(), child));
        entry
    }

    pub fn save(&self) -> Result<()> {
        ClusterFile {
            topology: self.launcher.topology.clone(),
            args: self.launcher.args.clone(),
            nodes: self.nodes.clone(),
        }
        .save(&self.launcher.dir)
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

    /// Stops one node cleanly (SIGTERM: it tells the others it is going), killing it if
    /// it has not exited within `NODE_EXIT_TIMEOUT_S`.
    pub async fn terminate(&mut self, node: &NodeId) -> Result<()> {
        let pid = self.entry(node)?.pid;
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(limits::NODE_EXIT_TIMEOUT_S);
        while Instant::now() < deadline {
            let (_, child) = self
                .children
                .iter_mut()
                .find(|(id, _)| id == node)
                .with_context(|| format!("no node {node} in this cluster"))?;
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill(node)
    }

    /// Deletes a stopped node's data directory, as a lost disk would; it comes back
    /// empty on its next start and fetches its partitions again.
    pub fn wipe(&self, node: &NodeId) -> Result<()> {
        wipe_data(&self.launcher.dir, node)
    }

    /// The running entry of `node`.
    pub fn entry(&self, node: &NodeId) -> Result<&NodeEntry> {
        self.nodes
            .iter()
            .find(|entry| entry.id == *node)
            .with_context(|| format!("no node {node}"))
    }

    /// Sends SIGSTOP (`pause`) or SIGCONT to one node.
    pub fn pause(&self, node: &NodeId, pause: bool) -> Result<()> {
        let entry = self.entry(node)?;
        signal(entry.pid, if pause { libc::SIGSTOP } else { libc::SIGCONT });
        Ok(())
    }

    /// Starts a stopped node again with the same id and data.
    pub async fn restart(&mut self, node: &NodeId) -> Result<NodeEntry> {
        let region = self.entry(node).ok().map(|entry| entry.region.clone());
        let deadline = Instant::now() + Duration::from_secs(limits::CLUSTER_READY_TIMEOUT_S);
        let others: Vec<NodeEntry> = self
            .nodes
            .iter()
            .filter(|entry| entry.id != *node)
            .cloned()
            .collect();
        held_dead_by(&others, node).await;
        let mut child = self
            .launcher
            .spawn(node, region.as_ref(), &seeds_of(&others))?;
        let entry = self.launcher.wait_ready(node, &mut child, deadline).await?;
        self.children.retain(|(id, _)| id != node);
        self.children.push((node.clone(), child));
        self.nodes.retain(|existing| existing.id != *node);
        self.nodes.push(entry.clone());
        self.save()?;
        Ok(entry)
    }

    /// Adds a new node to `region` and waits until every node sees it alive.
    pub async fn add(&mut self, region: &Region) -> Result<NodeEntry> {
        let node = next_node_id(&self.nodes, region)?;
        ensure_node_certificate(&self.launcher.dir.join("tls"), &node, region)?;
        let deadline = Instant::now() + Duration::from_secs(limits::CLUSTER_READY_TIMEOUT_S);
        let entry = self.start_node(&node, Some(region), deadline).await?;
        self.nodes.push(entry.clone());
        self.save()?;
        wait_members_alive(&self.nodes, std::slice::from_ref(&node), deadline).await?;
        Ok(entry)
    }

    /// Whether a node's process has exited (a node that left exits by itself).
    pub fn has_exited(&mut self, node: &NodeId) -> bool {
        match self.children.iter_mut().find(|(id, _)| id == node) {
            Some((_, child)) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Forgets a node that left or was removed.
    pub fn forget(&mut self, node: &NodeId) -> Result<()> {
        self.nodes.retain(|entry| entry.id != *node);
        self.save()
    }

    /// Stops every node: SIGTERM, then SIGKILL after the exit timeout.
    pub async fn stop(&mut self) {
        for (_, child) in &self.children {
            signal(child.id(), libc::SIGCONT);
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

/// The next free node id in a region: `<region>-<highest number + 1>`.
pub fn next_node_id(nodes: &[NodeEntry], region: &Region) -> Result<NodeId> {
    let prefix = format!("{region}-");
    let highest = nodes
        .iter()
        .filter_map(|node| node.id.as_str().strip_prefix(&prefix)?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    NodeId::new(&format!("{region}-{}", highest + 1)).map_err(|error| anyhow::anyhow!("{error}"))
}

/// Polls every node's status until each sees every node of `ids` alive (and, for a
/// joiner, no longer joining).
pub async fn wait_members_alive(
    nodes: &[NodeEntry],
    ids: &[NodeId],
    deadline: Instant,
) -> Result<()> {
    let client = reqwest::Client::builder().timeout(STATUS_TIMEOUT).build()?;
    for entry in nodes {
        loop {
            let status = fetch_status(&client, entry.http).await;
            let seen = status.as_ref().map(|status| {
                ids.iter()
                    .filter(|id| {
                        status
                            .members
                            .iter()
                            .any(|m| m.node == id.as_str() && m.state == "alive")
                    })
                    .count()
            });
            if matches!(seen, Ok(count) if count == ids.len()) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} did not see every member alive in time (saw {:?} of {})",
                    entry.id,
                    seen.ok(),
                    ids.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

pub fn log_tail(dir: &Path, node: &NodeId) -> String {
    let text =
        std::fs::read_to_string(dir.join("logs").join(format!("{node}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a pid we started; a stale pid only makes it fail.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// The pid is alive and is the node `id` (`node ... --id ID`, whatever the binary is
/// called): guards against a pid recycled by another process.
pub fn process_is_node(pid: u32, id: &NodeId) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
    let is_zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.contains(") Z "))
        .unwrap_or(true);
    let names_id = args
        .windows(2)
        .any(|pair| pair[0] == b"--id" && pair[1] == id.as_str().as_bytes());
    !is_zombie && names_id && args.contains(&b"node".as_slice())
}

/// Reads one node's `/v1/status`.
pub async fn fetch_status(client: &reqwest::Client, http: SocketAddr) -> Result<Status> {
    fetch_json(client, http, "/v1/status").await
}

/// `GET path` on the node whose HTTP address is `http`, its JSON answer parsed; an
/// error status is an error.
pub async fn fetch_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    http: SocketAddr,
    path: &str,
) -> Result<T> {
    let response = client.get(format!("http://{http}{path}")).send().await?;
    Ok(response.error_for_status()?.json().await?)
}
