//! The operation ids a user's document has applied: what makes a retried session write
//! land once. A client that did not hear the answer to "add 1 sku" sends it again with
//! the same `Idempotency-Key`; the replica that applies it finds the id here and changes
//! nothing, wherever the first attempt was applied, as long as that attempt has reached
//! it (by replication, read repair, hints or anti-entropy) and is still among the newest
//! `APPLIED_OPS_MAX` ids of the document.
//!
//! A join-semilattice: the set of the newest `APPLIED_OPS_MAX` entries of the union,
//! ordered by (applied at, id). Keeping the top N of a total order commutes with the
//! union, so merges stay commutative, associative and idempotent, and the document
//! stays bounded. It must never prune by the local clock (that would make replicas
//! disagree about what they hold).

use serde::{Deserialize, Serialize};

use crate::limits::APPLIED_OPS_MAX;

/// One client operation's id: the first 16 bytes of the blake3 hash of the key the
/// client sent, so any key of up to `IDEMPOTENCY_KEY_CHARS_MAX` characters costs 16
/// bytes in the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId(pub [u8; 16]);

impl OpId {
    /// The id of a client's idempotency key.
    pub fn of_key(key: &str) -> OpId {
        let hash = blake3::hash(key.as_bytes());
        let mut id = [0; 16];
        id.copy_from_slice(&hash.as_bytes()[..16]);
        OpId(id)
    }
}

/// The newest applied operation ids, newest first; at most `APPLIED_OPS_MAX`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedOps {
    /// (applied at in ms of the applying replica's HLC, id), sorted descending.
    entries: Vec<(u64, OpId)>,
}

impl AppliedOps {
    pub fn contains(&self, id: OpId) -> bool {
        self.entries.iter().any(|(_, known)| *known == id)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records `id` as applied at `at_ms`.
    pub fn insert(&mut self, at_ms: u64, id: OpId) {
        self.merge(&AppliedOps {
            entries: vec![(at_ms, id)],
        });
    }

    /// The join: the newest `APPLIED_OPS_MAX` of both, one entry per id (the entry an id
    /// keeps is the newest: two replicas that both applied it before hearing of each
    /// other agree on which to keep).
    pub fn merge(&mut self, other: &AppliedOps) {
        if other.entries.is_empty() {
            return;
        }
        let mut all: Vec<(u64, OpId)> =
            self.entries.iter().chain(&other.entries).copied().collect();
        all.sort_unstable_by(|left, right| right.cmp(left));
        let mut kept: Vec<(u64, OpId)> = Vec::with_capacity(APPLIED_OPS_MAX.min(all.len()));
        for entry in all {
            if kept.len() == APPLIED_OPS_MAX {
                break;
            }
            if !kept.iter().any(|(_, id)| *id == entry.1) {
                kept.push(entry);
            }
        }
        self.entries = kept;
    }
}

#[cfg(test)]
mod tests;
