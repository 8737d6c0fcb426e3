//! Bounded history: the newest K entries by (Hlc, actor, item). Newest-K of a union is a
//! join (associative, commutative, idempotent), so older entries may be dropped freely.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::clock::{Actor, Hlc};
use crate::limits::HISTORY_MAX;

fn history_max() -> usize {
    HISTORY_MAX
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: Hlc,
    pub actor: Actor,
    pub item: String,
}

/// Deltas are `History`s holding one entry; apply with `merge_delta` (or `merge`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Ascending; never longer than `capacity`.
    entries: BTreeSet<HistoryEntry>,
    /// A local setting, not replicated state: not serialized (decoded histories keep
    /// `limits::HISTORY_MAX`), so a peer cannot shrink this replica's history.
    #[serde(skip, default = "history_max")]
    capacity: usize,
}

impl Default for History {
    fn default() -> Self {
        History::with_capacity(HISTORY_MAX)
    }
}

impl History {
    /// Keeps `limits::HISTORY_MAX` entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the newest `capacity` entries, at most `limits::HISTORY_MAX`.
    pub fn with_capacity(capacity: usize) -> Self {
        History {
            entries: BTreeSet::new(),
            capacity: capacity.min(HISTORY_MAX),
        }
    }

    pub fn add(&mut self, item: String, at: Hlc, actor: Actor) -> History {
        let mut delta = History::with_capacity(self.capacity);
        delta.entries.insert(HistoryEntry { at, actor, item });
        self.merge(&delta);
        delta
    }

    /// Newest first.
    pub fn entries(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.entries.iter().rev()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Newest K of the union, K being this replica's capacity (replicas sharing a
    /// capacity converge). Also trims a decoded state that arrived longer than it.
    pub fn merge(&mut self, other: &History) {
        self.entries.extend(other.entries.iter().cloned());
        while self.entries.len() > self.capacity {
            self.entries.pop_first();
        }
    }

    pub fn merge_delta(&mut self, delta: &History) {
        self.merge(delta);
    }

    /// Drops the entries made at or before `floor`.
    pub fn prune(&mut self, floor: Hlc) {
        self.entries.retain(|entry| entry.at > floor);
    }
}
