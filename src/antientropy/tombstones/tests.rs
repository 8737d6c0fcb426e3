use super::*;
use proptest::prelude::*;

#[test]
fn every_replica_must_have_synced_after_the_grace() {
    assert!(collectable(
        1_000,
        &[Some(5_000), Some(6_000)],
        10_000,
        2_000
    ));
    assert!(
        !collectable(1_000, &[Some(5_000), None], 10_000, 2_000),
        "a replica never synced"
    );
    assert!(
        !collectable(1_000, &[Some(2_500), Some(6_000)], 10_000, 2_000),
        "a sync inside the grace proves nothing"
    );
    assert!(
        !collectable(1_000, &[Some(5_000)], 2_500, 2_000),
        "the grace has not passed"
    );
    assert!(
        collectable(1_000, &[], 3_001, 2_000),
        "a single replica has no one to wait for"
    );
}

proptest! {
    /// More syncs or more time never make a collectable tombstone uncollectable.
    #[test]
    fn collection_is_monotonic(deleted in 0u64..1_000_000, syncs in proptest::collection::vec(proptest::option::of(0u64..3_000_000), 0..5), now in 0u64..3_000_000, grace in 0u64..1_000_000, later in 0u64..1_000) {
        if collectable(deleted, &syncs, now, grace) {
            let newer: Vec<Option<u64>> = syncs.iter().map(|s| s.map(|at| at + later)).collect();
            prop_assert!(collectable(deleted, &newer, now + later, grace));
        }
    }
}
