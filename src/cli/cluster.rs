//! `cartwheel cluster`: local clusters, one process per node on 127.0.0.1 (`up`, `down`,
//! `add`, `leave`, `remove`). The launching and the ring changes are the library's
//! `cluster` module; this prints what they did.

use super::{settings, DEFAULT_TOPOLOGY};
use anyhow::Result;
use cartwheel::cluster::{self, ClusterFile, Lifetime, LocalCluster};
use cartwheel::config::TuningFlags;
use cartwheel::ids::Region;
use std::path::{Path, PathBuf};

// Parsed once per process; boxing the flags would only complicate clap's flatten.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand)]
pub enum ClusterCommand {
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

pub async fn run(command: ClusterCommand) -> Result<()> {
    match command {
        ClusterCommand::Up {
            topology,
            dir,
            tuning,
        } => up(&topology, &dir, &tuning).await,
        ClusterCommand::Down { dir } => {
            let stopped = cluster::down(&dir).await?;
            println!("cluster down: stopped {stopped} nodes");
            Ok(())
        }
        ClusterCommand::Add { dir, region } => {
            let region =
                Region::new(&region).map_err(|error| anyhow::anyhow!("--region: {error}"))?;
            let entry = cluster::add(&std::env::current_exe()?, &dir, &region).await?;
            println!("added {} ({}): http {} quic {} pid {}; it fetches its partitions in the background (see `cartwheel status --dir {}`)", entry.id, entry.region, entry.http, entry.quic, entry.pid, dir.display());
            Ok(())
        }
        ClusterCommand::Leave { dir, node } => {
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
        ClusterCommand::Remove { dir, node } => {
            cluster::remove(&dir, &node).await?;
            println!("{node} removed; its partitions are rebuilt from the other replicas");
            Ok(())
        }
    }
}

/// Starts every node of `topology` as a detached process of this same binary.
async fn up(topology: &Path, dir: &Path, tuning: &TuningFlags) -> Result<()> {
    let settings = settings(topology, tuning)?;
    let exe = std::env::current_exe()?;
    let cluster =
        LocalCluster::start(&exe, topology, dir, &settings, tuning, Lifetime::Detached).await?;
    let nodes = cluster.detach();
    println!(
        "cluster up: {} nodes; see {}",
        nodes.len(),
        ClusterFile::path(dir).display()
    );
    for node in nodes {
        let resp = node
            .resp
            .map_or(String::new(), |addr| format!("  resp {addr}"));
        println!(
            "  {:<14} {:<10} http {}{resp}  quic {}  pid {}",
            node.id, node.region, node.http, node.quic, node.pid
        );
    }
    Ok(())
}
