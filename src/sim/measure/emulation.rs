//! `cartwheel measure emulation`: how late the transport's emulated delays end
//! (`transport::delay`) next to tokio's own timer, for delays from a quarter of a
//! millisecond (an intra-region hop) to a WAN hop, one sleeper or many at once, and the
//! process CPU time each sleep costs.
//!
//! It only sleeps in this process: no cluster, no network. It remembers one figure
//! (8 bytes) per sleep of a row, at most `MEASURE_SLEEPS_PER_ROW_MAX`.

use crate::limits::{MEASURE_DELAY_MS_MAX, MEASURE_SLEEPERS_MAX, MEASURE_SLEEPS_PER_ROW_MAX};
use crate::transport::delay;
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

/// The timer a row sleeps on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// `tokio::time::sleep`, what the transport slept on before.
    Tokio,
    /// The transport's emulated delays (`transport::delay::sleep`).
    Emulated,
}

impl Timer {
    pub fn name(self) -> &'static str {
        match self {
            Timer::Tokio => "tokio",
            Timer::Emulated => "emulated",
        }
    }
}

/// One row to measure: `sleeps` sleeps of `delay` on `timer`, `sleepers` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    pub timer: Timer,
    pub delay: Duration,
    pub sleepers: usize,
    pub sleeps: usize,
}

/// Every row of a measurement, sleepers at once outermost, then delays, then the two
/// timers side by side; refuses a delay, count or concurrency out of bounds.
pub fn plan(delays_ms: &[f64], concurrency: &[usize], sleeps: usize) -> Result<Vec<Cell>> {
    if sleeps == 0 || sleeps > MEASURE_SLEEPS_PER_ROW_MAX {
        bail!("--count must be 1 to {MEASURE_SLEEPS_PER_ROW_MAX}, not {sleeps}");
    }
    let mut delays = Vec::with_capacity(delays_ms.len());
    for &ms in delays_ms {
        if !(ms.is_finite() && ms > 0.0 && ms <= MEASURE_DELAY_MS_MAX) {
            bail!("a delay must be over 0 and at most {MEASURE_DELAY_MS_MAX} ms, not {ms}");
        }
        delays.push(Duration::from_secs_f64(ms / 1000.0));
    }
    let mut cells = Vec::new();
    for &sleepers in concurrency {
        if sleepers == 0 || sleepers > MEASURE_SLEEPERS_MAX {
            bail!("sleepers at once must be 1 to {MEASURE_SLEEPERS_MAX}, not {sleepers}");
        }
        for &delay in &delays {
            for timer in [Timer::Tokio, Timer::Emulated] {
                cells.push(Cell {
                    timer,
                    delay,
                    sleepers,
                    sleeps,
                });
            }
        }
    }
    Ok(cells)
}

/// What one row measured. Lateness is the time a sleep took minus the delay asked, in
/// nanoseconds; negative would mean the timer ended early.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub cell: Cell,
    pub late_p50_ns: i64,
    pub late_p99_ns: i64,
    pub late_max_ns: i64,
    /// Sleeps that ended before their delay was over (a timer bug if not 0).
    pub early: usize,
    /// The process's CPU time (all threads) over the row divided by its sleeps; `None`
    /// where the clock cannot be read.
    pub cpu_per_sleep: Option<Duration>,
    /// Emulated delays of the process that ended on tokio's timer during the row
    /// (no kernel timer free or made).
    pub coarse_endings: u64,
}

/// Sleeps a row's sleeps and sums them up. The sleepers start spread over one delay, as
/// requests arriving at random would be, and each then sleeps its share back to back.
pub async fn measure(cell: Cell) -> Row {
    let coarse_before = delay::coarse_endings();
    let cpu_before = process_cpu_time();
    let mut sleepers = tokio::task::JoinSet::new();
    for index in 0..cell.sleepers {
        let share = cell.sleeps / cell.sleepers + usize::from(index < cell.sleeps % cell.sleepers);
        let offset = cell.delay.mul_f64(index as f64 / cell.sleepers as f64);
        sleepers.spawn(async move {
            delay::sleep(offset).await;
            let mut late = Vec::with_capacity(share);
            for _ in 0..share {
                let start = Instant::now();
                match cell.timer {
                    Timer::Tokio => tokio::time::sleep(cell.delay).await,
                    Timer::Emulated => delay::sleep(cell.delay).await,
                }
                late.push(lateness_ns(start.elapsed(), cell.delay));
            }
            late
        });
    }
    let mut late = Vec::with_capacity(cell.sleeps);
    while let Some(joined) = sleepers.join_next().await {
        // A sleeper cannot panic; were one lost, its sleeps are simply not counted.
        if let Ok(figures) = joined {
            late.extend(figures);
        }
    }
    let cpu_per_sleep = match (cpu_before, process_cpu_time()) {
        (Some(before), Some(after)) => {
            Some(after.saturating_sub(before) / u32::try_from(cell.sleeps).unwrap_or(u32::MAX))
        }
        _ => None,
    };
    late.sort_unstable();
    Row {
        cell,
        late_p50_ns: percentile(&late, 50.0),
        late_p99_ns: percentile(&late, 99.0),
        late_max_ns: late.last().copied().unwrap_or(0),
        early: late.iter().take_while(|late| **late < 0).count(),
        cpu_per_sleep,
        coarse_endings: delay::coarse_endings().saturating_sub(coarse_before),
    }
}

/// How much longer than `asked` a sleep took, in nanoseconds (negative: shorter).
fn lateness_ns(took: Duration, asked: Duration) -> i64 {
    let nanos = |duration: Duration| i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
    nanos(took).saturating_sub(nanos(asked))
}

/// The nearest-rank percentile of sorted figures (0 for none).
fn percentile(sorted: &[i64], percent: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// CPU time this process has used, every thread counted.
fn process_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct passed in.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    if status != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(now.tv_sec).ok()?,
        u32::try_from(now.tv_nsec).ok()?,
    ))
}

#[cfg(test)]
mod tests;
