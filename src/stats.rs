//! Histograms the node's parts keep on their hot paths, for `/metrics`, `/v1/cluster`
//! and the dashboard.
//!
//! Recording is a few relaxed atomic additions: no lock, no allocation, nothing a
//! scrape could contend with. A histogram has fixed bucket bounds (each bucket its own
//! count, the last one unbounded) and a sum; a table is a fixed array of them indexed
//! by a label slot its owner computes, so the set of label combinations is bounded by
//! construction. Readers take a snapshot: counts that grow while it is taken may be off
//! by the observations in flight, never torn.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, microseconds (0.25 ms to 5 s; over the last,
/// the unbounded bucket).
pub const LATENCY_BOUNDS_US: &[u64] = &[
    250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000,
    2_000_000, 5_000_000,
];

/// Upper bounds of the size buckets (writes per group commit, items per batch).
pub const SIZE_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// One histogram: a count per bucket and the sum of the observed values.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// `bounds.len() + 1` counts: the last is the values over every bound.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// What a histogram held when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub bounds: &'static [u64],
    /// Each bucket's own count (not cumulative), `bounds.len() + 1` of them.
    pub counts: Vec<u64>,
    pub sum: u64,
}

impl Histogram {
    /// An empty histogram over `bounds`, which must be strictly increasing.
    pub fn new(bounds: &'static [u64]) -> Histogram {
        assert!(
            bounds.windows(2).all(|pair| pair[0] < pair[1]),
            "histogram bounds must increase"
        );
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// An empty latency histogram (`LATENCY_BOUNDS_US`).
    pub fn latency() -> Histogram {
        Histogram::new(LATENCY_BOUNDS_US)
    }

    /// Counts `value` in the first bucket whose bound is at least it.
    pub fn observe(&self, value: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts a duration in microseconds (a latency histogram's unit).
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .map(|count| count.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

impl Snapshot {
    /// How many values were observed.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The value under which a `quantile` (0 to 1) of the observations lie, estimated by
    /// linear interpolation inside its bucket; the unbounded bucket answers the last
    /// bound. `None` when nothing was observed.
    pub fn quantile(&self, quantile: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = quantile.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (index, &count) in self.counts.iter().enumerate() {
            if count > 0 && (below + count) as f64 >= rank {
                let Some(&upper) = self.bounds.get(index) else {
                    return self.bounds.last().map(|&bound| bound as f64);
                };
                let lower = if index == 0 {
                    0
                } else {
                    self.bounds[index - 1]
                };
                let within = (rank - below as f64) / count as f64;
                return Some(lower as f64 + within * (upper - lower) as f64);
            }
            below += count;
        }
        self.bounds.last().map(|&bound| bound as f64)
    }
}

/// A fixed set of histograms, one per label slot; the owner maps its labels to slots.
#[derive(Debug)]
pub struct HistogramTable {
    slots: Box<[Histogram]>,
}

impl HistogramTable {
    pub fn new(slots: usize, bounds: &'static [u64]) -> HistogramTable {
        HistogramTable {
            slots: (0..slots).map(|_| Histogram::new(bounds)).collect(),
        }
    }

    /// The histogram of `slot`, which must be below the table's size (the owner's bug
    /// otherwise).
    pub fn slot(&self, slot: usize) -> &Histogram {
        &self.slots[slot]
    }

    /// Every slot that has observed something, with its snapshot, in slot order.
    pub fn observed(&self) -> impl Iterator<Item = (usize, Snapshot)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .map(|(slot, histogram)| (slot, histogram.snapshot()))
            .filter(|(_, snapshot)| snapshot.count() > 0)
    }
}

#[cfg(test)]
mod tests;
