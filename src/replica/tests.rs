use super::*;
use crate::crdt::redis::{RedisOp, RedisValue, SetCondition, SetExpiry};
use crate::object::Class;

/// A replica over a memory store of one partition, minting as actor 1.
pub(crate) fn memory_replica() -> Replica {
    use crate::storage::{Durability, MemoryStorage};
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new(1).unwrap());
    let gate = CommitGate::new(storage.clone(), Durability::Memory);
    Replica::new(Actor(1), 1, storage, gate, Arc::new(Trees::new(2)))
}

fn redis(object: &Object) -> &RedisValue {
    match object {
        Object::Doc(Doc::Redis(value)) => value,
        other => panic!("not a Redis value: {other:?}"),
    }
}

fn at(wall_ms: u64) -> Hlc {
    Hlc {
        wall_ms,
        logical: 0,
    }
}

#[test]
fn an_increment_delivered_twice_counts_once_and_answers_alike() {
    let replica = memory_replica();
    let key = ObjectKey::new(Class::Resp, b"hits");
    let from = NodeId("n1".into());
    let incr = DocOp::Redis(RedisOp::IncrBy(5));
    let (_, delta, first) = replica.apply_op_once(&from, &key, &incr, at(10)).unwrap();
    assert_eq!(first, Some(RedisOutcome::Integer(5)));
    assert_eq!(redis(&delta).counter_value(), 5);
    let (stored, delta, again) = replica.apply_op_once(&from, &key, &incr, at(10)).unwrap();
    assert_eq!(again, first, "the repeat answers what the first did");
    assert_eq!(redis(&stored).counter_value(), 5, "counted once");
    assert_eq!(
        redis(&delta).counter_value(),
        5,
        "the delta is the whole value"
    );
    // The same increment sent again by the coordinator (a new timestamp) is a new one,
    // and so is one from another node at the same timestamp.
    replica.apply_op_once(&from, &key, &incr, at(11)).unwrap();
    let other = NodeId("n2".into());
    let (stored, _, _) = replica.apply_op_once(&other, &key, &incr, at(10)).unwrap();
    assert_eq!(redis(&stored).counter_value(), 15);
    // The local coordinator's own path is not deduplicated (it never repeats itself).
    let (stored, _, _) = replica.apply_op_stored(&key, &incr, at(12)).unwrap();
    assert_eq!(redis(&stored).counter_value(), 20);
}

#[test]
fn a_conditional_write_delivered_twice_keeps_its_first_answer() {
    let replica = memory_replica();
    let key = ObjectKey::new(Class::Resp, b"lock");
    let from = NodeId("n1".into());
    let set_nx = DocOp::Redis(RedisOp::Set {
        value: b"mine".to_vec(),
        expiry: SetExpiry::Clear,
        condition: Some(SetCondition::Nx),
        get: false,
    });
    let (_, _, first) = replica.apply_op_once(&from, &key, &set_nx, at(10)).unwrap();
    let written = Some(RedisOutcome::Set {
        written: true,
        old: None,
    });
    assert_eq!(first, written);
    let (_, _, again) = replica.apply_op_once(&from, &key, &set_nx, at(10)).unwrap();
    assert_eq!(again, written, "not 'already set' for the write it made");
    // A different SET NX (another timestamp) is judged on what is stored.
    let (_, _, later) = replica.apply_op_once(&from, &key, &set_nx, at(11)).unwrap();
    assert_eq!(
        later,
        Some(RedisOutcome::Set {
            written: false,
            old: None
        })
    );
}

#[test]
fn a_refused_apply_is_not_remembered() {
    let replica = memory_replica();
    let key = ObjectKey::new(Class::Resp, b"text");
    let from = NodeId("n1".into());
    let set = DocOp::Redis(RedisOp::Set {
        value: b"not a number".to_vec(),
        expiry: SetExpiry::Clear,
        condition: None,
        get: false,
    });
    replica.apply_op_once(&from, &key, &set, at(1)).unwrap();
    let incr = DocOp::Redis(RedisOp::IncrBy(1));
    assert!(replica.apply_op_once(&from, &key, &incr, at(2)).is_err());
    let del = DocOp::Redis(RedisOp::Del);
    replica.apply_op_once(&from, &key, &del, at(3)).unwrap();
    // The same increment again now applies: its refusal was not an answer to keep.
    let (_, _, outcome) = replica.apply_op_once(&from, &key, &incr, at(2)).unwrap();
    assert_eq!(outcome, Some(RedisOutcome::Integer(1)));
}

#[test]
fn the_trees_count_the_keys_each_write_adds_or_removes() {
    let trees = trees::Trees::new(4);
    let (a, b) = (PartitionId(1), PartitionId(2));
    let stored = |digest: u8, bytes: u64| {
        Some(trees::Stored {
            digest: [digest; 32],
            bytes,
        })
    };
    trees.update(a, b"x", None, stored(1, 10));
    trees.update(a, b"y", None, stored(2, 20));
    trees.update(b, b"z", None, stored(3, 30));
    assert_eq!((trees.keys_total(), trees.bytes_total()), (3, 60));
    // A new version of a key is no new key, but its bytes change; a removal is one
    // less key and its bytes gone.
    trees.update(a, b"x", stored(1, 10), stored(4, 15));
    trees.update(a, b"y", stored(2, 20), None);
    assert_eq!((trees.keys_total(), trees.bytes_total()), (2, 45));
    let counts = trees::Counts { keys: 1, bytes: 15 };
    assert_eq!(trees.counts(a), counts);
    // A removal the count never saw (a bug elsewhere) does not wrap it below zero.
    trees.update(b, b"w", stored(5, 99), None);
    assert_eq!(trees.counts(b), trees::Counts { keys: 0, bytes: 0 });
    trees.update(b, b"z", stored(3, 30), None);
    assert_eq!((trees.keys_total(), trees.bytes_total()), (1, 15));
    trees.forget(a);
    assert_eq!((trees.keys_total(), trees.bytes_total()), (0, 0));
    assert_eq!(trees.counts(a), trees::Counts::default());
    assert_eq!(
        trees.root(a),
        [0; 32],
        "a forgotten partition has an empty tree"
    );
}

#[test]
fn the_counts_kept_by_writes_are_what_a_scan_of_the_store_finds() {
    let replica = memory_replica();
    let set = |value: &[u8]| {
        DocOp::Redis(RedisOp::Set {
            value: value.to_vec(),
            expiry: SetExpiry::Clear,
            condition: None,
            get: false,
        })
    };
    let keys = [b"a".as_slice(), b"bb", b"ccc"];
    for (index, key) in keys.iter().enumerate() {
        let key = ObjectKey::new(Class::Resp, key);
        let value = vec![b'x'; 10 * (index + 1)];
        replica.apply_op_stored(&key, &set(&value), at(10)).unwrap();
    }
    // A longer value for one key, then a shorter one: its bytes follow each write.
    let first = ObjectKey::new(Class::Resp, keys[0]);
    replica
        .apply_op_stored(&first, &set(&[b'y'; 500]), at(11))
        .unwrap();
    replica.apply_op_stored(&first, &set(b"z"), at(12)).unwrap();
    let partition = PartitionId(0);
    let scanned = replica
        .storage()
        .scan_partition(partition, None, 100)
        .unwrap();
    let bytes: usize = scanned
        .iter()
        .map(|(key, value)| key.len() + value.len())
        .sum();
    let kept = replica.trees();
    assert_eq!(kept.keys_total(), 3);
    assert_eq!(kept.bytes_total(), bytes as u64);
    let counts = trees::Counts {
        keys: 3,
        bytes: bytes as u64,
    };
    assert_eq!(kept.counts(partition), counts);
    // A node that starts again counts the same from its store.
    let rebuilt = Trees::new(2);
    rebuilt.rebuild(replica.storage().as_ref(), 1).unwrap();
    assert_eq!(rebuilt.counts(partition), counts);
    assert_eq!(rebuilt.bytes_total(), bytes as u64);
}
