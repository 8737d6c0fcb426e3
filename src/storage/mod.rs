//! The local replica store: a byte-oriented `Storage` trait with a sled implementation
//! and an in-memory twin, plus the durability policy (`CommitGate`) that callers use to
//! wait until their writes are on disk.
//!
//! This module owns the physical layout (partition as u32 big-endian + key bytes, so a
//! partition is one contiguous range), the on-disk format version and partition count
//! checks, and atomic read-modify-write of one key (one writer per key: `stripes`). It
//! must never interpret the stored values (versioned objects are encoded by the rest of
//! the crate) and must never decide protocol questions (what to merge, when to collect
//! a tombstone): it only stores bytes.

mod commit;
mod durability;
mod expiry;
mod memory;
mod sled;
mod stripes;
#[cfg(test)]
mod tests;

pub use self::commit::{CommitError, CommitGate, CommitStats};
pub use self::durability::{Durability, DurabilityParseError};
pub use self::expiry::{Expiry, ExpiryEntry, Write};
pub use self::memory::MemoryStorage;
pub use self::sled::SledStorage;

use crate::ids::PartitionId;
use crate::limits::STORAGE_CACHE_BYTES_DEFAULT;

/// The on-disk format this build writes and reads. Bump it (and add a migration) whenever
/// the physical layout or the metadata encoding changes.
pub const FORMAT_VERSION: u32 = 1;

/// Where one object lives: its partition and its key (class byte + user key, opaque here).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey {
    pub partition: PartitionId,
    pub key: Vec<u8>,
}

impl StoreKey {
    pub fn new(partition: PartitionId, key: impl Into<Vec<u8>>) -> Self {
        StoreKey {
            partition,
            key: key.into(),
        }
    }
}

/// One stored entry as a scan returns it: (key without the partition prefix, value).
pub type Entry = (Vec<u8>, Vec<u8>);

/// The function an `update` applies to the current value: `Ok(Some(write))` writes
/// (and keeps the expiry index by `write.expiry`), `Ok(None)` leaves the key as it is,
/// `Err` aborts the update without writing.
pub type UpdateFn<'a> = dyn FnMut(Option<&[u8]>) -> Result<Option<Write>, UpdateAbort> + 'a;

/// Says, given a record's current bytes (`None`: absent), whether an expiry index entry
/// of it no longer stands for it (`Storage::expiry_drop`).
pub type StaleFn<'a> = dyn FnMut(Option<&[u8]>) -> bool + 'a;

/// A local store of replicas, keyed by partition. Object-safe so `Arc<dyn Storage>` works.
///
/// Every method may block on disk I/O: async callers run them in `spawn_blocking` or
/// accept the short stall (sled reads are usually served from its cache).
pub trait Storage: Send + Sync + 'static {
    /// The value of one key, or `None` when absent.
    fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StorageError>;

    /// Atomic read-modify-write of one key; returns the value stored afterwards.
    ///
    /// `f` is called once, with the current value, while every other writer of the key
    /// (`update`, `delete`, `delete_if`) waits: sled holds the key's stripe of its write
    /// locks (`stripes`) across its read, `f` and a plain insert; the memory twin holds
    /// its one lock. Readers do not wait and see the old value or the new one. `f` must
    /// not call back into this storage: it would wait for the lock it is called under.
    ///
    /// The store keeps the expiry index in the same write: when `write.expiry` says the
    /// deadline changed, it adds the new entry before it writes the record and removes
    /// the old one after (`expiry`), so a crash leaves at worst a stale entry.
    fn update(&self, key: &StoreKey, f: &mut UpdateFn<'_>)
        -> Result<Option<Vec<u8>>, StorageError>;

    /// Physical removal of one key (used when a partition is dropped). Absent keys are
    /// fine. Ordered with the key's other writers as `update` is. An expiry entry of the
    /// key stays, stale (the caller drops it with `expiry_drop`).
    fn delete(&self, key: &StoreKey) -> Result<(), StorageError>;

    /// Removes `key` only if its value is still `expected` (atomic: ordered with the
    /// key's other writers as `update` is); says whether it did. Tombstone collection
    /// (a tombstone has no deadline, so no expiry entry goes with it).
    fn delete_if(&self, key: &StoreKey, expected: &[u8]) -> Result<bool, StorageError>;

    /// Entries of one partition in key order, starting after `after` (exclusive), at most
    /// `min(limit, SCAN_ENTRIES_MAX)` of them. Keys are returned without the partition
    /// prefix. A page shorter than asked means the partition has no more entries.
    fn scan_partition(
        &self,
        partition: PartitionId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError>;

    /// The expiry index entries of `partition` due by `until_ms` (deadline <= it), in
    /// (deadline, key) order after `after` (exclusive): at most
    /// `min(limit, SCAN_ENTRIES_MAX)` of them, and no more once their `ExpiryEntry::bytes`
    /// reach `bytes_max`. A page not full by either bound means no more are due. Reads
    /// nothing not due.
    fn expiry_due(
        &self,
        partition: PartitionId,
        after: Option<&ExpiryEntry>,
        until_ms: u64,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<ExpiryEntry>, StorageError>;

    /// Adds the expiry entry of `key` for `deadline_ms` without writing the record (the
    /// backfill of a store written before the index). A stale one is harmless.
    fn expiry_put(&self, key: &StoreKey, deadline_ms: u64) -> Result<(), StorageError>;

    /// Removes the expiry entry of `key` for `deadline_ms` if `stale` says, of the
    /// record's current bytes, that it no longer stands for it; the key's writers wait
    /// meanwhile (as for `update`), so no write can add that entry back in between.
    /// Says whether it removed it. `stale` must not call back into this storage.
    fn expiry_drop(
        &self,
        key: &StoreKey,
        deadline_ms: u64,
        stale: &mut StaleFn<'_>,
    ) -> Result<bool, StorageError>;

    /// Makes every write that completed before the call durable (sled flush / fsync).
    fn flush(&self) -> Result<(), StorageError>;

    /// Number of keys stored (a full count: O(keys) for sled).
    fn len(&self) -> Result<u64, StorageError>;

    /// Whether no key is stored.
    fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.len()? == 0)
    }

    /// Bytes the store occupies on disk (the memory twin reports bytes held).
    fn size_on_disk(&self) -> Result<u64, StorageError>;

    /// Writes `value` under `key` in a side keyspace outside the partitions (durable
    /// to-do lists such as hints), durable with the next flush.
    fn aux_put(&self, space: AuxSpace, key: &[u8], value: &[u8]) -> Result<(), StorageError>;

    fn aux_delete(&self, space: AuxSpace, key: &[u8]) -> Result<(), StorageError>;

    /// Entries of `space` whose key starts with `prefix`, in key order, after `after`
    /// (exclusive), at most `limit` (clamped to SCAN_ENTRIES_MAX).
    fn aux_scan(
        &self,
        space: AuxSpace,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError>;
}

/// The side keyspaces of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuxSpace {
    /// Writes held for a replica that was down (hinted handoff).
    Hints,
    /// The node's own records (its incarnation).
    Node,
}

impl AuxSpace {
    pub(crate) fn tree_name(self) -> &'static str {
        match self {
            AuxSpace::Hints => "hints",
            AuxSpace::Node => "node",
        }
    }
}

/// Typed read-modify-write for any `Storage`, including `dyn Storage`: the closure may
/// fail with the caller's own error type, which comes back unchanged in
/// `UpdateError::Aborted`.
pub trait StorageExt: Storage {
    fn update_with<E, F>(&self, key: &StoreKey, mut f: F) -> Result<Option<Vec<u8>>, UpdateError<E>>
    where
        F: FnMut(Option<&[u8]>) -> Result<Option<Write>, E>,
    {
        let mut caller_error: Option<E> = None;
        let mut adapter = |current: Option<&[u8]>| match f(current) {
            Ok(next) => Ok(next),
            Err(error) => {
                caller_error = Some(error);
                Err(UpdateAbort::new(
                    AbortReason::Caller,
                    "aborted by the caller's update function",
                ))
            }
        };
        let outcome = self.update(key, &mut adapter);
        match (outcome, caller_error) {
            // An abort always ends the update, so the last caller error is the one that did.
            (Err(StorageError::Aborted(_)), Some(error)) => Err(UpdateError::Aborted(error)),
            (Err(error), _) => Err(UpdateError::Storage(error)),
            (Ok(value), _) => Ok(value),
        }
    }
}

impl<S: Storage + ?Sized> StorageExt for S {}

/// Why a caller's update function refused to produce a new value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AbortReason {
    /// The stored bytes could not be decoded by the caller.
    Undecodable,
    /// A condition the caller required (e.g. "key must be absent") does not hold.
    PreconditionFailed,
    /// The new value would exceed the caller's size bound.
    TooLarge,
    /// Any other caller-defined reason (the typed path is `StorageExt::update_with`).
    Caller,
}

impl std::fmt::Display for AbortReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AbortReason::Undecodable => "undecodable",
            AbortReason::PreconditionFailed => "precondition_failed",
            AbortReason::TooLarge => "too_large",
            AbortReason::Caller => "caller",
        })
    }
}

/// Returned by an update function to abort the update; nothing is written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("update aborted ({reason}): {message}")]
pub struct UpdateAbort {
    pub reason: AbortReason,
    pub message: String,
}

impl UpdateAbort {
    pub fn new(reason: AbortReason, message: impl Into<String>) -> Self {
        UpdateAbort {
            reason,
            message: message.into(),
        }
    }
}

/// Errors of the storage boundary.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O failed while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: ::sled::Error,
    },
    #[error("store at {} is locked by another user (waited {waited_ms} ms)", path.display())]
    Locked {
        path: std::path::PathBuf,
        waited_ms: u64,
    },
    #[error("store is corrupt: {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("store has format version {found}, but this build supports only version {supported}")]
    FormatVersion { found: u32, supported: u32 },
    #[error(
        "store was created with {found} partitions but {expected} were asked for; \
         the partition count cannot change on an existing store"
    )]
    PartitionCount { found: u32, expected: u32 },
    #[error("partition {partition} is outside the store's {partitions} partitions")]
    PartitionOutOfRange { partition: u32, partitions: u32 },
    #[error("the partition count must be at least 1")]
    ZeroPartitions,
    #[error(transparent)]
    Aborted(UpdateAbort),
}

/// Errors of `StorageExt::update_with`: the storage failed, or the caller's function did.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    #[error(transparent)]
    Storage(StorageError),
    #[error("update aborted by the caller")]
    Aborted(E),
}

/// How to open a sled store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// Q, the fixed partition count; must match the count the store was created with.
    pub partitions: u32,
    /// Bytes of sled page cache.
    pub cache_bytes: u64,
    /// Durability policy; the store records it for `CommitGate` (sled itself only flushes
    /// when asked, plus its own background flush).
    pub durability: Durability,
}

impl StorageOptions {
    /// Options with the default cache size and durability.
    pub fn new(partitions: u32) -> Self {
        StorageOptions {
            partitions,
            cache_bytes: STORAGE_CACHE_BYTES_DEFAULT,
            durability: Durability::default(),
        }
    }
}

/// Physical key: partition as u32 big-endian, then the key bytes, so that one partition
/// is one contiguous key range in sled's order.
pub(crate) fn physical_key(key: &StoreKey) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(PARTITION_PREFIX_BYTES + key.key.len());
    bytes.extend_from_slice(&partition_prefix(key.partition));
    bytes.extend_from_slice(&key.key);
    bytes
}

pub(crate) const PARTITION_PREFIX_BYTES: usize = 4;

/// Bytes of a `PhysicalKey` kept on the stack: the partition prefix, a class byte and a
/// key of up to 59 bytes (session tokens' hashes, user ids and most kv keys).
const PHYSICAL_KEY_INLINE_BYTES: usize = 64;

/// `physical_key`'s bytes without a heap allocation when they are short, for a read or
/// write that only lends them to the store (sled copies the key it keeps).
pub(crate) enum PhysicalKey {
    Inline {
        bytes: [u8; PHYSICAL_KEY_INLINE_BYTES],
        len: usize,
    },
    Heap(Vec<u8>),
}

impl PhysicalKey {
    pub(crate) fn of(key: &StoreKey) -> PhysicalKey {
        let len = PARTITION_PREFIX_BYTES + key.key.len();
        if len > PHYSICAL_KEY_INLINE_BYTES {
            return PhysicalKey::Heap(physical_key(key));
        }
        let mut bytes = [0; PHYSICAL_KEY_INLINE_BYTES];
        bytes[..PARTITION_PREFIX_BYTES].copy_from_slice(&partition_prefix(key.partition));
        bytes[PARTITION_PREFIX_BYTES..len].copy_from_slice(&key.key);
        PhysicalKey::Inline { bytes, len }
    }
}

impl AsRef<[u8]> for PhysicalKey {
    fn as_ref(&self) -> &[u8] {
        match self {
            PhysicalKey::Inline { bytes, len } => &bytes[..*len],
            PhysicalKey::Heap(bytes) => bytes,
        }
    }
}

pub(crate) fn partition_prefix(partition: PartitionId) -> [u8; PARTITION_PREFIX_BYTES] {
    partition.0.to_be_bytes()
}

/// Refuses partitions outside `0..partitions`: such a key would be invisible to the
/// per-partition machinery (Merkle trees, transfer), so it must never be stored.
pub(crate) fn check_partition(partition: PartitionId, partitions: u32) -> Result<(), StorageError> {
    if partition.0 < partitions {
        Ok(())
    } else {
        Err(StorageError::PartitionOutOfRange {
            partition: partition.0,
            partitions,
        })
    }
}
