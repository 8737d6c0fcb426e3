//! Writers of one key, on both stores: concurrent updates lose nothing and run their
//! function once, and a delete or a conditional delete is ordered with an update of the
//! same key, never inside it.
//!
//! None of these waits for a race to happen. The counting tests check totals that any
//! interleaving of correctly ordered writes gives; the ordering tests start the delete
//! while the update's function runs and wait a while for it inside the function: a
//! correct store never lets it finish there, so only a broken one depends on the wait.

use super::{on_both, put};
use crate::ids::PartitionId;
use crate::limits::STORAGE_WRITE_STRIPES;
use crate::storage::stripes::KeyLocks;
use crate::storage::{AbortReason, Storage, StoreKey, UpdateAbort};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier};
use std::time::Duration;

/// How long an update's function gives a delete of its key to (wrongly) finish.
const DELETE_WINDOW_MS: u64 = 100;

fn count_of(bytes: &[u8]) -> Result<u64, UpdateAbort> {
    let array = bytes
        .try_into()
        .map_err(|_| UpdateAbort::new(AbortReason::Undecodable, "not a counter"))?;
    Ok(u64::from_be_bytes(array))
}

/// Adds one to the counter under `key` (absent: 0); returns the count it stored.
fn increment(storage: &dyn Storage, key: &StoreKey, calls: &AtomicU64) -> u64 {
    let stored = storage
        .update(key, &mut |current| {
            calls.fetch_add(1, Ordering::Relaxed);
            let count = current.map(count_of).transpose()?.unwrap_or(0);
            Ok(Some((count + 1).to_be_bytes().to_vec().into()))
        })
        .expect("increment")
        .expect("an increment writes");
    count_of(&stored).expect("a counter")
}

#[test]
fn concurrent_updates_lose_no_increment_and_run_their_function_once() {
    const THREADS: usize = 8;
    const INCREMENTS: u64 = 250;
    on_both(2, |storage| {
        let key = StoreKey::new(PartitionId(1), b"counter".to_vec());
        let calls = AtomicU64::new(0);
        let start = Barrier::new(THREADS);
        let mut seen: Vec<u64> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..THREADS)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        (0..INCREMENTS)
                            .map(|_| increment(storage.as_ref(), &key, &calls))
                            .collect::<Vec<u64>>()
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|thread| thread.join().expect("incrementer"))
                .collect()
        });
        let total = THREADS as u64 * INCREMENTS;
        let stored = storage.get(&key).expect("get").expect("counter present");
        assert_eq!(count_of(&stored).expect("a counter"), total);
        // Each update saw the one before it: the counts stored are 1..=total, once each.
        seen.sort_unstable();
        assert_eq!(seen, (1..=total).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::Relaxed), total, "one call per update");
    });
}

#[test]
fn a_delete_waits_for_an_update_of_its_key() {
    on_both(2, |storage| {
        let key = StoreKey::new(PartitionId(0), b"cart".to_vec());
        put(storage.as_ref(), &key, b"old");
        let deleted_inside = std::thread::scope(|scope| {
            let (done, finished) = mpsc::channel();
            let mut deleted_inside = None;
            storage
                .update(&key, &mut |_| {
                    let done = done.clone();
                    let (storage, key) = (&storage, &key);
                    scope.spawn(move || {
                        storage.delete(key).expect("delete");
                        let _ = done.send(());
                    });
                    let waited = Duration::from_millis(DELETE_WINDOW_MS);
                    deleted_inside = Some(finished.recv_timeout(waited).is_ok());
                    Ok(Some(b"new".to_vec().into()))
                })
                .expect("update");
            deleted_inside
        });
        assert_eq!(
            deleted_inside,
            Some(false),
            "the delete ran inside the update"
        );
        // The delete came after the update, so it removed the update's value.
        assert_eq!(storage.get(&key).expect("get"), None);
    });
}

#[test]
fn a_conditional_delete_sees_the_value_an_update_wrote() {
    on_both(2, |storage| {
        let key = StoreKey::new(PartitionId(0), b"tombstone".to_vec());
        put(storage.as_ref(), &key, b"old");
        let removed = std::thread::scope(|scope| {
            let (done, finished) = mpsc::channel();
            let mut deleter = None;
            storage
                .update(&key, &mut |_| {
                    let done = done.clone();
                    let (storage, key) = (&storage, &key);
                    deleter = Some(scope.spawn(move || {
                        let removed = storage.delete_if(key, b"old").expect("delete_if");
                        let _ = done.send(());
                        removed
                    }));
                    let waited = Duration::from_millis(DELETE_WINDOW_MS);
                    assert!(
                        finished.recv_timeout(waited).is_err(),
                        "the conditional delete ran inside the update"
                    );
                    Ok(Some(b"new".to_vec().into()))
                })
                .expect("update");
            deleter
                .expect("the update ran its function")
                .join()
                .expect("deleter")
        });
        assert!(!removed, "the value it expected was replaced first");
        assert_eq!(storage.get(&key).expect("get"), Some(b"new".to_vec()));
    });
}

#[test]
fn conditional_deletes_and_updates_account_for_every_increment() {
    const THREADS: usize = 4;
    const INCREMENTS: u64 = 200;
    on_both(1, |storage| {
        let key = StoreKey::new(PartitionId(0), b"counter".to_vec());
        let (calls, finished) = (AtomicU64::new(0), AtomicUsize::new(0));
        let removed = std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..INCREMENTS {
                        increment(storage.as_ref(), &key, &calls);
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                });
            }
            // Removes whatever count it read, if it is still there: every increment
            // ends up either in a removed value or in the last one.
            let mut removed = 0;
            while finished.load(Ordering::SeqCst) < THREADS {
                let Some(bytes) = storage.get(&key).expect("get") else {
                    continue;
                };
                if storage.delete_if(&key, &bytes).expect("delete_if") {
                    removed += count_of(&bytes).expect("a counter");
                }
            }
            removed
        });
        let last = match storage.get(&key).expect("get") {
            Some(bytes) => count_of(&bytes).expect("a counter"),
            None => 0,
        };
        assert_eq!(removed + last, THREADS as u64 * INCREMENTS);
    });
}

#[test]
fn a_key_always_takes_the_same_stripe_and_keys_spread_over_them() {
    let locks = KeyLocks::new();
    let key = StoreKey::new(PartitionId(3), b"user:42".to_vec());
    let same = StoreKey::new(PartitionId(3), b"user:42".to_vec());
    assert_eq!(locks.stripe(&key), locks.stripe(&same));
    let other_partition = StoreKey::new(PartitionId(4), b"user:42".to_vec());
    let stripes: std::collections::BTreeSet<usize> = (0..10_000u32)
        .map(|index| locks.stripe(&StoreKey::new(PartitionId(index % 7), index.to_be_bytes())))
        .chain([locks.stripe(&other_partition)])
        .collect();
    assert!(stripes.iter().all(|&stripe| stripe < STORAGE_WRITE_STRIPES));
    // 10 000 keys over 1024 stripes leave a stripe empty only now and then; a hash that
    // ignored the key would fill at most the 7 partitions' and the other key's.
    assert!(
        stripes.len() > STORAGE_WRITE_STRIPES / 2,
        "{}",
        stripes.len()
    );
}
