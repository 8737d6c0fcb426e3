//! The Merkle trees of the partitions this node holds, kept in step with every write
//! (an XOR leaf makes each update O(depth) and order-independent, so concurrent writes
//! to one key may update the tree in any order), and rebuilt from storage at start.

use crate::antientropy::{leaf_index, Entry, Hash, PartitionTree};
use crate::ids::PartitionId;
use crate::limits;
use crate::object::decode_object;
use crate::storage::{Storage, StorageError};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Trees per partition, created on first use.
pub struct Trees {
    depth: u8,
    trees: Mutex<BTreeMap<PartitionId, PartitionTree>>,
}

impl Trees {
    pub fn new(depth: u8) -> Trees {
        Trees {
            depth,
            trees: Mutex::new(BTreeMap::new()),
        }
    }

    /// Rebuilds every partition's tree from what the store holds.
    pub fn rebuild(&self, storage: &dyn Storage, partitions: u32) -> Result<(), StorageError> {
        for partition in (0..partitions).map(PartitionId) {
            let entries = all_entries(storage, partition)?;
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
            self.trees
                .lock()
                .expect("trees lock")
                .insert(partition, tree);
        }
        Ok(())
    }

    /// Records that `key` of `partition` changed from `old` to `new` digests.
    pub fn update(&self, partition: PartitionId, key: &[u8], old: Option<Hash>, new: Option<Hash>) {
        if old == new {
            return;
        }
        let mut trees = self.trees.lock().expect("trees lock");
        let tree = trees
            .entry(partition)
            .or_insert_with(|| PartitionTree::new(self.depth).expect("node tree depth is valid"));
        tree.update(key, old, new);
    }

    /// A copy of one partition's tree (an empty one if nothing was written to it).
    pub fn snapshot(&self, partition: PartitionId) -> PartitionTree {
        self.trees
            .lock()
            .expect("trees lock")
            .get(&partition)
            .cloned()
            .unwrap_or_else(|| PartitionTree::new(self.depth).expect("node tree depth is valid"))
    }

    pub fn root(&self, partition: PartitionId) -> Hash {
        self.trees
            .lock()
            .expect("trees lock")
            .get(&partition)
            .map(|tree| tree.root())
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
        entries_where(storage, partition, |key| leaf_index(key, depth) == leaf)
    }
}

/// Every key of a partition with the digest of its object.
fn all_entries(storage: &dyn Storage, partition: PartitionId) -> Result<Vec<Entry>, StorageError> {
    entries_where(storage, partition, |_| true)
}

/// The keys of a partition that `wanted` picks, with the digests of their objects; only
/// those objects are decoded.
fn entries_where(
    storage: &dyn Storage,
    partition: PartitionId,
    wanted: impl Fn(&[u8]) -> bool,
) -> Result<Vec<Entry>, StorageError> {
    let mut entries = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = storage.scan_partition(partition, after.as_deref(), limits::SCAN_ENTRIES_MAX)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (key, bytes) in page.into_iter().filter(|(key, _)| wanted(key)) {
            if let Ok(object) = decode_object(&bytes) {
                entries.push((key, object.digest_stored(&bytes)));
            }
        }
    }
    Ok(entries)
}
