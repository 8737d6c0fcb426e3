//! The change feed of this node's replica: every change it applies to a key (written,
//! deleted, expired), in order, with sequence numbers, bounded in bytes
//! (`limits::FEED_BYTES_MAX`), resumable from a [`Cursor`]. A reader whose position
//! the log dropped, or that read another epoch's log (the node restarted since), is
//! told it fell behind and must treat everything as changed: the feed never misses a
//! change silently. Client tracking, keyspace notifications and the HTTP feed are
//! built on it (`runtime::hub` gathers a region's feeds).
//!
//! It records only what a reader could see: a merge that leaves the stored object as
//! it was (a repeat, a repair of a key already in step) is no change. It keeps nothing
//! on disk: a restart starts a new epoch.

mod log;
pub mod tracking;

pub use log::{Change, ChangeKind, Cursor, Log, Page, CHANGE_FIXED_BYTES};

use crate::ids::PartitionId;
use crate::object::{is_tombstone, Object};
use std::sync::Mutex;
use tokio::sync::watch;

/// A replica's feed: the log behind a lock, and a signal that moves with its tail.
pub struct Feed {
    log: Mutex<Log>,
    /// The `next` of the log's tail, for readers waiting for a change.
    tail: watch::Sender<u64>,
}

impl Feed {
    /// An empty feed with a random epoch.
    pub fn new(partitions: u32, bytes_max: usize) -> Feed {
        let log = Log::new(rand::random(), partitions, bytes_max);
        let (tail, _) = watch::channel(log.tail().next);
        Feed {
            log: Mutex::new(log),
            tail,
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a change (see `Log::record`) and wakes the readers waiting.
    pub fn record(&self, partition: PartitionId, key: Vec<u8>, kind: ChangeKind, digest: [u8; 32]) {
        let next = {
            let mut log = self.log();
            log.record(partition, key, kind, digest);
            log.tail().next
        };
        self.tail.send_replace(next);
    }

    pub fn tail(&self) -> Cursor {
        self.log().tail()
    }

    pub fn read(&self, from: Cursor, entries_max: usize, bytes_max: usize) -> Page {
        self.log().read(from, entries_max, bytes_max)
    }

    /// Bytes held and changes held.
    pub fn held(&self) -> (usize, usize) {
        let log = self.log();
        (log.bytes(), log.len())
    }

    /// Reads from `from`; if nothing is due (and `from` is a position of this log),
    /// waits up to `wait` for a change first.
    pub async fn read_waiting(
        &self,
        from: Cursor,
        wait: std::time::Duration,
        entries_max: usize,
        bytes_max: usize,
    ) -> Page {
        let mut tail = self.tail.subscribe();
        let current = self.log().tail();
        if from == current {
            let _ = tokio::time::timeout(wait, tail.wait_for(|next| *next > from.next)).await;
        }
        self.read(from, entries_max, bytes_max)
    }
}

/// What a reader could see of a stored object before a change: enough to name the
/// change (`change_kind`) without keeping a copy of the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Before {
    pub live: bool,
    /// Its deadline while live (`object::expiry_deadline_ms`).
    pub deadline_ms: Option<u64>,
}

impl Before {
    pub fn of(object: &Object) -> Before {
        Before {
            live: !is_tombstone(object),
            deadline_ms: crate::object::expiry_deadline_ms(object),
        }
    }
}

/// What a change from `before` (`None`: nothing stored) to `after` is to a reader,
/// `None` if none can see it (`changed` false: the same object; or a tombstone merged
/// into a tombstone).
///
/// A delete made at or after the deadline of what it deleted is an expiry: the
/// sweeper's `Expire`, or a delete of a key already expired (which readers could no
/// longer see either). Its report carries `expiry_digest`, as the report made at the
/// deadline does (`replica::deadlines`), so the two are one change to a reader.
pub fn change_kind(before: Option<Before>, after: &Object, changed: bool) -> Option<ChangeKind> {
    if !changed {
        return None;
    }
    if !is_tombstone(after) {
        return Some(ChangeKind::Written);
    }
    match before {
        Some(Before { live: false, .. }) => None,
        Some(Before {
            deadline_ms: Some(deadline),
            ..
        }) if after.deleted_ms() >= deadline => Some(ChangeKind::Expired),
        _ => Some(ChangeKind::Deleted),
    }
}

/// The digest an expiry is reported under: of the key (storage bytes) and the deadline
/// that passed, whichever replica or path reports it.
pub fn expiry_digest(key: &[u8], deadline_ms: u64) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("cartwheel 2026 feed expiry v1");
    hasher.update(&deadline_ms.to_le_bytes());
    hasher.update(key);
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests;
