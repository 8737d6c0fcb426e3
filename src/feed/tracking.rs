//! The node's tracking table (pure): which listeners read which keys, so a change of a
//! key reaches exactly those that may hold it in a cache (Redis's default tracking
//! mode). A key is told once and forgotten (`take`) until it is read again; a listener
//! that said what its read found (`confirm`: the object's digest) is not told of a
//! report of that very state (another replica reporting a change its read already saw)
//! and stays tracking. The table is
//! bounded in bytes: past the bound the oldest tracked keys are dropped and handed back,
//! so their listeners are told they changed (as Redis does past
//! `tracking-table-max-keys`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// A key as the table holds it (its storage bytes: class tag, then key).
pub type TrackedKey = Arc<[u8]>;

/// What one tracked key costs beyond its bytes.
pub const KEY_FIXED_BYTES: usize = 64;
/// What each listener of a key costs (its id, the digest it read, the set entry).
pub const LISTENER_REF_BYTES: usize = 64;

/// One listener of a key, and the digest of what its read found, once it said.
type Reader = (u64, Option<[u8; 32]>);

#[derive(Debug, Default)]
pub struct Table {
    keys: HashMap<TrackedKey, Vec<Reader>>,
    /// Keys in the order they were first tracked; may hold keys since taken (skipped
    /// when met) and is rebuilt when mostly such.
    order: VecDeque<TrackedKey>,
    by_listener: HashMap<u64, HashSet<TrackedKey>>,
    bytes: usize,
    bytes_max: usize,
}

impl Table {
    pub fn new(bytes_max: usize) -> Table {
        Table {
            bytes_max,
            ..Table::default()
        }
    }

    /// Bytes held (keys and listener references, as costed above).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `listener` read `key`: it is told of the key's next change. Returns the keys
    /// dropped to stay within the bound, each with the listeners that tracked it (to be
    /// told it changed); `key` itself is never among them unless it alone passes the
    /// bound.
    pub fn track(&mut self, listener: u64, key: &[u8]) -> Vec<(TrackedKey, Vec<u64>)> {
        let key: TrackedKey = match self.keys.get_key_value(key) {
            Some((held, _)) => held.clone(),
            None => {
                let key: TrackedKey = Arc::from(key);
                self.bytes += KEY_FIXED_BYTES + key.len();
                self.keys.insert(key.clone(), Vec::new());
                self.order.push_back(key.clone());
                key
            }
        };
        let listeners = self.keys.get_mut(&key).expect("inserted above");
        match listeners.iter_mut().find(|(id, _)| *id == listener) {
            // A new read: what the last one found no longer says what this one holds.
            Some((_, read)) => *read = None,
            None => {
                listeners.push((listener, None));
                self.bytes += LISTENER_REF_BYTES;
                self.by_listener
                    .entry(listener)
                    .or_default()
                    .insert(key.clone());
            }
        }
        let mut dropped = Vec::new();
        while self.bytes > self.bytes_max {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if !self.keys.contains_key(&oldest) {
                continue;
            }
            let listeners = self.take(&oldest, None);
            dropped.push((oldest, listeners));
        }
        self.compact();
        dropped
    }

    /// `listener`'s read of `key` found the object whose digest is `digest`: a report
    /// of that state does not end its tracking. Nothing if it does not track `key`.
    pub fn confirm(&mut self, listener: u64, key: &[u8], digest: [u8; 32]) {
        if let Some(listeners) = self.keys.get_mut(key) {
            if let Some((_, read)) = listeners.iter_mut().find(|(id, _)| *id == listener) {
                *read = Some(digest);
            }
        }
    }

    /// The listeners tracking `key` to tell of a change to the state `digest`
    /// (`None`: any change), which stop tracking it; those whose read found that very
    /// state are not told and go on tracking.
    pub fn take(&mut self, key: &[u8], digest: Option<[u8; 32]>) -> Vec<u64> {
        let Some(listeners) = self.keys.get_mut(key) else {
            return Vec::new();
        };
        let (kept, told): (Vec<Reader>, Vec<Reader>) = listeners
            .drain(..)
            .partition(|(_, read)| digest.is_some() && *read == digest);
        *listeners = kept;
        let empty = listeners.is_empty();
        self.bytes -= LISTENER_REF_BYTES * told.len();
        if empty {
            self.keys.remove(key);
            self.bytes -= KEY_FIXED_BYTES + key.len();
        }
        for (listener, _) in &told {
            if let Some(keys) = self.by_listener.get_mut(listener) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_listener.remove(listener);
                }
            }
        }
        told.into_iter().map(|(listener, _)| listener).collect()
    }

    /// `listener` is gone (or stopped tracking): it tracks nothing.
    pub fn forget(&mut self, listener: u64) {
        let Some(keys) = self.by_listener.remove(&listener) else {
            return;
        };
        for key in keys {
            let Some(listeners) = self.keys.get_mut(&key) else {
                continue;
            };
            listeners.retain(|(held, _)| *held != listener);
            self.bytes -= LISTENER_REF_BYTES;
            if listeners.is_empty() {
                self.keys.remove(&key);
                self.bytes -= KEY_FIXED_BYTES + key.len();
            }
        }
        self.compact();
    }

    /// Rebuilds the order when most of it names keys no longer tracked, so it stays
    /// within twice the table.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.keys.len() + 64 {
            let keys = &self.keys;
            let mut kept = HashSet::new();
            self.order
                .retain(|key| keys.contains_key(key) && kept.insert(key.clone()));
        }
    }

    /// The keys `listener` tracks (for tests and status).
    pub fn tracked_by(&self, listener: u64) -> usize {
        self.by_listener.get(&listener).map_or(0, HashSet::len)
    }
}

#[cfg(test)]
mod tests;
