//! The `cartwheel` command: nodes, local clusters, status and simulations.

use anyhow::{bail, Context, Result};
use cartwheel::cluster::{self, ClusterFile, Lifetime, LocalCluster, ReadyFile};
use cartwheel::config::{Settings, Topology, TuningFlags};
use cartwheel::ids::{NodeId, Region};
use cartwheel::node::{self, DataDir, NodeOptions, Seed};
use cartwheel::runtime::gossip::Exit;
use cartwheel::sim::{self, SimOptions};
use cartwheel::{limits, transport};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_TOPOLOGY: &str = "regions/default.toml";
/// File descriptors a node needs besides its client connections: the store's files,
/// the QUIC socket, logs.
const OPEN_FILES_SLACK: u64 = 256;

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
    /// Create a cluster's certificate authority, secrets and one certificate per
    /// topology node; or write node bundles from them; or add a session key.
    Init {
        /// Cluster directory (certificates and secrets go to DIR/tls).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        /// Also write one bundle per topology node to OUT/<node>: what that node needs
        /// to run (`cartwheel node --dir OUT/<node>`), without the CA's private key or
        /// the admin secret (only its hash).
        #[arg(long, value_name = "OUT")]
        bundles: Option<PathBuf>,
        /// Add a new session key in front of DIR's existing ones (it issues tokens
        /// after each node's next start; the older keys still validate theirs).
        #[arg(long, conflicts_with = "bundles")]
        rotate_session_secret: bool,
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
    /// Load a running cluster (or a Redis server) and report throughput and latency.
    Bench(cartwheel::bench::cli::BenchArgs),
    /// Measure the failure detector on a local cluster (figures quoted in the README).
    Measure {
        #[command(subcommand)]
        what: Measurement,
    },
    /// Attack a running local cluster as a hostile client or peer would; one row per
    /// attack with what was measured (exits 1 if any attack got through).
    Abuse {
        /// Cluster directory written by `cluster up` (its tls/ must hold the CA key: the
        /// forged-gossip attack plays a peer with a stolen node certificate).
        #[arg(long)]
        dir: PathBuf,
        /// The short form the test suite runs: fewer connections, smaller uploads,
        /// shorter floods; p99 ratios reported, not judged.
        #[arg(long)]
        short: bool,
        /// Only these attacks, comma separated (uploads, slowloris, pipeline-no-read,
        /// token-flood, rotation-race, revoke-all-race, forged-context, forged-gossip).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Longest a slow or never-reading connection may stay open before its row fails.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        slow_deadline: Duration,
        /// Write the rows as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
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
        /// Write an SVG timeline here: ops/s, error rate and p99 per region over time,
        /// fault windows shaded.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Write every operation (start, end, region, node, request, outcome) here as
        /// JSON lines.
        #[arg(long)]
        history: Option<PathBuf>,
        /// Cluster directory (default: a new temporary one, removed after a run that
        /// passed and kept after one that did not).
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
    /// This node's id, as named by the topology (e.g. us-east-1), or a new one for a
    /// node that joins a running cluster (then --region is needed).
    #[arg(long)]
    id: String,
    /// Region of a node the topology does not name.
    #[arg(long)]
    region: Option<String>,
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
    #[command(flatten)]
    tuning: TuningFlags,
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Measurement {
    /// Kill nodes one at a time; time until every other node marks the killed one dead.
    Detection {
        #[arg(long, default_value = DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        #[arg(long, default_value_t = 10)]
        trials: usize,
        #[command(flatten)]
        tuning: TuningFlags,
    },
    /// Kill a node, write keys while it is down, restart it: time until hints have given
    /// it every key it replicates.
    Handoff {
        #[arg(long, default_value = DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        keys: u64,
        #[command(flatten)]
        tuning: TuningFlags,
    },
    /// Write keys, kill a node and wipe its data, restart it: time until anti-entropy
    /// has rebuilt it, and the bytes that took.
    Rebuild {
        #[arg(long, default_value = DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        keys: u64,
        #[command(flatten)]
        tuning: TuningFlags,
    },
    /// Drop a share of every node's messages for a while; count live nodes declared dead.
    FalseAlarms {
        #[arg(long, default_value = DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Share of messages lost (requests and responses each).
        #[arg(long, default_value_t = 0.05)]
        drop: f64,
        #[command(flatten)]
        tuning: TuningFlags,
    },
}

// Parsed once per process; boxing the flags would only complicate clap's flatten.
#[allow(clippy::large_enum_variant)]
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
    /// Start a new node in REGION that joins the running cluster and takes its share of
    /// partitions.
    Add {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        region: String,
    },
    /// Make NODE hand every partition to its new owner, then exit.
    Leave {
        #[arg(long)]
        dir: PathBuf,
        node: String,
    },
    /// Take NODE, which is gone for good, out of the ring; the others rebuild its data.
    Remove {
        #[arg(long)]
        dir: PathBuf,
        node: String,
    },
}

fn settings(topology: &Path, tuning: &TuningFlags) -> Result<Settings> {
    let settings = Settings::new(Topology::load(topology)?, tuning)?;
    for warning in &settings.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(settings)
}

fn init(dir: &Path, topology: &Path, bundles: Option<&Path>, rotate: bool) -> Result<()> {
    if rotate {
        let id = cluster::rotate_session_secret(dir)?;
        println!(
            "added session key {id} to {}; restart each node (or copy the file into its bundle first) to issue tokens under it",
            cluster::session_secret_path(dir).display()
        );
        return Ok(());
    }
    let settings = settings(topology, &TuningFlags::default())?;
    if let Some(out) = bundles {
        let tls = cluster::ensure_certificates(dir, &settings)?;
        let written = cluster::bundle::write_bundles(dir, topology, &settings, out)?;
        println!(
            "wrote {} node bundles to {} (from the CA in {}; the bundles hold no CA key and no admin secret)",
            written.len(),
            out.display(),
            tls.display()
        );
        return Ok(());
    }
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
    let region = args
        .region
        .as_deref()
        .map(Region::new)
        .transpose()
        .map_err(|error| anyhow::anyhow!("--region: {error}"))?;
    if settings.topology.region_of(&id).is_none() && region.is_none() {
        let known: Vec<String> = settings
            .topology
            .nodes()
            .map(|(node, _)| node.to_string())
            .collect();
        bail!(
            "--id: node {id} is not in {} (its nodes are {}); a new node needs --region",
            args.topology.display(),
            known.join(", ")
        );
    }
    // Every client connection takes a file descriptor; past the limit accepts wait.
    let connections = settings.http.connections_max as u64;
    match node::raise_open_files_limit() {
        Some(open_files) if open_files < connections + OPEN_FILES_SLACK => eprintln!(
            "warning: this process may open {open_files} files, fewer than \
             --http-connections-max ({connections}) plus {OPEN_FILES_SLACK} for the store \
             and sockets; connections past it wait (raise `ulimit -n`)"
        ),
        _ => {}
    }
    // A secret file that is present but empty, short or malformed stops the node here
    // with the file's name; only a missing file turns its feature off.
    let admin_key = cluster::load_admin_key(&args.dir)?;
    let session_secrets = cluster::secrets::load_session_secrets_if_any(&args.dir)?;
    if session_secrets.is_none() {
        eprintln!(
            "warning: no session secret in {} (run `cartwheel init`); the session API is off, \
             and kv answers carry no causal context (writes sending one are refused)",
            args.dir.join("tls").display()
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
        region,
        chaos: args.tuning.chaos,
        admin_key,
        session_keys: session_secrets,
        settings,
        tls,
        data,
        cache_bytes: args
            .tuning
            .cache_mb
            .map_or(limits::STORAGE_CACHE_BYTES_DEFAULT, |mb| mb * 1024 * 1024),
        http_bind: args.http,
        quic_bind: args.quic,
        seeds: args.seeds,
    };
    let mut running = node::start(options).await?;
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
    let exit = tokio::select! {
        _ = tokio::signal::ctrl_c() => Exit::Running,
        _ = terminate.recv() => Exit::Running,
        exit = running.exited() => exit,
    };
    tracing::info!(?exit, "stopping");
    running.shutdown().await;
    match exit {
        Exit::DuplicateId { address } => {
            bail!("node id {id} is already used by a live member at {address}; pick another id")
        }
        Exit::Left => {
            println!("node {id} left the cluster");
            Ok(())
        }
        Exit::Running => Ok(()),
    }
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
    let mut unreachable = Vec::new();
    for address in &addresses {
        match cluster::fetch_status(&client, *address).await {
            Ok(status) => statuses.push(status),
            Err(error) => unreachable.push(format!("{address}: {error}")),
        }
    }
    if json {
        let value = serde_json::json!({ "nodes": statuses, "unreachable": unreachable });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let Some(first) = statuses.first() else {
        bail!("no node answered: {}", unreachable.join("; "))
    };
    println!(
        "members as seen by {} (ring epoch {}{}):",
        first.node,
        first.ring_epoch,
        if first.ring_change_pending {
            ", change pending"
        } else {
            ""
        }
    );
    println!(
        "{:<14} {:<10} {:<8} {:<8} {:>6} {:>6} {:>10} {:>9} {:>8}",
        "node", "region", "state", "status", "incarn", "epoch", "partitions", "transfers", "keys"
    );
    for member in &first.members {
        let own = statuses.iter().find(|status| status.node == member.node);
        let field = |f: &dyn Fn(&cartwheel::api::Status) -> String| {
            own.map(f).unwrap_or_else(|| "-".to_string())
        };
        println!(
            "{:<14} {:<10} {:<8} {:<8} {:>6} {:>6} {:>10} {:>9} {:>8}",
            member.node,
            member.region,
            member.state,
            member.status,
            member.incarnation,
            field(&|s| s.ring_epoch.to_string()),
            member.partitions_owned,
            field(&|s| s.transfers_in_flight.to_string()),
            field(&|s| s.keys.to_string())
        );
    }
    println!("\nrepair, per node:");
    println!(
        "{:<14} {:>13} {:>9} {:>8} {:>12} {:>13} {:>12} {:>12}",
        "node",
        "hints pending",
        "replayed",
        "dropped",
        "out of sync",
        "oldest div s",
        "ae bytes out",
        "ae bytes in"
    );
    for s in &statuses {
        let pending: u64 = s.hints.pending.values().sum();
        println!(
            "{:<14} {:>13} {:>9} {:>8} {:>12} {:>13.1} {:>12} {:>12}",
            s.node,
            pending,
            s.hints.replayed,
            s.hints.dropped,
            s.anti_entropy.partitions_out_of_sync,
            s.anti_entropy.oldest_divergence_s,
            s.anti_entropy.bytes_sent,
            s.anti_entropy.bytes_received
        );
    }
    for line in unreachable {
        println!("unreachable: {line}");
    }
    Ok(())
}

/// glibc's allocator cost about a fifth of a node's CPU under load (profile in README,
/// "Performance"); mimalloc's thread-local free lists remove most of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A node's runtime: `threads` workers, or one per core. One worker is tokio's
/// current-thread scheduler: the thread that waits for I/O also runs the tasks.
fn node_runtime(threads: Option<u16>) -> Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(usize::from(threads));
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    Ok(builder.enable_all().build()?)
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match &cli.command {
        Command::Node(args) => node_runtime(args.tuning.threads)?,
        _ => tokio::runtime::Runtime::new()?,
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Init {
                dir,
                topology,
                bundles,
                rotate_session_secret,
            } => init(&dir, &topology, bundles.as_deref(), rotate_session_secret),
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
            Command::Cluster { command: ClusterCommand::Add { dir, region } } => {
                let region = Region::new(&region).map_err(|error| anyhow::anyhow!("--region: {error}"))?;
                let entry = cluster::add(&std::env::current_exe()?, &dir, &region).await?;
                println!("added {} ({}): http {} quic {} pid {}; it fetches its partitions in the background (see `cartwheel status --dir {}`)", entry.id, entry.region, entry.http, entry.quic, entry.pid, dir.display());
                Ok(())
            }
            Command::Cluster { command: ClusterCommand::Leave { dir, node } } => {
                let mut last = String::new();
                cluster::leave(&dir, &node, |line| {
                    if line != last {
                        eprintln!("{line}");
                        last = line.to_string();
                    }
                })
                .await?;
                println!("{node} handed over its partitions and left");
                Ok(())
            }
            Command::Cluster { command: ClusterCommand::Remove { dir, node } } => {
                cluster::remove(&dir, &node).await?;
                println!("{node} removed; its partitions are rebuilt from the other replicas");
                Ok(())
            }
            Command::Status { dir, node, json } => status(dir, node, json).await,
            Command::Bench(args) => cartwheel::bench::cli::run(args).await,
            Command::Measure { what: Measurement::Handoff { topology, keys, tuning } } => {
                let r = sim::measure::repair(&topology, &tuning, keys, false).await?;
                println!(
                    "handoff: {} keys written while a node was down ({} of them its own); after its restart it held them all in {:.2} s: {:.0} keys/s replayed",
                    r.keys_written, r.keys_expected, r.seconds, r.keys_per_s
                );
                Ok(())
            }
            Command::Measure { what: Measurement::Rebuild { topology, keys, tuning } } => {
                let r = sim::measure::repair(&topology, &tuning, keys, true).await?;
                println!(
                    "rebuild: a wiped node got back its {} keys in {:.2} s ({:.0} keys/s); anti-entropy moved {} bytes for about {} bytes of data ({:.2} x)",
                    r.keys_expected, r.seconds, r.keys_per_s, r.repair_bytes, r.data_bytes, r.repair_bytes as f64 / r.data_bytes.max(1) as f64
                );
                Ok(())
            }
            Command::Measure { what: Measurement::Detection { topology, trials, tuning } } => {
                let times = sim::measure::detection(&topology, &tuning, trials).await?;
                let (median, max) = sim::measure::median_and_max(&times);
                println!("detection over {} trials: median {:.2} s, max {:.2} s", times.len(), median.as_secs_f64(), max.as_secs_f64());
                Ok(())
            }
            Command::Measure { what: Measurement::FalseAlarms { topology, duration, drop, tuning } } => {
                let report = sim::measure::false_alarms(&topology, &tuning, duration, drop).await?;
                println!(
                    "false alarms over {:.0} s at {:.0} % loss: {} live nodes declared dead ({} dead sightings in {} polls); {} suspicions raised, {} refuted; {} messages lost on purpose",
                    duration.as_secs_f64(),
                    drop * 100.0,
                    report.deaths_declared,
                    report.dead_sightings,
                    report.polls,
                    report.suspicions_raised,
                    report.refutations,
                    report.faults_injected
                );
                if report.deaths_declared > 0 || report.dead_sightings > 0 {
                    std::process::exit(1);
                }
                Ok(())
            }
            Command::Abuse {
                dir,
                short,
                only,
                slow_deadline,
                json,
            } => {
                let options = sim::abuse::AbuseOptions {
                    dir,
                    short,
                    only,
                    slow_deadline,
                };
                let rows = sim::abuse::run(&options).await?;
                println!("{}", sim::abuse::render(&rows));
                if let Some(path) = json {
                    std::fs::write(&path, serde_json::to_vec_pretty(&rows)?)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                if rows.iter().all(|row| row.pass) {
                    Ok(())
                } else {
                    eprintln!("abuse: an attack got through");
                    std::process::exit(1);
                }
            }
            Command::Sim {
                topology,
                scenario,
                duration,
                json,
                svg,
                history,
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
                    svg,
                    history,
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
