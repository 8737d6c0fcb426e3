use super::*;
use crate::object::ObjectKey;
use proptest::prelude::*;

fn keys(window: Window) -> (Vec<Vec<u8>>, bool) {
    let (entries, more) = window.finish();
    (entries.into_iter().map(|(key, _)| key).collect(), more)
}

#[test]
fn a_window_keeps_the_smallest_positions_and_whole_groups() {
    let mut window = Window::new(10, 2, 1 << 20);
    window.offer(9, b"before".to_vec(), vec![]);
    window.offer(30, b"c".to_vec(), vec![]);
    window.offer(20, b"b".to_vec(), vec![]);
    window.offer(20, b"a".to_vec(), vec![]);
    window.offer(40, b"d".to_vec(), vec![]);
    // Position 20 holds two keys: the page is that group alone.
    assert_eq!(keys(window), (vec![b"a".to_vec(), b"b".to_vec()], true));
}

#[test]
fn a_group_larger_than_the_budget_is_still_a_page() {
    let mut window = Window::new(0, 1, 1);
    window.offer(5, b"a".to_vec(), vec![0; 100]);
    window.offer(5, b"b".to_vec(), vec![0; 100]);
    assert_eq!(keys(window), (vec![b"a".to_vec(), b"b".to_vec()], false));
}

#[test]
fn a_window_holding_everything_says_there_is_no_more() {
    let mut window = Window::new(0, 10, 1 << 20);
    window.offer(1, b"a".to_vec(), vec![1]);
    window.offer(2, b"b".to_vec(), vec![2]);
    assert_eq!(keys(window), (vec![b"a".to_vec(), b"b".to_vec()], false));
}

/// A replica over a memory store of one partition holding `keys` (class, key).
fn replica_with(keys: &[(Class, &[u8])]) -> Replica {
    let replica = crate::replica::tests::memory_replica();
    let object = crate::object::Object::Doc(crate::crdt::Doc::Redis(Default::default()));
    let bytes = crate::object::encode_object(&object);
    for (class, key) in keys {
        let key = StoreKey::new(PartitionId(0), ObjectKey::new(*class, key).storage_bytes());
        replica
            .storage()
            .update(&key, &mut |_| Ok(Some(bytes.clone().into())))
            .unwrap();
    }
    replica
}

#[test]
fn a_class_page_holds_that_class_only_the_empty_key_included_by_position() {
    let replica = replica_with(&[
        (Class::Kv, b"kv"),
        (Class::Resp, b""),
        (Class::Resp, b"a"),
        (Class::Resp, b"b"),
        (Class::Auth, b"token"),
    ]);
    let scan = ClassScan {
        partition: PartitionId(0),
        class: Class::Resp,
        from: 0,
        keys_max: 10,
        bytes_max: 1 << 20,
    };
    let (entries, more) = replica.class_page(&scan).unwrap();
    assert!(!more);
    let positions: Vec<u32> = entries
        .iter()
        .map(|entry| position_of(&entry.key, 1).unwrap())
        .collect();
    let mut names: Vec<Vec<u8>> = entries.into_iter().map(|entry| entry.key).collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] <= pair[1]),
        "{positions:?}"
    );
    names.sort();
    assert_eq!(names, vec![vec![3], vec![3, b'a'], vec![3, b'b']]);
    // A page of one key ends at the smallest position, and says more follow.
    let one = ClassScan {
        keys_max: 1,
        ..scan
    };
    let (entries, more) = replica.class_page(&one).unwrap();
    assert!(more);
    assert_eq!(entries.len(), 1);
    assert_eq!(position_of(&entries[0].key, 1), positions.first().copied());
}

proptest! {
    /// Pages chained from the position after each page's last one return every
    /// entry exactly once, in order, whatever order the store offers them in.
    #[test]
    fn chained_pages_cover_every_entry_once(
        entries in proptest::collection::btree_map(
            (0u32..64, proptest::collection::vec(any::<u8>(), 0..3)), 0usize..20, 0..60),
        keys_max in 1usize..8,
        bytes_max in 1usize..60,
    ) {
        let mut seen = Vec::new();
        let mut from = 0u32;
        for _ in 0..200 {
            let mut window = Window::new(from, keys_max, bytes_max);
            for ((position, key), size) in entries.iter().rev() {
                window.offer(*position, key.clone(), vec![0; *size]);
            }
            let last = window.kept.keys().last().map(|(position, _)| *position);
            let (page, more) = window.finish();
            seen.extend(page.into_iter().map(|(key, _)| key));
            match (more, last) {
                (true, Some(last)) => from = last + 1,
                _ => break,
            }
        }
        let expected: Vec<Vec<u8>> = entries.keys().map(|(_, key)| key.clone()).collect();
        prop_assert_eq!(seen, expected);
    }
}
