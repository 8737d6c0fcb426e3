//! `cartwheel abuse`: attacks a running local cluster the way a hostile client or peer
//! would, and prints one row per attack with what was measured and whether the cluster
//! held: every hostile request refused, node memory within a stated bound, legitimate
//! requests still served (and their p99 against the unloaded figure), nothing changed.
//!
//! It is a tool, outside the node build: it talks to nodes only over their public HTTP
//! API (and, for forged gossip, over QUIC with a certificate made from the cluster's CA),
//! only on loopback addresses, and stops every connection it opened before it returns.
//! Every attack is bounded in time and bytes, and stops early when a node's memory grows
//! past `RSS_CEILING_BYTES` (an unprotected node would otherwise take the machine down).

mod context;
mod flood;
mod gossip;
mod pipeline;
pub mod probe;
mod raw;
mod rotation;
mod slowloris;
mod uploads;

use crate::cluster::{ClusterFile, NodeEntry};
use anyhow::{bail, Context, Result};
use probe::{Probe, ProbeResult};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Every attack, in the order they run.
pub const ATTACKS: &[&str] = &[
    "uploads",
    "slowloris",
    "pipeline-no-read",
    "token-flood",
    "rotation-race",
    "revoke-all-race",
    "forged-context",
    "forged-gossip",
];

/// Growth of one node's resident memory past which an attack is stopped at once (the
/// row then fails): far above any bound the node should hold, far below the machine.
pub const RSS_CEILING_BYTES: u64 = 3 * 1024 * 1024 * 1024;

/// What `cartwheel abuse` was asked to do.
#[derive(Clone, Debug)]
pub struct AbuseOptions {
    /// Cluster directory written by `cluster up`.
    pub dir: PathBuf,
    /// The short form (what the test suite runs): fewer connections, smaller uploads,
    /// shorter floods; p99 ratios are reported but not judged (a shared CI machine is
    /// too noisy for a 20 % bound over seconds).
    pub short: bool,
    /// Only these attacks (default: all).
    pub only: Vec<String>,
    /// Longest a slowloris connection may stay open before the row fails.
    pub slow_deadline: Duration,
}

/// One attack's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub attack: String,
    pub pass: bool,
    /// What was measured, in words and figures.
    pub measured: String,
}

impl Row {
    fn new(attack: &str, pass: bool, measured: String) -> Row {
        Row {
            attack: attack.to_string(),
            pass,
            measured,
        }
    }
}

/// The cluster under attack and what the attacks share.
pub struct Target {
    pub nodes: Vec<NodeEntry>,
    pub dir: PathBuf,
    pub short: bool,
    pub slow_deadline: Duration,
    /// The legitimate client: its session and key, on 127.0.0.1.
    pub probe: Probe,
    /// The legitimate client's figures with no attack going on.
    pub unloaded: ProbeResult,
}

impl Target {
    /// The nodes' regions in the order the cluster file first names them.
    pub fn regions(&self) -> Vec<String> {
        let mut regions: Vec<String> = Vec::new();
        for node in &self.nodes {
            if !regions.iter().any(|region| region == node.region.as_str()) {
                regions.push(node.region.to_string());
            }
        }
        regions
    }

    /// The nodes of one region.
    pub fn in_region(&self, region: &str) -> Vec<&NodeEntry> {
        self.nodes
            .iter()
            .filter(|node| node.region.as_str() == region)
            .collect()
    }

    /// How a row states the legitimate client's p99 against the unloaded one, and
    /// whether it held: no legitimate request failed, and where the attack's row asks
    /// for it (`p99_within`, slowloris and the token flood) and the form is the full one,
    /// the p99 at most 1.2 x the unloaded figure.
    pub fn p99_verdict(&self, during: &ProbeResult, p99_within: bool) -> (bool, String) {
        let ratio = during.p99_ms / self.unloaded.p99_ms.max(0.001);
        let judged = p99_within && !self.short;
        let within = ratio <= 1.2;
        let text = format!(
            "legitimate p99 {:.2} ms vs {:.2} ms unloaded ({ratio:.2} x{}), {} errors of {}",
            during.p99_ms,
            self.unloaded.p99_ms,
            match (p99_within, judged) {
                (false, _) => ", not judged for this attack",
                (true, true) => "",
                (true, false) => ", not judged in the short form",
            },
            during.errors,
            during.ops,
        );
        let text = match during.first_errors.is_empty() {
            true => text,
            false => format!("{text} (first: {})", during.first_errors.join("; ")),
        };
        (
            during.errors == 0 && during.ops > 0 && (within || !judged),
            text,
        )
    }
}

/// Runs the attacks and returns their rows (each also printed as it ends).
pub async fn run(options: &AbuseOptions) -> Result<Vec<Row>> {
    for name in &options.only {
        if !ATTACKS.contains(&name.as_str()) {
            bail!(
                "no attack named {name:?}; the attacks are {}",
                ATTACKS.join(", ")
            );
        }
    }
    let cluster = ClusterFile::load(&options.dir)?;
    if cluster.nodes.is_empty() {
        bail!(
            "{} names no node",
            ClusterFile::path(&options.dir).display()
        );
    }
    // Thousands of attacking connections need file descriptors.
    crate::node::raise_open_files_limit();
    let probe = Probe::prepare(&cluster.nodes)
        .await
        .context("cannot set up the legitimate client (is the cluster up?)")?;
    let unloaded = probe.run(probe_duration(options.short)).await;
    eprintln!(
        "abuse: unloaded legitimate client: {} ops, p50 {:.2} ms, p99 {:.2} ms, {} errors",
        unloaded.ops, unloaded.p50_ms, unloaded.p99_ms, unloaded.errors
    );
    let target = Target {
        nodes: cluster.nodes,
        dir: options.dir.clone(),
        short: options.short,
        slow_deadline: options.slow_deadline,
        probe,
        unloaded,
    };
    let mut rows = Vec::new();
    for name in ATTACKS {
        if !options.only.is_empty() && !options.only.iter().any(|only| only == name) {
            continue;
        }
        eprintln!("abuse: {name}");
        let row = match run_one(&target, name).await {
            Ok(row) => row,
            Err(error) => Row::new(name, false, format!("could not run: {error:#}")),
        };
        println!("row: {}", render_row(&row));
        rows.push(row);
    }
    Ok(rows)
}

async fn run_one(target: &Target, name: &str) -> Result<Row> {
    Ok(match name {
        "uploads" => uploads::run(target).await?,
        "slowloris" => slowloris::run(target).await?,
        "pipeline-no-read" => pipeline::run(target).await?,
        "token-flood" => flood::run(target).await?,
        "rotation-race" => rotation::rotation_race(target).await?,
        "revoke-all-race" => rotation::revoke_all_race(target).await?,
        "forged-context" => context::run(target).await?,
        "forged-gossip" => gossip::run(target).await?,
        other => bail!("no attack named {other:?}"),
    })
}

/// How long the legitimate client measures, unloaded and during an attack.
pub fn probe_duration(short: bool) -> Duration {
    if short {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(10)
    }
}

fn render_row(row: &Row) -> String {
    format!(
        "| {} | {} | {} |",
        row.attack,
        if row.pass { "pass" } else { "FAIL" },
        row.measured
    )
}

/// The rows as a Markdown table.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from("| attack | verdict | measured |\n| --- | --- | --- |\n");
    for row in rows {
        out.push_str(&render_row(row));
        out.push('\n');
    }
    out
}
