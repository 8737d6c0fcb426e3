//! The expiry index on both stores: an update's `Expiry` adds and removes entries in the
//! same write, a due read returns only what is due in (deadline, key) order within its
//! bounds, a conditional drop respects its check, and the memory twin's power loss
//! never keeps a record whose entry it lost.

use super::super::*;
use super::on_both;
use crate::ids::PartitionId;

fn write(
    storage: &dyn Storage,
    key: &StoreKey,
    bytes: &[u8],
    before: Option<u64>,
    after: Option<u64>,
) {
    let write = Write {
        bytes: bytes.to_vec(),
        expiry: Expiry {
            before_ms: before,
            after_ms: after,
        },
    };
    storage
        .update(key, &mut |_| Ok(Some(write.clone())))
        .expect("write");
}

/// Every entry of `partition`, due or not.
fn entries(storage: &dyn Storage, partition: u32) -> Vec<(u64, Vec<u8>)> {
    storage
        .expiry_due(
            PartitionId(partition),
            None,
            u64::MAX,
            usize::MAX,
            usize::MAX,
        )
        .expect("index read")
        .into_iter()
        .map(|entry| (entry.deadline_ms, entry.key))
        .collect()
}

#[test]
fn the_index_follows_set_refresh_persist_and_delete() {
    on_both(4, |storage| {
        let key = StoreKey::new(PartitionId(2), b"k".to_vec());
        write(storage.as_ref(), &key, b"set", None, Some(100));
        assert_eq!(entries(storage.as_ref(), 2), vec![(100, b"k".to_vec())]);
        // A refresh moves the entry; the old one is gone.
        write(storage.as_ref(), &key, b"refreshed", Some(100), Some(500));
        assert_eq!(entries(storage.as_ref(), 2), vec![(500, b"k".to_vec())]);
        // The same deadline again (a merge that changed nothing of it) keeps one entry.
        write(storage.as_ref(), &key, b"merged", Some(500), Some(500));
        assert_eq!(entries(storage.as_ref(), 2), vec![(500, b"k".to_vec())]);
        // Persist (or a tombstone): no deadline, no entry.
        write(storage.as_ref(), &key, b"tombstone", Some(500), None);
        assert!(entries(storage.as_ref(), 2).is_empty());
        // Other partitions never saw any of it.
        for partition in [0, 1, 3] {
            assert!(entries(storage.as_ref(), partition).is_empty());
        }
    });
}

#[test]
fn an_aborted_or_empty_update_leaves_the_index_alone() {
    on_both(1, |storage| {
        let key = StoreKey::new(PartitionId(0), b"k".to_vec());
        write(storage.as_ref(), &key, b"v", None, Some(7));
        let aborted = storage.update(&key, &mut |_| {
            Err(UpdateAbort::new(AbortReason::Caller, "refused"))
        });
        assert!(aborted.is_err());
        storage.update(&key, &mut |_| Ok(None)).expect("no write");
        assert_eq!(entries(storage.as_ref(), 0), vec![(7, b"k".to_vec())]);
    });
}

#[test]
fn a_due_read_returns_only_what_is_due_in_order_and_pages_on() {
    on_both(2, |storage| {
        for (name, deadline) in [("c", 30), ("a", 10), ("b", 10), ("late", 1_000), ("d", 20)] {
            let key = StoreKey::new(PartitionId(1), name.as_bytes().to_vec());
            write(storage.as_ref(), &key, b"v", None, Some(deadline));
        }
        // Due by 30 (inclusive): never the one due at 1000.
        let due = storage
            .expiry_due(PartitionId(1), None, 30, usize::MAX, usize::MAX)
            .expect("due");
        let got: Vec<(u64, &[u8])> = due
            .iter()
            .map(|e| (e.deadline_ms, e.key.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![(10, &b"a"[..]), (10, b"b"), (20, b"d"), (30, b"c")]
        );
        // Pages of two, each going on after the last entry of the one before.
        let first = storage
            .expiry_due(PartitionId(1), None, 30, 2, usize::MAX)
            .expect("page");
        assert_eq!(first.len(), 2);
        let second = storage
            .expiry_due(PartitionId(1), first.last(), 30, 2, usize::MAX)
            .expect("page");
        assert_eq!([first, second].concat(), due);
        // The byte bound ends a page once reached: one entry of 9 bytes fills 9 bytes.
        let bounded = storage
            .expiry_due(PartitionId(1), None, 30, usize::MAX, 9)
            .expect("page");
        assert_eq!(bounded.len(), 1);
        // Nothing due before the first deadline; another partition has nothing.
        assert!(storage
            .expiry_due(PartitionId(1), None, 9, usize::MAX, usize::MAX)
            .expect("due")
            .is_empty());
        assert!(entries(storage.as_ref(), 0).is_empty());
    });
}

#[test]
fn a_drop_removes_an_entry_only_when_its_check_says_stale() {
    on_both(1, |storage| {
        let key = StoreKey::new(PartitionId(0), b"k".to_vec());
        write(storage.as_ref(), &key, b"current", None, Some(5));
        let mut seen = None;
        let kept = storage
            .expiry_drop(&key, 5, &mut |current| {
                seen = current.map(<[u8]>::to_vec);
                false
            })
            .expect("drop");
        assert!(!kept);
        assert_eq!(
            seen.as_deref(),
            Some(&b"current"[..]),
            "the check saw the record"
        );
        assert_eq!(entries(storage.as_ref(), 0), vec![(5, b"k".to_vec())]);
        assert!(storage.expiry_drop(&key, 5, &mut |_| true).expect("drop"));
        assert!(entries(storage.as_ref(), 0).is_empty());
        // The backfill's put adds one back without touching the record.
        storage.expiry_put(&key, 6).expect("put");
        assert_eq!(entries(storage.as_ref(), 0), vec![(6, b"k".to_vec())]);
        assert_eq!(storage.get(&key).expect("get"), Some(b"current".to_vec()));
    });
}

#[test]
fn the_last_partition_and_the_largest_deadline_are_covered() {
    on_both(3, |storage| {
        let key = StoreKey::new(PartitionId(2), b"k".to_vec());
        write(storage.as_ref(), &key, b"v", None, Some(u64::MAX - 1));
        let due = storage
            .expiry_due(PartitionId(2), None, u64::MAX, usize::MAX, usize::MAX)
            .expect("due");
        assert_eq!(due.len(), 1);
        assert!(
            storage.expiry_due(PartitionId(3), None, 0, 1, 1).is_err(),
            "a partition outside the store is refused"
        );
    });
}

#[test]
fn a_power_loss_of_the_memory_twin_keeps_each_record_with_its_entry() {
    let storage = MemoryStorage::new(1).expect("memory store");
    let key = StoreKey::new(PartitionId(0), b"k".to_vec());
    write(&storage, &key, b"old", None, Some(10));
    storage.flush().expect("flush");
    write(&storage, &key, b"new", Some(10), Some(20));
    storage.lose_unflushed_writes();
    assert_eq!(storage.get(&key).expect("get"), Some(b"old".to_vec()));
    assert_eq!(entries(&storage, 0), vec![(10, b"k".to_vec())]);
}

#[test]
fn a_sled_store_keeps_its_index_across_a_reopen() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let key = StoreKey::new(PartitionId(1), b"k".to_vec());
    {
        let store = SledStorage::open(directory.path(), super::sled_options(2)).expect("open");
        write(&store, &key, b"v", None, Some(42));
        store.close().expect("close");
    }
    let store = SledStorage::open(directory.path(), super::sled_options(2)).expect("reopen");
    assert_eq!(entries(&store, 1), vec![(42, b"k".to_vec())]);
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(64))]
    /// Through random writes that set, move and clear deadlines (each telling the store
    /// the deadline it replaces, as the replica does), the index holds exactly one entry
    /// per record with a deadline, at that deadline.
    #[test]
    fn the_index_is_exactly_the_records_deadlines(
        writes in proptest::collection::vec((0u8..6, proptest::option::of(0u64..4)), 1..60)
    ) {
        on_both(1, |storage| {
            let mut model = std::collections::BTreeMap::new();
            for (name, deadline) in &writes {
                let key = StoreKey::new(PartitionId(0), vec![*name]);
                let before = model.get(name).copied().flatten();
                write(storage.as_ref(), &key, b"v", before, *deadline);
                model.insert(*name, *deadline);
            }
            let mut wanted: Vec<(u64, Vec<u8>)> = model
                .iter()
                .filter_map(|(name, deadline)| deadline.map(|d| (d, vec![*name])))
                .collect();
            wanted.sort();
            assert_eq!(entries(storage.as_ref(), 0), wanted);
        });
    }
}
