//! One simulated node's replica store: a map per partition of storage key → object,
//! with the same operations and merge rules as `crate::replica::Replica` (mint a new
//! version as this node's actor, merge an incoming version, read).
//!
//! Every operation is atomic. A merge is durable when it returns (the real replica
//! waits for a flush, which covers every write before it, so a merge flushes the whole
//! store here). A mint is stored but durable only at the next flush: the world
//! flushes at once for a mint another node asked for (its answer means durable), and a
//! little later for one the node's own coordinator asked for once that node sends
//! early, which meanwhile sends the version on (`crate::coordinator`'s overlap). A
//! crash loses what was not flushed (`lose_unflushed`). It never sends anything; the
//! world carries the answers.

use crate::clock::{Actor, Dot, Hlc, VersionVector};
use crate::ids::PartitionId;
use crate::limits::{SIBLINGS_CAP_MAX, SIBLINGS_MAX};
use crate::object::{Blob, KvObject, MergeError, Object, ObjectKey};
use std::collections::BTreeMap;

/// A partition's objects by storage key (`ObjectKey::storage_bytes`).
pub(super) type PartitionStore = BTreeMap<Vec<u8>, Object>;

/// The durable data of one node.
pub(super) struct ReplicaStore {
    pub actor: Actor,
    pub partitions: BTreeMap<PartitionId, PartitionStore>,
    /// For each key written since the last flush, its object at that flush (`None`:
    /// absent): what a crash restores. Bounded by the number of keys.
    unflushed: BTreeMap<(PartitionId, Vec<u8>), Option<Object>>,
    /// For the checker, not node state: (storage key, dot) of siblings the sibling cap
    /// dropped since the world last drained this list.
    pub dropped: Vec<(Vec<u8>, Dot)>,
}

impl ReplicaStore {
    pub fn new(actor: Actor) -> Self {
        ReplicaStore {
            actor,
            partitions: BTreeMap::new(),
            unflushed: BTreeMap::new(),
            dropped: Vec::new(),
        }
    }

    /// Makes every write so far durable.
    pub fn flush(&mut self) {
        self.unflushed.clear();
    }

    /// A crash: every write since the last flush is gone.
    pub fn lose_unflushed(&mut self) {
        for ((partition, key), durable) in std::mem::take(&mut self.unflushed) {
            let store = self.partitions.entry(partition).or_default();
            match durable {
                Some(object) => store.insert(key, object),
                None => store.remove(&key),
            };
        }
    }

    /// Stores `object` under `key`, remembering what the last flush left there.
    fn put(&mut self, partition: PartitionId, key: Vec<u8>, object: Object) {
        let store = self.partitions.entry(partition).or_default();
        let previous = store.insert(key.clone(), object);
        self.unflushed.entry((partition, key)).or_insert(previous);
    }

    pub fn get(&self, partition: PartitionId, key: &ObjectKey) -> Option<&Object> {
        self.partitions.get(&partition)?.get(&key.storage_bytes())
    }

    pub fn get_bytes(&self, partition: PartitionId, key: &[u8]) -> Option<&Object> {
        self.partitions.get(&partition)?.get(key)
    }

    /// A new version coordinated by this replica, superseding what `context` has seen;
    /// returns its dot and the stored object. On error nothing changes.
    pub fn mint(
        &mut self,
        partition: PartitionId,
        key: &ObjectKey,
        context: &VersionVector,
        value: Blob,
        at: Hlc,
    ) -> Result<(Dot, Object), MergeError> {
        let bytes = key.storage_bytes();
        let stored = self
            .partitions
            .get(&partition)
            .and_then(|store| store.get(&bytes));
        let mut kv = match stored {
            None => KvObject::new(),
            Some(Object::Kv(kv)) => kv.clone(),
            Some(Object::Doc(_)) => return Err(MergeError::Mismatch),
        };
        let mut uncapped = kv.clone();
        uncapped.mint(
            self.actor,
            context,
            Some(value.clone()),
            at,
            SIBLINGS_CAP_MAX,
        )?;
        let dot = kv.mint(self.actor, context, Some(value), at, SIBLINGS_MAX)?;
        let stored = Object::Kv(kv);
        let lost = dropped_dots(&Object::Kv(uncapped), &stored);
        self.dropped
            .extend(lost.into_iter().map(|dot| (bytes.clone(), dot)));
        self.put(partition, bytes, stored.clone());
        Ok((dot, stored))
    }

    /// Merges `incoming` into the stored object of `key` (replication, read repair,
    /// anti-entropy), like `crate::replica`'s `merged`; returns the stored result.
    pub fn merge_bytes(
        &mut self,
        partition: PartitionId,
        key: &[u8],
        incoming: &Object,
    ) -> Result<Object, MergeError> {
        let stored = self
            .partitions
            .get(&partition)
            .and_then(|store| store.get(key));
        let mut object = match stored {
            Some(stored) => stored.clone(),
            None => incoming.clone(),
        };
        // Merging with itself normalizes what arrived (trims siblings past the cap).
        let lost = merge_counting_drops(&mut object, incoming)?;
        self.dropped
            .extend(lost.into_iter().map(|dot| (key.to_vec(), dot)));
        self.put(partition, key.to_vec(), object.clone());
        self.flush();
        Ok(object)
    }

    pub fn merge(
        &mut self,
        partition: PartitionId,
        key: &ObjectKey,
        incoming: &Object,
    ) -> Result<Object, MergeError> {
        self.merge_bytes(partition, &key.storage_bytes(), incoming)
    }
}

/// `into.merge(other, SIBLINGS_MAX)`, the real merge, also returning the dots the
/// sibling cap dropped (those an uncapped merge keeps), so the checker can tell a
/// documented compaction from a lost write.
pub(super) fn merge_counting_drops(
    into: &mut Object,
    other: &Object,
) -> Result<Vec<Dot>, MergeError> {
    let mut uncapped = into.clone();
    uncapped.merge(other, SIBLINGS_CAP_MAX)?;
    into.merge(other, SIBLINGS_MAX)?;
    Ok(dropped_dots(&uncapped, into))
}

/// Dots of `uncapped`'s siblings that `capped` lacks.
fn dropped_dots(uncapped: &Object, capped: &Object) -> Vec<Dot> {
    let (Some(uncapped), Some(capped)) = (uncapped.as_kv(), capped.as_kv()) else {
        return Vec::new();
    };
    uncapped
        .siblings()
        .iter()
        .map(|sibling| sibling.dot)
        .filter(|dot| !capped.siblings().iter().any(|kept| kept.dot == *dot))
        .collect()
}
