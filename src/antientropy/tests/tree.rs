//! Laws of the partition tree: order independence, update/remove symmetry, batch and
//! rebuild equal to incremental updates, sensitivity to every digest.

use proptest::prelude::*;

use super::model::digest;
use crate::antientropy::tree::inner_hash;
use crate::antientropy::{entry_hash, leaf_index, Hash, PartitionTree, TreeError, EMPTY_HASH};
use crate::limits::{TREE_DEPTH_DEFAULT, TREE_DEPTH_MAX, TREE_DEPTH_MIN};

type Entries = Vec<(Vec<u8>, Hash)>;

fn entries_strategy() -> impl Strategy<Value = Entries> {
    prop::collection::btree_map(
        prop::collection::vec(any::<u8>(), 0..12),
        any::<u64>(),
        0..64,
    )
    .prop_map(|map| {
        map.into_iter()
            .map(|(key, seed)| (key, digest(seed)))
            .collect()
    })
}

fn entries_and_order() -> impl Strategy<Value = (Entries, Entries)> {
    entries_strategy().prop_flat_map(|entries| {
        let shuffled = Just(entries.clone()).prop_shuffle();
        (Just(entries), shuffled)
    })
}

fn incremental(depth: u8, entries: &[(Vec<u8>, Hash)]) -> PartitionTree {
    let mut tree = PartitionTree::new(depth).unwrap();
    for (key, digest) in entries {
        tree.update(key, None, Some(*digest));
    }
    tree
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn same_entries_in_any_order_give_the_same_root((entries, shuffled) in entries_and_order(), depth in 1u8..=12) {
        let forward = incremental(depth, &entries);
        let other = incremental(depth, &shuffled);
        prop_assert_eq!(forward.root(), other.root());
        prop_assert_eq!(forward, other);
    }

    #[test]
    fn inserting_then_removing_everything_leaves_an_empty_tree((entries, shuffled) in entries_and_order(), depth in 1u8..=12) {
        let mut tree = incremental(depth, &entries);
        prop_assert_eq!(tree.is_empty(), entries.is_empty());
        for (key, digest) in &shuffled {
            tree.update(key, Some(*digest), None);
        }
        prop_assert!(tree.is_empty());
        prop_assert_eq!(tree.root(), EMPTY_HASH);
        prop_assert_eq!(tree, PartitionTree::new(depth).unwrap());
    }

    #[test]
    fn rebuild_and_batch_equal_incremental_updates(entries in entries_strategy(), depth in 1u8..=12) {
        let expected = incremental(depth, &entries);
        let rebuilt = PartitionTree::from_entries(depth, entries.iter().map(|(key, digest)| (key.as_slice(), *digest))).unwrap();
        prop_assert_eq!(&rebuilt, &expected);
        let mut batched = PartitionTree::new(depth).unwrap();
        let mut batch = batched.batch();
        for (key, digest) in &entries {
            batch.update(key, None, Some(*digest));
        }
        prop_assert!(batch.dirty_leaves() <= entries.len());
        batch.commit();
        prop_assert_eq!(&batched, &expected);
        let restored = PartitionTree::from_leaves(depth, expected.leaves()).unwrap();
        prop_assert_eq!(&restored, &expected);
    }

    #[test]
    fn changing_or_removing_one_digest_changes_the_root(entries in entries_strategy(), pick in any::<prop::sample::Index>(), seed in any::<u64>()) {
        prop_assume!(!entries.is_empty());
        let tree = incremental(TREE_DEPTH_DEFAULT, &entries);
        let (key, old) = &entries[pick.index(entries.len())];
        let new = digest(seed);
        prop_assume!(new != *old);
        let mut changed = tree.clone();
        changed.update(key, Some(*old), Some(new));
        prop_assert_ne!(changed.root(), tree.root());
        changed.update(key, Some(new), Some(*old));
        prop_assert_eq!(&changed, &tree);
        changed.update(key, Some(*old), None);
        prop_assert_ne!(changed.root(), tree.root());
    }
}

#[test]
fn depth_is_bounded() {
    assert_eq!(
        PartitionTree::new(TREE_DEPTH_MIN - 1),
        Err(TreeError::DepthOutOfRange { depth: 0 })
    );
    assert_eq!(
        PartitionTree::new(TREE_DEPTH_MAX + 1),
        Err(TreeError::DepthOutOfRange { depth: 17 })
    );
    let deepest = PartitionTree::new(TREE_DEPTH_MAX).unwrap();
    assert_eq!(deepest.leaf_count(), 65_536);
    assert_eq!(PartitionTree::default().depth(), TREE_DEPTH_DEFAULT);
    assert!(matches!(
        PartitionTree::from_leaves(3, &[EMPTY_HASH; 7]),
        Err(TreeError::LeafCount {
            expected: 8,
            got: 7,
            ..
        })
    ));
}

#[test]
fn nodes_follow_the_stated_hashing() {
    let mut tree = PartitionTree::new(2).unwrap();
    let key = b"\x01alice".as_slice();
    let leaf = tree.leaf_of(key);
    assert_eq!(leaf, leaf_index(key, 2));
    tree.update(key, None, Some(digest(7)));
    assert_eq!(tree.node(2, leaf), Some(entry_hash(key, &digest(7))));
    let level1 = |index: u32| {
        inner_hash(
            &tree.node(2, 2 * index).unwrap(),
            &tree.node(2, 2 * index + 1).unwrap(),
        )
    };
    assert_eq!(tree.node(1, 0), Some(level1(0)));
    assert_eq!(
        tree.node(1, leaf / 2),
        Some(
            *blake3::hash(
                &[
                    tree.node(2, leaf & !1).unwrap(),
                    tree.node(2, leaf | 1).unwrap()
                ]
                .concat()
            )
            .as_bytes()
        )
    );
    assert_eq!(tree.root(), inner_hash(&level1(0), &level1(1)));
    assert_eq!(
        tree.node(1, 1 - leaf / 2),
        Some(EMPTY_HASH),
        "an empty subtree hashes to zero"
    );
    assert_eq!(tree.node(3, 0), None);
    assert_eq!(tree.node(2, 4), None);
    // The length prefix separates key bytes from digest bytes.
    assert_ne!(entry_hash(b"ab", &digest(1)), entry_hash(b"a", &digest(1)));
}

#[test]
fn keys_of_one_partition_spread_over_the_leaves() {
    // Keys that share the ring's leading hash bits (as all keys of one partition do)
    // must still spread: the leaf hash is domain-separated from the ring's.
    let depth = TREE_DEPTH_DEFAULT;
    let mut used = std::collections::BTreeSet::new();
    let mut count = 0;
    for id in 0u64..200_000 {
        let key = [&[1u8][..], &id.to_le_bytes()].concat();
        let ring = u64::from_le_bytes(blake3::hash(&key).as_bytes()[..8].try_into().unwrap());
        if ring >> 54 == 0 {
            count += 1;
            used.insert(leaf_index(&key, depth));
        }
    }
    assert!(
        count > 100,
        "the sample holds one partition's worth of keys"
    );
    assert!(
        used.len() * 10 > count * 8,
        "{} keys fell into only {} leaves",
        count,
        used.len()
    );
}

#[test]
fn a_batch_rehashes_each_dirty_path_once_and_on_drop() {
    let mut expected = PartitionTree::new(6).unwrap();
    let mut batched = expected.clone();
    {
        let mut batch = batched.batch();
        for id in 0..500u64 {
            let key = id.to_le_bytes();
            batch.update(&key, None, Some(digest(id)));
            expected.update(&key, None, Some(digest(id)));
        }
        assert!(
            batch.dirty_leaves() <= 64,
            "dirty leaves are counted once each"
        );
        batch.update(b"same", Some(digest(1)), Some(digest(1)));
    }
    assert_eq!(batched, expected);
}
