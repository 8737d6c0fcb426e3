//! The in-memory twin of the sled store, for deterministic simulations and tests.
//!
//! It keeps the same physical key layout as sled so ordering and scans agree exactly, and
//! it can forget every write since the last flush (`lose_unflushed_writes`) so a
//! simulation can model a power loss. It never touches the disk or a clock.

use super::expiry::{self, ExpiryEntry};
use super::{
    check_partition, partition_prefix, physical_key, AuxSpace, Entry, StaleFn, Storage,
    StorageError, StoreKey, UpdateFn,
};
use crate::ids::PartitionId;
use crate::limits::SCAN_ENTRIES_MAX;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

/// A `Storage` held in a `BTreeMap` behind one mutex, which every operation holds
/// throughout (an update while its function runs): the sled store's per-key write order
/// (`stripes`), and more.
pub struct MemoryStorage {
    partitions: u32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Physical key (partition prefix + key) to value.
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    /// For each key written since the last flush, its value at that flush: enough to
    /// roll back to the durable state. Bounded by the number of keys.
    undo: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Key and value bytes held, reported as the size "on disk".
    bytes: u64,
    /// Side keyspaces (not rolled back by `lose_unflushed_writes`).
    aux: BTreeMap<(AuxSpace, Vec<u8>), Vec<u8>>,
    /// The expiry index (`expiry::entry_key`), rolled back with the entries: a power
    /// loss must not leave a record its entry was removed for.
    expiry: BTreeSet<Vec<u8>>,
    /// For each index entry changed since the last flush, whether it was there then.
    expiry_undo: HashMap<Vec<u8>, bool>,
}

impl State {
    fn put(&mut self, physical: Vec<u8>, value: Vec<u8>) {
        let added = (physical.len() + value.len()) as u64;
        let previous = self.entries.insert(physical.clone(), value);
        self.remember(physical.clone(), previous.clone());
        self.bytes += added;
        if let Some(previous) = previous {
            self.bytes -= (physical.len() + previous.len()) as u64;
        }
    }

    fn remove(&mut self, physical: &[u8]) {
        if let Some(previous) = self.entries.remove(physical) {
            self.bytes -= (physical.len() + previous.len()) as u64;
            self.remember(physical.to_vec(), Some(previous));
        }
    }

    fn expiry_insert(&mut self, index_key: Vec<u8>) {
        if !self.expiry.contains(&index_key) {
            self.expiry_undo.entry(index_key.clone()).or_insert(false);
            self.expiry.insert(index_key);
        }
    }

    fn expiry_remove(&mut self, index_key: &[u8]) -> bool {
        let removed = self.expiry.remove(index_key);
        if removed {
            self.expiry_undo.entry(index_key.to_vec()).or_insert(true);
        }
        removed
    }

    /// Keeps only the first value since the last flush: that is the durable one.
    fn remember(&mut self, physical: Vec<u8>, previous: Option<Vec<u8>>) {
        self.undo.entry(physical).or_insert(previous);
    }
}

impl MemoryStorage {
    /// An empty store with `partitions` partitions (Q).
    pub fn new(partitions: u32) -> Result<MemoryStorage, StorageError> {
        if partitions == 0 {
            return Err(StorageError::ZeroPartitions);
        }
        Ok(MemoryStorage {
            partitions,
            state: Mutex::new(State::default()),
        })
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Discards every write since the last `flush`, as a power loss would on disk.
    pub fn lose_unflushed_writes(&self) {
        let mut state = self.lock();
        let undo = std::mem::take(&mut state.undo);
        for (physical, durable) in undo {
            state.remove(&physical);
            if let Some(value) = durable {
                state.put(physical, value);
            }
        }
        for (index_key, durable) in std::mem::take(&mut state.expiry_undo) {
            if durable {
                state.expiry.insert(index_key);
            } else {
                state.expiry.remove(&index_key);
            }
        }
        // The writes above restore the durable state; they are not new writes.
        state.undo.clear();
        state.expiry_undo.clear();
    }

    /// The map is only changed after an update function returns, so a panic inside one
    /// leaves it consistent and the poison can be ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StorageError> {
        check_partition(key.partition, self.partitions)?;
        Ok(self.lock().entries.get(&physical_key(key)).cloned())
    }

    fn update(
        &self,
        key: &StoreKey,
        f: &mut UpdateFn<'_>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        check_partition(key.partition, self.partitions)?;
        let physical = physical_key(key);
        let mut state = self.lock();
        let current = state.entries.get(&physical);
        match f(current.map(Vec::as_slice)).map_err(StorageError::Aborted)? {
            None => Ok(current.cloned()),
            Some(next) => {
                // In sled's order (`expiry`), though under one lock no reader sees between.
                if let Some(deadline_ms) = next.expiry.added() {
                    state.expiry_insert(expiry::entry_key(key, deadline_ms));
                }
                state.put(physical, next.bytes.clone());
                if let Some(deadline_ms) = next.expiry.removed() {
                    state.expiry_remove(&expiry::entry_key(key, deadline_ms));
                }
                Ok(Some(next.bytes))
            }
        }
    }

    fn expiry_due(
        &self,
        partition: PartitionId,
        after: Option<&ExpiryEntry>,
        until_ms: u64,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<ExpiryEntry>, StorageError> {
        check_partition(partition, self.partitions)?;
        let range = expiry::due_range(partition, after, until_ms);
        let state = self.lock();
        let index_keys = state.expiry.range::<Vec<u8>, _>(range).map(Ok);
        expiry::due_page(index_keys, limit, bytes_max)
    }

    fn expiry_put(&self, key: &StoreKey, deadline_ms: u64) -> Result<(), StorageError> {
        check_partition(key.partition, self.partitions)?;
        self.lock()
            .expiry_insert(expiry::entry_key(key, deadline_ms));
        Ok(())
    }

    fn expiry_drop(
        &self,
        key: &StoreKey,
        deadline_ms: u64,
        stale: &mut StaleFn<'_>,
    ) -> Result<bool, StorageError> {
        check_partition(key.partition, self.partitions)?;
        let mut state = self.lock();
        let current = state.entries.get(&physical_key(key));
        if !stale(current.map(Vec::as_slice)) {
            return Ok(false);
        }
        Ok(state.expiry_remove(&expiry::entry_key(key, deadline_ms)))
    }

    fn delete(&self, key: &StoreKey) -> Result<(), StorageError> {
        check_partition(key.partition, self.partitions)?;
        self.lock().remove(&physical_key(key));
        Ok(())
    }

    fn delete_if(&self, key: &StoreKey, expected: &[u8]) -> Result<bool, StorageError> {
        check_partition(key.partition, self.partitions)?;
        let physical = physical_key(key);
        let mut state = self.lock();
        if state.entries.get(&physical).map(Vec::as_slice) != Some(expected) {
            return Ok(false);
        }
        state.remove(&physical);
        Ok(true)
    }

    fn scan_partition(
        &self,
        partition: PartitionId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        check_partition(partition, self.partitions)?;
        let prefix = partition_prefix(partition);
        let start = match after {
            Some(after) => Bound::Excluded(physical_key(&StoreKey::new(partition, after))),
            None => Bound::Included(prefix.to_vec()),
        };
        let state = self.lock();
        let page = state
            .entries
            .range((start, Bound::Unbounded))
            .take_while(|(physical, _)| physical.starts_with(&prefix))
            .take(limit.min(SCAN_ENTRIES_MAX))
            .map(|(physical, value)| (physical[prefix.len()..].to_vec(), value.clone()))
            .collect();
        Ok(page)
    }

    fn aux_put(&self, space: AuxSpace, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.lock()
            .aux
            .insert((space, key.to_vec()), value.to_vec());
        Ok(())
    }

    fn aux_delete(&self, space: AuxSpace, key: &[u8]) -> Result<(), StorageError> {
        self.lock().aux.remove(&(space, key.to_vec()));
        Ok(())
    }

    fn aux_scan(
        &self,
        space: AuxSpace,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let state = self.lock();
        let start = match after {
            Some(after) => std::ops::Bound::Excluded((space, after.to_vec())),
            None => std::ops::Bound::Included((space, prefix.to_vec())),
        };
        Ok(state
            .aux
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|((entry_space, key), _)| *entry_space == space && key.starts_with(prefix))
            .take(limit.min(SCAN_ENTRIES_MAX))
            .map(|((_, key), value)| (key.clone(), value.clone()))
            .collect())
    }

    fn flush(&self) -> Result<(), StorageError> {
        let mut state = self.lock();
        state.undo.clear();
        state.expiry_undo.clear();
        Ok(())
    }

    fn len(&self) -> Result<u64, StorageError> {
        Ok(self.lock().entries.len() as u64)
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        Ok(self.lock().bytes)
    }
}
