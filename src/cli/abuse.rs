//! `cartwheel abuse`: the hostile-client and hostile-peer attacks of `sim::abuse`
//! against a running local cluster, one row each; exits 1 if any attack got through.

use anyhow::{Context, Result};
use cartwheel::sim;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct AbuseArgs {
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
}

pub async fn run(args: AbuseArgs) -> Result<()> {
    let options = sim::abuse::AbuseOptions {
        dir: args.dir,
        short: args.short,
        only: args.only,
        slow_deadline: args.slow_deadline,
    };
    let rows = sim::abuse::run(&options).await?;
    println!("{}", sim::abuse::render(&rows));
    if let Some(path) = args.json {
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
