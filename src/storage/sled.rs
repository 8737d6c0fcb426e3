//! The sled-backed store: one `data` tree holding every replica under its physical key,
//! an `expiry` tree holding the expiry index (`expiry`), and a `meta` tree holding the
//! format version and the partition count Q.
//!
//! It owns opening (with the format and Q checks), the writes of data keys (each under
//! its key's stripe of `stripes::KeyLocks`, so `update` is a read and a plain insert),
//! and flushing. It must never decode stored values, and must never open a store whose
//! format or partition count it does not understand: refusing is the only safe answer,
//! since guessing would scatter keys into the wrong partitions.

use super::expiry::{self, ExpiryEntry};
use super::stripes::KeyLocks;
use super::{
    check_partition, partition_prefix, physical_key, AuxSpace, Durability, Entry, PhysicalKey,
    StaleFn, Storage, StorageError, StorageOptions, StoreKey, UpdateFn, FORMAT_VERSION,
};
use crate::ids::PartitionId;
use crate::limits::{SCAN_ENTRIES_MAX, STORE_LOCK_RETRY_INTERVAL_MS, STORE_LOCK_WAIT_MS_MAX};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DATA_TREE: &[u8] = b"data";
const META_TREE: &[u8] = b"meta";
const EXPIRY_TREE: &[u8] = b"expiry";
const META_FORMAT_VERSION: &[u8] = b"format_version";
const META_PARTITIONS: &[u8] = b"partitions";

/// A `Storage` on a sled database in one directory.
pub struct SledStorage {
    db: sled::Db,
    data: sled::Tree,
    /// The expiry index; its entries of a key are written under the key's stripe.
    expiry: sled::Tree,
    hints: sled::Tree,
    node: sled::Tree,
    /// Every write of a key of `data` holds the key's stripe (the side trees' keys are
    /// each written by one owner and never read-modify-written, so they need none).
    writers: KeyLocks,
    partitions: u32,
    durability: Durability,
    path: PathBuf,
}

impl SledStorage {
    /// Opens the store at `path`, creating it (with `FORMAT_VERSION` and
    /// `options.partitions`) when the directory holds none. Refuses a store of another
    /// format version or another partition count.
    pub fn open(path: &Path, options: StorageOptions) -> Result<SledStorage, StorageError> {
        if options.partitions == 0 {
            return Err(StorageError::ZeroPartitions);
        }
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes);
        let db = open_waiting_for_lock(&config, path)?;
        let meta = db
            .open_tree(META_TREE)
            .map_err(sled_error("opening the metadata tree"))?;
        let data = db
            .open_tree(DATA_TREE)
            .map_err(sled_error("opening the data tree"))?;
        check_or_create_metadata(&meta, &data, options.partitions)?;
        let expiry = db
            .open_tree(EXPIRY_TREE)
            .map_err(sled_error("opening the expiry index"))?;
        let hints = db
            .open_tree(AuxSpace::Hints.tree_name())
            .map_err(sled_error("opening the hints tree"))?;
        let node = db
            .open_tree(AuxSpace::Node.tree_name())
            .map_err(sled_error("opening the node tree"))?;
        Ok(SledStorage {
            db,
            data,
            expiry,
            hints,
            node,
            writers: KeyLocks::new(),
            partitions: options.partitions,
            durability: options.durability,
            path: path.to_path_buf(),
        })
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The durability policy this store was opened with (to build its `CommitGate`).
    pub fn durability(&self) -> Durability {
        self.durability
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and closes the store, reporting a failure of the last flush (dropping the
    /// store also flushes, but cannot report).
    pub fn close(self) -> Result<(), StorageError> {
        self.flush()
    }

    #[cfg(test)]
    pub(super) fn meta_tree_for_tests(&self) -> sled::Tree {
        self.db.open_tree(META_TREE).expect("the meta tree opens")
    }
}

/// Opens sled, waiting a bounded time for its file lock: sled 0.34 releases the lock from
/// its flusher thread after `Db` is dropped, so a close followed at once by an open (a
/// restart in tests or after a crash of the owning task) can find it still held.
fn open_waiting_for_lock(config: &sled::Config, path: &Path) -> Result<sled::Db, StorageError> {
    let started = Instant::now();
    let deadline = Duration::from_millis(STORE_LOCK_WAIT_MS_MAX);
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(error) if is_lock_held(&error) => {
                if started.elapsed() >= deadline {
                    return Err(StorageError::Locked {
                        path: path.to_path_buf(),
                        waited_ms: STORE_LOCK_WAIT_MS_MAX,
                    });
                }
                std::thread::sleep(Duration::from_millis(STORE_LOCK_RETRY_INTERVAL_MS));
            }
            Err(error) => {
                return Err(sled_error(format!(
                    "opening the store at {}",
                    path.display()
                ))(error))
            }
        }
    }
}

/// sled 0.34 reports a held lock only as an `Other` I/O error with this message.
fn is_lock_held(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock"))
}

/// On a fresh store writes the metadata; on an existing one checks it.
fn check_or_create_metadata(
    meta: &sled::Tree,
    data: &sled::Tree,
    partitions: u32,
) -> Result<(), StorageError> {
    let version = meta
        .get(META_FORMAT_VERSION)
        .map_err(sled_error("reading the format version"))?;
    let Some(version) = version else {
        if !data.is_empty() {
            return Err(StorageError::Corrupt {
                what: "metadata",
                detail: "the store holds data but no format version".to_string(),
            });
        }
        // The version is written last and marks the metadata complete: a crash before it
        // leaves an empty store that the next open creates again.
        meta.insert(META_PARTITIONS, &partitions.to_be_bytes())
            .map_err(sled_error("writing the partition count"))?;
        meta.insert(META_FORMAT_VERSION, &FORMAT_VERSION.to_be_bytes())
            .map_err(sled_error("writing the format version"))?;
        meta.flush().map_err(sled_error("flushing new metadata"))?;
        return Ok(());
    };
    // The version is checked first: another format may keep its metadata differently.
    let found = decode_u32(&version, "format version")?;
    if found != FORMAT_VERSION {
        return Err(StorageError::FormatVersion {
            found,
            supported: FORMAT_VERSION,
        });
    }
    let stored = meta
        .get(META_PARTITIONS)
        .map_err(sled_error("reading the partition count"))?
        .ok_or_else(|| StorageError::Corrupt {
            what: "partition count",
            detail: "missing from the metadata".to_string(),
        })?;
    let found = decode_u32(&stored, "partition count")?;
    if found != partitions {
        return Err(StorageError::PartitionCount {
            found,
            expected: partitions,
        });
    }
    Ok(())
}

fn decode_u32(bytes: &[u8], what: &'static str) -> Result<u32, StorageError> {
    let array: [u8; 4] = bytes.try_into().map_err(|_| StorageError::Corrupt {
        what,
        detail: format!("expected 4 bytes, found {}", bytes.len()),
    })?;
    Ok(u32::from_be_bytes(array))
}

/// Wraps a sled error with what we were doing; sled's own corruption report becomes
/// `Corrupt` so callers can tell a damaged store from a failing disk. The context
/// becomes a `String` only when there is an error: `map_err(sled_error(".."))` is built
/// on every read and write, and converting first cost each of them an allocation.
fn sled_error(context: impl Into<String>) -> impl FnOnce(sled::Error) -> StorageError {
    move |source| {
        let context = context.into();
        match source {
            sled::Error::Corruption { .. } => StorageError::Corrupt {
                what: "sled data",
                detail: format!("{source} while {context}"),
            },
            source => StorageError::Io { context, source },
        }
    }
}

impl Storage for SledStorage {
    fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StorageError> {
        check_partition(key.partition, self.partitions)?;
        let value = self
            .data
            .get(PhysicalKey::of(key))
            .map_err(sled_error("reading a key"))?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn update(
        &self,
        key: &StoreKey,
        f: &mut UpdateFn<'_>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        check_partition(key.partition, self.partitions)?;
        let physical = PhysicalKey::of(key);
        // No other writer of the key can run between the read and the insert, so the
        // insert needs no comparison and `f` runs once.
        let _writer = self.writers.lock(key);
        let current = self
            .data
            .get(&physical)
            .map_err(sled_error("reading a key to update"))?;
        let Some(next) = f(current.as_deref()).map_err(StorageError::Aborted)? else {
            return Ok(current.map(|value| value.to_vec()));
        };
        // sled's one log keeps the order of these writes across a crash: the new entry
        // before the record, the old one removed after (`expiry`).
        if let Some(deadline_ms) = next.expiry.added() {
            self.expiry
                .insert(expiry::entry_key(key, deadline_ms), &[])
                .map_err(sled_error("adding an expiry entry"))?;
        }
        self.data
            .insert(&physical, next.bytes.as_slice())
            .map_err(sled_error("writing an updated key"))?;
        if let Some(deadline_ms) = next.expiry.removed() {
            self.expiry
                .remove(expiry::entry_key(key, deadline_ms))
                .map_err(sled_error("removing an expiry entry"))?;
        }
        Ok(Some(next.bytes))
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
        let index_keys = self.expiry.range::<Vec<u8>, _>(range).map(|entry| {
            entry
                .map(|(index_key, _)| index_key)
                .map_err(sled_error("reading the expiry index"))
        });
        expiry::due_page(index_keys, limit, bytes_max)
    }

    fn expiry_put(&self, key: &StoreKey, deadline_ms: u64) -> Result<(), StorageError> {
        check_partition(key.partition, self.partitions)?;
        self.expiry
            .insert(expiry::entry_key(key, deadline_ms), &[])
            .map_err(sled_error("adding an expiry entry"))?;
        Ok(())
    }

    fn expiry_drop(
        &self,
        key: &StoreKey,
        deadline_ms: u64,
        stale: &mut StaleFn<'_>,
    ) -> Result<bool, StorageError> {
        check_partition(key.partition, self.partitions)?;
        let _writer = self.writers.lock(key);
        let current = self
            .data
            .get(PhysicalKey::of(key))
            .map_err(sled_error("reading a key to check its expiry entry"))?;
        if !stale(current.as_deref()) {
            return Ok(false);
        }
        let removed = self
            .expiry
            .remove(expiry::entry_key(key, deadline_ms))
            .map_err(sled_error("removing a stale expiry entry"))?;
        Ok(removed.is_some())
    }

    fn delete(&self, key: &StoreKey) -> Result<(), StorageError> {
        check_partition(key.partition, self.partitions)?;
        let _writer = self.writers.lock(key);
        self.data
            .remove(PhysicalKey::of(key))
            .map_err(sled_error("deleting a key"))?;
        Ok(())
    }

    fn delete_if(&self, key: &StoreKey, expected: &[u8]) -> Result<bool, StorageError> {
        check_partition(key.partition, self.partitions)?;
        let physical = PhysicalKey::of(key);
        let _writer = self.writers.lock(key);
        let current = self
            .data
            .get(&physical)
            .map_err(sled_error("reading a key to delete"))?;
        if current.as_deref() != Some(expected) {
            return Ok(false);
        }
        self.data
            .remove(&physical)
            .map_err(sled_error("deleting a key if unchanged"))?;
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
        let mut page = Vec::new();
        for entry in self.data.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            if page.len() >= limit.min(SCAN_ENTRIES_MAX) {
                break;
            }
            let (physical, value) = entry.map_err(sled_error("scanning a partition"))?;
            if !physical.starts_with(&prefix) {
                break;
            }
            page.push((physical[prefix.len()..].to_vec(), value.to_vec()));
        }
        Ok(page)
    }

    fn flush(&self) -> Result<(), StorageError> {
        // Flushing any tree writes sled's whole log, so this covers data and metadata.
        self.db.flush().map_err(sled_error("flushing the store"))?;
        Ok(())
    }

    fn len(&self) -> Result<u64, StorageError> {
        Ok(self.data.len() as u64)
    }

    /// Without counting: `len` walks every key, this reads one.
    fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.data.is_empty())
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.db
            .size_on_disk()
            .map_err(sled_error("measuring the store's size"))
    }

    fn aux_put(&self, space: AuxSpace, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.aux(space)
            .insert(key, value)
            .map_err(sled_error("writing a side record"))?;
        Ok(())
    }

    fn aux_delete(&self, space: AuxSpace, key: &[u8]) -> Result<(), StorageError> {
        self.aux(space)
            .remove(key)
            .map_err(sled_error("deleting a side record"))?;
        Ok(())
    }

    fn aux_scan(
        &self,
        space: AuxSpace,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match after {
            Some(after) => Bound::Excluded(after.to_vec()),
            None => Bound::Included(prefix.to_vec()),
        };
        let mut page = Vec::new();
        for entry in self
            .aux(space)
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
        {
            if page.len() >= limit.min(SCAN_ENTRIES_MAX) {
                break;
            }
            let (key, value) = entry.map_err(sled_error("scanning side records"))?;
            if !key.starts_with(prefix) {
                break;
            }
            page.push((key.to_vec(), value.to_vec()));
        }
        Ok(page)
    }
}

impl SledStorage {
    fn aux(&self, space: AuxSpace) -> &sled::Tree {
        match space {
            AuxSpace::Hints => &self.hints,
            AuxSpace::Node => &self.node,
        }
    }
}
