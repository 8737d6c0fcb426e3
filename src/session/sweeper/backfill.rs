//! The one-time backfill of the expiry index: a store written before the index holds
//! records no entry points at, which the sweeper would never find. A bounded step at a
//! time it reads every partition's records and adds the entry of each that has a
//! deadline, keeping its progress (partition, last key) in the node's side records so a
//! restart goes on where it stopped, and once the last partition is read it records
//! that it is done, so it never runs again.
//!
//! Racing writes are harmless: a write after the index existed adds its own entry, and
//! an entry added here for a deadline the record has since left is only stale (the
//! sweeper drops it). It must never write a record, only index entries.

use crate::ids::PartitionId;
use crate::limits;
use crate::object::{decode_object, expiry_deadline_ms};
use crate::session::SessionStats;
use crate::storage::{AuxSpace, Storage, StorageError, StoreKey};
use std::sync::atomic::Ordering;

/// The side record (`AuxSpace::Node`) of the backfill's progress.
const PROGRESS_KEY: &[u8] = b"expiry-index-backfill";
/// The progress record's format: this byte, then `DONE` or `GOING`; when going, the
/// partition (u32 big-endian) and the last key read in it (possibly empty: none yet).
const PROGRESS_FORMAT: u8 = 1;
const DONE: u8 = 1;
const GOING: u8 = 0;
/// Records one `scan_partition` call of a step reads, so the step's byte bound is
/// checked every so many records.
const SCAN_PAGE_KEYS: usize = 64;

/// Where the backfill stands after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackfillProgress {
    /// Every partition was read: the index covers the store.
    Done,
    /// More to read: call again (after a pause).
    Going,
}

/// Where a step starts: a partition and the last key read in it.
#[derive(Debug, PartialEq, Eq)]
struct Position {
    partition: u32,
    after: Option<Vec<u8>>,
}

/// Reads up to `EXPIRY_BACKFILL_KEYS_PER_STEP` records (and about
/// `EXPIRY_BACKFILL_STEP_BYTES_MAX` bytes) from where the last step stopped, adds the
/// index entry of each with a deadline, and records the progress.
pub fn backfill_step(
    storage: &dyn Storage,
    partitions: u32,
    stats: &SessionStats,
) -> Result<BackfillProgress, StorageError> {
    let Some(mut position) = load(storage)? else {
        stats.expiry_backfill_done.store(1, Ordering::Relaxed);
        return Ok(BackfillProgress::Done);
    };
    let (mut keys, mut bytes) = (0, 0);
    while position.partition < partitions
        && keys < limits::EXPIRY_BACKFILL_KEYS_PER_STEP
        && bytes < limits::EXPIRY_BACKFILL_STEP_BYTES_MAX
    {
        let partition = PartitionId(position.partition);
        let limit = SCAN_PAGE_KEYS.min(limits::EXPIRY_BACKFILL_KEYS_PER_STEP - keys);
        let page = storage.scan_partition(partition, position.after.as_deref(), limit)?;
        let ended = page.len() < limit;
        for (key, value) in page {
            keys += 1;
            bytes += key.len() + value.len();
            let deadline = decode_object(&value)
                .ok()
                .as_ref()
                .and_then(expiry_deadline_ms);
            if let Some(deadline_ms) = deadline {
                storage.expiry_put(&StoreKey::new(partition, key.clone()), deadline_ms)?;
                stats.expiry_backfilled.fetch_add(1, Ordering::Relaxed);
            }
            position.after = Some(key);
        }
        if ended {
            position = Position {
                partition: position.partition + 1,
                after: None,
            };
        }
    }
    if position.partition >= partitions {
        storage.aux_put(AuxSpace::Node, PROGRESS_KEY, &[PROGRESS_FORMAT, DONE])?;
        stats.expiry_backfill_done.store(1, Ordering::Relaxed);
        return Ok(BackfillProgress::Done);
    }
    storage.aux_put(AuxSpace::Node, PROGRESS_KEY, &encode(&position))?;
    Ok(BackfillProgress::Going)
}

/// The position to go on from, `None` once done. A record this build cannot read
/// starts the backfill over: reading again only adds entries that are there already.
fn load(storage: &dyn Storage) -> Result<Option<Position>, StorageError> {
    let found = storage.aux_scan(AuxSpace::Node, PROGRESS_KEY, None, 1)?;
    let start = Position {
        partition: 0,
        after: None,
    };
    let Some((key, value)) = found.into_iter().next() else {
        return Ok(Some(start));
    };
    if key != PROGRESS_KEY {
        return Ok(Some(start));
    }
    match value.as_slice() {
        [PROGRESS_FORMAT, DONE] => Ok(None),
        [PROGRESS_FORMAT, GOING, rest @ ..] if rest.len() >= 4 => {
            let (partition, after) = rest.split_at(4);
            Ok(Some(Position {
                partition: u32::from_be_bytes(partition.try_into().unwrap_or([0; 4])),
                after: (!after.is_empty()).then(|| after.to_vec()),
            }))
        }
        _ => Ok(Some(start)),
    }
}

fn encode(position: &Position) -> Vec<u8> {
    let mut bytes = vec![PROGRESS_FORMAT, GOING];
    bytes.extend_from_slice(&position.partition.to_be_bytes());
    bytes.extend_from_slice(position.after.as_deref().unwrap_or_default());
    bytes
}

#[cfg(test)]
mod tests;
