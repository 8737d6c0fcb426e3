//! One simulated node's disk: a map per partition of storage key → object, and what a
//! crash loses. Every change is made by the shipping replica's pure steps
//! (`replica::minted` for a mint, `replica::applied` for a document operation,
//! `replica::merged` for every merge), so the simulation
//! stores exactly as a node does; this file only keeps the bytes and the flushes.
//!
//! Every operation is atomic. A merge is durable when it returns (the real replica
//! waits for a flush, which covers every write before it, so a merge flushes the whole
//! disk here). A mint is stored but durable only at the next flush: the world flushes
//! at once for a mint another node asked for (its answer means durable), and a little
//! later for one the node's own coordinator asked for once that node sends early,
//! which meanwhile sends the version on (`coordinator::round::WriteRound`'s overlap). A
//! crash loses what was not flushed (`lose_unflushed`). It never sends anything.
//!
//! For the checker, not node state, it also notes which siblings the sibling cap
//! dropped, by comparing with the same step uncapped.

use crate::clock::{Actor, Dot, Hlc, VersionVector};
use crate::crdt::DocOp;
use crate::ids::PartitionId;
use crate::limits::SIBLINGS_CAP_MAX;
use crate::object::{Blob, MergeError, Object, ObjectKey};
use crate::replica::{applied, merged, minted};
use std::collections::BTreeMap;

/// A partition's objects by storage key (`ObjectKey::storage_bytes`).
pub(super) type PartitionStore = BTreeMap<Vec<u8>, Object>;

/// The durable data of one node.
pub(super) struct Disk {
    pub actor: Actor,
    pub partitions: BTreeMap<PartitionId, PartitionStore>,
    /// For each key written since the last flush, its object at that flush (`None`:
    /// absent): what a crash restores. Bounded by the number of keys.
    unflushed: BTreeMap<(PartitionId, Vec<u8>), Option<Object>>,
    /// For the checker, not node state: (storage key, dot) of siblings the sibling cap
    /// dropped since the world last drained this list.
    pub dropped: Vec<(Vec<u8>, Dot)>,
}

impl Disk {
    pub fn new(actor: Actor) -> Self {
        Disk {
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

    /// A new version coordinated by this replica (`replica::minted`); returns its dot
    /// and the stored object. On error nothing changes.
    pub fn mint(
        &mut self,
        partition: PartitionId,
        key: &ObjectKey,
        context: &VersionVector,
        value: Blob,
        at: Hlc,
    ) -> Result<(Dot, Object), MergeError> {
        let bytes = key.storage_bytes();
        let stored = self.get_bytes(partition, &bytes).cloned();
        let (object, dot) = minted(stored.clone(), self.actor, context, Some(value.clone()), at)?;
        if let Some(Object::Kv(mut uncapped)) = stored {
            let value = Some(value);
            if uncapped
                .mint(self.actor, context, value, at, SIBLINGS_CAP_MAX)
                .is_ok()
            {
                let lost = dropped_dots(&Object::Kv(uncapped), &object);
                self.dropped
                    .extend(lost.into_iter().map(|lost| (bytes.clone(), lost)));
            }
        }
        self.put(partition, bytes, object.clone());
        Ok((dot, object))
    }

    /// Applies a document operation (`replica::applied`); returns the stored document
    /// and the delta for the other replicas. Durable only at the next flush, as a mint.
    /// On error nothing changes.
    pub fn apply(
        &mut self,
        partition: PartitionId,
        key: &ObjectKey,
        op: &DocOp,
        at: Hlc,
    ) -> Result<(Object, Object), MergeError> {
        let bytes = key.storage_bytes();
        let stored = self.get_bytes(partition, &bytes).cloned();
        let (object, delta) = applied(stored, op, self.actor, at)?;
        self.put(partition, bytes, object.clone());
        Ok((object, delta))
    }

    /// Merges `incoming` into the stored object of `key` (replication, read repair,
    /// anti-entropy) with `replica::merged`; returns the stored result.
    pub fn merge_bytes(
        &mut self,
        partition: PartitionId,
        key: &[u8],
        incoming: &Object,
    ) -> Result<Object, MergeError> {
        let stored = self.get_bytes(partition, key).cloned();
        let mut uncapped = stored.clone().unwrap_or_else(|| incoming.clone());
        let object = merged(stored, incoming)?;
        if uncapped.merge(incoming, SIBLINGS_CAP_MAX).is_ok() {
            let lost = dropped_dots(&uncapped, &object);
            self.dropped
                .extend(lost.into_iter().map(|dot| (key.to_vec(), dot)));
        }
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

/// Dots of `uncapped`'s siblings that `capped` lacks: what the sibling cap dropped.
pub(super) fn dropped_dots(uncapped: &Object, capped: &Object) -> Vec<Dot> {
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
