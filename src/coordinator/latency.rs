//! What the replicas' own response times say, for speculation: a small fixed-bucket
//! histogram per peer over a sliding window (two halves of `LATENCY_WINDOW_MS`; a
//! sample lands in the newer, a query reads both, the older is dropped when a half
//! passes), so a peer that turned slow, or recovered, shows within a window. Its p99
//! tells a read how long to wait before asking the other replicas (Cassandra's
//! `speculative_retry = 99p`) and which replicas to ask first.
//!
//! Also each peer's silence: how long this node has been waiting for any answer from
//! it (since the first request sent after its last answer). A peer silent for
//! `PEER_SILENT_AFTER_MS` is treated as dead by this node's coordinator, and probed at
//! most every `PEER_SILENT_PROBE_MS` until it answers.
//!
//! Also the per-node speculation budget: a token bucket filled by reads, so the extra
//! requests speculation sends stay a bounded share of reads.
//!
//! Pure data: the caller passes the time in milliseconds; it never reads a clock, never
//! allocates per sample, and holds at most `LATENCY_PEERS_MAX` peers (the one not asked
//! the longest makes room).

use crate::ids::NodeId;
use crate::limits;

/// The upper bounds (milliseconds, inclusive) of the histogram's buckets; a sample above
/// the last lands in an overflow bucket read as `LATENCY_OVERFLOW_MS`.
const BUCKET_BOUNDS_MS: [u64; 22] = [
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 300, 500,
];
const BUCKETS: usize = BUCKET_BOUNDS_MS.len() + 1;
/// What a sample beyond the last bound reads as.
const LATENCY_OVERFLOW_MS: u64 = 1000;

/// Counts of samples per bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Histogram {
    counts: [u32; BUCKETS],
    total: u32,
}

impl Histogram {
    fn record(&mut self, elapsed_ms: u64) {
        let bucket = BUCKET_BOUNDS_MS
            .iter()
            .position(|bound| elapsed_ms <= *bound)
            .unwrap_or(BUCKETS - 1);
        // Saturating: a peer asked more than 4 billion times in half a window is not a
        // case to wrap on.
        self.counts[bucket] = self.counts[bucket].saturating_add(1);
        self.total = self.total.saturating_add(1);
    }
}

/// One peer's two half-windows.
#[derive(Clone, Debug)]
struct Peer {
    node: NodeId,
    newer: Histogram,
    older: Histogram,
    /// When `newer` began.
    newer_since_ms: u64,
    /// The last sample, to pick the peer to forget when the table is full.
    last_ms: u64,
    /// The first request sent to it since its last answer, while none has come.
    waiting_since_ms: Option<u64>,
    /// When it was last probed while silent.
    probed_ms: Option<u64>,
}

impl Peer {
    /// Whether it has been asked and has answered nothing for `PEER_SILENT_AFTER_MS`
    /// at `now_ms`.
    fn silent_at(&self, now_ms: u64) -> bool {
        self.waiting_since_ms
            .is_some_and(|since| now_ms.saturating_sub(since) >= limits::PEER_SILENT_AFTER_MS)
    }

    /// Drops the halves that `now_ms` has left behind.
    fn slide(&mut self, now_ms: u64) {
        let half_ms = limits::LATENCY_WINDOW_MS;
        let since = now_ms.saturating_sub(self.newer_since_ms);
        if since < half_ms {
            return;
        }
        (self.newer, self.older) = self.halves_at(now_ms);
        self.newer_since_ms = now_ms - since % half_ms;
    }

    /// The (newer, older) halves as they stand at `now_ms`, without sliding.
    fn halves_at(&self, now_ms: u64) -> (Histogram, Histogram) {
        let half_ms = limits::LATENCY_WINDOW_MS;
        let since = now_ms.saturating_sub(self.newer_since_ms);
        match since {
            _ if since < half_ms => (self.newer, self.older),
            _ if since < 2 * half_ms => (Histogram::default(), self.newer),
            _ => (Histogram::default(), Histogram::default()),
        }
    }

    /// The `per_mille` quantile of both halves at `now_ms` (the upper bound of its
    /// bucket), once the window holds `LATENCY_SAMPLES_MIN` samples.
    fn quantile_ms(&self, per_mille: u64, now_ms: u64) -> Option<u64> {
        let (newer, older) = self.halves_at(now_ms);
        let total = u64::from(newer.total) + u64::from(older.total);
        if total < limits::LATENCY_SAMPLES_MIN || total == 0 {
            return None;
        }
        // The smallest count of samples at or below the quantile, rounded up.
        let wanted = (total * per_mille).div_ceil(1000);
        let mut seen = 0u64;
        for bucket in 0..BUCKETS {
            seen += u64::from(newer.counts[bucket]) + u64::from(older.counts[bucket]);
            if seen >= wanted {
                return Some(
                    BUCKET_BOUNDS_MS
                        .get(bucket)
                        .copied()
                        .unwrap_or(LATENCY_OVERFLOW_MS),
                );
            }
        }
        Some(LATENCY_OVERFLOW_MS)
    }
}

/// Response times of the peers this node asks.
#[derive(Clone, Debug, Default)]
pub struct LatencyTracker {
    peers: Vec<Peer>,
}

impl LatencyTracker {
    pub fn new() -> LatencyTracker {
        LatencyTracker::default()
    }

    /// `node` answered (or failed) `elapsed_ms` after it was asked, at `now_ms`.
    pub fn record(&mut self, node: &NodeId, elapsed_ms: u64, now_ms: u64) {
        let peer = self.peer_mut(node, now_ms);
        peer.slide(now_ms);
        peer.newer.record(elapsed_ms);
        peer.last_ms = peer.last_ms.max(now_ms);
    }

    /// A request went to `node` at `now_ms`: if none of its earlier ones has been
    /// answered since its last answer, the wait (its silence) counts from the first.
    pub fn sent(&mut self, node: &NodeId, now_ms: u64) {
        let peer = self.peer_mut(node, now_ms);
        peer.waiting_since_ms.get_or_insert(now_ms);
        peer.last_ms = peer.last_ms.max(now_ms);
    }

    /// `node` answered something (an answer or an error of its own): it is not silent.
    pub fn heard(&mut self, node: &NodeId) {
        if let Some(peer) = self.peers.iter_mut().find(|peer| peer.node == *node) {
            peer.waiting_since_ms = None;
            peer.probed_ms = None;
        }
    }

    /// Whether `node` has been asked and has not answered anything for
    /// `PEER_SILENT_AFTER_MS` at `now_ms`.
    pub fn is_silent(&self, node: &NodeId, now_ms: u64) -> bool {
        self.peers
            .iter()
            .find(|peer| peer.node == *node)
            .is_some_and(|peer| peer.silent_at(now_ms))
    }

    /// Whether silent `node` is due a probe at `now_ms` (none for
    /// `PEER_SILENT_PROBE_MS`); a `true` counts as the probe sent.
    pub fn probe_due(&mut self, node: &NodeId, now_ms: u64) -> bool {
        let Some(peer) = self.peers.iter_mut().find(|peer| peer.node == *node) else {
            return false;
        };
        let due = peer.silent_at(now_ms)
            && peer
                .probed_ms
                .is_none_or(|probed| now_ms.saturating_sub(probed) >= limits::PEER_SILENT_PROBE_MS);
        if due {
            peer.probed_ms = Some(now_ms);
        }
        due
    }

    /// `node`'s entry, made (in a free slot, else in the one heard from the longest
    /// ago) if it has none.
    fn peer_mut(&mut self, node: &NodeId, now_ms: u64) -> &mut Peer {
        let at = match self.peers.iter().position(|peer| peer.node == *node) {
            Some(at) => at,
            None => self.admit(node, now_ms),
        };
        &mut self.peers[at]
    }

    /// A slot for a new peer: a free one, else the one heard from the longest ago.
    fn admit(&mut self, node: &NodeId, now_ms: u64) -> usize {
        let peer = Peer {
            node: node.clone(),
            newer: Histogram::default(),
            older: Histogram::default(),
            newer_since_ms: now_ms,
            last_ms: now_ms,
            waiting_since_ms: None,
            probed_ms: None,
        };
        if self.peers.len() < limits::LATENCY_PEERS_MAX {
            self.peers.push(peer);
            return self.peers.len() - 1;
        }
        let oldest = (0..self.peers.len())
            .min_by_key(|at| self.peers[*at].last_ms)
            .unwrap_or(0);
        self.peers[oldest] = peer;
        oldest
    }

    /// `node`'s p99 response time over the window at `now_ms`; `None` while too few
    /// samples say.
    pub fn p99_ms(&self, node: &NodeId, now_ms: u64) -> Option<u64> {
        let peer = self.peers.iter().find(|peer| peer.node == *node)?;
        peer.quantile_ms(990, now_ms)
    }

    /// How many peers are tracked.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }
}

/// The per-node speculation budget: each read adds `SPECULATION_SHARE_PER_MILLE`
/// thousandths of a token (up to `SPECULATION_BURST` tokens), each speculation takes
/// one; counted in reads, not time, so it needs no clock.
#[derive(Clone, Debug)]
pub struct SpeculationBudget {
    /// Thousandths of a token.
    milli_tokens: u64,
}

impl Default for SpeculationBudget {
    /// Full: a fresh node may speculate a burst before its reads have earned any.
    fn default() -> Self {
        SpeculationBudget {
            milli_tokens: limits::SPECULATION_BURST * 1000,
        }
    }
}

impl SpeculationBudget {
    /// An empty budget (tests: a read that may not speculate).
    #[cfg(test)]
    pub(crate) fn empty() -> SpeculationBudget {
        SpeculationBudget { milli_tokens: 0 }
    }

    /// A read began.
    pub fn on_read(&mut self) {
        let most = limits::SPECULATION_BURST * 1000;
        self.milli_tokens = (self.milli_tokens + limits::SPECULATION_SHARE_PER_MILLE).min(most);
    }

    /// Takes a token for one speculation; `false` (nothing taken) when none is left.
    pub fn try_take(&mut self) -> bool {
        match self.milli_tokens.checked_sub(1000) {
            Some(left) => {
                self.milli_tokens = left;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests;
