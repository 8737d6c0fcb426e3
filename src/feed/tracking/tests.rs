//! The tracking table against a model (a map of key to the set of its listeners), and
//! its byte bound.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn a_change_reaches_the_readers_of_its_key_once() {
    let mut table = Table::new(1 << 20);
    assert!(table.track(1, b"a").is_empty());
    assert!(table.track(2, b"a").is_empty());
    assert!(
        table.track(2, b"a").is_empty(),
        "a second read adds nothing"
    );
    table.track(3, b"b");
    let mut told = table.take(b"a", None);
    told.sort();
    assert_eq!(told, vec![1, 2]);
    assert!(
        table.take(b"a", None).is_empty(),
        "told once, then forgotten"
    );
    assert_eq!(table.take(b"b", None), vec![3]);
    assert_eq!((table.len(), table.bytes()), (0, 0));
}

#[test]
fn a_listener_that_goes_is_never_told_and_costs_nothing() {
    let mut table = Table::new(1 << 20);
    table.track(1, b"a");
    table.track(2, b"a");
    table.track(1, b"b");
    table.forget(1);
    assert_eq!(table.take(b"a", None), vec![2]);
    assert!(table.take(b"b", None).is_empty());
    assert_eq!(table.bytes(), 0);
}

#[test]
fn past_its_bound_the_oldest_keys_are_dropped_and_handed_back_to_be_told() {
    let entry = KEY_FIXED_BYTES + 1 + LISTENER_REF_BYTES;
    let mut table = Table::new(3 * entry);
    for key in [b"a", b"b", b"c"] {
        assert!(table.track(7, key).is_empty());
    }
    let dropped = table.track(8, b"d");
    assert_eq!(dropped.len(), 1);
    assert_eq!(&*dropped[0].0, b"a");
    assert_eq!(dropped[0].1, vec![7]);
    assert!(table.bytes() <= 3 * entry);
    assert!(table.take(b"a", None).is_empty());
    assert_eq!(table.take(b"d", None), vec![8]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Through random reads, changes and departures: every listener told of a key
    /// tracked it (per the model) and every listener that tracked it is told, either at
    /// the change or when the bound dropped the key; the bytes never pass the bound.
    #[test]
    fn the_table_tells_exactly_the_readers_of_a_key(
        steps in proptest::collection::vec((0u8..3, 0u64..5, 0u8..12), 1..300),
        bytes_max in 300usize..3_000,
    ) {
        let mut table = Table::new(bytes_max);
        let mut model: BTreeMap<Vec<u8>, BTreeSet<u64>> = BTreeMap::new();
        for (action, listener, key) in steps {
            let key = vec![key; 1 + key as usize];
            match action {
                0 => {
                    model.entry(key.clone()).or_default().insert(listener);
                    for (dropped, listeners) in table.track(listener, &key) {
                        let want = model.remove(&dropped[..]).unwrap_or_default();
                        prop_assert_eq!(listeners.into_iter().collect::<BTreeSet<_>>(), want);
                    }
                }
                1 => {
                    let told: BTreeSet<u64> = table.take(&key, None).into_iter().collect();
                    prop_assert_eq!(told, model.remove(&key).unwrap_or_default());
                }
                _ => {
                    table.forget(listener);
                    for listeners in model.values_mut() {
                        listeners.remove(&listener);
                    }
                    model.retain(|_, listeners| !listeners.is_empty());
                }
            }
            prop_assert!(table.bytes() <= bytes_max);
            prop_assert_eq!(table.len(), model.len());
        }
    }
}

#[test]
fn a_reader_that_saw_the_state_reported_is_not_told_and_goes_on_tracking() {
    let mut table = Table::new(1 << 20);
    table.track(1, b"a");
    table.track(2, b"a");
    table.confirm(1, b"a", [7; 32]);
    table.confirm(3, b"a", [7; 32]);
    assert_eq!(
        table.take(b"a", Some([7; 32])),
        vec![2],
        "1 read that very state"
    );
    assert_eq!(
        table.take(b"a", Some([7; 32])),
        Vec::<u64>::new(),
        "another replica's report"
    );
    assert_eq!(table.take(b"a", Some([8; 32])), vec![1], "a new state");
    assert_eq!((table.len(), table.bytes()), (0, 0));
    table.track(1, b"b");
    table.confirm(1, b"b", [7; 32]);
    table.track(1, b"b");
    assert_eq!(
        table.take(b"b", Some([7; 32])),
        vec![1],
        "a new read forgets what the last found"
    );
    table.track(1, b"c");
    table.confirm(1, b"c", [7; 32]);
    assert_eq!(table.take(b"c", None), vec![1], "a drop tells every reader");
}
