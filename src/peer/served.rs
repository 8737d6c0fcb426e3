//! How long this node took to answer each kind of peer request, and how it answered:
//! the replica side of the request latencies (`coordinator::requests` is the other).

use crate::stats::{HistogramTable, Snapshot, LATENCY_BOUNDS_US};
use crate::wire::{PeerRequest, PeerResponse};
use std::time::Duration;

/// Request kinds in slot order.
const KINDS: [&str; 16] = [
    "get",
    "mint",
    "merge",
    "swim",
    "hint",
    "handoff",
    "anti_entropy",
    "collect_tombstones",
    "fetch_keys",
    "fetch_partition",
    "apply",
    "batch",
    "digest",
    "scan_class",
    "overview",
    "feed_read",
];
const OUTCOMES: [&str; 2] = ["ok", "error"];

fn kind_slot(request: &PeerRequest) -> usize {
    match request {
        PeerRequest::Get { .. } => 0,
        PeerRequest::Mint { .. } => 1,
        PeerRequest::Merge { .. } => 2,
        PeerRequest::Swim(_) => 3,
        PeerRequest::Hint { .. } => 4,
        PeerRequest::Handoff { .. } => 5,
        PeerRequest::AntiEntropy(_) => 6,
        PeerRequest::CollectTombstones { .. } => 7,
        PeerRequest::FetchKeys { .. } => 8,
        PeerRequest::FetchPartition { .. } => 9,
        PeerRequest::Apply { .. } => 10,
        PeerRequest::Batch(_) => 11,
        PeerRequest::Digest { .. } => 12,
        PeerRequest::ScanClass { .. } => 13,
        PeerRequest::Overview => 14,
        PeerRequest::FeedRead { .. } => 15,
    }
}

/// What a request was, before it is consumed by serving it.
#[derive(Clone, Copy, Debug)]
pub struct Kind(usize);

impl Kind {
    pub fn of(request: &PeerRequest) -> Kind {
        Kind(kind_slot(request))
    }
}

/// Peer request latencies by (kind, outcome).
#[derive(Debug)]
pub struct ServedLatencies {
    table: HistogramTable,
}

impl Default for ServedLatencies {
    fn default() -> Self {
        ServedLatencies {
            table: HistogramTable::new(KINDS.len() * OUTCOMES.len(), LATENCY_BOUNDS_US),
        }
    }
}

impl ServedLatencies {
    pub fn observe(&self, kind: Kind, response: &PeerResponse, elapsed: Duration) {
        let outcome = usize::from(matches!(response, PeerResponse::Error(_)));
        let slot = kind.0 * OUTCOMES.len() + outcome;
        self.table.slot(slot).observe_duration(elapsed);
    }

    /// Every (kind, outcome) served at least once.
    pub fn observed(&self) -> impl Iterator<Item = ((&'static str, &'static str), Snapshot)> + '_ {
        self.table.observed().map(|(slot, snapshot)| {
            let labels = (
                KINDS[slot / OUTCOMES.len()],
                OUTCOMES[slot % OUTCOMES.len()],
            );
            (labels, snapshot)
        })
    }
}

#[cfg(test)]
mod tests;
