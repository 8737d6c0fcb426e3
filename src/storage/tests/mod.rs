//! Tests shared by both stores: opening rules, update semantics. The model test, the
//! commit gate tests and the tests of concurrent writers of one key live in submodules.

mod commit;
mod expiry;
mod model;
mod writers;

use super::*;
use crate::ids::PartitionId;
use crate::limits::SCAN_ENTRIES_MAX;
use std::sync::Arc;

pub(super) fn sled_options(partitions: u32) -> StorageOptions {
    StorageOptions {
        partitions,
        cache_bytes: 8 * 1024 * 1024,
        durability: Durability::FlushEachWrite,
    }
}

pub(super) fn put(storage: &dyn Storage, key: &StoreKey, value: &[u8]) -> Option<Vec<u8>> {
    storage
        .update(key, &mut |_| Ok(Some(value.to_vec().into())))
        .expect("put succeeds")
}

/// Runs `check` against a fresh memory store and a fresh sled store of `partitions`.
pub(super) fn on_both(partitions: u32, check: impl Fn(Arc<dyn Storage>)) {
    check(Arc::new(
        MemoryStorage::new(partitions).expect("memory store"),
    ));
    let directory = tempfile::tempdir().expect("temporary directory");
    let sled = SledStorage::open(directory.path(), sled_options(partitions)).expect("sled opens");
    check(Arc::new(sled));
}

#[test]
fn refuses_an_unknown_format_version() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = SledStorage::open(directory.path(), sled_options(8)).expect("create");
    store
        .meta_tree_for_tests()
        .insert("format_version", &2u32.to_be_bytes())
        .expect("overwrite version");
    store.close().expect("close");
    let error = SledStorage::open(directory.path(), sled_options(8))
        .err()
        .expect("refused");
    assert!(
        matches!(
            error,
            StorageError::FormatVersion {
                found: 2,
                supported: FORMAT_VERSION
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains('2') && message.contains('1'), "{message}");
}

#[test]
fn refuses_undecodable_metadata_as_corrupt() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = SledStorage::open(directory.path(), sled_options(8)).expect("create");
    store
        .meta_tree_for_tests()
        .insert("format_version", &[0u8, 1, 2][..])
        .expect("overwrite version");
    store.close().expect("close");
    let error = SledStorage::open(directory.path(), sled_options(8))
        .err()
        .expect("refused");
    assert!(
        matches!(
            error,
            StorageError::Corrupt {
                what: "format version",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn refuses_another_partition_count_and_keeps_data_for_the_right_one() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let key = StoreKey::new(PartitionId(3), b"k".to_vec());
    let store = SledStorage::open(directory.path(), sled_options(8)).expect("create");
    put(&store, &key, b"v");
    store.close().expect("close");

    let error = SledStorage::open(directory.path(), sled_options(16))
        .err()
        .expect("refused");
    assert!(
        matches!(
            error,
            StorageError::PartitionCount {
                found: 8,
                expected: 16
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("8 partitions") && message.contains("16"),
        "{message}"
    );

    let store = SledStorage::open(directory.path(), sled_options(8)).expect("reopen");
    assert_eq!(store.get(&key).expect("get"), Some(b"v".to_vec()));
    assert_eq!(store.partitions(), 8);
    assert_eq!(store.durability(), Durability::FlushEachWrite);
}

#[test]
fn refuses_zero_partitions_and_keys_outside_the_partitions() {
    let directory = tempfile::tempdir().expect("temporary directory");
    assert!(matches!(
        SledStorage::open(directory.path(), sled_options(0)),
        Err(StorageError::ZeroPartitions)
    ));
    assert!(matches!(
        MemoryStorage::new(0),
        Err(StorageError::ZeroPartitions)
    ));
    on_both(4, |storage| {
        let outside = StoreKey::new(PartitionId(4), b"k".to_vec());
        let refused = |result: Result<_, StorageError>| {
            matches!(
                result,
                Err(StorageError::PartitionOutOfRange {
                    partition: 4,
                    partitions: 4
                })
            )
        };
        assert!(refused(storage.get(&outside).map(drop)));
        assert!(refused(
            storage
                .update(&outside, &mut |_| Ok(Some(vec![1].into())))
                .map(drop)
        ));
        assert!(refused(storage.delete(&outside)));
        assert!(refused(
            storage.scan_partition(PartitionId(4), None, 10).map(drop)
        ));
        assert_eq!(storage.len().expect("len"), 0);
    });
}

#[test]
fn an_aborted_update_leaves_the_value_unchanged() {
    on_both(4, |storage| {
        let key = StoreKey::new(PartitionId(1), b"cart".to_vec());
        put(storage.as_ref(), &key, b"old");
        let mut calls = 0;
        let error = storage
            .update(&key, &mut |current| {
                calls += 1;
                assert_eq!(current, Some(&b"old"[..]));
                Err(UpdateAbort::new(
                    AbortReason::PreconditionFailed,
                    "key exists",
                ))
            })
            .expect_err("aborted");
        assert_eq!(calls, 1);
        match error {
            StorageError::Aborted(abort) => {
                assert_eq!(abort.reason, AbortReason::PreconditionFailed);
                assert_eq!(abort.message, "key exists");
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(storage.get(&key).expect("get"), Some(b"old".to_vec()));

        #[derive(Debug, PartialEq)]
        struct TooOld(u64);
        let typed = storage.update_with(&key, |_| Err::<Option<Write>, _>(TooOld(7)));
        assert!(
            matches!(typed, Err(UpdateError::Aborted(TooOld(7)))),
            "{typed:?}"
        );
        assert_eq!(storage.get(&key).expect("get"), Some(b"old".to_vec()));
    });
}

#[test]
fn an_update_returning_none_writes_nothing_and_returns_the_stored_value() {
    on_both(4, |storage| {
        let present = StoreKey::new(PartitionId(0), b"a".to_vec());
        let absent = StoreKey::new(PartitionId(0), b"b".to_vec());
        put(storage.as_ref(), &present, b"1");
        assert_eq!(
            storage.update(&present, &mut |_| Ok(None)).expect("update"),
            Some(b"1".to_vec())
        );
        assert_eq!(
            storage.update(&absent, &mut |_| Ok(None)).expect("update"),
            None
        );
        assert_eq!(storage.len().expect("len"), 1);
        let typed: Result<_, UpdateError<()>> = storage.update_with(&absent, |current| {
            assert_eq!(current, None);
            Ok(Some(b"2".to_vec().into()))
        });
        assert_eq!(typed.expect("typed update"), Some(b"2".to_vec()));
    });
}

#[test]
fn scans_are_clamped_to_the_page_bound_and_stay_in_their_partition() {
    let storage = MemoryStorage::new(3).expect("memory store");
    for index in 0..=SCAN_ENTRIES_MAX as u32 {
        put(
            &storage,
            &StoreKey::new(PartitionId(1), index.to_be_bytes().to_vec()),
            b"v",
        );
    }
    put(
        &storage,
        &StoreKey::new(PartitionId(0), vec![0xff; 8]),
        b"before",
    );
    put(
        &storage,
        &StoreKey::new(PartitionId(2), Vec::new()),
        b"after",
    );
    let page = storage
        .scan_partition(PartitionId(1), None, usize::MAX)
        .expect("scan");
    assert_eq!(page.len(), SCAN_ENTRIES_MAX);
    let last = page.last().expect("non-empty").0.clone();
    let rest = storage
        .scan_partition(PartitionId(1), Some(&last), usize::MAX)
        .expect("scan");
    assert_eq!(
        rest,
        vec![(
            (SCAN_ENTRIES_MAX as u32).to_be_bytes().to_vec(),
            b"v".to_vec()
        )]
    );
}

#[test]
fn sizes_follow_the_contents() {
    let memory = MemoryStorage::new(1).expect("memory store");
    let key = StoreKey::new(PartitionId(0), b"key".to_vec());
    put(&memory, &key, b"12345");
    assert_eq!(memory.size_on_disk().expect("size"), 4 + 3 + 5);
    put(&memory, &key, b"1");
    assert_eq!(memory.size_on_disk().expect("size"), 4 + 3 + 1);
    memory.delete(&key).expect("delete");
    assert_eq!(memory.size_on_disk().expect("size"), 0);
    assert!(memory.is_empty().expect("is_empty"));

    let directory = tempfile::tempdir().expect("temporary directory");
    let sled = SledStorage::open(directory.path(), sled_options(1)).expect("open");
    put(&sled, &key, &[7u8; 4096]);
    sled.flush().expect("flush");
    assert!(sled.size_on_disk().expect("size") > 0);
}

#[test]
fn memory_store_loses_exactly_the_unflushed_writes() {
    let storage = MemoryStorage::new(2).expect("memory store");
    let kept = StoreKey::new(PartitionId(0), b"kept".to_vec());
    let rewritten = StoreKey::new(PartitionId(1), b"rewritten".to_vec());
    let deleted = StoreKey::new(PartitionId(1), b"deleted".to_vec());
    let fresh = StoreKey::new(PartitionId(0), b"fresh".to_vec());
    put(&storage, &kept, b"1");
    put(&storage, &rewritten, b"1");
    put(&storage, &deleted, b"1");
    storage.flush().expect("flush");
    put(&storage, &rewritten, b"2");
    put(&storage, &rewritten, b"3");
    storage.delete(&deleted).expect("delete");
    put(&storage, &fresh, b"1");
    storage.lose_unflushed_writes();
    assert_eq!(storage.get(&kept).expect("get"), Some(b"1".to_vec()));
    assert_eq!(storage.get(&rewritten).expect("get"), Some(b"1".to_vec()));
    assert_eq!(storage.get(&deleted).expect("get"), Some(b"1".to_vec()));
    assert_eq!(storage.get(&fresh).expect("get"), None);
    assert_eq!(storage.len().expect("len"), 3);
    assert_eq!(storage.size_on_disk().expect("size"), 3 * 4 + 4 + 9 + 7 + 3);
}

#[test]
fn a_store_held_open_is_refused_as_locked() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let _held = SledStorage::open(directory.path(), sled_options(1)).expect("open");
    let error = SledStorage::open(directory.path(), sled_options(1))
        .err()
        .expect("refused");
    assert!(matches!(error, StorageError::Locked { .. }), "{error:?}");
}

#[test]
fn delete_if_removes_only_an_unchanged_value() {
    let dir = tempfile::tempdir().unwrap();
    for storage in [
        Box::new(MemoryStorage::new(4).unwrap()) as Box<dyn Storage>,
        Box::new(SledStorage::open(dir.path(), StorageOptions::new(4)).unwrap()),
    ] {
        let key = StoreKey::new(PartitionId(1), b"k".to_vec());
        storage
            .update(&key, &mut |_| Ok(Some(b"v1".to_vec().into())))
            .unwrap();
        assert!(
            !storage.delete_if(&key, b"v0").unwrap(),
            "a changed value stays"
        );
        assert_eq!(storage.get(&key).unwrap(), Some(b"v1".to_vec()));
        assert!(storage.delete_if(&key, b"v1").unwrap());
        assert_eq!(storage.get(&key).unwrap(), None);
    }
}

#[test]
fn a_physical_key_on_the_stack_or_the_heap_is_the_physical_key() {
    // 60 key bytes fill the inline room exactly with the partition prefix; 61 do not.
    for length in [0, 1, 59, 60, 61, 1024] {
        let key = StoreKey::new(PartitionId(0x0102_0304), vec![7; length]);
        let physical = PhysicalKey::of(&key);
        assert_eq!(physical.as_ref(), physical_key(&key).as_slice(), "{length}");
        assert_eq!(
            matches!(physical, PhysicalKey::Inline { .. }),
            length <= 60,
            "{length}"
        );
    }
}

#[test]
fn a_store_is_empty_until_it_holds_a_record_whatever_its_other_spaces_hold() {
    // What a start decides on: an empty store's trees need no rebuild and its data comes
    // from the other replicas; a store with records must not be taken for one.
    on_both(4, |storage| {
        assert!(storage.is_empty().unwrap());
        storage
            .aux_put(AuxSpace::Node, b"incarnation", b"record")
            .unwrap();
        assert!(storage.is_empty().unwrap(), "node metadata is no data");
        put(
            storage.as_ref(),
            &StoreKey::new(PartitionId(3), b"k".to_vec()),
            b"v",
        );
        assert!(!storage.is_empty().unwrap());
        assert_eq!(storage.len().unwrap(), 1);
    });
}
