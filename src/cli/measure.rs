//! `cartwheel measure`: the failure detector's and repair's figures on a local cluster
//! (detection time, hint replay, rebuild, false alarms), printed one line each, and the
//! accuracy of the transport's emulated delays (a table, no cluster). The runs are the
//! library's `sim::measure`; false alarms, and an emulated delay that ended early, exit 1.

use super::DEFAULT_TOPOLOGY;
use anyhow::Result;
use cartwheel::config::TuningFlags;
use cartwheel::sim;
use cartwheel::sim::measure::emulation;
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
    /// Sleep many times on tokio's timer and on the transport's emulated delays; print how
    /// late each ended (p50, p99, max) and the process CPU time per sleep. No cluster.
    Emulation {
        /// Delays to sleep, in milliseconds, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,1,5,35")]
        delays_ms: Vec<f64>,
        /// Sleepers at once, comma-separated: one set of rows for each.
        #[arg(long, value_delimiter = ',', default_value = "1,200")]
        concurrency: Vec<usize>,
        /// Sleeps per row (one timer, delay and concurrency).
        #[arg(long, default_value_t = 1000)]
        count: usize,
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
        Measurement::Emulation {
            delays_ms,
            concurrency,
            count,
        } => emulation(&delays_ms, &concurrency, count).await,
    }
}

/// Prints one row per timer, delay and concurrency as each is measured; exits 1 if an
/// emulated delay ended early.
async fn emulation(delays_ms: &[f64], concurrency: &[usize], count: usize) -> Result<()> {
    let cells = emulation::plan(delays_ms, concurrency, count)?;
    println!("emulated delays: {count} sleeps a row; late = time slept minus time asked");
    println!(
        "{:<9} {:>9} {:>7} {:>11} {:>11} {:>11} {:>6} {:>12}",
        "timer",
        "asked ms",
        "at once",
        "late p50 ms",
        "late p99 ms",
        "late max ms",
        "early",
        "cpu us/sleep"
    );
    let ms = |nanos: i64| nanos as f64 / 1e6;
    let (mut emulated, mut coarse, mut early) = (0, 0, 0);
    for cell in cells {
        let row = emulation::measure(cell).await;
        let cpu = row.cpu_per_sleep.map_or("-".to_string(), |cpu| {
            format!("{:.1}", cpu.as_secs_f64() * 1e6)
        });
        println!(
            "{:<9} {:>9.3} {:>7} {:>11.3} {:>11.3} {:>11.3} {:>6} {:>12}",
            cell.timer.name(),
            cell.delay.as_secs_f64() * 1000.0,
            cell.sleepers,
            ms(row.late_p50_ns),
            ms(row.late_p99_ns),
            ms(row.late_max_ns),
            row.early,
            cpu
        );
        if cell.timer == emulation::Timer::Emulated {
            emulated += cell.sleeps;
            coarse += row.coarse_endings;
            early += row.early;
        }
    }
    println!(
        "emulated delays that ended on tokio's timer (no kernel timer free or made): {coarse} of {emulated}"
    );
    if early > 0 {
        println!("{early} emulated delays ended early");
        std::process::exit(1);
    }
    Ok(())
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
