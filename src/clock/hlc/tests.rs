use super::*;
use proptest::prelude::*;

#[test]
fn now_follows_wall_time_and_resets_logical() {
    let mut clock = HybridClock::new(1_000);
    assert_eq!(clock.now(100), Hlc::new(100, 0));
    assert_eq!(clock.now(100), Hlc::new(100, 1));
    assert_eq!(clock.now(101), Hlc::new(101, 0));
    // Wall time going backwards keeps the wall part and ticks the logical part.
    assert_eq!(clock.now(50), Hlc::new(101, 1));
    assert_eq!(clock.last(), Hlc::new(101, 1));
}

#[test]
fn observe_adopts_a_remote_time_ahead_within_the_drift_bound() {
    let mut clock = HybridClock::new(1_000);
    clock.now(100);
    let remote = Hlc::new(600, 7);
    assert_eq!(clock.observe(remote, 100), Ok(Hlc::new(600, 8)));
    // A later local event stays ahead of the observed remote.
    assert_eq!(clock.now(200), Hlc::new(600, 9));
    // Equal wall parts take the larger logical part.
    assert_eq!(clock.observe(Hlc::new(600, 20), 200), Ok(Hlc::new(600, 21)));
    // Wall time past everything seen wins.
    assert_eq!(clock.observe(Hlc::new(600, 99), 700), Ok(Hlc::new(700, 0)));
}

#[test]
fn observe_refuses_drift_and_leaves_the_clock_unchanged() {
    let mut clock = HybridClock::new(1_000);
    let before = clock.now(10_000);
    let refused = clock.observe(Hlc::new(11_001, 0), 10_000);
    assert_eq!(refused, Err(ClockError::Drift { ahead_ms: 1_001 }));
    assert_eq!(clock.last(), before);
    // Exactly at the bound is accepted.
    assert_eq!(
        clock.observe(Hlc::new(11_000, 0), 10_000),
        Ok(Hlc::new(11_000, 1))
    );
}

#[test]
fn logical_overflow_moves_wall_time_on() {
    let mut clock = HybridClock::resume(Hlc::new(500, u32::MAX), 1_000);
    assert_eq!(clock.now(400), Hlc::new(501, 0));
    assert_eq!(clock.now(400), Hlc::new(501, 1));

    let mut clock = HybridClock::new(1_000);
    let observed = clock.observe(Hlc::new(900, u32::MAX), 900);
    assert_eq!(observed, Ok(Hlc::new(901, 0)));

    let top = Hlc::new(u64::MAX, u32::MAX);
    assert_eq!(top.successor(), top, "saturates instead of wrapping");
}

#[test]
fn resume_continues_after_a_persisted_timestamp() {
    let mut clock = HybridClock::resume(Hlc::new(5_000, 3), 1_000);
    assert_eq!(clock.now(4_000), Hlc::new(5_000, 4));
    assert_eq!(clock.max_drift_ms(), 1_000);
}

#[derive(Clone, Debug)]
enum Event {
    Local { wall_ms: u64 },
    Remote { remote: Hlc, wall_ms: u64 },
}

fn event() -> impl Strategy<Value = Event> {
    // Narrow ranges so wall times repeat and go backwards often, and the logical
    // part sometimes sits right below overflow.
    let wall = 1_000u64..1_040;
    let logical = prop_oneof![0u32..4, Just(u32::MAX - 1), Just(u32::MAX)];
    prop_oneof![
        wall.clone().prop_map(|wall_ms| Event::Local { wall_ms }),
        (wall.clone(), 980u64..1_080, logical).prop_map(|(wall_ms, remote_wall, logical)| {
            Event::Remote {
                remote: Hlc::new(remote_wall, logical),
                wall_ms,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn timestamps_are_strictly_monotonic_and_dominate_what_was_seen(
        events in proptest::collection::vec(event(), 1..60),
    ) {
        let drift_ms = 20;
        let mut clock = HybridClock::new(drift_ms);
        let mut previous = clock.last();
        for event in events {
            let issued = match event {
                Event::Local { wall_ms } => {
                    let issued = clock.now(wall_ms);
                    prop_assert!(issued.wall_ms >= wall_ms);
                    issued
                }
                Event::Remote { remote, wall_ms } => match clock.observe(remote, wall_ms) {
                    Ok(issued) => {
                        prop_assert!(remote.wall_ms <= wall_ms + drift_ms);
                        prop_assert!(issued > remote);
                        prop_assert!(issued.wall_ms >= wall_ms);
                        issued
                    }
                    Err(ClockError::Drift { ahead_ms }) => {
                        prop_assert!(ahead_ms > drift_ms);
                        prop_assert_eq!(ahead_ms, remote.wall_ms - wall_ms);
                        prop_assert_eq!(clock.last(), previous);
                        continue;
                    }
                },
            };
            prop_assert!(issued > previous);
            prop_assert_eq!(clock.last(), issued);
            previous = issued;
        }
    }
}
