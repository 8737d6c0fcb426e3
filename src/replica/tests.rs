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
    trees.update(a, b"x", None, Some([1; 32]));
    trees.update(a, b"y", None, Some([2; 32]));
    trees.update(b, b"z", None, Some([3; 32]));
    assert_eq!(trees.keys_total(), 3);
    // A new version of a key is no new key; a removal is one less.
    trees.update(a, b"x", Some([1; 32]), Some([4; 32]));
    trees.update(a, b"y", Some([2; 32]), None);
    assert_eq!(trees.keys_total(), 2);
    // A removal the count never saw (a bug elsewhere) does not wrap it below zero.
    trees.update(b, b"w", Some([5; 32]), None);
    trees.update(b, b"z", Some([3; 32]), None);
    assert_eq!(trees.keys_total(), 1);
    trees.forget(a);
    assert_eq!(trees.keys_total(), 0);
    assert_eq!(
        trees.root(a),
        [0; 32],
        "a forgotten partition has an empty tree"
    );
}
