//! `cartwheel measure`: the failure detector's and repair's figures on a local cluster
//! (detection time, hint replay, rebuild, false alarms), printed one line each. The
//! runs are the library's `sim::measure`; false alarms exit 1.

use super::DEFAULT_TOPOLOGY;
use anyhow::Result;
use cartwheel::config::TuningFlags;
use cartwheel::sim;
use std::path::PathBuf;
use std::time::Duration;

#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand)]
pub enum Measurement {
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

pub async fn run(what: Measurement) -> Result<()> {
    match what {
        Measurement::Handoff {
            topology,
            keys,
            tuning,
        } => {
            let r = sim::measure::repair(&topology, &tuning, keys, false).await?;
            println!(
                "handoff: {} keys written while a node was down ({} of them its own); after its restart it held them all in {:.2} s: {:.0} keys/s replayed",
                r.keys_written, r.keys_expected, r.seconds, r.keys_per_s
            );
            Ok(())
        }
        Measurement::Rebuild {
            topology,
            keys,
            tuning,
        } => {
            let r = sim::measure::repair(&topology, &tuning, keys, true).await?;
            println!(
                "rebuild: a wiped node got back its {} keys in {:.2} s ({:.0} keys/s); anti-entropy moved {} bytes for about {} bytes of data ({:.2} x)",
                r.keys_expected, r.seconds, r.keys_per_s, r.repair_bytes, r.data_bytes, r.repair_bytes as f64 / r.data_bytes.max(1) as f64
            );
            Ok(())
        }
        Measurement::Detection {
            topology,
            trials,
            tuning,
        } => {
            let times = sim::measure::detection(&topology, &tuning, trials).await?;
            let (median, max) = sim::measure::median_and_max(&times);
            println!(
                "detection over {} trials: median {:.2} s, max {:.2} s",
                times.len(),
                median.as_secs_f64(),
                max.as_secs_f64()
            );
            Ok(())
        }
        Measurement::FalseAlarms {
            topology,
            duration,
            drop,
            tuning,
        } => false_alarms(&topology, duration, drop, &tuning).await,
    }
}

/// Exits 1 if any live node was declared or seen dead.
async fn false_alarms(
    topology: &std::path::Path,
    duration: Duration,
    drop: f64,
    tuning: &TuningFlags,
) -> Result<()> {
    let report = sim::measure::false_alarms(topology, tuning, duration, drop).await?;
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
