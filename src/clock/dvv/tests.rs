use super::*;
use crate::clock::HybridClock;
use crate::limits::{SIBLINGS_MAX, VV_ACTORS_MAX};
use proptest::prelude::*;
use proptest::sample::Index;

const A: Actor = Actor(10);
const B: Actor = Actor(20);
const C: Actor = Actor(30);

fn at(wall_ms: u64) -> Hlc {
    Hlc::new(wall_ms, 0)
}

fn sorted_values<V: Clone + Ord>(object: &Versioned<V>) -> Vec<V> {
    let mut values: Vec<V> = object.values().cloned().collect();
    values.sort();
    values
}

fn merged<V: Clone>(left: &Versioned<V>, right: &Versioned<V>, cap: usize) -> Versioned<V> {
    let mut result = left.clone();
    result
        .merge(right, cap)
        .expect("test objects stay within the actor limit");
    result
}

#[test]
fn a_blind_write_keeps_the_existing_value_as_a_sibling() {
    let mut object = Versioned::new();
    assert!(object.is_empty());
    let first = object
        .mint(A, &VersionVector::new(), "one", at(1), SIBLINGS_MAX)
        .unwrap();
    assert_eq!(
        first,
        Dot {
            actor: A,
            counter: 1
        }
    );
    let second = object
        .mint(A, &VersionVector::new(), "two", at(2), SIBLINGS_MAX)
        .unwrap();
    assert_eq!(
        second,
        Dot {
            actor: A,
            counter: 2
        }
    );
    assert_eq!(sorted_values(&object), vec!["one", "two"]);
    assert_eq!(object.context().get(A), 2);
}

#[test]
fn a_write_with_the_read_context_supersedes_what_was_read() {
    let mut object = Versioned::new();
    object
        .mint(A, &VersionVector::new(), "one", at(1), SIBLINGS_MAX)
        .unwrap();
    object
        .mint(B, &VersionVector::new(), "two", at(2), SIBLINGS_MAX)
        .unwrap();
    assert_eq!(object.len(), 2);
    let context = object.context().clone();
    object
        .mint(C, &context, "three", at(3), SIBLINGS_MAX)
        .unwrap();
    assert_eq!(sorted_values(&object), vec!["three"]);
    assert_eq!(
        object.siblings()[0].dot,
        Dot {
            actor: C,
            counter: 1
        }
    );
}

#[test]
fn concurrent_writes_at_two_replicas_survive_exchange_until_one_sees_both() {
    let mut east = Versioned::new();
    let mut west = Versioned::new();
    east.mint(A, &VersionVector::new(), "cart-east", at(5), SIBLINGS_MAX)
        .unwrap();
    west.mint(B, &VersionVector::new(), "cart-west", at(5), SIBLINGS_MAX)
        .unwrap();
    assert_eq!(east.compare(&west), Causality::Concurrent);

    east.merge(&west, SIBLINGS_MAX).unwrap();
    west.merge(&east, SIBLINGS_MAX).unwrap();
    assert_eq!(east, west);
    assert_eq!(sorted_values(&east), vec!["cart-east", "cart-west"]);

    let context = east.context().clone();
    west.mint(B, &context, "cart-merged", at(6), SIBLINGS_MAX)
        .unwrap();
    assert_eq!(west.compare(&east), Causality::After);
    east.merge(&west, SIBLINGS_MAX).unwrap();
    assert_eq!(sorted_values(&east), vec!["cart-merged"]);
    assert_eq!(east, west);
}

#[test]
fn a_write_counts_past_a_context_that_knows_later_writes_of_its_actor() {
    // The coordinator lost its copy, but the client read a copy that holds A's write 5.
    let mut lost = Versioned::new();
    let context = VersionVector::from_entries(vec![(A, 5)]).unwrap();
    let dot = lost
        .mint(A, &context, "fresh", at(1), SIBLINGS_MAX)
        .unwrap();
    assert_eq!(
        dot,
        Dot {
            actor: A,
            counter: 6
        }
    );
}

#[test]
fn a_refused_write_or_merge_leaves_the_object_unchanged() {
    let mut object = Versioned::new();
    object
        .mint(A, &VersionVector::new(), 1u8, at(1), SIBLINGS_MAX)
        .unwrap();
    let before = object.clone();
    let crowded: Vec<(Actor, u64)> = (0..VV_ACTORS_MAX as u64)
        .map(|a| (Actor(1_000 + a), 1))
        .collect();
    let crowded = VersionVector::from_entries(crowded).unwrap();
    let refused = object.mint(B, &crowded, 2, at(2), SIBLINGS_MAX);
    assert!(matches!(refused, Err(VersionError::TooManyActors { .. })));
    assert_eq!(object, before);

    let other = Versioned::from_parts(crowded, Vec::new()).unwrap();
    let refused = object.merge(&other, SIBLINGS_MAX);
    assert!(matches!(refused, Err(VersionError::TooManyActors { .. })));
    assert_eq!(object, before);
}

#[test]
fn the_cap_drops_the_oldest_siblings_and_they_never_come_back() {
    let mut object = Versioned::new();
    let blind = VersionVector::new();
    object.mint(A, &blind, "old", at(1), 2).unwrap();
    let snapshot = object.clone();
    object.mint(B, &blind, "newest", at(3), 2).unwrap();
    object.mint(C, &blind, "middle", at(2), 2).unwrap();
    assert_eq!(sorted_values(&object), vec!["middle", "newest"]);
    assert!(object.context().covers(&Dot {
        actor: A,
        counter: 1
    }));

    // A stale replica still holding the dropped sibling cannot resurrect it.
    assert_eq!(merged(&object, &snapshot, 2), object);
    assert_eq!(merged(&snapshot, &object, 2), object);

    // Equal timestamps fall back to the dot: the larger dot is the newer.
    let mut tied = Versioned::new();
    tied.mint(C, &blind, "c", at(7), 1).unwrap();
    tied.mint(A, &blind, "a", at(7), 1).unwrap();
    assert_eq!(sorted_values(&tied), vec!["c"]);
    // A cap of zero counts as one.
    tied.mint(B, &blind, "b", at(8), 0).unwrap();
    assert_eq!(sorted_values(&tied), vec!["b"]);
}

#[test]
fn newest_values_and_map_values() {
    let mut object = Versioned::new();
    assert!(object.newest().is_none());
    object
        .mint(A, &VersionVector::new(), 4u32, at(9), SIBLINGS_MAX)
        .unwrap();
    object
        .mint(B, &VersionVector::new(), 5u32, at(3), SIBLINGS_MAX)
        .unwrap();
    assert_eq!(object.newest().map(|sibling| sibling.value), Some(4));
    let doubled = object.map_values(|value| u64::from(*value) * 2);
    assert_eq!(sorted_values(&doubled), vec![8, 10]);
    assert_eq!(doubled.context(), object.context());
    assert_eq!(doubled.digest(), object.digest());
}

#[test]
fn digest_covers_vector_and_dots_but_not_values() {
    let mut left = Versioned::new();
    let mut right = Versioned::new();
    left.mint(A, &VersionVector::new(), "x", at(1), SIBLINGS_MAX)
        .unwrap();
    right
        .mint(A, &VersionVector::new(), "y", at(1), SIBLINGS_MAX)
        .unwrap();
    assert_eq!(left.digest(), right.digest());
    right
        .mint(B, &VersionVector::new(), "z", at(1), SIBLINGS_MAX)
        .unwrap();
    assert_ne!(left.digest(), right.digest());
    let empty: Versioned<&str> = Versioned::new();
    assert_ne!(empty.digest(), left.digest());
}

#[test]
fn decoding_round_trips_and_refuses_broken_objects() {
    let mut object = Versioned::new();
    object
        .mint(
            A,
            &VersionVector::new(),
            b"v1".to_vec(),
            at(1),
            SIBLINGS_MAX,
        )
        .unwrap();
    object
        .mint(
            B,
            &VersionVector::new(),
            b"v2".to_vec(),
            at(2),
            SIBLINGS_MAX,
        )
        .unwrap();
    let bytes = rmp_serde::to_vec(&object).unwrap();
    assert_eq!(
        rmp_serde::from_slice::<Versioned<Vec<u8>>>(&bytes).unwrap(),
        object
    );
    let text = serde_json::to_string(&object).unwrap();
    assert_eq!(
        serde_json::from_str::<Versioned<Vec<u8>>>(&text).unwrap(),
        object
    );

    let (vv, siblings) = object.clone().into_parts();
    let mut reversed = siblings.clone();
    reversed.reverse();
    assert_eq!(
        Versioned::from_parts(vv.clone(), reversed),
        Err(VersionError::UnsortedSiblings)
    );
    let duplicated = vec![siblings[0].clone(), siblings[0].clone()];
    assert_eq!(
        Versioned::from_parts(vv.clone(), duplicated),
        Err(VersionError::UnsortedSiblings)
    );
    let mut beyond = siblings[0].clone();
    beyond.dot.counter = 9;
    assert_eq!(
        Versioned::from_parts(vv.clone(), vec![beyond.clone()]),
        Err(VersionError::UncoveredSibling { dot: beyond.dot })
    );
    let mut zero = siblings[0].clone();
    zero.dot.counter = 0;
    assert!(Versioned::from_parts(vv.clone(), vec![zero]).is_err());
    let many: Vec<Sibling<Vec<u8>>> = (1..=SIBLINGS_CAP_MAX as u64 + 1)
        .map(|counter| Sibling {
            dot: Dot { actor: A, counter },
            timestamp: at(1),
            value: Vec::new(),
        })
        .collect();
    let wide = VersionVector::from_entries(vec![(A, SIBLINGS_CAP_MAX as u64 + 1)]).unwrap();
    assert!(matches!(
        Versioned::from_parts(wide, many),
        Err(VersionError::TooManySiblings { .. })
    ));

    // The decoder applies the same checks.
    let mut broken = serde_json::to_value(&object).unwrap();
    broken["siblings"][0]["dot"]["counter"] = serde_json::json!(99);
    assert!(serde_json::from_value::<Versioned<Vec<u8>>>(broken).is_err());
}

/// Where a client's causal context comes from.
#[derive(Clone, Debug)]
enum Context {
    Blind,
    Local,
    ReadFrom(usize),
    ReadAll,
}

#[derive(Clone, Debug)]
enum Step {
    Write {
        replica: usize,
        context: Context,
        wall_ms: u64,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let context = prop_oneof![
        Just(Context::Blind),
        Just(Context::Local),
        (0usize..4).prop_map(Context::ReadFrom),
        Just(Context::ReadAll),
    ];
    prop_oneof![
        (0usize..4, context, 0u64..20).prop_map(|(replica, context, wall_ms)| Step::Write {
            replica,
            context,
            wall_ms
        }),
        (0usize..4, 0usize..4).prop_map(|(from, to)| Step::Sync { from, to }),
    ]
}

/// A realistic history: 3 or 4 replicas that take writes (each value unique) with
/// contexts clients read somewhere, and exchange their copies.
fn history() -> impl Strategy<Value = (usize, Vec<Step>)> {
    (3usize..=4, proptest::collection::vec(step(), 1..40))
}

struct Run {
    replicas: Vec<Versioned<u32>>,
    /// Every replica's copy after every step: the objects the merge laws are tried on.
    snapshots: Vec<Versioned<u32>>,
    /// Each write's dot, value and the context it was made with.
    writes: Vec<(Dot, u32, VersionVector)>,
}

fn run(replica_count: usize, steps: &[Step], cap: usize) -> Run {
    let actors: Vec<Actor> = (0..replica_count)
        .map(|index| Actor(100 + index as u64))
        .collect();
    let mut clocks = vec![HybridClock::new(1_000); replica_count];
    let mut replicas = vec![Versioned::new(); replica_count];
    let mut snapshots = Vec::new();
    let mut writes = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        match step {
            Step::Write {
                replica,
                context,
                wall_ms,
            } => {
                let replica = replica % replica_count;
                let context = match context {
                    Context::Blind => VersionVector::new(),
                    Context::Local => replicas[replica].context().clone(),
                    Context::ReadFrom(other) => replicas[other % replica_count].context().clone(),
                    Context::ReadAll => replicas
                        .iter()
                        .fold(Versioned::new(), |all, copy| merged(&all, copy, cap))
                        .context()
                        .clone(),
                };
                let timestamp = clocks[replica].now(*wall_ms);
                let value = index as u32;
                let dot = replicas[replica]
                    .mint(actors[replica], &context, value, timestamp, cap)
                    .unwrap();
                writes.push((dot, value, context));
            }
            Step::Sync { from, to } => {
                let source = replicas[from % replica_count].clone();
                replicas[to % replica_count].merge(&source, cap).unwrap();
            }
        }
        snapshots.extend(replicas.iter().cloned());
    }
    Run {
        replicas,
        snapshots,
        writes,
    }
}

fn pick<'a>(run: &'a Run, index: &Index) -> &'a Versioned<u32> {
    index.get(&run.snapshots)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn merge_is_commutative_associative_idempotent_within_the_cap(
        (replica_count, steps) in history(),
        picks in (any::<Index>(), any::<Index>(), any::<Index>()),
    ) {
        // At most 40 writes, so the cap never applies and the laws hold exactly.
        let run = run(replica_count, &steps, SIBLINGS_CAP_MAX);
        let (a, b, c) = (pick(&run, &picks.0), pick(&run, &picks.1), pick(&run, &picks.2));
        let cap = SIBLINGS_CAP_MAX;
        let ab = merged(a, b, cap);
        prop_assert_eq!(&ab, &merged(b, a, cap));
        prop_assert_eq!(merged(&ab, c, cap), merged(a, &merged(b, c, cap), cap));
        prop_assert_eq!(&merged(a, a, cap), a);
        prop_assert!(ab.context().descends(a.context()) && ab.context().descends(b.context()));
        prop_assert_eq!(ab.digest(), merged(b, a, cap).digest());
        if ab.compare(a) == Causality::Equal {
            prop_assert_eq!(&ab, a);
        }
    }

    #[test]
    fn exactly_the_writes_no_context_has_seen_survive(
        (replica_count, steps) in history(),
    ) {
        let run = run(replica_count, &steps, SIBLINGS_CAP_MAX);
        let all = run.replicas.iter().fold(Versioned::new(), |all, copy| merged(&all, copy, SIBLINGS_CAP_MAX));
        let mut expected: Vec<u32> = run
            .writes
            .iter()
            .filter(|(dot, _, _)| !run.writes.iter().any(|(_, _, context)| context.covers(dot)))
            .map(|(_, value, _)| *value)
            .collect();
        expected.sort();
        prop_assert_eq!(sorted_values(&all), expected);

        // A write with the context of everything leaves exactly its own value.
        let mut resolved = all.clone();
        let context = all.context().clone();
        resolved.mint(Actor(100), &context, u32::MAX, Hlc::new(99, 0), SIBLINGS_CAP_MAX).unwrap();
        prop_assert_eq!(sorted_values(&resolved), vec![u32::MAX]);
        prop_assert_eq!(resolved.compare(&all), Causality::After);
    }

    #[test]
    fn beyond_the_cap_merge_stays_commutative_idempotent_and_converges(
        (replica_count, steps) in history(),
        cap in 1usize..=3,
        picks in (any::<Index>(), any::<Index>()),
        order in any::<Index>(),
    ) {
        let run = run(replica_count, &steps, cap);
        prop_assert!(run.snapshots.iter().all(|copy| copy.len() <= cap));
        let (a, b) = (pick(&run, &picks.0), pick(&run, &picks.1));
        let ab = merged(a, b, cap);
        prop_assert_eq!(&ab, &merged(b, a, cap));
        prop_assert_eq!(&merged(a, a, cap), a);
        prop_assert_eq!(&merged(&ab, b, cap), &ab);
        prop_assert!(ab.len() <= cap);
        prop_assert!(ab.context().descends(a.context()) && ab.context().descends(b.context()));

        // Gather every copy into one replica, then send it back out: all converge.
        let mut replicas = run.replicas.clone();
        let hub = order.index(replica_count);
        for index in 0..replica_count {
            let copy = replicas[index].clone();
            replicas[hub].merge(&copy, cap).unwrap();
        }
        let gathered = replicas[hub].clone();
        for replica in replicas.iter_mut() {
            replica.merge(&gathered, cap).unwrap();
            prop_assert_eq!(&*replica, &gathered);
        }
    }
}

/// What a test sibling weighs against a byte budget: 10 to 70 units by value.
fn test_weight(sibling: &Sibling<u32>) -> usize {
    10 * (sibling.value as usize % 7 + 1)
}

fn merged_within(
    left: &Versioned<u32>,
    right: &Versioned<u32>,
    bytes_max: usize,
) -> Versioned<u32> {
    let mut result = left.clone();
    result
        .merge_bounded(right, SIBLINGS_CAP_MAX, bytes_max, test_weight)
        .expect("test objects stay within the actor limit");
    result
}

#[test]
fn a_byte_budget_keeps_the_newest_siblings_and_covers_the_dropped_dots() {
    // Weights 20 (value 1), 40 (value 3), 60 (value 5); newest last.
    let left = written_once(A, 1, at(1));
    let right = written_once(B, 3, at(2));
    let newest = written_once(C, 5, at(3));
    let all = merged_within(&merged_within(&left, &right, 1000), &newest, 1000);
    assert_eq!(sorted_values(&all), vec![1, 3, 5]);
    // 100 units: the newest (60) and the next (40) fit, the oldest does not.
    let trimmed = merged_within(&merged_within(&left, &right, 100), &newest, 100);
    assert_eq!(sorted_values(&trimmed), vec![3, 5]);
    assert!(trimmed.context().covers(&Dot {
        actor: A,
        counter: 1
    }));
    // The dropped value cannot come back from a replica that still holds it.
    assert_eq!(merged_within(&trimmed, &left, 100), trimmed);
    // A budget below the newest sibling alone still keeps it.
    let lone = merged_within(&all, &all, 1);
    assert_eq!(sorted_values(&lone), vec![5]);
}

/// An object holding `value`, blindly written once by `actor` at `timestamp`.
fn written_once(actor: Actor, value: u32, timestamp: Hlc) -> Versioned<u32> {
    let mut object = Versioned::new();
    object
        .mint(actor, &VersionVector::new(), value, timestamp, SIBLINGS_MAX)
        .unwrap();
    object
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn beyond_the_byte_budget_merge_stays_commutative_idempotent_and_keeps_the_newest(
        (replica_count, steps) in history(),
        bytes_max in 1usize..=200,
        picks in (any::<Index>(), any::<Index>()),
    ) {
        let run = run(replica_count, &steps, SIBLINGS_CAP_MAX);
        let (a, b) = (pick(&run, &picks.0), pick(&run, &picks.1));
        let (a, b) = (merged_within(a, a, bytes_max), merged_within(b, b, bytes_max));
        let ab = merged_within(&a, &b, bytes_max);
        prop_assert_eq!(&ab, &merged_within(&b, &a, bytes_max));
        prop_assert_eq!(&merged_within(&a, &a, bytes_max), &a);
        prop_assert_eq!(&merged_within(&ab, &b, bytes_max), &ab);
        prop_assert!(ab.context().descends(a.context()) && ab.context().descends(b.context()));
        let weight: usize = ab.siblings().iter().map(test_weight).sum();
        prop_assert!(weight <= bytes_max || ab.len() == 1, "{} units in {} siblings", weight, ab.len());
        // What the budget dropped is older than everything it kept.
        let unbounded = merged(&a, &b, SIBLINGS_CAP_MAX);
        let kept_oldest = ab.siblings().iter().map(|s| (s.timestamp, s.dot)).min();
        for sibling in unbounded.siblings() {
            if !ab.siblings().contains(sibling) {
                prop_assert!(Some((sibling.timestamp, sibling.dot)) < kept_oldest);
                prop_assert!(ab.context().covers(&sibling.dot));
            }
        }
        // A budget nothing reaches changes nothing.
        prop_assert_eq!(merged_within(&a, &b, usize::MAX), merged(&a, &b, SIBLINGS_CAP_MAX));
    }
}
