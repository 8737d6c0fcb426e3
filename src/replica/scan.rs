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
use crate::object::{decode_object, Class, ObjectKey};
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

/// The position of a stored key (class tag + key) in a ring of `partitions`.
pub fn position_of(storage_key: &[u8], partitions: u32) -> Option<u32> {
    let key = ObjectKey::from_storage_bytes(storage_key)?;
    Some(crate::ring::position_in_partition(key.hash(), partitions))
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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn keys(window: Window) -> (Vec<Vec<u8>>, bool) {
        let (entries, more) = window.finish();
        (entries.into_iter().map(|(key, _)| key).collect(), more)
    }

    #[test]
    fn a_window_keeps_the_smallest_positions_and_whole_groups() {
        let mut window = Window::new(10, 2, 1 << 20);
        window.offer(9, b"before".to_vec(), vec![]);
        window.offer(30, b"c".to_vec(), vec![]);
        window.offer(20, b"b".to_vec(), vec![]);
        window.offer(20, b"a".to_vec(), vec![]);
        window.offer(40, b"d".to_vec(), vec![]);
        // Position 20 holds two keys: the page is that group alone.
        assert_eq!(keys(window), (vec![b"a".to_vec(), b"b".to_vec()], true));
    }

    #[test]
    fn a_group_larger_than_the_budget_is_still_a_page() {
        let mut window = Window::new(0, 1, 1);
        window.offer(5, b"a".to_vec(), vec![0; 100]);
        window.offer(5, b"b".to_vec(), vec![0; 100]);
        assert_eq!(keys(window), (vec![b"a".to_vec(), b"b".to_vec()], false));
    }

    #[test]
    fn a_window_holding_everything_says_there_is_no_more() {
        let mut window = Window::new(0, 10, 1 << 20);
        window.offer(1, b"a".to_vec(), vec![1]);
        window.offer(2, b"b".to_vec(), vec![2]);
        assert_eq!(keys(window), (vec![b"a".to_vec(), b"b".to_vec()], false));
    }

    /// A replica over a memory store of one partition holding `keys` (class, key).
    fn replica_with(keys: &[(Class, &[u8])]) -> Replica {
        use crate::storage::{CommitGate, Durability, MemoryStorage, Storage};
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new(1).unwrap());
        let object = crate::object::Object::Doc(crate::crdt::Doc::Redis(Default::default()));
        for (class, key) in keys {
            let key = StoreKey::new(PartitionId(0), ObjectKey::new(*class, key).storage_bytes());
            let bytes = crate::object::encode_object(&object);
            storage
                .update(&key, &mut |_| Ok(Some(bytes.clone())))
                .unwrap();
        }
        let gate = CommitGate::new(storage.clone(), Durability::Memory);
        let trees = Arc::new(super::super::trees::Trees::new(2));
        Replica::new(crate::clock::Actor(1), 1, storage, gate, trees)
    }

    #[test]
    fn a_class_page_holds_that_class_only_the_empty_key_included_by_position() {
        let replica = replica_with(&[
            (Class::Kv, b"kv"),
            (Class::Resp, b""),
            (Class::Resp, b"a"),
            (Class::Resp, b"b"),
            (Class::Auth, b"token"),
        ]);
        let scan = ClassScan {
            partition: PartitionId(0),
            class: Class::Resp,
            from: 0,
            keys_max: 10,
            bytes_max: 1 << 20,
        };
        let (entries, more) = replica.class_page(&scan).unwrap();
        assert!(!more);
        let positions: Vec<u32> = entries
            .iter()
            .map(|entry| position_of(&entry.key, 1).unwrap())
            .collect();
        let mut names: Vec<Vec<u8>> = entries.into_iter().map(|entry| entry.key).collect();
        assert!(
            positions.windows(2).all(|pair| pair[0] <= pair[1]),
            "{positions:?}"
        );
        names.sort();
        assert_eq!(names, vec![vec![3], vec![3, b'a'], vec![3, b'b']]);
        // A page of one key ends at the smallest position, and says more follow.
        let one = ClassScan {
            keys_max: 1,
            ..scan
        };
        let (entries, more) = replica.class_page(&one).unwrap();
        assert!(more);
        assert_eq!(entries.len(), 1);
        assert_eq!(position_of(&entries[0].key, 1), positions.first().copied());
    }

    proptest! {
        /// Pages chained from the position after each page's last one return every
        /// entry exactly once, in order, whatever order the store offers them in.
        #[test]
        fn chained_pages_cover_every_entry_once(
            entries in proptest::collection::btree_map(
                (0u32..64, proptest::collection::vec(any::<u8>(), 0..3)), 0usize..20, 0..60),
            keys_max in 1usize..8,
            bytes_max in 1usize..60,
        ) {
            let mut seen = Vec::new();
            let mut from = 0u32;
            for _ in 0..200 {
                let mut window = Window::new(from, keys_max, bytes_max);
                for ((position, key), size) in entries.iter().rev() {
                    window.offer(*position, key.clone(), vec![0; *size]);
                }
                let last = window.kept.keys().last().map(|(position, _)| *position);
                let (page, more) = window.finish();
                seen.extend(page.into_iter().map(|(key, _)| key));
                match (more, last) {
                    (true, Some(last)) => from = last + 1,
                    _ => break,
                }
            }
            let expected: Vec<Vec<u8>> = entries.keys().map(|(_, key)| key.clone()).collect();
            prop_assert_eq!(seen, expected);
        }
    }
}
