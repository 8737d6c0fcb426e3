//! The replica side of a request: read, mint a new version, or merge a version into the
//! local store, each one atomic per key. A merge returns once durable; a mint leaves
//! that wait (`durable`) to its caller, so the version can travel meanwhile.
//!
//! It owns the local node's actor in the version vectors: only this module mints dots,
//! so two versions minted here can never share one. Its Merkle trees (`trees`) live
//! here too, below the runtime that exchanges them, since every write updates them.

pub mod deadlines;
mod once;
pub mod scan;
pub mod trees;

use crate::clock::{Actor, Dot, Hlc, VersionVector};
use crate::crdt::redis::RedisOutcome;
use crate::crdt::{CrdtError, Doc, DocOp};
use crate::feed::{Before, ChangeKind, Feed};
use crate::ids::{NodeId, PartitionId};
use crate::limits;
use crate::object::{
    decode_object, encode_object, expiry_deadline_ms, kv_bytes, Blob, DecodeError, KvObject,
    MergeError, Object, ObjectKey,
};
use crate::storage::{
    CommitError, CommitGate, Expiry, Storage, StorageError, StorageExt, StoreKey, UpdateError,
    Write,
};
use crate::wire::PartitionEntry;
use std::sync::Arc;
use trees::{Stored, Trees};

/// Why a replica could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("stored object is unreadable: {0}")]
    Corrupt(#[from] DecodeError),
    #[error("version refused: {0}")]
    Merge(#[from] MergeError),
    #[error("write not durable: {0}")]
    Commit(#[from] CommitError),
    /// A SCAN page would read more keys of the partition than a page may examine.
    #[error("{partition} holds more than {keys_max} keys of the class: too many to scan")]
    TooManyToScan {
        partition: PartitionId,
        keys_max: usize,
    },
}

/// This node's copy of the data.
pub struct Replica {
    actor: Actor,
    trees: Arc<Trees>,
    partitions: u32,
    storage: Arc<dyn Storage>,
    gate: CommitGate,
    /// Answers of recent `Apply`s from other nodes, so a repeat is not applied again.
    applied_once: once::AppliedOnce,
    /// Every change a reader could see, in order (`feed`).
    feed: Arc<Feed>,
}

impl Replica {
    /// A replica minting under `actor` (the node's incarnation, `runtime::incarnation`).
    pub fn new(
        actor: Actor,
        partitions: u32,
        storage: Arc<dyn Storage>,
        gate: CommitGate,
        trees: Arc<Trees>,
    ) -> Self {
        Replica {
            actor,
            trees,
            partitions,
            storage,
            gate,
            applied_once: Default::default(),
            feed: Arc::new(Feed::new(partitions, limits::FEED_BYTES_MAX)),
        }
    }

    /// The changes this replica applied (`crate::feed`).
    pub fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    /// The actor this replica mints under.
    pub fn actor(&self) -> Actor {
        self.actor
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    fn store_key(&self, key: &ObjectKey) -> StoreKey {
        StoreKey {
            partition: key.partition(self.partitions),
            key: key.storage_bytes(),
        }
    }

    pub fn get(&self, key: &ObjectKey) -> Result<Option<Object>, ReplicaError> {
        match self.storage.get(&self.store_key(key))? {
            Some(bytes) => Ok(Some(decode_object(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The digest of the stored object of `key` (`Object::digest`), `None` if none: what
    /// a quorum read compares instead of sending the object.
    pub fn digest(&self, key: &ObjectKey) -> Result<Option<[u8; 32]>, ReplicaError> {
        let Some(bytes) = self.storage.get(&self.store_key(key))? else {
            return Ok(None);
        };
        Ok(Some(trees::stored_digest(&bytes)?))
    }

    /// Applies `change` to the stored object of `key` atomically and waits until durable.
    async fn update(
        &self,
        key: &ObjectKey,
        change: impl FnMut(Option<Object>) -> Result<Object, MergeError>,
    ) -> Result<Object, ReplicaError> {
        let object = self.apply(&self.store_key(key), usize::MAX, change)?;
        self.gate.durable().await?;
        Ok(object)
    }

    /// Applies `change` atomically without waiting for durability. `change` gets the
    /// stored object (`None` if there is none) and returns the one to store; one that
    /// encodes to more than `bytes_max` is refused (`MergeError::TooLarge`), nothing
    /// written.
    fn apply(
        &self,
        store_key: &StoreKey,
        bytes_max: usize,
        mut change: impl FnMut(Option<Object>) -> Result<Object, MergeError>,
    ) -> Result<Object, ReplicaError> {
        let mut updated = None;
        let (mut before, mut after) = (None, None);
        let mut kind = None;
        // Held from the store write to the tree update: a rebuild of the partition's
        // tree sees either both or neither (`Trees::writing`).
        let _writing = self.trees.writing(store_key.partition);
        self.storage
            .update_with(
                store_key,
                |current| -> Result<Option<Write>, ReplicaError> {
                    let object = current.map(decode_object).transpose()?;
                    let previous = object.as_ref().and_then(expiry_deadline_ms);
                    before = object
                        .as_ref()
                        .zip(current)
                        .map(|(o, b)| Stored::of(o.digest_stored(b), &store_key.key, b));
                    let old = object.as_ref().map(Before::of);
                    let object = change(object)?;
                    let bytes = encode_object(&object);
                    if bytes.len() > bytes_max {
                        return Err(ReplicaError::Merge(MergeError::TooLarge {
                            bytes: bytes.len(),
                            max: bytes_max,
                        }));
                    }
                    after = Some(Stored::of(
                        object.digest_stored(&bytes),
                        &store_key.key,
                        &bytes,
                    ));
                    let changed = before.as_ref().map(|stored| stored.digest)
                        != after.as_ref().map(|stored| stored.digest);
                    // An expiry is reported under its own digest (the key and the
                    // deadline), the same as the report made at the deadline.
                    let digest = match (crate::feed::change_kind(old, &object, changed), old) {
                        (
                            Some(ChangeKind::Expired),
                            Some(Before {
                                deadline_ms: Some(deadline),
                                ..
                            }),
                        ) => Some((
                            ChangeKind::Expired,
                            crate::feed::expiry_digest(&store_key.key, deadline),
                        )),
                        (Some(kind), _) => after.as_ref().map(|stored| (kind, stored.digest)),
                        (None, _) => None,
                    };
                    kind = digest;
                    // The expiry index changes in the same write (`storage::Expiry`).
                    let expiry = Expiry {
                        before_ms: previous,
                        after_ms: expiry_deadline_ms(&object),
                    };
                    updated = Some(object);
                    Ok(Some(Write { bytes, expiry }))
                },
            )
            .map_err(|error| match error {
                UpdateError::Storage(error) => ReplicaError::Storage(error),
                UpdateError::Aborted(error) => error,
            })?;
        let object: Object = updated.expect("a successful update ran the closure");
        self.trees
            .update(store_key.partition, &store_key.key, before, after);
        if let Some((kind, digest)) = kind {
            self.feed
                .record(store_key.partition, store_key.key.clone(), kind, digest);
        }
        Ok(object)
    }

    /// Physically removes a tombstone if it is still exactly `bytes` (a newer write in
    /// between keeps it); says whether it did.
    pub fn collect_tombstone(
        &self,
        partition: PartitionId,
        key: Vec<u8>,
        bytes: &[u8],
        digest: [u8; 32],
    ) -> Result<bool, ReplicaError> {
        let store_key = StoreKey { partition, key };
        let _writing = self.trees.writing(partition);
        let removed = self.storage.delete_if(&store_key, bytes)?;
        if removed {
            let stored = Stored::of(digest, &store_key.key, bytes);
            self.trees
                .update(partition, &store_key.key, Some(stored), None);
        }
        Ok(removed)
    }

    /// Collects `key` if it is a tombstone whose digest is `digest` (as another replica
    /// collected it); anything else, e.g. a newer write, stays.
    pub fn collect_tombstone_if(
        &self,
        partition: PartitionId,
        key: Vec<u8>,
        digest: [u8; 32],
    ) -> Result<bool, ReplicaError> {
        let Some(bytes) = self.storage.get(&StoreKey {
            partition,
            key: key.clone(),
        })?
        else {
            return Ok(false);
        };
        let object = decode_object(&bytes)?;
        let tombstone = crate::object::is_tombstone(&object);
        if !tombstone || object.digest_stored(&bytes) != digest {
            return Ok(false);
        }
        self.collect_tombstone(partition, key, &bytes, digest)
    }

    /// The Merkle trees of this replica's partitions.
    pub fn trees(&self) -> &Arc<Trees> {
        &self.trees
    }

    /// The stored objects of `keys` in `partition` (absent keys are skipped).
    pub fn objects(
        &self,
        partition: PartitionId,
        keys: &[Vec<u8>],
    ) -> Result<Vec<PartitionEntry>, ReplicaError> {
        let mut entries = Vec::new();
        for key in keys {
            if let Some(bytes) = self.storage.get(&StoreKey {
                partition,
                key: key.clone(),
            })? {
                entries.push(PartitionEntry {
                    key: key.clone(),
                    object: decode_object(&bytes)?,
                });
            }
        }
        Ok(entries)
    }

    /// A new version coordinated by this replica, superseding what `context` has seen.
    /// It is stored and readable, but a crash before the next flush (`durable`) loses
    /// it. Sending it on before then is safe only because this node mints under a new
    /// actor after such a crash (`runtime::incarnation`), so the dot cannot come again.
    pub fn mint_stored(
        &self,
        key: &ObjectKey,
        context: &VersionVector,
        value: Option<&Blob>,
        at: Hlc,
    ) -> Result<Object, ReplicaError> {
        self.apply(&self.store_key(key), limits::OBJECT_BYTES_MAX, |object| {
            let (minted, _) = minted(object, self.actor, context, value.cloned(), at)?;
            Ok(minted)
        })
    }

    /// Applies an operation to the document of `key` as this replica at `at` (whose wall
    /// time decides expiry), and returns the stored document and the delta for the
    /// other replicas (and, for a Redis command, what it answers); durable only at the
    /// next flush, as `mint_stored`. A refused operation changes nothing.
    pub fn apply_op_stored(
        &self,
        key: &ObjectKey,
        op: &DocOp,
        at: Hlc,
    ) -> Result<(Object, Object, Option<RedisOutcome>), ReplicaError> {
        let mut made = None;
        let stored = self.apply(&self.store_key(key), limits::OBJECT_BYTES_MAX, |object| {
            let (doc, delta, outcome) = applied_outcome(object, op, self.actor, at)?;
            made = Some((delta, outcome));
            Ok(doc)
        })?;
        let (delta, outcome) = made.expect("a successful update ran the closure");
        Ok((stored, delta, outcome))
    }

    /// `apply_op_stored` for a request from another node, at most once: the same request
    /// delivered again (`once`) is not applied again but answered as the first time,
    /// with the whole stored document as its delta.
    pub fn apply_op_once(
        &self,
        from: &NodeId,
        key: &ObjectKey,
        op: &DocOp,
        at: Hlc,
    ) -> Result<(Object, Object, Option<RedisOutcome>), ReplicaError> {
        let name = once::AppliedOnce::name(from, key, op, at);
        let mut stripe = self.applied_once.lock(&name);
        if let Some(outcome) = stripe.answered(&name).cloned() {
            // Gone since (a collected tombstone): apply again, as a repeat after its
            // answer was forgotten would.
            if let Some(stored) = self.get(key)? {
                return Ok((stored.clone(), stored, outcome));
            }
        }
        let applied = self.apply_op_stored(key, op, at)?;
        stripe.remember(name, applied.2.clone());
        Ok(applied)
    }

    /// Merges a page of a partition fetched from another owner, then waits once until
    /// all of it is durable.
    pub async fn merge_entries(
        &self,
        partition: PartitionId,
        entries: Vec<PartitionEntry>,
    ) -> Result<(), ReplicaError> {
        for entry in entries {
            let store_key = StoreKey {
                partition,
                key: entry.key,
            };
            self.apply(&store_key, usize::MAX, |object| {
                merged(object, &entry.object)
            })?;
        }
        self.gate.durable().await?;
        Ok(())
    }

    /// Merges hinted writes replayed by a fallback, then waits once until durable.
    pub async fn merge_objects(
        &self,
        entries: Vec<crate::wire::HandoffEntry>,
    ) -> Result<(), ReplicaError> {
        for entry in entries {
            self.apply(&self.store_key(&entry.key), usize::MAX, |object| {
                merged(object, &entry.object)
            })?;
        }
        self.gate.durable().await?;
        Ok(())
    }

    /// What this replica's flushes cost (group sizes, fsync latency).
    pub fn commit_stats(&self) -> &std::sync::Arc<crate::storage::CommitStats> {
        self.gate.stats()
    }

    /// Waits until every write completed so far (side records too) is durable.
    pub async fn durable(&self) -> Result<(), ReplicaError> {
        Ok(self.gate.durable().await?)
    }

    /// Merges a version from another replica (replication, read repair).
    pub async fn merge(&self, key: &ObjectKey, incoming: &Object) -> Result<Object, ReplicaError> {
        self.update(key, |object| merged(object, incoming)).await
    }
}

/// The pure step of a mint: `stored` (`None`: nothing) with a new version of `value`
/// made by `actor`, superseding what `context` has seen; returns the object to store
/// and the new version's dot. The simulation (`sim::dst`) stores with it too.
pub(crate) fn minted(
    stored: Option<Object>,
    actor: Actor,
    context: &VersionVector,
    value: Option<Blob>,
    at: Hlc,
) -> Result<(Object, Dot), MergeError> {
    let mut kv = match stored {
        None => KvObject::new(),
        Some(Object::Kv(kv)) => kv,
        Some(Object::Doc(_)) => return Err(MergeError::Mismatch),
    };
    let dot = kv.mint(actor, context, value, at, limits::SIBLINGS_MAX)?;
    // Counted as a merge counts, so no replica's merge ever trims what was accepted
    // here unless concurrent writes elsewhere add to it.
    let bytes = kv_bytes(&kv);
    if bytes > limits::SIBLINGS_BYTES_MAX {
        return Err(MergeError::TooLarge {
            bytes,
            max: limits::SIBLINGS_BYTES_MAX,
        });
    }
    Ok((Object::Kv(kv), dot))
}

/// The pure step of a document operation: `stored` (`None`: nothing, so the empty
/// document `op` works on) with `op` applied by `actor` at `at` (whose wall time decides
/// expiry); returns the document to store and the delta for the other replicas. A
/// refused operation is an error. The simulation (`sim::dst`) applies with it.
#[cfg(any(test, feature = "tools"))]
pub(crate) fn applied(
    stored: Option<Object>,
    op: &DocOp,
    actor: Actor,
    at: Hlc,
) -> Result<(Object, Object), MergeError> {
    let (doc, delta, _) = applied_outcome(stored, op, actor, at)?;
    Ok((doc, delta))
}

/// `applied`, also returning what a Redis command answers (`Doc::apply_outcome`).
pub(crate) fn applied_outcome(
    stored: Option<Object>,
    op: &DocOp,
    actor: Actor,
    at: Hlc,
) -> Result<(Object, Object, Option<RedisOutcome>), MergeError> {
    let mut doc = match stored {
        Some(Object::Doc(doc)) => doc,
        None => Doc::empty_for(op).ok_or(CrdtError::Mismatch)?,
        Some(Object::Kv(_)) => return Err(MergeError::Mismatch),
    };
    let (delta, outcome) = doc.apply_outcome(op, actor, at, at.wall_ms)?;
    Ok((Object::Doc(doc), Object::Doc(delta), outcome))
}

/// `stored` joined with `incoming` (just `incoming` when nothing was stored): the pure
/// step of every merge (replication, read repair, anti-entropy, hints), which the
/// simulation stores with too.
pub(crate) fn merged(stored: Option<Object>, incoming: &Object) -> Result<Object, MergeError> {
    match stored {
        Some(mut object) => {
            object.merge(incoming, limits::SIBLINGS_MAX)?;
            Ok(object)
        }
        None => {
            let mut object = incoming.clone();
            // Normalizes what arrived (e.g. trims siblings past this node's cap).
            object.merge(incoming, limits::SIBLINGS_MAX)?;
            Ok(object)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
