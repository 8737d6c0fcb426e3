use super::*;
use proptest::prelude::*;

fn set(entries: &[(u64, u8)]) -> AppliedOps {
    let mut set = AppliedOps::default();
    for (at_ms, id) in entries {
        set.insert(*at_ms, OpId([*id; 16]));
    }
    set
}

fn joined(left: &AppliedOps, right: &AppliedOps) -> AppliedOps {
    let mut out = left.clone();
    out.merge(right);
    out
}

fn entries() -> impl Strategy<Value = Vec<(u64, u8)>> {
    // More ids than the set keeps, so pruning is exercised.
    proptest::collection::vec((0u64..200, 0u8..(APPLIED_OPS_MAX as u8 + 40)), 0..100)
}

#[test]
fn an_id_is_known_after_insert_and_kept_once() {
    let mut applied = AppliedOps::default();
    let id = OpId::of_key("retry-me");
    assert!(!applied.contains(id));
    applied.insert(5, id);
    applied.insert(9, id);
    assert!(applied.contains(id));
    assert_eq!(applied.len(), 1);
    assert_ne!(OpId::of_key("retry-me"), OpId::of_key("retry-me-2"));
}

#[test]
fn the_oldest_ids_leave_first_and_the_set_stays_bounded() {
    let mut applied = AppliedOps::default();
    for at_ms in 0..(APPLIED_OPS_MAX as u64 + 10) {
        applied.insert(at_ms, OpId::of_key(&format!("op-{at_ms}")));
    }
    assert_eq!(applied.len(), APPLIED_OPS_MAX);
    assert!(!applied.contains(OpId::of_key("op-0")));
    assert!(!applied.contains(OpId::of_key("op-9")));
    assert!(applied.contains(OpId::of_key("op-10")));
    let newest = format!("op-{}", APPLIED_OPS_MAX + 9);
    assert!(applied.contains(OpId::of_key(&newest)));
}

proptest! {
    #[test]
    fn merge_is_commutative(a in entries(), b in entries()) {
        let (a, b) = (set(&a), set(&b));
        prop_assert_eq!(joined(&a, &b), joined(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in entries(), b in entries(), c in entries()) {
        let (a, b, c) = (set(&a), set(&b), set(&c));
        prop_assert_eq!(joined(&joined(&a, &b), &c), joined(&a, &joined(&b, &c)));
    }

    #[test]
    fn merge_is_idempotent_and_bounded(a in entries(), b in entries()) {
        let (a, b) = (set(&a), set(&b));
        let ab = joined(&a, &b);
        prop_assert_eq!(joined(&ab, &ab), ab.clone());
        prop_assert_eq!(joined(&ab, &b), ab.clone());
        prop_assert!(ab.len() <= APPLIED_OPS_MAX);
    }
}
