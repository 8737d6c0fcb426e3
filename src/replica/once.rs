//! An `Apply` delivered twice is applied once. A network (or a retry) that hands a
//! replica the same request again must not count a counter increment twice, and must
//! not turn the first delivery's answer into the second's (`SET NX` would answer "not
//! written" for the write it made, a rotation "already used" for the one it did).
//!
//! A request is named by a hash of who sent it and all it says (key, operation, the
//! coordinator's timestamp); the answers of the latest applied ones are remembered,
//! bounded in bytes (`APPLIED_ONCE_BYTES_MAX`, oldest forgotten first). A repeat gets
//! the remembered answer, with the key's whole stored document as its delta (a full
//! state merges like any delta). A request and its repeat are applied one at a time
//! (a lock per stripe of names), so two copies arriving together cannot both apply.

use crate::clock::Hlc;
use crate::crdt::redis::RedisOutcome;
use crate::crdt::DocOp;
use crate::ids::NodeId;
use crate::limits::{APPLIED_ONCE_BYTES_MAX, APPLIED_ONCE_STRIPES};
use crate::object::ObjectKey;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

/// Names one delivered `Apply` (a blake3 hash of its sender and contents).
pub type Name = [u8; 32];

/// Bytes a remembered answer is counted at besides what its outcome carries: the name
/// twice (map and queue), the map's and queue's own bookkeeping.
const ENTRY_OVERHEAD_BYTES: usize = 128;

/// The answers of recently applied requests, by name.
pub struct AppliedOnce {
    stripes: Vec<Mutex<Stripe>>,
}

#[derive(Default)]
pub struct Stripe {
    answers: HashMap<Name, Option<RedisOutcome>>,
    order: VecDeque<(Name, usize)>,
    bytes: usize,
}

impl Default for AppliedOnce {
    fn default() -> Self {
        AppliedOnce {
            stripes: (0..APPLIED_ONCE_STRIPES)
                .map(|_| Mutex::default())
                .collect(),
        }
    }
}

impl AppliedOnce {
    /// The name of `op` on `key` at `at` sent by `from`.
    pub fn name(from: &NodeId, key: &ObjectKey, op: &DocOp, at: Hlc) -> Name {
        let mut hasher = blake3::Hasher::new();
        // Writing into a hasher cannot fail, and the parts always encode.
        let _ = rmp_serde::encode::write(&mut hasher, &(from, key, op, at));
        *hasher.finalize().as_bytes()
    }

    /// The stripe `name` falls in, locked: hold it while applying, so a repeat waits.
    pub fn lock(&self, name: &Name) -> MutexGuard<'_, Stripe> {
        let index = usize::from(name[0]) % self.stripes.len();
        // A panic while holding the lock leaves the map consistent (inserts are whole).
        self.stripes[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes remembered, over every stripe.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.stripes
            .iter()
            .map(|stripe| stripe.lock().map(|s| s.bytes).unwrap_or(0))
            .sum()
    }
}

impl Stripe {
    /// The answer remembered for `name`, if it was applied and not yet forgotten.
    pub fn answered(&self, name: &Name) -> Option<&Option<RedisOutcome>> {
        self.answers.get(name)
    }

    /// Remembers the answer to `name`, forgetting the oldest past this stripe's share
    /// of the byte bound. An answer larger than the share is not kept (a repeat of it
    /// applies again, as before this existed).
    pub fn remember(&mut self, name: Name, outcome: Option<RedisOutcome>) {
        let share = APPLIED_ONCE_BYTES_MAX / APPLIED_ONCE_STRIPES;
        let bytes = ENTRY_OVERHEAD_BYTES + outcome.as_ref().map_or(0, outcome_bytes);
        if bytes > share || self.answers.contains_key(&name) {
            return;
        }
        while self.bytes + bytes > share {
            let Some((oldest, freed)) = self.order.pop_front() else {
                break;
            };
            self.answers.remove(&oldest);
            self.bytes -= freed;
        }
        self.answers.insert(name, outcome);
        self.order.push_back((name, bytes));
        self.bytes += bytes;
    }
}

/// Bytes an outcome holds beyond its fixed size.
fn outcome_bytes(outcome: &RedisOutcome) -> usize {
    match outcome {
        RedisOutcome::Set { old, .. } | RedisOutcome::Value(old) => {
            old.as_ref().map_or(0, Vec::len)
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
