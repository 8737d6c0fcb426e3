//! `cartwheel sim`: start a local cluster, run a scenario's workload and faults, check
//! that nothing acknowledged was lost; exits 1 if an invariant failed. The run is the
//! library's `sim::run`.

use super::DEFAULT_TOPOLOGY;
use anyhow::Result;
use cartwheel::config::TuningFlags;
use cartwheel::sim::{self, SimOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct SimArgs {
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
}

pub async fn run(args: SimArgs) -> Result<()> {
    let options = SimOptions {
        topology: args.topology,
        scenario: args.scenario,
        duration: args.duration,
        json: args.json,
        svg: args.svg,
        history: args.history,
        dir: args.dir,
        keep: args.keep,
        seed: args.seed,
        flags: args.tuning,
    };
    if sim::run(options).await? {
        Ok(())
    } else {
        eprintln!("sim: an invariant failed");
        std::process::exit(1);
    }
}
