use super::*;
use proptest::prelude::*;

fn vv(entries: &[(u64, u64)]) -> VersionVector {
    let mut entries: Vec<(Actor, u64)> = entries
        .iter()
        .filter(|(_, counter)| *counter > 0)
        .map(|&(actor, counter)| (Actor(actor), counter))
        .collect();
    entries.sort();
    VersionVector::from_entries(entries).expect("test vector is canonical")
}

#[test]
fn incarnations_of_one_node_are_distinct_actors() {
    let node = NodeId::new("us-east-1").unwrap();
    let mut input = b"us-east-1\0".to_vec();
    input.extend_from_slice(&7u64.to_le_bytes());
    let hash = blake3::hash(&input);
    let expected = u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap());
    assert_eq!(Actor::of_incarnation(&node, 7), Actor(expected));
    let actors: std::collections::HashSet<Actor> = (0..100)
        .map(|incarnation| Actor::of_incarnation(&node, incarnation))
        .collect();
    assert_eq!(actors.len(), 100);
    let other = NodeId::new("us-east-2").unwrap();
    assert_ne!(
        Actor::of_incarnation(&node, 7),
        Actor::of_incarnation(&other, 7)
    );
}

#[test]
fn increment_get_covers() {
    let mut clock = VersionVector::new();
    assert!(clock.is_empty());
    assert_eq!(
        clock.increment(Actor(7)),
        Ok(Dot {
            actor: Actor(7),
            counter: 1
        })
    );
    assert_eq!(
        clock.increment(Actor(3)),
        Ok(Dot {
            actor: Actor(3),
            counter: 1
        })
    );
    assert_eq!(
        clock.increment(Actor(7)),
        Ok(Dot {
            actor: Actor(7),
            counter: 2
        })
    );
    assert_eq!(clock.entries(), &[(Actor(3), 1), (Actor(7), 2)]);
    assert_eq!(clock.len(), 2);
    assert_eq!(clock.get(Actor(7)), 2);
    assert_eq!(clock.get(Actor(9)), 0);
    assert!(clock.covers(&Dot {
        actor: Actor(7),
        counter: 2
    }));
    assert!(!clock.covers(&Dot {
        actor: Actor(7),
        counter: 3
    }));
    assert!(!clock.covers(&Dot {
        actor: Actor(9),
        counter: 1
    }));
}

#[test]
fn compare_names_each_relation() {
    let a = vv(&[(1, 2), (2, 1)]);
    assert_eq!(a.compare(&a.clone()), Causality::Equal);
    assert_eq!(vv(&[(1, 1)]).compare(&a), Causality::Before);
    assert_eq!(a.compare(&vv(&[(1, 1)])), Causality::After);
    assert_eq!(a.compare(&vv(&[(3, 1)])), Causality::Concurrent);
    assert_eq!(VersionVector::new().compare(&a), Causality::Before);
}

#[test]
fn too_many_actors_is_refused_without_change() {
    let full = vv(&(0..VV_ACTORS_MAX as u64)
        .map(|a| (a, 1))
        .collect::<Vec<_>>());
    let mut grown = full.clone();
    let refused = grown.increment(Actor(u64::MAX));
    assert_eq!(
        refused,
        Err(VersionError::TooManyActors {
            count: VV_ACTORS_MAX + 1,
            max: VV_ACTORS_MAX
        })
    );
    assert_eq!(grown, full);

    let mut merged = full.clone();
    let refused = merged.merge(&vv(&[(1_000, 1), (1_001, 1)]));
    assert_eq!(
        refused,
        Err(VersionError::TooManyActors {
            count: VV_ACTORS_MAX + 2,
            max: VV_ACTORS_MAX
        })
    );
    assert_eq!(merged, full);
    // Known actors still advance in a full vector.
    assert!(merged.increment(Actor(0)).is_ok());
}

#[test]
fn counter_overflow_is_refused_without_change() {
    let mut exhausted = vv(&[(1, u64::MAX)]);
    let before = exhausted.clone();
    assert_eq!(
        exhausted.increment(Actor(1)),
        Err(VersionError::CounterOverflow { actor: Actor(1) })
    );
    assert_eq!(exhausted, before);
}

#[test]
fn decoding_refuses_non_canonical_vectors() {
    let decode = |entries: Vec<(Actor, u64)>| {
        let bytes = rmp_serde::to_vec(&entries).unwrap();
        rmp_serde::from_slice::<VersionVector>(&bytes)
    };
    assert!(decode(vec![(Actor(1), 1), (Actor(2), 5)]).is_ok());
    for bad in [
        vec![(Actor(2), 1), (Actor(1), 1)],
        vec![(Actor(1), 1), (Actor(1), 2)],
        vec![(Actor(1), 0)],
        (0..=VV_ACTORS_MAX as u64).map(|a| (Actor(a), 1)).collect(),
    ] {
        assert!(decode(bad.clone()).is_err(), "{bad:?} must be refused");
    }
    assert_eq!(
        VersionVector::from_entries(vec![(Actor(2), 1), (Actor(1), 1)]),
        Err(VersionError::UnsortedActors)
    );
    assert_eq!(
        VersionVector::from_entries(vec![(Actor(4), 0)]),
        Err(VersionError::ZeroCounter { actor: Actor(4) })
    );
}

#[test]
fn serde_round_trips_in_both_formats() {
    let clock = vv(&[(1, 3), (u64::MAX, 9)]);
    let bytes = rmp_serde::to_vec(&clock).unwrap();
    assert_eq!(
        rmp_serde::from_slice::<VersionVector>(&bytes).unwrap(),
        clock
    );
    let text = serde_json::to_string(&clock).unwrap();
    assert_eq!(serde_json::from_str::<VersionVector>(&text).unwrap(), clock);
}

/// Small actor and counter ranges so that equal, ordered and concurrent pairs all occur.
fn small_vv() -> impl Strategy<Value = VersionVector> {
    proptest::collection::vec(0u64..3, 3).prop_map(|counters| {
        let entries: Vec<(u64, u64)> = counters
            .into_iter()
            .enumerate()
            .map(|(a, c)| (a as u64, c))
            .collect();
        vv(&entries)
    })
}

fn reverse(causality: Causality) -> Causality {
    match causality {
        Causality::Before => Causality::After,
        Causality::After => Causality::Before,
        same => same,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compare_is_a_partial_order(a in small_vv(), b in small_vv(), c in small_vv()) {
        prop_assert_eq!(a.compare(&a), Causality::Equal);
        prop_assert_eq!(a.compare(&b), reverse(b.compare(&a)));
        if a.compare(&b) == Causality::Equal {
            prop_assert_eq!(&a, &b);
        }
        if a.descends(&b) && b.descends(&a) {
            prop_assert_eq!(&a, &b);
        }
        if a.compare(&b) == Causality::Before && b.compare(&c) == Causality::Before {
            prop_assert_eq!(a.compare(&c), Causality::Before);
        }
    }

    #[test]
    fn before_is_transitive_along_built_chains(a in small_vv(), b in small_vv(), c in small_vv()) {
        // Build a <= ab <= abc so the chain hypothesis holds often, not by luck.
        let mut ab = a.clone();
        ab.merge(&b).unwrap();
        let mut abc = ab.clone();
        abc.merge(&c).unwrap();
        if a.compare(&ab) == Causality::Before && ab.compare(&abc) == Causality::Before {
            prop_assert_eq!(a.compare(&abc), Causality::Before);
        }
        prop_assert!(abc.descends(&a));
    }

    #[test]
    fn compare_agrees_with_descends(a in small_vv(), b in small_vv()) {
        let expected = match (a.descends(&b), b.descends(&a)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (false, false) => Causality::Concurrent,
        };
        prop_assert_eq!(a.compare(&b), expected);
    }

    #[test]
    fn merge_is_the_least_upper_bound(a in small_vv(), b in small_vv(), c in small_vv()) {
        let mut merged = a.clone();
        merged.merge(&b).unwrap();
        prop_assert!(merged.descends(&a));
        prop_assert!(merged.descends(&b));
        for actor in 0..3 {
            prop_assert_eq!(merged.get(Actor(actor)), a.get(Actor(actor)).max(b.get(Actor(actor))));
        }
        if c.descends(&a) && c.descends(&b) {
            prop_assert!(c.descends(&merged));
        }
        let mut swapped = b.clone();
        swapped.merge(&a).unwrap();
        prop_assert_eq!(&merged, &swapped);
        let mut again = merged.clone();
        again.merge(&merged).unwrap();
        prop_assert_eq!(&again, &merged);
    }

    #[test]
    fn covers_matches_get(a in small_vv(), actor in 0u64..4, counter in 1u64..4) {
        let dot = Dot { actor: Actor(actor), counter };
        prop_assert_eq!(a.covers(&dot), counter <= a.get(Actor(actor)));
    }
}
