//! The Merkle trees of the partitions this node holds, kept in step with every write
//! (an XOR leaf makes each update O(depth) and order-independent, so concurrent writes
//! to one key may update the tree in any order), and rebuilt from storage at start.
//! With them, the number of keys each partition holds and their bytes: a key appears
//! when a write finds no digest before it and goes when one leaves none after it, and
//! its bytes (key and stored value) change by what the write changed, so both are kept
//! without a scan (`/v1/status`, `/metrics`).

use crate::antientropy::{leaf_index, Entry, Hash, PartitionTree};
use crate::ids::PartitionId;
use crate::limits;
use crate::object::{decode_object, DecodeError, Object};
use crate::storage::{Storage, StorageError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Trees per partition, created on first use.
pub struct Trees {
    depth: u8,
    trees: Mutex<BTreeMap<PartitionId, Held>>,
    /// The sum of every partition's `keys`, readable without the lock.
    keys_total: AtomicU64,
    /// The sum of every partition's `bytes`, readable without the lock.
    bytes_total: AtomicU64,
}

/// One partition's tree, how many keys it holds and their bytes.
struct Held {
    tree: PartitionTree,
    keys: u64,
    bytes: u64,
}

/// What the store holds for one key: its object's digest and its bytes (the key's and
/// the stored value's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    pub digest: Hash,
    pub bytes: u64,
}

impl Stored {
    /// The entry of `key` holding `value`, whose object has `digest`.
    pub fn of(digest: Hash, key: &[u8], value: &[u8]) -> Stored {
        Stored {
            digest,
            bytes: (key.len() + value.len()) as u64,
        }
    }
}

/// What a partition holds: its keys (tombstones included) and their bytes (keys and
/// stored values); `/v1/partitions` answers it per partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub keys: u64,
    pub bytes: u64,
}

impl Trees {
    pub fn new(depth: u8) -> Trees {
        Trees {
            depth,
            trees: Mutex::new(BTreeMap::new()),
            keys_total: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
        }
    }

    /// Rebuilds every partition's tree from what the store holds.
    pub fn rebuild(&self, storage: &dyn Storage, partitions: u32) -> Result<(), StorageError> {
        for partition in (0..partitions).map(PartitionId) {
            let (entries, bytes) = all_entries(storage, partition)?;
            if entries.is_empty() {
                continue;
            }
            let tree = PartitionTree::from_entries(
                self.depth,
                entries
                    .iter()
                    .map(|(key, digest)| (key.as_slice(), *digest)),
            )
            .expect("node tree depth is valid");
            let keys = entries.len() as u64;
            let held = Held { tree, keys, bytes };
            let replaced = self
                .trees
                .lock()
                .expect("trees lock")
                .insert(partition, held);
            let before = replaced.map_or(Counts::default(), |held| held.counts());
            self.keys_total.fetch_add(keys, Ordering::Relaxed);
            self.keys_total.fetch_sub(before.keys, Ordering::Relaxed);
            self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
            self.bytes_total.fetch_sub(before.bytes, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Forgets a partition this node no longer holds (its data is gone).
    pub fn forget(&self, partition: PartitionId) {
        let removed = self.trees.lock().expect("trees lock").remove(&partition);
        if let Some(held) = removed {
            self.keys_total.fetch_sub(held.keys, Ordering::Relaxed);
            self.bytes_total.fetch_sub(held.bytes, Ordering::Relaxed);
        }
    }

    /// Keys held in every partition, as the writes left them.
    pub fn keys_total(&self) -> u64 {
        self.keys_total.load(Ordering::Relaxed)
    }

    /// Bytes (keys and stored values) held in every partition, as the writes left them.
    pub fn bytes_total(&self) -> u64 {
        self.bytes_total.load(Ordering::Relaxed)
    }

    /// What one partition holds, as the writes left it.
    pub fn counts(&self, partition: PartitionId) -> Counts {
        let trees = self.trees.lock().expect("trees lock");
        trees.get(&partition).map(Held::counts).unwrap_or_default()
    }

    /// Records that `key` of `partition` changed from `old` to `new`.
    pub fn update(
        &self,
        partition: PartitionId,
        key: &[u8],
        old: Option<Stored>,
        new: Option<Stored>,
    ) {
        if old == new {
            return;
        }
        let mut trees = self.trees.lock().expect("trees lock");
        let held = trees.entry(partition).or_insert_with(|| Held {
            tree: PartitionTree::new(self.depth).expect("node tree depth is valid"),
            keys: 0,
            bytes: 0,
        });
        let digest = |stored: Option<Stored>| stored.map(|stored| stored.digest);
        held.tree.update(key, digest(old), digest(new));
        match (old, new) {
            (None, Some(_)) => {
                held.keys += 1;
                self.keys_total.fetch_add(1, Ordering::Relaxed);
            }
            (Some(_), None) if held.keys > 0 => {
                held.keys -= 1;
                self.keys_total.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        // A removal the count never saw (a bug elsewhere) does not wrap it below zero.
        let bytes = |stored: Option<Stored>| stored.map_or(0, |stored| stored.bytes);
        let removed = bytes(old).min(held.bytes);
        held.bytes = held.bytes - removed + bytes(new);
        self.bytes_total.fetch_add(bytes(new), Ordering::Relaxed);
        self.bytes_total.fetch_sub(removed, Ordering::Relaxed);
    }

    /// A copy of one partition's tree (an empty one if nothing was written to it).
    pub fn snapshot(&self, partition: PartitionId) -> PartitionTree {
        self.trees
            .lock()
            .expect("trees lock")
            .get(&partition)
            .map(|held| held.tree.clone())
            .unwrap_or_else(|| PartitionTree::new(self.depth).expect("node tree depth is valid"))
    }

    pub fn root(&self, partition: PartitionId) -> Hash {
        self.trees
            .lock()
            .expect("trees lock")
            .get(&partition)
            .map(|held| held.tree.root())
            .unwrap_or([0; 32])
    }

    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// Keys and digests of one leaf, found by scanning the partition (a per-leaf index
    /// would make this proportional to the leaf; see the README's limits).
    pub fn leaf_entries(
        &self,
        storage: &dyn Storage,
        partition: PartitionId,
        leaf: u32,
    ) -> Result<Vec<Entry>, StorageError> {
        let depth = self.depth;
        let (entries, _) = entries_where(storage, partition, |key| leaf_index(key, depth) == leaf)?;
        Ok(entries)
    }
}

impl Held {
    fn counts(&self) -> Counts {
        Counts {
            keys: self.keys,
            bytes: self.bytes,
        }
    }
}

/// Every key of a partition with the digest of its object, and their bytes (keys and
/// stored values).
fn all_entries(
    storage: &dyn Storage,
    partition: PartitionId,
) -> Result<(Vec<Entry>, u64), StorageError> {
    entries_where(storage, partition, |_| true)
}

/// The digest of an object stored as `bytes` (what a digest read answers and a tree
/// leaf holds): a document's without decoding it (it hashes the document's stored
/// MessagePack), any other's from the decoded object.
pub fn stored_digest(bytes: &[u8]) -> Result<Hash, DecodeError> {
    match Object::digest_of_stored_doc(bytes) {
        Some(digest) => Ok(digest),
        None => Ok(decode_object(bytes)?.digest_stored(bytes)),
    }
}

/// The keys of a partition that `wanted` picks, with the digests of their objects, and
/// their bytes (keys and stored values); only those objects are decoded.
fn entries_where(
    storage: &dyn Storage,
    partition: PartitionId,
    wanted: impl Fn(&[u8]) -> bool,
) -> Result<(Vec<Entry>, u64), StorageError> {
    let (mut entries, mut held) = (Vec::new(), 0);
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = storage.scan_partition(partition, after.as_deref(), limits::SCAN_ENTRIES_MAX)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (key, bytes) in page.into_iter().filter(|(key, _)| wanted(key)) {
            let Ok(digest) = stored_digest(&bytes) else {
                continue;
            };
            held += (key.len() + bytes.len()) as u64;
            entries.push((key, digest));
        }
    }
    Ok((entries, held))
}
