//! One writer per key in the sled store: a fixed array of locks, each key's writers
//! holding the one its partition and key bytes hash to while they read the key and
//! write it. With that, an update is a read and a plain insert (no compare-and-swap
//! that a concurrent writer can fail), and its update function runs exactly once.
//!
//! It owns only that mutual exclusion; it must never grow (`STORAGE_WRITE_STRIPES`
//! locks, whatever the number of keys), and a stripe must never be held while taking
//! another or calling back into the store (a stripe covers many keys, so that would
//! deadlock), nor across an `.await` (the guard is not `Send`, so a future holding one
//! does not compile where tokio needs `Send`).
//!
//! The writes run on the caller's thread, a tokio worker for the replica's requests: a
//! stripe is held for one sled read, one update function (decode, merge, encode) and one
//! sled insert, which writes to sled's in-memory log and does not wait for the disk
//! (the flush is the commit gate's, on the blocking pool). Holding a std mutex that long
//! on a worker is the same stall the write already was; only another writer of a key of
//! the same stripe waits for it.

use super::StoreKey;
use crate::limits::STORAGE_WRITE_STRIPES;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The write locks of one store.
pub(super) struct KeyLocks {
    stripes: Box<[Mutex<()>]>,
    /// Keyed per process, so a client cannot choose keys that all share one stripe.
    hasher: std::collections::hash_map::RandomState,
}

impl KeyLocks {
    pub(super) fn new() -> KeyLocks {
        KeyLocks {
            stripes: (0..STORAGE_WRITE_STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: Default::default(),
        }
    }

    /// Locks the stripe of `key`; every writer of the key holds it while it writes.
    pub(super) fn lock(&self, key: &StoreKey) -> MutexGuard<'_, ()> {
        // The lock guards no data, only the order of writes, so a writer that panicked
        // while holding it left nothing to repair: its poison is ignored.
        self.stripes[self.stripe(key)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The index of the stripe `key` falls in.
    pub(super) fn stripe(&self, key: &StoreKey) -> usize {
        let mut hasher = self.hasher.build_hasher();
        hasher.write_u32(key.partition.0);
        hasher.write(&key.key);
        (hasher.finish() % self.stripes.len() as u64) as usize
    }
}
