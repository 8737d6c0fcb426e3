//! The node's near-cache of session documents (`user` class): a read of a hot session
//! served from this node's memory instead of its replicas, invalidated by the change
//! feeds of the node's region (`runtime::hub`, wired by the node) and by this node's own
//! writes at once.
//!
//! It is never used for `auth` records: a validation always reads, so no cache can let
//! a revoked token in. What it may serve is a session document older than a change
//! made through another node, for as long as that change takes to reach this node's
//! hub (the feed's latency, README "Change feed"); a change made through this node is
//! never missed by a read through it.
//!
//! A read that misses takes a [`Ticket`] and asks the feed to watch the key before it
//! reads, and keeps what it read only if no invalidation of the key came in between,
//! so a change racing the read is never hidden. The cache is bounded in bytes (oldest
//! entries go first), and so is its memory of recent invalidations.

use crate::crdt::UserDoc;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Asks the change feed to report the next change of a key (storage bytes): the
/// node's hub listener. Reports come back through `NearCache::invalidate`.
pub trait Watch: Send + Sync {
    fn watch(&self, key: &[u8]);

    /// The read of `key` kept found the object whose digest is `digest`: reports of
    /// that same state (other replicas of the change the read saw) end nothing.
    fn confirm(&self, _key: &[u8], _digest: [u8; 32]) {}
}

/// What the near-cache counted since the node started.
#[derive(Debug, Default)]
pub struct NearCacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub invalidations: AtomicU64,
    pub clears: AtomicU64,
    /// Reads whose result was not kept: the key changed while they read.
    pub raced: AtomicU64,
    pub evictions: AtomicU64,
}

/// The cache's position when a read began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

/// Bytes an entry costs beyond its document's encoding.
const ENTRY_FIXED_BYTES: usize = 96;
/// Invalidations remembered for reads in flight; older ones are summed into a floor
/// below which no read's result is kept.
const INVALIDATIONS_REMEMBERED_MAX: usize = 4096;

struct Entry {
    doc: UserDoc,
    bytes: usize,
    /// When it was kept (`State::seq`), to tell it from a later entry of its key.
    kept: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<Arc<[u8]>, Entry>,
    /// Keys in the order they were kept, with when (stale pairs skipped when met).
    order: VecDeque<(Arc<[u8]>, u64)>,
    bytes: usize,
    /// Counts invalidations and insertions: a ticket is its value at a read's start.
    seq: u64,
    invalidated: HashMap<Arc<[u8]>, u64>,
    invalidated_order: VecDeque<(Arc<[u8]>, u64)>,
    /// No read that began before this keeps its result.
    floor: u64,
}

pub struct NearCache {
    state: Mutex<State>,
    bytes_max: usize,
    stats: Arc<NearCacheStats>,
    watch: Arc<dyn Watch>,
}

impl NearCache {
    /// A cache of at most `bytes_max` bytes whose keys `watch` reports changes of,
    /// counting into `stats`.
    pub fn new(bytes_max: usize, watch: Arc<dyn Watch>, stats: Arc<NearCacheStats>) -> NearCache {
        NearCache {
            state: Mutex::new(State::default()),
            bytes_max,
            stats,
            watch,
        }
    }

    pub fn stats(&self) -> &Arc<NearCacheStats> {
        &self.stats
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Entries held and their bytes.
    pub fn held(&self) -> (usize, usize) {
        let state = self.state();
        (state.entries.len(), state.bytes)
    }

    /// The document kept for `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<UserDoc> {
        let found = self.state().entries.get(key).map(|entry| entry.doc.clone());
        let counter = match found {
            Some(_) => &self.stats.hits,
            None => &self.stats.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// A read of `key` begins: the feed watches the key from now on.
    pub fn begin(&self, key: &[u8]) -> Ticket {
        let ticket = Ticket(self.state().seq);
        self.watch.watch(key);
        ticket
    }

    /// Keeps what a read begun at `ticket` found (`doc`, of the object whose digest is
    /// `digest`), unless `key` was invalidated since.
    pub fn keep(
        &self,
        key: &[u8],
        ticket: Ticket,
        (doc, digest): (UserDoc, [u8; 32]),
        doc_bytes: usize,
    ) {
        let bytes = ENTRY_FIXED_BYTES + key.len() + doc_bytes;
        if bytes > self.bytes_max {
            return;
        }
        let mut state = self.state();
        let changed_since = state.invalidated.get(key).is_some_and(|at| *at > ticket.0);
        if ticket.0 < state.floor || changed_since {
            self.stats.raced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.seq += 1;
        let kept = state.seq;
        let held: Arc<[u8]> = Arc::from(key);
        if let Some(old) = state
            .entries
            .insert(held.clone(), Entry { doc, bytes, kept })
        {
            state.bytes -= old.bytes;
        }
        state.bytes += bytes;
        state.order.push_back((held, kept));
        while state.bytes > self.bytes_max {
            let Some((oldest, when)) = state.order.pop_front() else {
                break;
            };
            if state
                .entries
                .get(&oldest)
                .is_some_and(|entry| entry.kept == when)
            {
                let entry = state.entries.remove(&oldest).expect("just seen");
                state.bytes -= entry.bytes;
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        if state.order.len() > 2 * state.entries.len() + 64 {
            let State { entries, order, .. } = &mut *state;
            order.retain(|(key, when)| entries.get(key).is_some_and(|entry| entry.kept == *when));
        }
        drop(state);
        self.watch.confirm(key, digest);
    }

    /// `key` changed: its entry goes, and no read begun before now keeps its result.
    pub fn invalidate(&self, key: &[u8]) {
        self.stats.invalidations.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state();
        state.seq += 1;
        let seq = state.seq;
        if let Some(entry) = state.entries.remove(key) {
            state.bytes -= entry.bytes;
        }
        let key: Arc<[u8]> = Arc::from(key);
        state.invalidated.insert(key.clone(), seq);
        state.invalidated_order.push_back((key, seq));
        while state.invalidated_order.len() > INVALIDATIONS_REMEMBERED_MAX {
            let Some((oldest, at)) = state.invalidated_order.pop_front() else {
                break;
            };
            if state.invalidated.get(&oldest) == Some(&at) {
                state.invalidated.remove(&oldest);
            }
            state.floor = state.floor.max(at);
        }
    }

    /// Anything may have changed (a feed was lost): everything goes.
    pub fn clear(&self) {
        self.stats.clears.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state();
        state.seq += 1;
        state.floor = state.seq;
        state.entries.clear();
        state.order.clear();
        state.invalidated.clear();
        state.invalidated_order.clear();
        state.bytes = 0;
    }
}

#[cfg(test)]
mod tests;
