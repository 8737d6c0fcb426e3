use super::*;
use crate::coordinator::quorum::QuorumError;

fn timeout() -> CoordinatorError {
    CoordinatorError::Timeout {
        level: Level::LocalQuorum,
        needed: 2,
        acked: 1,
        answered: 1,
        replicas: 3,
        after_ms: 2_000,
        short: String::new(),
    }
}

#[test]
fn each_request_is_counted_under_its_own_labels() {
    let latencies = RequestLatencies::default();
    let ok: Result<(), CoordinatorError> = Ok(());
    latencies.observe(
        Op::Read,
        Class::Kv,
        Level::LocalQuorum,
        &ok,
        Duration::from_millis(3),
    );
    latencies.observe(
        Op::Read,
        Class::Kv,
        Level::LocalQuorum,
        &ok,
        Duration::from_millis(4),
    );
    latencies.observe(
        Op::Write,
        Class::Auth,
        Level::RegionSafe,
        &Err::<(), _>(timeout()),
        Duration::from_secs(2),
    );
    latencies.observe(
        Op::Write,
        Class::Resp,
        Level::Count(2),
        &Err::<(), _>(CoordinatorError::Level(QuorumError::TooFewReplicas {
            level: Level::Count(2),
            needed: 2,
            available: 1,
        })),
        Duration::from_millis(1),
    );
    let seen: Vec<(Labels, u64)> = latencies
        .observed()
        .map(|(labels, snapshot)| (labels, snapshot.count()))
        .collect();
    let labels = |op, class, level, outcome| Labels {
        op,
        class,
        level,
        outcome,
    };
    assert_eq!(
        seen,
        vec![
            (labels("read", "kv", "local_quorum", "ok"), 2),
            (labels("write", "auth", "region_safe", "timeout"), 1),
            (labels("write", "resp", "2", "unavailable"), 1),
        ]
    );
}

#[test]
fn every_level_has_a_slot_and_a_label_of_its_own_up_to_the_labelled_counts() {
    let mut levels = vec![
        Level::One,
        Level::LocalQuorum,
        Level::Quorum,
        Level::EachQuorum,
        Level::All,
        Level::RegionSafe,
        Level::MajorityQuorum,
        Level::RegionQuorums(2),
    ];
    levels.extend((1..=COUNT_LEVELS_LABELLED).map(Level::Count));
    levels.push(Level::Count(COUNT_LEVELS_LABELLED + 1));
    let slots: Vec<usize> = levels.iter().map(|&level| level_slot(level)).collect();
    assert_eq!(slots, (0..LEVEL_SLOTS).collect::<Vec<_>>());
    for level in levels {
        let label = level_label(level_slot(level));
        match level {
            Level::Count(count) if count > COUNT_LEVELS_LABELLED => {
                assert_eq!(label, COUNT_OVER_LABEL)
            }
            Level::RegionQuorums(_) => assert_eq!(label, "region_quorums"),
            other => assert_eq!(label, other.to_string()),
        }
    }
    assert_eq!(level_slot(Level::Count(1_000)), LEVEL_SLOTS - 1);
}
