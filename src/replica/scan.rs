//! One replica's page of a cluster-wide SCAN: the stored objects of one class of one
//! partition whose keys lie at or after a hash position (`ring::position_in_partition`),
//! ordered by (position, key), cut only between positions so that the next page, which
//! starts at the position after the last one sent, misses nothing.
//!
//! It owns the choice of the page ([`Window`], pure) and the read of the partition's
//! class range that feeds it. It never decides whether a key is live (the coordinator
//! does, on the merge of several replicas' pages) and never writes.

use super::{Replica, ReplicaError};
use crate::ids::PartitionId;
use crate::limits;
use crate::object::{decode_object, position_of, Class};
use crate::storage::StoreKey;
use crate::wire::PartitionEntry;
use std::collections::BTreeMap;

/// What one page of a class scan asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassScan {
    pub partition: PartitionId,
    pub class: Class,
    /// The first position the page covers.
    pub from: u32,
    pub keys_max: usize,
    pub bytes_max: usize,
}

/// The smallest keys (by position, then key) at or after `from` seen so far, in
/// whole groups of one position, within a count and a byte budget.
#[derive(Debug)]
pub struct Window {
    from: u32,
    keys_max: usize,
    bytes_max: usize,
    kept: BTreeMap<(u32, Vec<u8>), Vec<u8>>,
    bytes: usize,
    /// The smallest position left out: every key at or past it is for a later page.
    bound: Option<u32>,
}

impl Window {
    pub fn new(from: u32, keys_max: usize, bytes_max: usize) -> Window {
        Window {
            from,
            keys_max: keys_max.max(1),
            bytes_max,
            kept: BTreeMap::new(),
            bytes: 0,
            bound: None,
        }
    }

    /// Offers one stored entry at `position`.
    pub fn offer(&mut self, position: u32, key: Vec<u8>, value: Vec<u8>) {
        if position < self.from || self.bound.is_some_and(|bound| position >= bound) {
            return;
        }
        self.bytes += key.len() + value.len();
        if let Some(old) = self.kept.insert((position, key), value) {
            self.bytes -= old.len();
        }
        while self.kept.len() > self.keys_max || self.bytes > self.bytes_max {
            if !self.drop_last_group() {
                break;
            }
        }
    }

    /// Drops the keys of the largest position kept, unless they are the only group
    /// (a page always holds one); says whether it dropped any.
    fn drop_last_group(&mut self) -> bool {
        let (Some(((first, _), _)), Some(((last, _), _))) =
            (self.kept.first_key_value(), self.kept.last_key_value())
        else {
            return false;
        };
        let (first, last) = (*first, *last);
        if first == last {
            return false;
        }
        while let Some(entry) = self.kept.last_entry() {
            if entry.key().0 != last {
                break;
            }
            let ((_, key), value) = entry.remove_entry();
            self.bytes -= key.len() + value.len();
        }
        self.bound = Some(last);
        true
    }

    /// The page: its entries in order, and whether keys were left for a later page.
    pub fn finish(self) -> (Vec<crate::storage::Entry>, bool) {
        let more = self.bound.is_some();
        let entries = self
            .kept
            .into_iter()
            .map(|((_, key), value)| (key, value))
            .collect();
        (entries, more)
    }
}

impl Replica {
    /// The page `scan` asks for, and whether more keys of the class lie past it.
    /// Refused when the partition holds more keys of the class than
    /// `RESP_SCAN_REPLICA_KEYS_EXAMINED_MAX`.
    pub fn class_page(
        &self,
        scan: &ClassScan,
    ) -> Result<(Vec<PartitionEntry>, bool), ReplicaError> {
        let mut window = Window::new(scan.from, scan.keys_max, scan.bytes_max);
        let tag = scan.class.tag();
        // The empty key is stored as the bare tag; the scan below starts after it.
        let empty = StoreKey::new(scan.partition, vec![tag]);
        if let Some(value) = self.storage.get(&empty)? {
            window.offer(self.position(&[tag]), vec![tag], value);
        }
        let mut after = vec![tag];
        let mut examined = 0usize;
        loop {
            let page = self.storage.scan_partition(
                scan.partition,
                Some(&after),
                limits::SCAN_ENTRIES_MAX,
            )?;
            let full = page.len() >= limits::SCAN_ENTRIES_MAX;
            let mut last = None;
            for (key, value) in page {
                if key.first() != Some(&tag) {
                    return Ok(decoded(window));
                }
                examined += 1;
                if examined > limits::RESP_SCAN_REPLICA_KEYS_EXAMINED_MAX {
                    return Err(ReplicaError::TooManyToScan {
                        partition: scan.partition,
                        keys_max: limits::RESP_SCAN_REPLICA_KEYS_EXAMINED_MAX,
                    });
                }
                window.offer(self.position(&key), key.clone(), value);
                last = Some(key);
            }
            match last {
                Some(key) if full => after = key,
                _ => return Ok(decoded(window)),
            }
        }
    }

    fn position(&self, storage_key: &[u8]) -> u32 {
        position_of(storage_key, self.partitions).unwrap_or(0)
    }
}

/// The window's entries decoded; an unreadable object is skipped and logged (anti-
/// entropy and the other replicas still have the key).
fn decoded(window: Window) -> (Vec<PartitionEntry>, bool) {
    let (entries, more) = window.finish();
    let entries = entries
        .into_iter()
        .filter_map(|(key, value)| match decode_object(&value) {
            Ok(object) => Some(PartitionEntry { key, object }),
            Err(error) => {
                tracing::warn!(%error, "skipping an unreadable object in a scan page");
                None
            }
        })
        .collect();
    (entries, more)
}

#[cfg(test)]
mod tests;
