//! The `cartwheel` command: nodes, local clusters, status and simulations.

use anyhow::{bail, Context, Result};
use cartwheel::cluster::{self, ClusterFile, Lifetime, LocalCluster, ReadyFile};
use cartwheel::config::{Settings, Topology, TuningFlags};
use cartwheel::ids::NodeId;
use cartwheel::node::{self, DataDir, NodeOptions, Seed};
use cartwheel::sim::{self, SimOptions};
use cartwheel::{limits, transport};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_TOPOLOGY: &str = "regions/default.toml";

#[derive(Parser)]
#[command(
    name = "cartwheel",
    version,
    about = "A leaderless, multi-region session store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a cluster's certificate authority and one certificate per topology node.
    Init {
        /// Cluster directory (certificates go to DIR/tls).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = DEFAULT_TOPOLOGY)]
        topology: PathBuf,
    },
    /// Run one node in the foreground.
    Node(NodeArgs),
    /// Start and stop local clusters (one process per node on 127.0.0.1).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Show the members and state of a running cluster.
    Status {
        /// Cluster directory written by `cluster up`.
        #[arg(long, conflicts_with = "node", required_unless_present = "node")]
        dir: Option<PathBuf>,
        /// HTTP address of any one node.
        #[arg(long)]
        node: Option<SocketAddr>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Start a cluster, run a scenario's workload, check that nothing acknowledged was lost.
    Sim {
        #[arg(long, default_value = DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        #[arg(long, default_value = "sim/steady.toml")]
        scenario: PathBuf,
        /// How long the workload runs (e.g. 20s, 2m); default: the scenario's.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Write a JSON summary here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Cluster directory (default: a new temporary one, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep the temporary cluster directory (logs, data).
        #[arg(long)]
        keep: bool,
        /// Seed of the workload's random choices (printed when not given).
        #[arg(long)]
        seed: Option<u64>,
        #[command(flatten)]
        tuning: TuningFlags,
    },
}

#[derive(clap::Args)]
struct NodeArgs {
    /// This node's id, as named by the topology (e.g. us-east-1).
    #[arg(long)]
    id: String,
    /// Cluster directory holding tls/ (made by `cartwheel init`); data goes to DIR/data/ID.
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value = DEFAULT_TOPOLOGY)]
    topology: PathBuf,
    /// Data directory (default DIR/data/ID).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Keep data in memory only (lost when the node stops).
    #[arg(long, conflicts_with = "data")]
    memory: bool,
    /// HTTP API address.
    #[arg(long, default_value = "127.0.0.1:0")]
    http: SocketAddr,
    /// QUIC address for other nodes.
    #[arg(long, default_value = "127.0.0.1:0")]
    quic: SocketAddr,
    /// Members to learn the cluster from, as NODE@HOST:PORT (QUIC), comma separated.
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<Seed>,
    /// Write a JSON file with this node's addresses once it listens.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Storage cache in MiB.
    #[arg(long, default_value_t = limits::STORAGE_CACHE_BYTES_DEFAULT / (1024 * 1024))]
    cache_mb: u64,
    #[command(flatten)]
    tuning: TuningFlags,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Start every node of a topology as a background process and wait until all are ready.
    Up {
        #[arg(long, default_value = DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        /// Cluster directory: certificates, data, logs and cluster.json.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        tuning: TuningFlags,
    },
    /// Stop every node of the cluster in DIR.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn settings(topology: &Path, tuning: &TuningFlags) -> Result<Settings> {
    let settings = Settings::new(Topology::load(topology)?, tuning)?;
    for warning in &settings.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(settings)
}

fn init(dir: &Path, topology: &Path) -> Result<()> {
    let settings = settings(topology, &TuningFlags::default())?;
    if dir.join("tls").join("ca.pem").exists() {
        bail!(
            "{} already holds a cluster CA; refusing to overwrite it",
            dir.join("tls").display()
        );
    }
    let tls = cluster::ensure_certificates(dir, &settings)?;
    println!(
        "created the cluster CA and {} node certificates in {}",
        settings.topology.nodes().count(),
        tls.display()
    );
    Ok(())
}

async fn run_node(args: NodeArgs) -> Result<()> {
    let id = NodeId::new(&args.id).map_err(|error| anyhow::anyhow!("--id: {error}"))?;
    let settings = settings(&args.topology, &args.tuning)?;
    if settings.topology.region_of(&id).is_none() {
        let known: Vec<String> = settings
            .topology
            .nodes()
            .map(|(node, _)| node.to_string())
            .collect();
        bail!(
            "--id: node {id} is not in {} (its nodes are {})",
            args.topology.display(),
            known.join(", ")
        );
    }
    let tls_dir = args.dir.join("tls");
    let tls = transport::NodeTls::load(&tls_dir, &id).with_context(|| {
        format!(
            "no certificate for node {id} in {} (run `cartwheel init --dir {}`)",
            tls_dir.display(),
            args.dir.display()
        )
    })?;
    let data = if args.memory {
        DataDir::Memory
    } else {
        DataDir::Disk(
            args.data
                .clone()
                .unwrap_or_else(|| args.dir.join("data").join(id.as_str())),
        )
    };
    let options = NodeOptions {
        id: id.clone(),
        settings,
        tls,
        data,
        cache_bytes: args.cache_mb * 1024 * 1024,
        http_bind: args.http,
        quic_bind: args.quic,
        seeds: args.seeds,
    };
    let running = node::start(options).await?;
    if let Some(path) = &args.ready_file {
        let ready = ReadyFile {
            id: running.id.clone(),
            region: running.region.clone(),
            http: running.http_addr,
            quic: running.quic_addr,
            pid: std::process::id(),
        };
        cluster::write_atomically(path, &serde_json::to_vec(&ready)?)?;
    }
    println!(
        "node {} ({}) serving HTTP on {} and QUIC on {}",
        running.id, running.region, running.http_addr, running.quic_addr
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    running.shutdown().await;
    Ok(())
}

async fn status(dir: Option<PathBuf>, node: Option<SocketAddr>, json: bool) -> Result<()> {
    let addresses: Vec<SocketAddr> = match (dir, node) {
        (Some(dir), _) => ClusterFile::load(&dir)?
            .nodes
            .iter()
            .map(|node| node.http)
            .collect(),
        (None, Some(node)) => vec![node],
        (None, None) => bail!("give --dir or --node"),
    };
    let client = reqwest::Client::builder()
        .timeout(cartwheel::api::STATUS_TIMEOUT)
        .build()?;
    let mut statuses = Vec::new();
    for address in &addresses {
        match cluster::fetch_status(&client, *address).await {
            Ok(status) => statuses.push(Ok(status)),
            Err(error) => statuses.push(Err(format!("{address}: {error}"))),
        }
    }
    if json {
        let values: Vec<serde_json::Value> = statuses
            .iter()
            .map(|status| match status {
                Ok(status) => serde_json::to_value(status).unwrap_or_default(),
                Err(error) => serde_json::json!({ "error": error }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&values)?);
        return Ok(());
    }
    println!(
        "{:<14} {:<10} {:<8} {:>6} {:>10} {:>8} {:>8} {:>8}  http",
        "node", "region", "state", "epoch", "partitions", "keys", "reads", "writes"
    );
    for status in &statuses {
        match status {
            Ok(s) => println!(
                "{:<14} {:<10} {:<8} {:>6} {:>10} {:>8} {:>8} {:>8}  {}",
                s.node,
                s.region,
                "up",
                s.ring_epoch,
                s.partitions_held,
                s.keys,
                s.reads,
                s.writes,
                s.http
            ),
            Err(error) => println!("unreachable: {error}"),
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Init { dir, topology } => init(&dir, &topology),
            Command::Node(args) => run_node(args).await,
            Command::Cluster {
                command:
                    ClusterCommand::Up {
                        topology,
                        dir,
                        tuning,
                    },
            } => {
                let settings = settings(&topology, &tuning)?;
                let exe = std::env::current_exe()?;
                let cluster = LocalCluster::start(
                    &exe,
                    &topology,
                    &dir,
                    &settings,
                    &tuning,
                    Lifetime::Detached,
                )
                .await?;
                let nodes = cluster.detach();
                println!(
                    "cluster up: {} nodes; see {}",
                    nodes.len(),
                    ClusterFile::path(&dir).display()
                );
                for node in nodes {
                    println!(
                        "  {:<14} {:<10} http {}  quic {}  pid {}",
                        node.id, node.region, node.http, node.quic, node.pid
                    );
                }
                Ok(())
            }
            Command::Cluster {
                command: ClusterCommand::Down { dir },
            } => {
                let stopped = cluster::down(&dir).await?;
                println!("cluster down: stopped {stopped} nodes");
                Ok(())
            }
            Command::Status { dir, node, json } => status(dir, node, json).await,
            Command::Sim {
                topology,
                scenario,
                duration,
                json,
                dir,
                keep,
                seed,
                tuning,
            } => {
                let options = SimOptions {
                    topology,
                    scenario,
                    duration,
                    json,
                    dir,
                    keep,
                    seed,
                    flags: tuning,
                };
                if sim::run(options).await? {
                    Ok(())
                } else {
                    eprintln!("sim: an invariant failed");
                    std::process::exit(1);
                }
            }
        }
    })
}
