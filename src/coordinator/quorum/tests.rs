use super::*;
use proptest::prelude::*;

fn region(name: &str) -> Region {
    Region(name.to_string())
}

/// Two replicas in each of three regions, the local one first.
fn six() -> Vec<Region> {
    ["a", "a", "b", "b", "c", "c"]
        .iter()
        .map(|r| region(r))
        .collect()
}

#[test]
fn forgetting_answers_counts_afresh_under_the_same_requirement() {
    let mut all = tracker(Level::All);
    all.record(0, false);
    assert!(matches!(all.progress(), Progress::Failed { .. }));
    all.forget_answers();
    assert_eq!((all.progress(), all.answered()), (Progress::Pending, 0));
    for index in 0..6 {
        all.record(index, true);
    }
    assert_eq!(all.progress(), Progress::Met);
}

#[test]
fn could_meet_with_counts_asked_replicas_that_have_not_failed() {
    let mut local = tracker(Level::LocalQuorum);
    assert!(!local.could_meet_with(&[true, false, false, false, false, false]));
    assert!(local.could_meet_with(&[true, true, false, false, false, false]));
    // Replicas elsewhere do not help a local quorum.
    assert!(!local.could_meet_with(&[true, false, true, true, true, true]));
    local.record(1, false);
    assert!(!local.could_meet_with(&[true, true, false, false, false, false]));
    // A quorum of six is four, anywhere.
    let mut quorum = tracker(Level::Quorum);
    assert!(!quorum.could_meet_with(&[true, true, true, false, false, false]));
    assert!(quorum.could_meet_with(&[true, false, true, false, true, true]));
    quorum.record(2, true);
    quorum.record(0, false);
    assert!(!quorum.could_meet_with(&[true, false, true, false, true, true]));
    assert!(quorum.could_meet_with(&[true, true, true, false, true, true]));
    let region_safe = tracker(Level::RegionSafe);
    assert!(!region_safe.could_meet_with(&[true, true, false, false, false, false]));
    assert!(region_safe.could_meet_with(&[true, true, false, false, true, false]));
}

fn tracker(level: Level) -> QuorumTracker {
    let regions = six();
    QuorumTracker::new(
        Requirement::new(level, &regions, &region("a")).unwrap(),
        regions,
    )
}

#[test]
fn levels_parse_and_print_round_trip() {
    for text in [
        "one",
        "local_quorum",
        "quorum",
        "each_quorum",
        "all",
        "region_safe",
        "majority_quorum",
        "3",
    ] {
        assert_eq!(text.parse::<Level>().unwrap().to_string(), text);
    }
    assert!("0".parse::<Level>().is_err());
    let error = "most".parse::<Level>().unwrap_err().to_string();
    assert!(
        error.contains("\"most\"") && error.contains("region_safe"),
        "{error}"
    );
}

#[test]
fn local_quorum_needs_the_local_majority_only() {
    let mut t = tracker(Level::LocalQuorum);
    assert_eq!(
        t.record(2, true),
        Progress::Pending,
        "remote acks do not count"
    );
    assert_eq!(t.record(0, true), Progress::Pending);
    assert_eq!(t.record(1, true), Progress::Met);
}

#[test]
fn region_safe_needs_a_remote_ack() {
    let mut t = tracker(Level::RegionSafe);
    t.record(0, true);
    assert_eq!(t.record(1, true), Progress::Pending);
    assert_eq!(t.record(4, true), Progress::Met);
}

#[test]
fn the_shortfall_names_the_part_of_the_requirement_not_met() {
    // Many acknowledgements elsewhere, one short in the local region: the words say so.
    let mut t = tracker(Level::LocalQuorum);
    for remote in 2..6 {
        t.record(remote, true);
    }
    t.record(0, true);
    assert_eq!(t.shortfall(), "; short in a 1 of 2");
    t.record(1, true);
    assert_eq!(t.shortfall(), "");
    let mut t = tracker(Level::RegionSafe);
    t.record(0, true);
    t.record(1, true);
    assert_eq!(t.shortfall(), "; short in outside a 0 of 1");
    let mut t = tracker(Level::EachQuorum);
    t.record(0, true);
    t.record(1, true);
    t.record(2, true);
    assert!(t.shortfall().contains("b 1 of 2"), "{}", t.shortfall());
    assert!(t.shortfall().contains("c 0 of 2"), "{}", t.shortfall());
}

#[test]
fn a_hint_counts_in_the_region_that_holds_it() {
    let mut t = tracker(Level::RegionSafe);
    t.record(0, true);
    t.record(1, true);
    // The remote replica 2 is down; its hint sits on a node of the local region.
    assert_eq!(t.record_in_region(2, true, region("a")), Progress::Pending);
    assert_eq!(t.record(4, true), Progress::Met);
}

#[test]
fn each_quorum_fails_fast_when_a_region_is_gone() {
    let mut t = tracker(Level::EachQuorum);
    t.record(0, true);
    t.record(1, true);
    assert_eq!(
        t.record(4, false),
        Progress::Failed {
            needed: 6,
            acked: 2
        }
    );
}

#[test]
fn majority_quorum_needs_two_whole_region_majorities_of_three() {
    let mut t = tracker(Level::MajorityQuorum);
    // One replica in each region is no region's majority.
    t.record(0, true);
    t.record(2, true);
    assert_eq!(t.record(4, true), Progress::Pending);
    // Region c is gone: a and b are still a majority of the regions.
    t.record(5, false);
    assert_eq!(t.record(1, true), Progress::Pending, "a's majority alone");
    assert_eq!(t.record(3, true), Progress::Met, "b's majority joins a's");
    // The local region is not needed: b and c meet it without a.
    let mut remote = tracker(Level::MajorityQuorum);
    remote.record(0, false);
    remote.record(1, false);
    for index in 2..5 {
        assert_eq!(remote.record(index, true), Progress::Pending);
    }
    assert_eq!(remote.record(5, true), Progress::Met);
}

#[test]
fn majority_quorum_fails_once_two_regions_cannot_reach_their_majority() {
    let mut t = tracker(Level::MajorityQuorum);
    t.record(0, true);
    t.record(1, true);
    t.record(2, false);
    assert!(matches!(t.record(4, false), Progress::Failed { .. }));
}

#[test]
fn region_quorums_counts_the_regions_asked_for() {
    let mut every = tracker(Level::RegionQuorums(3));
    for index in 0..5 {
        assert_eq!(every.record(index, true), Progress::Pending);
    }
    assert_eq!(every.record(5, true), Progress::Met);
    let mut one = tracker(Level::RegionQuorums(1));
    one.record(2, true);
    assert_eq!(one.record(3, true), Progress::Met);
    let regions = six();
    for regions_needed in [0, 4] {
        assert!(matches!(
            Requirement::new(Level::RegionQuorums(regions_needed), &regions, &region("a")),
            Err(QuorumError::TooFewRegions { .. })
        ));
    }
}

#[test]
fn impossible_levels_are_refused_up_front() {
    let regions = six();
    assert_eq!(
        Requirement::new(Level::Count(7), &regions, &region("a")),
        Err(QuorumError::TooFewReplicas {
            level: Level::Count(7),
            needed: 7,
            available: 6
        })
    );
    let single = vec![region("a"), region("a")];
    assert!(matches!(
        Requirement::new(Level::RegionSafe, &single, &region("a")),
        Err(QuorumError::SingleRegion { .. })
    ));
    assert!(Requirement::new(Level::LocalQuorum, &single, &region("z")).is_err());
}

fn level_strategy() -> impl Strategy<Value = Level> {
    prop_oneof![
        Just(Level::One),
        Just(Level::LocalQuorum),
        Just(Level::Quorum),
        Just(Level::EachQuorum),
        Just(Level::All),
        Just(Level::RegionSafe),
        Just(Level::MajorityQuorum),
        (1u32..=3).prop_map(Level::RegionQuorums),
        (1u32..=6).prop_map(Level::Count),
    ]
}

proptest! {
    /// Met and Failed are final and consistent: once every replica has answered the
    /// outcome is decided, Met never turns into Failed, and all-ok always meets.
    #[test]
    fn outcome_is_monotonic(level in level_strategy(), order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(), oks in proptest::collection::vec(any::<bool>(), 6)) {
        let mut t = tracker(level);
        let mut seen_met = false;
        let mut seen_failed = false;
        for index in order {
            match t.record(index, oks[index]) {
                Progress::Met => { prop_assert!(!seen_failed); seen_met = true; }
                Progress::Failed { .. } => { prop_assert!(!seen_met); seen_failed = true; }
                Progress::Pending => { prop_assert!(!seen_met && !seen_failed); }
            }
        }
        prop_assert!(seen_met || seen_failed);
        if oks.iter().all(|ok| *ok) { prop_assert!(seen_met); }
    }
}
