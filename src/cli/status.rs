//! `cartwheel status`: every reachable node's `/v1/status`, as a members table and a
//! repair table (or JSON). Only reads; a node that does not answer is listed as
//! unreachable, not an error, unless none answers. With `--watch`, the tables are
//! drawn again in place every few seconds, with each node's requests per second since
//! the last drawing, until Ctrl-C.

use anyhow::{bail, Result};
use cartwheel::api::Status;
use cartwheel::cluster::{self, ClusterFile};
use std::fmt::Write;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Shortest and longest `--watch` interval, seconds.
const WATCH_S_MIN: f64 = 0.2;
const WATCH_S_MAX: f64 = 3600.0;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Cluster directory written by `cluster up`.
    #[arg(long, conflicts_with = "node", required_unless_present = "node")]
    dir: Option<PathBuf>,
    /// HTTP address of any one node.
    #[arg(long)]
    node: Option<SocketAddr>,
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "watch")]
    json: bool,
    /// Draw the tables again every SECONDS (default 2), in place on a terminal, with
    /// each node's reads, writes and failures per second; Ctrl-C ends.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    watch: Option<f64>,
}

pub async fn run(args: StatusArgs) -> Result<()> {
    let addresses: Vec<SocketAddr> = match (&args.dir, args.node) {
        (Some(dir), _) => ClusterFile::load(dir)?
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
    let Some(every_s) = args.watch else {
        let (statuses, unreachable) = gather(&client, &addresses).await;
        if args.json {
            let value = serde_json::json!({ "nodes": statuses, "unreachable": unreachable });
            println!("{}", serde_json::to_string_pretty(&value)?);
            return Ok(());
        }
        if statuses.is_empty() {
            bail!("no node answered: {}", unreachable.join("; "))
        }
        print!("{}", render(&statuses, &unreachable, None));
        return Ok(());
    };
    if !(WATCH_S_MIN..=WATCH_S_MAX).contains(&every_s) {
        bail!(
            "--watch {every_s}: give an interval between {WATCH_S_MIN} and {WATCH_S_MAX} seconds"
        );
    }
    let in_place = std::io::stdout().is_terminal();
    let mut previous: Option<(Instant, Vec<Status>)> = None;
    loop {
        let (statuses, unreachable) = gather(&client, &addresses).await;
        let now = Instant::now();
        let rates = previous
            .as_ref()
            .map(|(then, before)| (now.duration_since(*then).as_secs_f64(), before.as_slice()));
        let mut screen = String::new();
        if in_place {
            // Clear the screen and go home: the tables replace the last ones.
            screen.push_str("\x1b[2J\x1b[H");
        }
        let _ = writeln!(
            screen,
            "cartwheel status, every {every_s} s (Ctrl-C ends); {}",
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        match statuses.is_empty() {
            true => {
                let _ = writeln!(screen, "no node answered: {}", unreachable.join("; "));
            }
            false => screen.push_str(&render(&statuses, &unreachable, rates)),
        }
        print!("{screen}");
        previous = Some((now, statuses));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(every_s)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Every node's status; the ones that did not answer, with why.
async fn gather(client: &reqwest::Client, addresses: &[SocketAddr]) -> (Vec<Status>, Vec<String>) {
    let mut statuses = Vec::new();
    let mut unreachable = Vec::new();
    for address in addresses {
        match cluster::fetch_status(client, *address).await {
            Ok(status) => statuses.push(status),
            Err(error) => unreachable.push(format!("{address}: {error}")),
        }
    }
    (statuses, unreachable)
}

/// The tables, as one text: members, repair, and with `rates` (seconds since the
/// statuses before, and those) each node's requests per second.
fn render(statuses: &[Status], unreachable: &[String], rates: Option<(f64, &[Status])>) -> String {
    let mut text = String::new();
    if let Some(first) = statuses.first() {
        members(&mut text, first, statuses);
        repair(&mut text, statuses);
    }
    if let Some((seconds, before)) = rates {
        requests(&mut text, statuses, before, seconds);
    }
    for line in unreachable {
        let _ = writeln!(text, "unreachable: {line}");
    }
    text
}

/// Each node's coordinated reads, writes and failures per second over `seconds`.
fn requests(text: &mut String, statuses: &[Status], before: &[Status], seconds: f64) {
    let _ = writeln!(text, "\nrequests coordinated, per second:");
    let _ = writeln!(
        text,
        "{:<14} {:>9} {:>9} {:>9}",
        "node", "reads", "writes", "failures"
    );
    for status in statuses {
        let Some(old) = before.iter().find(|old| old.node == status.node) else {
            continue;
        };
        // A node that restarted counts from zero again: its rate is unknown this once.
        let rate = |new: u64, old: u64| match new.checked_sub(old) {
            Some(delta) => format!("{:.1}", delta as f64 / seconds.max(0.001)),
            None => "-".to_string(),
        };
        let _ = writeln!(
            text,
            "{:<14} {:>9} {:>9} {:>9}",
            status.node,
            rate(status.reads, old.reads),
            rate(status.writes, old.writes),
            rate(status.failures, old.failures)
        );
    }
}

/// The members as `first` sees them, with each answering node's own figures.
fn members(text: &mut String, first: &Status, statuses: &[Status]) {
    let _ = writeln!(
        text,
        "members as seen by {} (ring epoch {}{}):",
        first.node,
        first.ring_epoch,
        if first.ring_change_pending {
            ", change pending"
        } else {
            ""
        }
    );
    let _ = writeln!(
        text,
        "{:<14} {:<10} {:<8} {:<8} {:>6} {:>6} {:>10} {:>9} {:>8}",
        "node", "region", "state", "status", "incarn", "epoch", "partitions", "transfers", "keys"
    );
    for member in &first.members {
        let own = statuses.iter().find(|status| status.node == member.node);
        let field = |f: &dyn Fn(&Status) -> String| own.map(f).unwrap_or_else(|| "-".to_string());
        let _ = writeln!(
            text,
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
fn repair(text: &mut String, statuses: &[Status]) {
    let _ = writeln!(text, "\nrepair, per node:");
    let _ = writeln!(
        text,
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
        let _ = writeln!(
            text,
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
