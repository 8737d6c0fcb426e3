use super::*;
use crate::crdt::{Doc, UserDoc};
use crate::object::{encode_object, Object};
use crate::storage::MemoryStorage;

const PARTITIONS: u32 = 4;

/// A store written before the index: records with deadlines, none indexed.
fn old_store(sessions: u32) -> MemoryStorage {
    let storage = MemoryStorage::new(PARTITIONS).expect("memory store");
    for i in 0..sessions {
        let object = Object::Doc(Doc::User(UserDoc {
            deadline_ms: 10 + u64::from(i),
            ..UserDoc::default()
        }));
        let bytes = encode_object(&object);
        let key = StoreKey::new(PartitionId(i % PARTITIONS), format!("u{i}").into_bytes());
        storage
            .update(&key, &mut |_| Ok(Some(bytes.clone().into())))
            .expect("write");
        // A kv record: read, never indexed.
        let kv = StoreKey::new(PartitionId(i % PARTITIONS), format!("kv{i}").into_bytes());
        let kv_bytes = encode_object(&Object::empty_kv());
        storage
            .update(&kv, &mut |_| Ok(Some(kv_bytes.clone().into())))
            .expect("write");
    }
    storage
}

fn indexed(storage: &MemoryStorage) -> usize {
    (0..PARTITIONS)
        .map(|p| {
            storage
                .expiry_due(PartitionId(p), None, u64::MAX, usize::MAX, usize::MAX)
                .expect("index")
                .len()
        })
        .sum()
}

#[test]
fn the_backfill_indexes_every_record_with_a_deadline_then_never_runs_again() {
    let sessions = (limits::EXPIRY_BACKFILL_KEYS_PER_STEP + 100) as u32;
    let storage = old_store(sessions);
    let stats = SessionStats::default();
    assert_eq!(indexed(&storage), 0);
    let mut steps = 0;
    while backfill_step(&storage, PARTITIONS, &stats).expect("step") == BackfillProgress::Going {
        steps += 1;
        assert!(steps < 100, "the backfill never ended");
    }
    // Twice the sessions' records (kv included) at one step's count each, at least.
    assert!(steps >= 2, "a step read more than its bound: {steps} steps");
    assert_eq!(indexed(&storage), sessions as usize);
    assert_eq!(
        stats.expiry_backfilled.load(Ordering::Relaxed),
        u64::from(sessions)
    );
    assert_eq!(stats.expiry_backfill_done.load(Ordering::Relaxed), 1);
    // Done is recorded: a record unindexed since is not picked up by another run.
    let late = StoreKey::new(PartitionId(0), b"late".to_vec());
    let bytes = encode_object(&Object::Doc(Doc::User(UserDoc {
        deadline_ms: 5,
        ..UserDoc::default()
    })));
    storage
        .update(&late, &mut |_| Ok(Some(bytes.clone().into())))
        .expect("write");
    assert_eq!(
        backfill_step(&storage, PARTITIONS, &stats).expect("step"),
        BackfillProgress::Done
    );
    assert_eq!(indexed(&storage), sessions as usize);
}

#[test]
fn a_backfill_goes_on_where_it_stopped() {
    let storage = old_store(2_000);
    let stats = SessionStats::default();
    assert_eq!(
        backfill_step(&storage, PARTITIONS, &stats).expect("step"),
        BackfillProgress::Going
    );
    let first = stats.expiry_backfilled.load(Ordering::Relaxed);
    assert!(first > 0 && first < 2_000);
    let position = load(&storage).expect("load").expect("going");
    assert_ne!(
        position,
        Position {
            partition: 0,
            after: None
        },
        "progress is recorded"
    );
    while backfill_step(&storage, PARTITIONS, &stats).expect("step") == BackfillProgress::Going {}
    // Each record was read once: no entry was added twice.
    assert_eq!(stats.expiry_backfilled.load(Ordering::Relaxed), 2_000);
    assert_eq!(indexed(&storage), 2_000);
}

#[test]
fn a_progress_record_that_cannot_be_read_starts_over() {
    let storage = MemoryStorage::new(PARTITIONS).expect("memory store");
    storage
        .aux_put(AuxSpace::Node, PROGRESS_KEY, &[9, 9])
        .expect("put");
    assert_eq!(
        load(&storage).expect("load"),
        Some(Position {
            partition: 0,
            after: None
        })
    );
    let encoded = encode(&Position {
        partition: 3,
        after: Some(b"k".to_vec()),
    });
    storage
        .aux_put(AuxSpace::Node, PROGRESS_KEY, &encoded)
        .expect("put");
    assert_eq!(
        load(&storage).expect("load"),
        Some(Position {
            partition: 3,
            after: Some(b"k".to_vec())
        })
    );
}
