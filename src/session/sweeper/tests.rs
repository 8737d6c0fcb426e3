use super::*;
use crate::crdt::UserDoc;
use crate::object::{decode_object, encode_object, expiry_deadline_ms};
use crate::storage::{Expiry, MemoryStorage, StoreKey, Write};
use std::collections::BTreeSet;

const PARTITIONS: u32 = 4;

fn store_key(key: &ObjectKey) -> StoreKey {
    StoreKey {
        partition: key.partition(PARTITIONS),
        key: key.storage_bytes(),
    }
}

/// Stores `object` under `key` as the replica does: the expiry index follows.
fn put(storage: &MemoryStorage, key: &ObjectKey, object: &Object) {
    let bytes = encode_object(object);
    storage
        .update(&store_key(key), &mut |current| {
            let before = current
                .and_then(|bytes| decode_object(bytes).ok())
                .as_ref()
                .and_then(expiry_deadline_ms);
            Ok(Some(Write {
                bytes: bytes.clone(),
                expiry: Expiry {
                    before_ms: before,
                    after_ms: expiry_deadline_ms(object),
                },
            }))
        })
        .expect("memory store");
}

/// Every expired document one pass with room finds.
fn scan_expired(
    storage: &MemoryStorage,
    partitions: &[PartitionId],
    cursor: &mut SweepCursor,
    budget: usize,
    now_ms: u64,
) -> Vec<(ObjectKey, u64)> {
    due_expired(storage, partitions, cursor, budget, now_ms).expired
}

fn user(deadline_ms: u64) -> Object {
    Object::Doc(Doc::User(UserDoc {
        deadline_ms,
        ..UserDoc::default()
    }))
}

/// A store of `expired` user documents past their deadline (10 ms), live ones and kv
/// keys, and the keys of the expired ones.
fn store(expired: usize) -> (MemoryStorage, BTreeSet<Vec<u8>>) {
    let storage = MemoryStorage::new(PARTITIONS).expect("memory store");
    let mut wanted = BTreeSet::new();
    for i in 0..expired {
        let key = ObjectKey::new(Class::User, format!("gone-{i}").as_bytes());
        put(&storage, &key, &user(10));
        wanted.insert(key.storage_bytes());
    }
    for i in 0..20 {
        let live = ObjectKey::new(Class::User, format!("live-{i}").as_bytes());
        put(&storage, &live, &user(1_000_000));
        let kv = ObjectKey::new(Class::Kv, format!("kv-{i}").as_bytes());
        put(&storage, &kv, &Object::empty_kv());
    }
    (storage, wanted)
}

fn all_partitions() -> Vec<PartitionId> {
    (0..PARTITIONS).map(PartitionId).collect()
}

#[test]
fn a_record_within_the_clock_margin_is_not_erased() {
    let storage = MemoryStorage::new(PARTITIONS).expect("memory store");
    let now_ms = 100 * 60 * 1000;
    let recent = ObjectKey::new(Class::User, b"recent");
    let old = ObjectKey::new(Class::User, b"old");
    // Expired one minute ago by this node's clock: perhaps not by the others'.
    put(&storage, &recent, &user(now_ms - 60 * 1000));
    put(
        &storage,
        &old,
        &user(now_ms - limits::SWEEP_CLOCK_MARGIN_MS - 1),
    );
    let mut cursor = SweepCursor::default();
    let found = scan_expired(
        &storage,
        &all_partitions(),
        &mut cursor,
        1_000,
        horizon_ms(now_ms),
    );
    let keys: Vec<ObjectKey> = found.into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys, vec![old]);
    assert_eq!(horizon_ms(5), 0, "a clock near zero erases nothing");
}

#[test]
fn a_pass_with_room_finds_every_expired_document_and_starts_over() {
    let (storage, wanted) = store(30);
    let mut cursor = SweepCursor::default();
    let found = scan_expired(&storage, &all_partitions(), &mut cursor, 1_000, 100);
    let keys: BTreeSet<Vec<u8>> = found.iter().map(|(k, _)| k.storage_bytes()).collect();
    assert_eq!(keys, wanted);
    assert!(found.iter().all(|(_, deadline)| *deadline == 10));
    assert_eq!(cursor, SweepCursor::default());
}

#[test]
fn small_passes_cover_the_index_once_per_round_without_repeats() {
    let (storage, wanted) = store(30);
    let total_keys = 30;
    let mut cursor = SweepCursor::default();
    let mut found = Vec::new();
    let mut passes = 0;
    loop {
        found.extend(scan_expired(
            &storage,
            &all_partitions(),
            &mut cursor,
            7,
            100,
        ));
        passes += 1;
        assert!(passes <= total_keys, "the cursor never came round");
        if cursor == SweepCursor::default() {
            break;
        }
    }
    assert!(passes > total_keys / 7, "a pass read more than its budget");
    let keys: Vec<Vec<u8>> = found.iter().map(|(k, _)| k.storage_bytes()).collect();
    assert_eq!(keys.len(), wanted.len(), "a document was found twice");
    assert_eq!(keys.into_iter().collect::<BTreeSet<_>>(), wanted);
}

#[test]
fn a_full_batch_resumes_after_the_last_document_it_took() {
    let many = limits::SWEEP_BATCH_MAX + 5;
    let (storage, wanted) = store(many);
    let mut cursor = SweepCursor::default();
    let first = scan_expired(&storage, &all_partitions(), &mut cursor, usize::MAX, 100);
    assert_eq!(first.len(), limits::SWEEP_BATCH_MAX);
    assert_ne!(cursor, SweepCursor::default());
    let second = scan_expired(&storage, &all_partitions(), &mut cursor, usize::MAX, 100);
    assert_eq!(second.len(), 5);
    let keys: BTreeSet<Vec<u8>> = first
        .iter()
        .chain(&second)
        .map(|(k, _)| k.storage_bytes())
        .collect();
    assert_eq!(keys, wanted);
}

/// A RESP key holding `value`, with `expiry`, written at 5 ms.
fn resp_key(expiry: crate::crdt::redis::SetExpiry) -> Object {
    use crate::crdt::redis::{RedisOp, RedisValue};
    let mut value = RedisValue::default();
    let op = RedisOp::Set {
        value: b"v".to_vec(),
        expiry,
        condition: None,
        get: false,
    };
    let at = crate::clock::Hlc {
        wall_ms: 5,
        logical: 0,
    };
    value
        .apply(&op, at, crate::clock::Actor(1), 5)
        .expect("a SET applies");
    Object::Doc(Doc::Redis(value))
}

#[test]
fn resp_keys_past_their_deadline_are_found_and_keys_without_one_never() {
    use crate::crdt::redis::SetExpiry;
    let storage = MemoryStorage::new(PARTITIONS).expect("memory store");
    let expired = ObjectKey::new(Class::Resp, b"expired");
    let forever = ObjectKey::new(Class::Resp, b"forever");
    let later = ObjectKey::new(Class::Resp, b"later");
    put(&storage, &expired, &resp_key(SetExpiry::AtMs(10)));
    put(&storage, &forever, &resp_key(SetExpiry::Clear));
    put(&storage, &later, &resp_key(SetExpiry::AtMs(1_000_000)));
    let mut cursor = SweepCursor::default();
    let found = scan_expired(&storage, &all_partitions(), &mut cursor, 1_000, 100);
    assert_eq!(found, vec![(expired.clone(), 10)]);
    // Once swept (the expire op ends the epoch), the tombstone is not found again.
    let Object::Doc(mut doc) = resp_key(SetExpiry::AtMs(10)) else {
        unreachable!("a RESP key is a document");
    };
    let at = crate::clock::Hlc {
        wall_ms: 100,
        logical: 0,
    };
    doc.apply(
        &DocOp::Expire { deadline_ms: 10 },
        crate::clock::Actor(2),
        at,
        100,
    )
    .expect("an expired key is swept");
    put(&storage, &expired, &Object::Doc(doc));
    let mut cursor = SweepCursor::default();
    let found = scan_expired(&storage, &all_partitions(), &mut cursor, 1_000, 100);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_pass_reads_only_due_entries_whatever_the_live_records() {
    let (storage, wanted) = store(30);
    let mut cursor = SweepCursor::default();
    let pass = due_expired(&storage, &all_partitions(), &mut cursor, 1_000, 100);
    assert_eq!(pass.expired.len(), wanted.len());
    // 20 live documents and 20 kv keys are stored too: none was read.
    assert_eq!(pass.read, wanted.len() as u64);
    assert_eq!(pass.stale, 0);
}

#[test]
fn a_refreshed_session_is_not_swept_and_leaves_no_entry_behind() {
    let storage = MemoryStorage::new(PARTITIONS).expect("memory store");
    let key = ObjectKey::new(Class::User, b"refreshed");
    put(&storage, &key, &user(10));
    put(&storage, &key, &user(1_000_000));
    let mut cursor = SweepCursor::default();
    let pass = due_expired(&storage, &all_partitions(), &mut cursor, 1_000, 100);
    assert_eq!(pass, SweepPass::default(), "nothing due, nothing read");
    // Due later, it is found at its new deadline.
    let pass = due_expired(&storage, &all_partitions(), &mut cursor, 1_000, 1_000_000);
    assert_eq!(pass.expired, vec![(key, 1_000_000)]);
}

#[test]
fn stale_entries_are_dropped_and_never_swept() {
    let storage = MemoryStorage::new(PARTITIONS).expect("memory store");
    // An entry left by a crash between the writes of a refresh: the record is live.
    let refreshed = ObjectKey::new(Class::User, b"refreshed");
    put(&storage, &refreshed, &user(1_000_000));
    storage.expiry_put(&store_key(&refreshed), 10).expect("put");
    // An entry whose record is gone (a collected tombstone, a crash before the write).
    let gone = ObjectKey::new(Class::User, b"gone");
    storage.expiry_put(&store_key(&gone), 10).expect("put");
    // An entry of a kv record, which never has a deadline.
    let kv = ObjectKey::new(Class::Kv, b"kv");
    put(&storage, &kv, &Object::empty_kv());
    storage.expiry_put(&store_key(&kv), 10).expect("put");
    // And one that does stand for its record.
    let expired = ObjectKey::new(Class::User, b"expired");
    put(&storage, &expired, &user(10));
    let mut cursor = SweepCursor::default();
    let pass = due_expired(&storage, &all_partitions(), &mut cursor, 1_000, 100);
    assert_eq!(pass.expired, vec![(expired.clone(), 10)]);
    assert_eq!((pass.read, pass.stale), (4, 3));
    let again = due_expired(&storage, &all_partitions(), &mut cursor, 1_000, 100);
    assert_eq!(
        (again.read, again.stale),
        (1, 0),
        "the stale entries were dropped"
    );
    // The live record's own entry stayed.
    let later = due_expired(&storage, &all_partitions(), &mut cursor, 1_000, 1_000_000);
    let found: BTreeSet<(Vec<u8>, u64)> = later
        .expired
        .iter()
        .map(|(key, deadline)| (key.storage_bytes(), *deadline))
        .collect();
    let wanted = BTreeSet::from([
        (refreshed.storage_bytes(), 1_000_000),
        (ObjectKey::new(Class::User, b"expired").storage_bytes(), 10),
    ]);
    assert_eq!(found, wanted);
}

#[test]
fn only_the_partitions_asked_for_are_read() {
    let (storage, wanted) = store(40);
    let first = PartitionId(0);
    let mut cursor = SweepCursor::default();
    let pass = due_expired(&storage, &[first], &mut cursor, 1_000, 100);
    let in_first = wanted
        .iter()
        .filter(|key| {
            ObjectKey::from_storage_bytes(key)
                .expect("a key")
                .partition(PARTITIONS)
                == first
        })
        .count();
    assert!(
        in_first > 0,
        "40 keys over 4 partitions leave none in the first"
    );
    assert_eq!(pass.expired.len(), in_first);
    assert_eq!(pass.read, in_first as u64);
}

mod cost;

#[tokio::test(start_paused = true)]
async fn the_pace_holds_a_rate_finer_than_the_timer() {
    // 10,000 a second: a sleep of 100 µs per record would take the timer's millisecond
    // each, ten times the time asked.
    let started = tokio::time::Instant::now();
    let mut pace = super::Pace::new(Duration::from_micros(100));
    for _ in 0..1_000 {
        pace.next().await;
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(98) && elapsed <= Duration::from_millis(110),
        "1,000 starts at 10,000/s took {elapsed:?}"
    );
    // A slow stretch is not made up by a burst: after 1 s idle the next start waits
    // its turn again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resumed = tokio::time::Instant::now();
    for _ in 0..100 {
        pace.next().await;
    }
    assert!(resumed.elapsed() >= Duration::from_millis(9));
}
