//! Writing one scrape's families through `prometheus-client`'s encoder: counters,
//! gauges and histograms with or without labels, the `stats` snapshots' buckets turned
//! into the encoder's (upper bound, own count) pairs.

use crate::stats::Snapshot;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes the families of one scrape.
pub(super) struct Families<'a, 'b> {
    pub(super) encoder: &'a mut DescriptorEncoder<'b>,
}

impl Families<'_, '_> {
    pub(super) fn counter(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        let mut metric = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        metric.encode_counter::<NoLabelSet, _, u64>(&value, None)
    }

    /// One counter family per (name, help, count).
    pub(super) fn counters<'c>(
        &mut self,
        counters: impl IntoIterator<Item = (&'c str, &'c str, &'c AtomicU64)>,
    ) -> fmt::Result {
        for (name, help, count) in counters {
            self.counter(name, help, count.load(Ordering::Relaxed))?;
        }
        Ok(())
    }

    pub(super) fn bytes_counter(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        let mut metric =
            self.encoder
                .encode_descriptor(name, help, Some(&Unit::Bytes), MetricType::Counter)?;
        metric.encode_counter::<NoLabelSet, _, u64>(&value, None)
    }

    pub(super) fn gauge(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        value: f64,
    ) -> fmt::Result {
        let mut metric = self
            .encoder
            .encode_descriptor(name, help, unit, MetricType::Gauge)?;
        metric.encode_gauge(&value)
    }

    /// A gauge family: one series per label set.
    pub(super) fn gauges<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (L, f64)>,
    ) -> fmt::Result {
        let mut metric = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, value) in series {
            metric.encode_family(&labels)?.encode_gauge(&value)?;
        }
        Ok(())
    }

    /// A histogram family: one series per label set. Latency snapshots are in
    /// microseconds and are written in seconds; others as they are.
    pub(super) fn histograms<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        series: impl IntoIterator<Item = (L, Snapshot)>,
    ) -> fmt::Result {
        let divisor = match unit {
            Some(Unit::Seconds) => 1e6,
            _ => 1.0,
        };
        let mut metric = self
            .encoder
            .encode_descriptor(name, help, unit, MetricType::Histogram)?;
        for (labels, snapshot) in series {
            let buckets = buckets(&snapshot, divisor);
            metric
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    snapshot.sum as f64 / divisor,
                    snapshot.count(),
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

/// A snapshot's buckets as (upper bound / `divisor`, own count), the last one
/// unbounded. Dividing by a power of ten keeps bounds such as 0.05 exact as written.
pub(super) fn buckets(snapshot: &Snapshot, divisor: f64) -> Vec<(f64, u64)> {
    snapshot
        .counts
        .iter()
        .enumerate()
        .map(|(index, &count)| {
            let bound = snapshot
                .bounds
                .get(index)
                .map_or(f64::INFINITY, |&bound| bound as f64 / divisor);
            (bound, count)
        })
        .collect()
}
