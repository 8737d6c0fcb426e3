//! What the sim shows while its workload runs: per region, operations per second,
//! errors and p99 over the last interval, and the fault in force, a line each, instead
//! of silence until the report.
//!
//! Every client (kv, session, RESP) counts each finished operation here with a few
//! relaxed atomic additions (`stats::Histogram`); the printer takes a snapshot every
//! `LIVE_INTERVAL` and writes the differences.

use crate::stats::{Histogram, Snapshot};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often the progress lines are written.
pub const LIVE_INTERVAL: Duration = Duration::from_secs(2);

/// One region's counts since the workload started.
#[derive(Debug)]
struct RegionLive {
    name: String,
    ops: AtomicU64,
    errors: AtomicU64,
    latency: Histogram,
}

/// Every region's counts, shared by the clients and the printer.
#[derive(Debug)]
pub struct LiveCounts {
    regions: Vec<RegionLive>,
}

/// One region's counts at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionCounts {
    pub name: String,
    pub ops: u64,
    pub errors: u64,
    pub latency: Snapshot,
}

impl LiveCounts {
    pub fn new(regions: &[String]) -> LiveCounts {
        LiveCounts {
            regions: regions
                .iter()
                .map(|name| RegionLive {
                    name: name.clone(),
                    ops: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    latency: Histogram::latency(),
                })
                .collect(),
        }
    }

    /// Counts one finished operation of a client of `region` (one the topology does
    /// not name is counted nowhere).
    pub fn record(&self, region: &str, micros: u64, ok: bool) {
        let Some(live) = self.regions.iter().find(|live| live.name == region) else {
            return;
        };
        live.ops.fetch_add(1, Ordering::Relaxed);
        if !ok {
            live.errors.fetch_add(1, Ordering::Relaxed);
        }
        live.latency.observe(micros);
    }

    /// Operations finished so far, in every region.
    pub fn total(&self) -> u64 {
        self.regions
            .iter()
            .map(|live| live.ops.load(Ordering::Relaxed))
            .sum()
    }

    pub fn snapshot(&self) -> Vec<RegionCounts> {
        self.regions
            .iter()
            .map(|live| RegionCounts {
                name: live.name.clone(),
                ops: live.ops.load(Ordering::Relaxed),
                errors: live.errors.load(Ordering::Relaxed),
                latency: live.latency.snapshot(),
            })
            .collect()
    }
}

/// The lines for the interval between two snapshots `seconds` apart, `at_s` into the
/// run, with the fault in force (if any).
pub fn progress_lines(
    before: &[RegionCounts],
    now: &[RegionCounts],
    seconds: f64,
    at_s: f64,
    fault: Option<&str>,
) -> Vec<String> {
    let mut lines = vec![format!(
        "[{at_s:>5.0} s] {}",
        match fault {
            Some(fault) => format!("fault: {fault}"),
            None => "no fault".to_string(),
        }
    )];
    for (old, new) in before.iter().zip(now) {
        let ops = new.ops.saturating_sub(old.ops);
        let errors = new.errors.saturating_sub(old.errors);
        let interval = Snapshot {
            bounds: new.latency.bounds,
            counts: new
                .latency
                .counts
                .iter()
                .zip(&old.latency.counts)
                .map(|(new, old)| new.saturating_sub(*old))
                .collect(),
            sum: new.latency.sum.saturating_sub(old.latency.sum),
        };
        let p99 = match interval.quantile(0.99) {
            Some(micros) => format!("{:.0} ms", micros / 1000.0),
            None => "-".to_string(),
        };
        lines.push(format!(
            "  {:<12} {:>7.0} ops/s  {:>5} errors  p99 {p99}",
            new.name,
            ops as f64 / seconds.max(0.001),
            errors
        ));
    }
    lines
}

#[cfg(test)]
mod tests;
