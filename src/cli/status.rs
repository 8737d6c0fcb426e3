//! `cartwheel status`: every reachable node's `/v1/status`, as a members table and a
//! repair table (or JSON). Only reads; a node that does not answer is listed as
//! unreachable, not an error, unless none answers.

use anyhow::{bail, Result};
use cartwheel::api::Status;
use cartwheel::cluster::{self, ClusterFile};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Cluster directory written by `cluster up`.
    #[arg(long, conflicts_with = "node", required_unless_present = "node")]
    dir: Option<PathBuf>,
    /// HTTP address of any one node.
    #[arg(long)]
    node: Option<SocketAddr>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: StatusArgs) -> Result<()> {
    let addresses: Vec<SocketAddr> = match (args.dir, args.node) {
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
    if args.json {
        let value = serde_json::json!({ "nodes": statuses, "unreachable": unreachable });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let Some(first) = statuses.first() else {
        bail!("no node answered: {}", unreachable.join("; "))
    };
    print_members(first, &statuses);
    print_repair(&statuses);
    for line in unreachable {
        println!("unreachable: {line}");
    }
    Ok(())
}

/// The members as `first` sees them, with each answering node's own figures.
fn print_members(first: &Status, statuses: &[Status]) {
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
        let field = |f: &dyn Fn(&Status) -> String| own.map(f).unwrap_or_else(|| "-".to_string());
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
}

/// Hints and anti-entropy, one row per answering node.
fn print_repair(statuses: &[Status]) {
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
    for s in statuses {
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
}
