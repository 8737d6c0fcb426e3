//! The Merkle tree of one partition: a complete binary tree of fixed depth whose leaves
//! bucket the partition's keys by a hash of the key, each leaf being the XOR of the
//! `entry_hash` of its entries.
//!
//! XOR makes a leaf independent of insertion order, so an insert, a removal or a new
//! version costs one leaf update and one path of `depth` hashes to the root; a
//! `TreeBatch` folds a burst of writes into one pass that hashes every dirty inner node
//! once. An inner node is blake3(left ‖ right), except that a node whose children are
//! both zero is zero, so an empty tree (and every empty subtree) hashes to all zeros.
//!
//! Memory: nodes live in one flat array of 2^(depth+1) hashes (heap order, root at 1).
//! The default depth 10 gives 1,024 leaves and 64 KiB per partition, 64 MiB for a node
//! holding all 1,024 partitions (about 43 MiB with N = 6 replicas on 9 nodes). A node
//! holds tens of millions of keys over roughly 700 partitions, so 15,000–70,000 keys per
//! partition and 15–70 keys per leaf; a difference then costs one leaf's entries on the
//! wire (1–5 KiB) beside about 2.3 KB of node hashes. Depth 8 would save 48 MiB but quadruple that per-difference cost, and
//! lazily recomputed inner levels would trade the memory for hashing on every exchange.
//! Deployments with about a million keys per partition should pick depth 14 to 16.
//!
//! This module only hashes: it never reads storage, decides what an entry's digest is,
//! or expires anything (a deleted or expired entry is an `update` with `new = None`).

use crate::limits::{TREE_DEPTH_DEFAULT, TREE_DEPTH_MAX, TREE_DEPTH_MIN};

/// A 32-byte blake3 hash: entry hashes, leaf and inner node values, version digests.
pub type Hash = [u8; 32];

/// The hash of an empty leaf and of an empty subtree.
pub const EMPTY_HASH: Hash = [0; 32];

/// Domain of the leaf-choosing hash. The ring places a key by the first 8 bytes of
/// blake3(class ‖ key), the same bytes as our keys, so every key of a partition shares
/// its leading hash bits: reusing that hash would put a whole partition in one leaf.
const LEAF_DOMAIN: &[u8] = b"cartwheel antientropy leaf v1\0";

/// Why a tree could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("tree depth {depth} is outside {TREE_DEPTH_MIN}..={TREE_DEPTH_MAX}")]
    DepthOutOfRange { depth: u8 },
    #[error("a tree of depth {depth} has {expected} leaves, {got} were given")]
    LeafCount {
        depth: u8,
        expected: usize,
        got: usize,
    },
}

/// The hash one entry contributes to its leaf: blake3(len(key) as u32 LE ‖ key ‖ digest).
/// The length prefix keeps (key, digest) pairs from colliding by shifting bytes between
/// the two.
pub fn entry_hash(key: &[u8], digest: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new();
    // Keys are at most ENTRY_KEY_BYTES_MAX, far below u32::MAX; saturating keeps this total.
    let length = u32::try_from(key.len()).unwrap_or(u32::MAX);
    hasher.update(&length.to_le_bytes());
    hasher.update(key);
    hasher.update(digest);
    *hasher.finalize().as_bytes()
}

/// The leaf of `key` in a tree of `depth`: the top `depth` bits of the first four bytes
/// (little-endian) of blake3(LEAF_DOMAIN ‖ key). Storage may use it to index its entries
/// by leaf without holding a tree. `depth` must be in 1..=16 (anything else is clamped).
pub fn leaf_index(key: &[u8], depth: u8) -> u32 {
    let depth = depth.clamp(TREE_DEPTH_MIN, TREE_DEPTH_MAX);
    let mut hasher = blake3::Hasher::new();
    hasher.update(LEAF_DOMAIN);
    hasher.update(key);
    let hash = hasher.finalize();
    let bytes = hash.as_bytes();
    let first = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    first >> (32 - u32::from(depth))
}

/// An inner node from its children; zero when both are zero so empty subtrees stay zero.
pub(crate) fn inner_hash(left: &Hash, right: &Hash) -> Hash {
    if left == &EMPTY_HASH && right == &EMPTY_HASH {
        return EMPTY_HASH;
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(left);
    hasher.update(right);
    *hasher.finalize().as_bytes()
}

fn xor_into(target: &mut Hash, value: &Hash) {
    for (byte, other) in target.iter_mut().zip(value) {
        *byte ^= other;
    }
}

/// The Merkle tree of one partition. Cheap to clone (one allocation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionTree {
    depth: u8,
    /// Heap order: node (level, index) is at `(1 << level) + index`; slot 0 is unused.
    nodes: Vec<Hash>,
}

impl Default for PartitionTree {
    fn default() -> Self {
        PartitionTree::empty(TREE_DEPTH_DEFAULT)
    }
}

impl PartitionTree {
    /// An empty tree of `depth` levels below the root (2^depth leaves).
    pub fn new(depth: u8) -> Result<Self, TreeError> {
        check_depth(depth)?;
        Ok(PartitionTree::empty(depth))
    }

    fn empty(depth: u8) -> Self {
        PartitionTree {
            depth,
            nodes: vec![EMPTY_HASH; 1usize << (depth + 1)],
        }
    }

    /// A tree over `entries` (keys must be distinct: a duplicate cancels itself out).
    pub fn from_entries<'a>(
        depth: u8,
        entries: impl IntoIterator<Item = (&'a [u8], Hash)>,
    ) -> Result<Self, TreeError> {
        let mut tree = PartitionTree::new(depth)?;
        tree.rebuild_from(entries);
        Ok(tree)
    }

    /// A tree from persisted leaf values (as `leaves()` returned them), hashing every
    /// inner node once.
    pub fn from_leaves(depth: u8, leaves: &[Hash]) -> Result<Self, TreeError> {
        let mut tree = PartitionTree::new(depth)?;
        if leaves.len() != tree.leaf_count() {
            return Err(TreeError::LeafCount {
                depth,
                expected: tree.leaf_count(),
                got: leaves.len(),
            });
        }
        let first_leaf = tree.leaf_count();
        tree.nodes[first_leaf..].copy_from_slice(leaves);
        tree.recompute_all();
        Ok(tree)
    }

    /// Replaces the whole content by `entries`: XORs every entry into its leaf, then
    /// hashes each inner node once (cheaper than one `update` per entry).
    pub fn rebuild_from<'a>(&mut self, entries: impl IntoIterator<Item = (&'a [u8], Hash)>) {
        self.nodes.fill(EMPTY_HASH);
        let first_leaf = self.leaf_count();
        for (key, digest) in entries {
            let slot = first_leaf + self.leaf_of(key) as usize;
            xor_into(&mut self.nodes[slot], &entry_hash(key, &digest));
        }
        self.recompute_all();
    }

    fn recompute_all(&mut self) {
        for slot in (1..self.leaf_count()).rev() {
            self.nodes[slot] = inner_hash(&self.nodes[2 * slot], &self.nodes[2 * slot + 1]);
        }
    }

    /// Levels below the root; leaves are at level `depth()`.
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// Number of leaves, 2^depth.
    pub fn leaf_count(&self) -> usize {
        1usize << self.depth
    }

    /// The leaf `key` belongs to (see [`leaf_index`]).
    pub fn leaf_of(&self, key: &[u8]) -> u32 {
        leaf_index(key, self.depth)
    }

    /// The root hash; all zeros for an empty tree.
    pub fn root(&self) -> Hash {
        self.nodes[1]
    }

    /// The node at `level` (0 = root, `depth()` = leaves) and `index` (0..2^level), or
    /// `None` when either is out of range.
    pub fn node(&self, level: u8, index: u32) -> Option<Hash> {
        if level > self.depth || u64::from(index) >= 1u64 << level {
            return None;
        }
        Some(self.nodes[(1usize << level) + index as usize])
    }

    /// The leaf values in leaf order, for persisting (see [`PartitionTree::from_leaves`]).
    pub fn leaves(&self) -> &[Hash] {
        &self.nodes[self.leaf_count()..]
    }

    /// True when every leaf is zero. Given the zero rule for inner nodes this is the root
    /// being zero (a non-empty leaf or blake3 output being zero has probability 2^-256).
    pub fn is_empty(&self) -> bool {
        self.root() == EMPTY_HASH
    }

    /// Records that `key` changed from `old` to `new` (`None` = absent) and rehashes the
    /// path to the root: O(depth). Equal `old` and `new` change nothing.
    pub fn update(&mut self, key: &[u8], old: Option<Hash>, new: Option<Hash>) {
        if let Some(leaf) = self.update_leaf(key, old, new) {
            self.recompute_path(leaf);
        }
    }

    /// XORs the change into the leaf only; returns the leaf when it changed.
    fn update_leaf(&mut self, key: &[u8], old: Option<Hash>, new: Option<Hash>) -> Option<u32> {
        if old == new {
            return None;
        }
        let leaf = self.leaf_of(key);
        let slot = self.leaf_count() + leaf as usize;
        for digest in [old, new].into_iter().flatten() {
            xor_into(&mut self.nodes[slot], &entry_hash(key, &digest));
        }
        Some(leaf)
    }

    fn recompute_path(&mut self, leaf: u32) {
        let mut slot = (self.leaf_count() + leaf as usize) / 2;
        while slot >= 1 {
            self.nodes[slot] = inner_hash(&self.nodes[2 * slot], &self.nodes[2 * slot + 1]);
            slot /= 2;
        }
    }

    /// Starts a batch of updates: leaves change at once, inner nodes when the batch is
    /// committed (or dropped), each dirty inner node hashed once. While the batch lives
    /// the tree is mutably borrowed, so nobody can read a half-updated tree.
    pub fn batch(&mut self) -> TreeBatch<'_> {
        TreeBatch {
            tree: self,
            dirty: Vec::new(),
            dirty_bits: Vec::new(),
        }
    }
}

fn check_depth(depth: u8) -> Result<(), TreeError> {
    if (TREE_DEPTH_MIN..=TREE_DEPTH_MAX).contains(&depth) {
        Ok(())
    } else {
        Err(TreeError::DepthOutOfRange { depth })
    }
}

/// A burst of updates to one tree whose inner nodes are rehashed once, at `commit` or
/// drop. Costs one leaf XOR per update, then at most one hash per distinct dirty inner
/// node: a path per dirty leaf, shared ancestors hashed once. Its memory is bounded by
/// the tree (one bit and one index per leaf at most).
pub struct TreeBatch<'a> {
    tree: &'a mut PartitionTree,
    /// Dirty leaves, each once (the bitset dedupes), so never more than the leaf count.
    dirty: Vec<u32>,
    dirty_bits: Vec<u64>,
}

impl TreeBatch<'_> {
    /// Same contract as [`PartitionTree::update`], without rehashing the path yet.
    pub fn update(&mut self, key: &[u8], old: Option<Hash>, new: Option<Hash>) {
        let Some(leaf) = self.tree.update_leaf(key, old, new) else {
            return;
        };
        if self.dirty_bits.is_empty() {
            self.dirty_bits = vec![0; self.tree.leaf_count().div_ceil(64)];
        }
        let (word, bit) = (leaf as usize / 64, leaf % 64);
        if self.dirty_bits[word] & (1 << bit) == 0 {
            self.dirty_bits[word] |= 1 << bit;
            self.dirty.push(leaf);
        }
    }

    /// Leaves changed so far in this batch.
    pub fn dirty_leaves(&self) -> usize {
        self.dirty.len()
    }

    /// Rehashes the inner nodes above the dirty leaves, level by level. Dropping the
    /// batch does the same; this names the moment.
    pub fn commit(self) {}

    fn recompute(&mut self) {
        let mut slots: Vec<usize> = self
            .dirty
            .drain(..)
            .map(|leaf| self.tree.leaf_count() + leaf as usize)
            .collect();
        slots.sort_unstable();
        // Parents of a sorted set are sorted, so consecutive dedup removes every repeat.
        while slots.first().is_some_and(|&slot| slot > 1) {
            for slot in slots.iter_mut() {
                *slot /= 2;
            }
            slots.dedup();
            let nodes = &mut self.tree.nodes;
            for &slot in &slots {
                nodes[slot] = inner_hash(&nodes[2 * slot], &nodes[2 * slot + 1]);
            }
        }
        self.dirty_bits.clear();
    }
}

impl Drop for TreeBatch<'_> {
    fn drop(&mut self) {
        self.recompute();
    }
}
