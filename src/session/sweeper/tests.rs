use super::*;
use crate::crdt::UserDoc;
use crate::object::encode_object;
use crate::storage::{MemoryStorage, StoreKey};
use std::collections::BTreeSet;

const PARTITIONS: u32 = 4;

fn put(storage: &MemoryStorage, key: &ObjectKey, object: &Object) {
    let store_key = StoreKey {
        partition: key.partition(PARTITIONS),
        key: key.storage_bytes(),
    };
    let bytes = encode_object(object);
    storage
        .update(&store_key, &mut |_| Ok(Some(bytes.clone())))
        .expect("memory store");
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
fn small_passes_cover_the_store_once_per_round_without_repeats() {
    let (storage, wanted) = store(30);
    let total_keys = 30 + 40;
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
    assert!(passes >= total_keys / 7, "a pass read more than its budget");
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
