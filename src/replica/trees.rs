//! The Merkle trees of the partitions this node holds, kept in step with every write
//! (an XOR leaf makes each update O(depth) and order-independent, so concurrent writes
//! to one key may update the tree in any order), and rebuilt from storage after a
//! start, one partition at a time in the background while the node serves
//! (`rebuild_pending`): a start costs the same whatever the store holds. Until its
//! partition is rebuilt a tree is not `ready`, and anti-entropy leaves the partition
//! alone (it would find every key different). A rebuild must see a partition no write
//! is changing, so every write holds its partition's lock shared (`writing`) from its
//! store write to its tree update, and the rebuild holds it alone while it scans.
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
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

/// Trees per partition, created on first use.
pub struct Trees {
    depth: u8,
    trees: Mutex<BTreeMap<PartitionId, Held>>,
    /// One lock per partition of the ring: shared by the writes of the partition, held
    /// alone by its rebuild (a fixed array: it never grows with the keys).
    writers: Box<[RwLock<()>]>,
    /// Per partition, whether its tree still waits for its rebuild from the store.
    pending: Box<[AtomicBool]>,
    /// How many partitions are pending, readable without a scan of `pending`.
    pending_count: AtomicU32,
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
    /// The trees of a store known to be empty (every partition ready, nothing to rebuild).
    pub fn new(depth: u8, partitions: u32) -> Trees {
        Trees {
            depth,
            trees: Mutex::new(BTreeMap::new()),
            writers: (0..partitions).map(|_| RwLock::new(())).collect(),
            pending: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
            pending_count: AtomicU32::new(0),
            keys_total: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
        }
    }

    /// The trees of a store that may hold data: every partition waits for its rebuild
    /// (`rebuild_pending`), and is not `ready` before.
    pub fn unbuilt(depth: u8, partitions: u32) -> Trees {
        let trees = Trees::new(depth, partitions);
        for pending in trees.pending.iter() {
            pending.store(true, Ordering::Relaxed);
        }
        trees.pending_count.store(partitions, Ordering::Relaxed);
        trees
    }

    /// Whether `partition`'s tree describes what the store holds (rebuilt, or never
    /// needing it): what anti-entropy compares. A partition beyond the ring's is not.
    pub fn ready(&self, partition: PartitionId) -> bool {
        self.pending
            .get(partition.0 as usize)
            .is_some_and(|pending| !pending.load(Ordering::Acquire))
    }

    /// How many partitions still wait for their rebuild.
    pub fn pending(&self) -> u32 {
        self.pending_count.load(Ordering::Relaxed)
    }

    /// The lock every write of `partition` holds from its store write to its tree
    /// update (`None` for a partition beyond the ring's, which no store write reaches).
    /// Held briefly and never across an await; a rebuild of the partition waits for the
    /// writes in flight and holds the next ones off while it scans.
    pub fn writing(&self, partition: PartitionId) -> Option<RwLockReadGuard<'_, ()>> {
        let lock = self.writers.get(partition.0 as usize)?;
        Some(lock.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Rebuilds the tree of every partition still pending from what the store holds,
    /// one partition at a time, each while no write changes it, until `stop` says to
    /// stop (asked between partitions). A partition the store cannot read stays pending
    /// (the error is returned after the others are done, for the caller to try again
    /// later); the count of partitions rebuilt is returned.
    pub fn rebuild_pending(
        &self,
        storage: &dyn Storage,
        stop: impl Fn() -> bool,
    ) -> Result<u32, StorageError> {
        let (mut rebuilt, mut failed) = (0, None);
        for index in 0..self.pending.len() {
            if stop() {
                break;
            }
            let partition = PartitionId(index as u32);
            match self.rebuild_one(storage, partition) {
                Ok(true) => rebuilt += 1,
                Ok(false) => {}
                Err(error) => failed = Some(error),
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(rebuilt),
        }
    }

    /// Rebuilds `partition` if it is pending; says whether it did.
    fn rebuild_one(
        &self,
        storage: &dyn Storage,
        partition: PartitionId,
    ) -> Result<bool, StorageError> {
        let index = partition.0 as usize;
        if !self.pending[index].load(Ordering::Acquire) {
            return Ok(false);
        }
        let _alone = self.writers[index]
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Forgotten (its data dropped) while this waited: nothing to rebuild.
        if !self.pending[index].load(Ordering::Acquire) {
            return Ok(false);
        }
        let (entries, bytes) = all_entries(storage, partition)?;
        let keys = entries.len() as u64;
        let held = (!entries.is_empty()).then(|| Held {
            tree: PartitionTree::from_entries(
                self.depth,
                entries
                    .iter()
                    .map(|(key, digest)| (key.as_slice(), *digest)),
            )
            .expect("node tree depth is valid"),
            keys,
            bytes,
        });
        self.install(partition, held);
        Ok(true)
    }

    /// Puts `held` (or nothing) in place of what `partition` had and marks it ready;
    /// the caller holds the partition's lock alone.
    fn install(&self, partition: PartitionId, held: Option<Held>) {
        let after = held.as_ref().map_or(Counts::default(), Held::counts);
        let mut trees = self.trees.lock().expect("trees lock");
        let replaced = match held {
            Some(held) => trees.insert(partition, held),
            None => trees.remove(&partition),
        };
        let before = replaced.map_or(Counts::default(), |held| held.counts());
        self.keys_total.fetch_add(after.keys, Ordering::Relaxed);
        self.keys_total.fetch_sub(before.keys, Ordering::Relaxed);
        self.bytes_total.fetch_add(after.bytes, Ordering::Relaxed);
        self.bytes_total.fetch_sub(before.bytes, Ordering::Relaxed);
        if self.pending[partition.0 as usize].swap(false, Ordering::AcqRel) {
            self.pending_count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Forgets a partition this node no longer holds (its data is gone): its tree is
    /// empty and ready, nothing left to rebuild.
    pub fn forget(&self, partition: PartitionId) {
        let Some(lock) = self.writers.get(partition.0 as usize) else {
            return;
        };
        let _alone = lock.write().unwrap_or_else(PoisonError::into_inner);
        self.install(partition, None);
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
