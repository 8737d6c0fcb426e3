use super::*;
use crate::crdt::redis::RedisOp;
use crate::object::Class;

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        class: Class::Resp,
        key: name.as_bytes().to_vec(),
    }
}

fn at(wall_ms: u64) -> Hlc {
    Hlc {
        wall_ms,
        logical: 0,
    }
}

#[test]
fn a_name_changes_with_every_part_of_the_request() {
    let a = NodeId("a".into());
    let b = NodeId("b".into());
    let incr = DocOp::Redis(RedisOp::IncrBy(1));
    let base = AppliedOnce::name(&a, &key("k"), &incr, at(1));
    assert_eq!(base, AppliedOnce::name(&a, &key("k"), &incr, at(1)));
    assert_ne!(base, AppliedOnce::name(&b, &key("k"), &incr, at(1)));
    assert_ne!(base, AppliedOnce::name(&a, &key("j"), &incr, at(1)));
    assert_ne!(base, AppliedOnce::name(&a, &key("k"), &incr, at(2)));
    let by_two = DocOp::Redis(RedisOp::IncrBy(2));
    assert_ne!(base, AppliedOnce::name(&a, &key("k"), &by_two, at(1)));
}

#[test]
fn answers_are_remembered_until_the_byte_bound_forgets_the_oldest() {
    let once = AppliedOnce::default();
    let share = APPLIED_ONCE_BYTES_MAX / APPLIED_ONCE_STRIPES;
    let per_stripe = share / ENTRY_OVERHEAD_BYTES;
    // Names that all fall in stripe 0, told apart by their other bytes.
    let name = |i: usize| {
        let mut name = [0u8; 32];
        name[1..9].copy_from_slice(&(i as u64).to_le_bytes());
        name
    };
    for i in 0..per_stripe + 10 {
        once.lock(&name(i))
            .remember(name(i), Some(RedisOutcome::Integer(i as i64)));
    }
    let stripe = once.lock(&name(0));
    for i in 0..10 {
        assert_eq!(stripe.answered(&name(i)), None, "oldest {i} forgotten");
    }
    assert_eq!(
        stripe.answered(&name(per_stripe + 9)),
        Some(&Some(RedisOutcome::Integer((per_stripe + 9) as i64)))
    );
    drop(stripe);
    assert!(once.bytes() <= share, "{} > {share}", once.bytes());
}

#[test]
fn an_answer_larger_than_a_stripe_share_is_not_kept() {
    let once = AppliedOnce::default();
    let share = APPLIED_ONCE_BYTES_MAX / APPLIED_ONCE_STRIPES;
    let huge = RedisOutcome::Value(Some(vec![0; share]));
    let name = [7u8; 32];
    once.lock(&name).remember(name, Some(huge));
    assert_eq!(once.lock(&name).answered(&name), None);
    assert_eq!(once.bytes(), 0);
}
