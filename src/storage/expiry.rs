//! The expiry index: one entry per stored record that has a deadline, keyed partition
//! (u32 big-endian), then deadline (u64 big-endian), then the record's key, with no
//! value. A partition's due entries are one contiguous range from its first entry, so
//! the sweeper reads, for each partition it sweeps, only what is due by its horizon.
//!
//! Partition first, not deadline first: a node sweeps only the partitions whose first
//! live owner it is (about one in N of those it holds). Deadline first would make every
//! pass read the due entries of the other partitions too, over and over until their
//! owners' sweeps reach this replica; partition first costs one range seek per swept
//! partition instead.
//!
//! It owns the entry encoding and the order in which a store writes an entry beside
//! its record: the new entry before the record, the old one removed after it, so a
//! crash between the writes leaves a stale entry (the sweeper checks the record and
//! drops it) and never a record without its entry. It must never decide what a
//! deadline is: the caller's update function says (`Expiry`); storage stores bytes.

use super::{partition_prefix, StoreKey, PARTITION_PREFIX_BYTES};
use crate::ids::PartitionId;
use std::ops::Bound;

const DEADLINE_BYTES: usize = 8;

/// A record's deadline before an update and after it, as the update function read them
/// off the record (`None`: the record has none, or there was no record).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expiry {
    pub before_ms: Option<u64>,
    pub after_ms: Option<u64>,
}

impl Expiry {
    /// The entry to add before the record is written, if the deadline changed.
    pub(crate) fn added(&self) -> Option<u64> {
        self.after_ms.filter(|after| Some(*after) != self.before_ms)
    }

    /// The entry to remove after the record is written, if the deadline changed.
    pub(crate) fn removed(&self) -> Option<u64> {
        self.before_ms
            .filter(|before| Some(*before) != self.after_ms)
    }
}

/// What an update function asks to store: the bytes, and the record's deadlines, which
/// the store keeps its expiry index by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub bytes: Vec<u8>,
    pub expiry: Expiry,
}

impl From<Vec<u8>> for Write {
    /// Bytes of a record without a deadline, before or after (kv objects, tests).
    fn from(bytes: Vec<u8>) -> Write {
        Write {
            bytes,
            expiry: Expiry::default(),
        }
    }
}

/// One entry of the expiry index of a partition, as `expiry_due` returns it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpiryEntry {
    pub deadline_ms: u64,
    /// The record's key, without the partition prefix.
    pub key: Vec<u8>,
}

impl ExpiryEntry {
    /// Bytes the entry holds, counted against a page's byte bound.
    pub fn bytes(&self) -> usize {
        DEADLINE_BYTES + self.key.len()
    }
}

/// The index key of `key`'s entry for `deadline_ms`.
pub(crate) fn entry_key(key: &StoreKey, deadline_ms: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(PARTITION_PREFIX_BYTES + DEADLINE_BYTES + key.key.len());
    bytes.extend_from_slice(&partition_prefix(key.partition));
    bytes.extend_from_slice(&deadline_ms.to_be_bytes());
    bytes.extend_from_slice(&key.key);
    bytes
}

/// Where a partition's due entries start after `after` (exclusive) or from its first.
fn range_start(partition: PartitionId, after: Option<&ExpiryEntry>) -> Vec<u8> {
    match after {
        Some(after) => {
            let mut start = entry_key(
                &StoreKey::new(partition, after.key.clone()),
                after.deadline_ms,
            );
            // The least key greater than `after`'s own: the range is then inclusive.
            start.push(0);
            start
        }
        None => partition_prefix(partition).to_vec(),
    }
}

/// Where the entries of `partition` due by `until_ms` end.
fn range_end(partition: PartitionId, until_ms: u64) -> Bound<Vec<u8>> {
    match until_ms.checked_add(1) {
        Some(next) => {
            let mut end = partition_prefix(partition).to_vec();
            end.extend_from_slice(&next.to_be_bytes());
            Bound::Excluded(end)
        }
        // Every deadline is due: the range ends where the next partition starts.
        None => match partition.0.checked_add(1) {
            Some(next) => Bound::Excluded(partition_prefix(PartitionId(next)).to_vec()),
            None => Bound::Unbounded,
        },
    }
}

/// The entry an index key holds, or `None` for a key too short to be one (never
/// written by this module; skipped rather than trusted).
fn decode_entry(index_key: &[u8]) -> Option<ExpiryEntry> {
    let deadline =
        index_key.get(PARTITION_PREFIX_BYTES..PARTITION_PREFIX_BYTES + DEADLINE_BYTES)?;
    Some(ExpiryEntry {
        deadline_ms: u64::from_be_bytes(deadline.try_into().ok()?),
        key: index_key[PARTITION_PREFIX_BYTES + DEADLINE_BYTES..].to_vec(),
    })
}

/// The index keys of `partition` due by `until_ms`, after `after` (exclusive).
pub(crate) fn due_range(
    partition: PartitionId,
    after: Option<&ExpiryEntry>,
    until_ms: u64,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    (
        Bound::Included(range_start(partition, after)),
        range_end(partition, until_ms),
    )
}

/// A page of the entries `index_keys` (read in order from `due_range`) hold: at most
/// `min(limit, SCAN_ENTRIES_MAX)` of them, and none more once their bytes reach
/// `bytes_max`. A key that fails to read stops the page with its error.
pub(crate) fn due_page<K: AsRef<[u8]>, E>(
    index_keys: impl Iterator<Item = Result<K, E>>,
    limit: usize,
    bytes_max: usize,
) -> Result<Vec<ExpiryEntry>, E> {
    let (mut page, mut bytes) = (Vec::new(), 0);
    for index_key in index_keys {
        if page.len() >= limit.min(crate::limits::SCAN_ENTRIES_MAX) || bytes >= bytes_max {
            break;
        }
        if let Some(entry) = decode_entry(index_key?.as_ref()) {
            bytes += entry.bytes();
            page.push(entry);
        }
    }
    Ok(page)
}
