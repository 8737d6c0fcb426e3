//! `Doc::Redis`: a RESP key's value as a stored document (what the replica applies,
//! what the sweeper reads and how its expire op is routed).

use super::{actor, at};
use crate::crdt::redis::{RedisOp, RedisOutcome, RedisValue, SetExpiry};
use crate::crdt::{CrdtError, Doc, DocOp};

fn set(value: &str, expiry: SetExpiry) -> DocOp {
    DocOp::Redis(RedisOp::Set {
        value: value.as_bytes().to_vec(),
        expiry,
        condition: None,
        get: false,
    })
}

fn empty() -> Doc {
    Doc::empty_for(&set("v", SetExpiry::Clear)).expect("a Redis op has an empty document")
}

#[test]
fn a_redis_op_returns_its_outcome_and_a_delta_the_other_replicas_merge() {
    let mut doc = empty();
    assert_eq!(doc, Doc::Redis(RedisValue::default()));
    let (delta, outcome) = doc
        .apply_outcome(&set("v", SetExpiry::Clear), actor(0), at(10), 10)
        .unwrap();
    assert_eq!(
        outcome,
        Some(RedisOutcome::Set {
            written: true,
            old: None
        })
    );
    let mut other = empty();
    other.merge(&delta).unwrap();
    assert_eq!(other, doc);
    let incr = DocOp::Redis(RedisOp::IncrBy(1));
    let refused = doc.apply_outcome(&incr, actor(0), at(11), 11).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "ERR value is not an integer or out of range"
    );
    // The other documents have no outcome, and a Redis value never merges with them.
    assert!(matches!(
        Doc::User(Default::default()).merge(&doc),
        Err(CrdtError::Mismatch)
    ));
}

#[test]
fn a_key_without_deadline_never_looks_expired_and_the_sweep_ends_an_expired_one() {
    let mut doc = empty();
    doc.apply(&set("v", SetExpiry::Clear), actor(0), at(10), 10)
        .unwrap();
    assert_eq!(doc.deadline_ms(), u64::MAX);
    assert!(matches!(
        doc.apply(&DocOp::Expire { deadline_ms: 50 }, actor(1), at(60), 60),
        Err(CrdtError::StillLive)
    ));
    doc.apply(&set("w", SetExpiry::AtMs(100)), actor(0), at(20), 20)
        .unwrap();
    assert_eq!(doc.deadline_ms(), 100);
    assert!(!doc.is_tombstone());
    let delta = doc
        .apply(&DocOp::Expire { deadline_ms: 100 }, actor(1), at(150), 150)
        .unwrap();
    assert!(doc.is_tombstone());
    assert_eq!(doc.deleted_ms(), 150);
    let mut replica = empty();
    replica
        .apply(&set("w", SetExpiry::AtMs(100)), actor(0), at(20), 20)
        .unwrap();
    replica.merge(&delta).unwrap();
    assert!(replica.is_tombstone());
}

#[test]
fn a_write_to_a_missing_key_that_changes_nothing_leaves_a_collectable_tombstone() {
    for op in [
        RedisOp::Del,
        RedisOp::GetDel,
        RedisOp::Persist,
        RedisOp::HDel(vec![serde_bytes::ByteBuf::from(b"f".to_vec())]),
    ] {
        let mut doc = empty();
        let (delta, _) = doc
            .apply_outcome(&DocOp::Redis(op.clone()), actor(0), at(10), 10)
            .unwrap();
        assert!(doc.is_tombstone(), "{op:?}");
        assert_eq!(doc.deleted_ms(), 0, "{op:?}");
        assert_eq!(delta, empty(), "{op:?}");
    }
    let mut doc = empty();
    doc.apply(&set("v", SetExpiry::Clear), actor(0), at(10), 10)
        .unwrap();
    assert!(!doc.is_tombstone());
}

#[test]
fn a_replica_that_missed_an_increment_adds_to_the_base_it_is_sent() {
    let hincr = |by| RedisOp::HIncrBy {
        field: b"pears".to_vec(),
        by,
    };
    // Two replicas hold "pears = 2"; one more acknowledges an increment of 5.
    let mut behind = empty();
    let (first, _) = behind
        .apply_outcome(&DocOp::Redis(hincr(2)), actor(0), at(10), 10)
        .unwrap();
    let mut ahead = behind.clone();
    let (_, outcome) = ahead
        .apply_outcome(&DocOp::Redis(hincr(5)), actor(1), at(11), 11)
        .unwrap();
    assert_eq!(outcome, Some(RedisOutcome::Integer(7)));
    let Doc::Redis(base) = ahead.clone() else {
        unreachable!()
    };
    // Without the base, the replica that missed it computes from 2: the 5 is lost.
    let mut stale = behind.clone();
    let (_, lost) = stale
        .apply_outcome(&DocOp::Redis(hincr(-10)), actor(0), at(12), 12)
        .unwrap();
    assert_eq!(lost, Some(RedisOutcome::Integer(-8)));
    // With the base read from a quorum, it computes from 7, and its delta carries the
    // base so a replica that has only the first write catches up too.
    let after = DocOp::RedisAfter {
        base: Box::new(base),
        op: hincr(-10),
    };
    let (delta, outcome) = behind.apply_outcome(&after, actor(0), at(12), 12).unwrap();
    assert_eq!(outcome, Some(RedisOutcome::Integer(-3)));
    let mut third = empty();
    third.merge(&first).unwrap();
    third.merge(&delta).unwrap();
    assert_eq!(
        third, behind,
        "the delta brings a replica to the same value"
    );
}
