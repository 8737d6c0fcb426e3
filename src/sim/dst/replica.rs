//! One simulated node's replica store: a map per partition of storage key → object,
//! with the same operations and merge rules as `crate::replica::Replica` (mint a new
//! version as this node's actor, merge an incoming version, read).
//!
//! Every operation is atomic and durable when it returns: the store survives a crash,
//! as if each write were flushed before the replica answered (durability `always`).
//! It never sends anything; the world carries the answers.

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
    /// For the checker, not node state: (storage key, dot) of siblings the sibling cap
    /// dropped since the world last drained this list.
    pub dropped: Vec<(Vec<u8>, Dot)>,
}

impl ReplicaStore {
    pub fn new(actor: Actor) -> Self {
        ReplicaStore {
            actor,
            partitions: BTreeMap::new(),
            dropped: Vec::new(),
        }
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
        let store = self.partitions.entry(partition).or_default();
        let bytes = key.storage_bytes();
        let mut kv = match store.get(&bytes) {
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
        store.insert(bytes, stored.clone());
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
        let store = self.partitions.entry(partition).or_default();
        let mut object = match store.get(key) {
            Some(stored) => stored.clone(),
            None => incoming.clone(),
        };
        // Merging with itself normalizes what arrived (trims siblings past the cap).
        let lost = merge_counting_drops(&mut object, incoming)?;
        self.dropped
            .extend(lost.into_iter().map(|dot| (key.to_vec(), dot)));
        store.insert(key.to_vec(), object.clone());
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
