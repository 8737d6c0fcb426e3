//! The log's bound and positions against a model (every change ever recorded), and
//! what each kind of change is to a reader.

use super::*;
use crate::clock::{Actor, Hlc, VersionVector};
use crate::crdt::redis::{RedisOp, SetExpiry};
use crate::crdt::DocOp;
use crate::object::Blob;
use proptest::prelude::*;

fn digest(n: u64) -> [u8; 32] {
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

#[test]
fn a_reader_that_keeps_up_sees_every_change_in_order() {
    let mut log = Log::new(7, 4, 10_000);
    let mut cursor = log.tail();
    let mut seen = Vec::new();
    for n in 0..50u64 {
        log.record(
            PartitionId((n % 4) as u32),
            vec![n as u8],
            ChangeKind::Written,
            digest(n),
        );
        if n % 7 == 0 {
            let page = log.read(cursor, 3, usize::MAX);
            assert!(!page.behind);
            seen.extend(page.changes.iter().map(|change| change.key[0] as u64));
            cursor = page.next;
        }
    }
    loop {
        let page = log.read(cursor, 3, usize::MAX);
        assert!(!page.behind);
        if page.changes.is_empty() {
            break;
        }
        seen.extend(page.changes.iter().map(|change| change.key[0] as u64));
        cursor = page.next;
    }
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
}

#[test]
fn a_reader_whose_position_was_dropped_is_told_it_fell_behind() {
    let mut log = Log::new(7, 1, 3 * (CHANGE_FIXED_BYTES + 1));
    let start = log.tail();
    for n in 0..5u64 {
        log.record(
            PartitionId(0),
            vec![n as u8],
            ChangeKind::Written,
            digest(n),
        );
    }
    assert_eq!(log.len(), 3, "the bound keeps three changes of this size");
    let page = log.read(start, 100, usize::MAX);
    assert!(page.behind);
    assert!(
        page.changes.is_empty(),
        "a reader behind invalidates all: no changes"
    );
    assert_eq!(page.next, log.tail());
    let again = log.read(page.next, 100, usize::MAX);
    assert!(!again.behind && again.changes.is_empty());
    assert_eq!(log.read_partition(PartitionId(0), 0, 10), None);
    assert_eq!(log.read_partition(PartitionId(0), 1, 10), None);
    let kept = log
        .read_partition(PartitionId(0), 2, 10)
        .expect("seq 3 on are kept");
    assert_eq!(
        kept.iter().map(|change| change.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
}

#[test]
fn another_epoch_or_a_position_never_given_is_behind() {
    let mut log = Log::new(7, 1, 10_000);
    log.record(
        PartitionId(0),
        b"a".to_vec(),
        ChangeKind::Deleted,
        digest(1),
    );
    let restarted = Cursor { epoch: 8, next: 2 };
    assert!(log.read(restarted, 10, usize::MAX).behind);
    let future = Cursor { epoch: 7, next: 99 };
    assert!(log.read(future, 10, usize::MAX).behind);
    assert_eq!(log.read_partition(PartitionId(0), 5, 10), None);
    assert_eq!(
        log.read_partition(PartitionId(3), 0, 10),
        None,
        "no such partition"
    );
}

#[test]
fn a_change_larger_than_the_whole_bound_is_not_kept_and_its_reader_falls_behind() {
    let mut log = Log::new(1, 1, 200);
    let cursor = log.tail();
    log.record(PartitionId(0), vec![0; 500], ChangeKind::Written, digest(0));
    assert_eq!((log.len(), log.bytes()), (0, 0));
    let page = log.read(cursor, 10, usize::MAX);
    assert!(page.behind && page.changes.is_empty());
}

#[test]
fn a_page_stops_at_its_byte_budget_but_carries_at_least_one_change() {
    let mut log = Log::new(1, 1, 100_000);
    let cursor = log.tail();
    for n in 0..10u64 {
        log.record(PartitionId(0), vec![0; 100], ChangeKind::Written, digest(n));
    }
    let page = log.read(cursor, 100, 1);
    assert_eq!(page.changes.len(), 1);
    let page = log.read(page.next, 100, 3 * (100 + CHANGE_FIXED_BYTES));
    assert_eq!(page.changes.len(), 3);
    assert_eq!(page.next.next, 5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Against a model that keeps every change: the log stays within its bound, a read
    /// from any position it gave returns exactly the model's changes from there (or says
    /// it fell behind, and then exactly the changes kept), and a partition read is
    /// refused only when a change of the partition after its position was dropped.
    #[test]
    fn the_log_agrees_with_a_model_of_every_change(
        steps in proptest::collection::vec((0u32..3, 0usize..40, any::<bool>()), 1..200),
        bytes_max in 200usize..2_000,
    ) {
        let mut log = Log::new(3, 3, bytes_max);
        let mut model: Vec<Change> = Vec::new();
        let mut cursors = vec![log.tail()];
        for (index, (partition, key_bytes, read)) in steps.into_iter().enumerate() {
            let global = log.record(
                PartitionId(partition),
                vec![index as u8; key_bytes],
                ChangeKind::Written,
                digest(index as u64),
            );
            let seq = model.iter().filter(|change| change.partition.0 == partition).count() as u64 + 1;
            model.push(Change {
                global,
                partition: PartitionId(partition),
                seq,
                key: vec![index as u8; key_bytes],
                kind: ChangeKind::Written,
                digest: digest(index as u64),
            });
            prop_assert!(log.bytes() <= bytes_max);
            if read {
                cursors.push(log.tail());
            }
        }
        let kept_from = model.len() - log.len();
        for cursor in cursors {
            let page = log.read(cursor, usize::MAX, usize::MAX);
            let from = (cursor.next - 1) as usize;
            if from < kept_from {
                prop_assert!(page.behind);
                prop_assert!(page.changes.is_empty());
                prop_assert_eq!(page.next, log.tail());
            } else {
                prop_assert!(!page.behind);
                prop_assert_eq!(&page.changes[..], &model[from..]);
            }
        }
        for partition in 0..3u32 {
            let of: Vec<&Change> = model.iter().filter(|change| change.partition.0 == partition).collect();
            for after in 0..=of.len() as u64 {
                let dropped = of.iter().any(|change| change.seq > after && (change.global as usize) <= kept_from);
                let read = log.read_partition(PartitionId(partition), after, usize::MAX);
                match read {
                    None => prop_assert!(dropped),
                    Some(changes) => {
                        prop_assert!(!dropped);
                        let want: Vec<Change> = of.iter().filter(|change| change.seq > after).map(|change| (*change).clone()).collect();
                        prop_assert_eq!(changes, want);
                    }
                }
            }
        }
    }
}

fn actor() -> Actor {
    Actor(1)
}

fn at(wall_ms: u64) -> Hlc {
    Hlc {
        wall_ms,
        logical: 0,
    }
}

fn kv(value: Option<&[u8]>, wall_ms: u64, before: Option<Object>) -> Object {
    let context = match &before {
        Some(Object::Kv(kv)) => kv.context().clone(),
        _ => VersionVector::default(),
    };
    let value = value.map(|bytes| Blob(bytes.to_vec()));
    crate::replica::minted(before, actor(), &context, value, at(wall_ms))
        .expect("mint")
        .0
}

fn redis(op: RedisOp, wall_ms: u64, before: Option<Object>) -> Object {
    crate::replica::applied_outcome(before, &DocOp::Redis(op), actor(), at(wall_ms))
        .expect("applied")
        .0
}

#[test]
fn each_change_is_the_kind_a_reader_sees() {
    let written = kv(Some(b"v"), 10, None);
    assert_eq!(change_kind(None, &written, true), Some(ChangeKind::Written));
    assert_eq!(
        change_kind(Some(Before::of(&written)), &written, false),
        None,
        "unchanged"
    );
    let deleted = kv(None, 20, Some(written.clone()));
    assert_eq!(
        change_kind(Some(Before::of(&written)), &deleted, true),
        Some(ChangeKind::Deleted)
    );
    assert_eq!(
        change_kind(None, &deleted, true),
        Some(ChangeKind::Deleted),
        "a replica that never held the value still tells its readers"
    );
    let deleted_later = kv(None, 30, Some(deleted.clone()));
    assert_eq!(
        change_kind(Some(Before::of(&deleted)), &deleted_later, true),
        None,
        "a tombstone merged into one"
    );

    let set = |deadline| RedisOp::Set {
        value: b"v".to_vec(),
        expiry: SetExpiry::AtMs(deadline),
        condition: None,
        get: false,
    };
    let with_ttl = redis(set(1_000), 10, None);
    let deleted_early = redis(RedisOp::Del, 500, Some(with_ttl.clone()));
    assert_eq!(
        change_kind(Some(Before::of(&with_ttl)), &deleted_early, true),
        Some(ChangeKind::Deleted)
    );
    let expired = crate::replica::applied_outcome(
        Some(with_ttl.clone()),
        &DocOp::Expire { deadline_ms: 1_000 },
        actor(),
        at(1_200),
    )
    .expect("expired")
    .0;
    assert_eq!(
        change_kind(Some(Before::of(&with_ttl)), &expired, true),
        Some(ChangeKind::Expired)
    );
}

#[tokio::test]
async fn a_waiting_reader_wakes_at_the_next_change_and_not_before() {
    let feed = std::sync::Arc::new(Feed::new(2, 10_000));
    let from = feed.tail();
    let quiet = feed
        .read_waiting(from, std::time::Duration::from_millis(20), 10, usize::MAX)
        .await;
    assert!(quiet.changes.is_empty() && !quiet.behind);
    let reader = {
        let feed = feed.clone();
        tokio::spawn(async move {
            feed.read_waiting(from, std::time::Duration::from_secs(30), 10, usize::MAX)
                .await
        })
    };
    tokio::task::yield_now().await;
    feed.record(
        PartitionId(1),
        b"k".to_vec(),
        ChangeKind::Written,
        digest(1),
    );
    let page = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
        .await
        .expect("woken well before its wait ends")
        .expect("reader task");
    assert_eq!(page.changes.len(), 1);
    assert_eq!(page.changes[0].key, b"k");
}

#[test]
fn an_expire_with_a_time_past_is_a_write_of_a_deadline_past() {
    let set = RedisOp::Set {
        value: b"v".to_vec(),
        expiry: SetExpiry::Clear,
        condition: None,
        get: false,
    };
    let live = redis(set, 10, None);
    let past = redis(
        RedisOp::Expire {
            deadline_ms: 5,
            condition: None,
        },
        20,
        Some(live.clone()),
    );
    // The key keeps its content under a deadline already past: readers see it gone,
    // trackers are told (a write), but no delete or expiry is named (README: Redis
    // publishes `del`).
    assert_eq!(
        change_kind(Some(Before::of(&live)), &past, true),
        Some(ChangeKind::Written)
    );
}
