//! Hybrid logical clock (Kulkarni et al., 2014): timestamps that follow wall time but
//! never go backwards and always exceed every timestamp this node has seen, so a node
//! whose wall clock lags cannot make an older write win an LWW comparison.
//!
//! Wall time is always an argument; this module never reads a clock. A remote timestamp
//! too far ahead of local wall time is refused rather than adopted, so one node with a
//! runaway clock cannot drag every other clock forward.

use serde::{Deserialize, Serialize};

/// A hybrid timestamp, ordered by wall time then logical counter.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Hlc {
    pub wall_ms: u64,
    pub logical: u32,
}

impl Hlc {
    pub const ZERO: Hlc = Hlc {
        wall_ms: 0,
        logical: 0,
    };

    pub fn new(wall_ms: u64, logical: u32) -> Hlc {
        Hlc { wall_ms, logical }
    }

    /// The smallest timestamp greater than `self`. When the logical counter is full the
    /// wall part moves on by 1 ms instead of panicking or wrapping. At the very top
    /// (`u64::MAX` ms, about 584 million years) it saturates: unreachable in practice,
    /// since `observe` only adopts remote times within the drift bound of local wall time.
    pub fn successor(self) -> Hlc {
        match self.logical.checked_add(1) {
            Some(logical) => Hlc::new(self.wall_ms, logical),
            None => match self.wall_ms.checked_add(1) {
                Some(wall_ms) => Hlc::new(wall_ms, 0),
                None => self,
            },
        }
    }
}

/// Why a remote timestamp was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("remote timestamp is {ahead_ms} ms ahead of local wall time, beyond the drift bound")]
    Drift { ahead_ms: u64 },
}

/// One node's hybrid clock. Persist `last()` and rebuild with `resume` after a restart
/// so timestamps stay monotonic even if the wall clock was set back meanwhile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HybridClock {
    last: Hlc,
    max_drift_ms: u64,
}

impl HybridClock {
    /// A fresh clock that refuses remote times more than `max_drift_ms` ahead of local
    /// wall time (`limits::HLC_DRIFT_MS_MAX` is the default).
    pub fn new(max_drift_ms: u64) -> Self {
        HybridClock::resume(Hlc::ZERO, max_drift_ms)
    }

    /// A clock that continues after `last`, e.g. a timestamp persisted before a restart.
    pub fn resume(last: Hlc, max_drift_ms: u64) -> Self {
        HybridClock { last, max_drift_ms }
    }

    /// The latest timestamp issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    pub fn max_drift_ms(&self) -> u64 {
        self.max_drift_ms
    }

    /// A timestamp for a local event: greater than every earlier one, and at least
    /// `wall_ms` unless an earlier timestamp was already past it.
    pub fn now(&mut self, wall_ms: u64) -> Hlc {
        self.last = Self::advance(self.last, wall_ms);
        self.last
    }

    /// Takes in a timestamp received from another node and returns a timestamp greater
    /// than both it and every earlier local one. A remote time more than `max_drift_ms`
    /// ahead of `wall_ms` is refused and the clock is left unchanged.
    pub fn observe(&mut self, remote: Hlc, wall_ms: u64) -> Result<Hlc, ClockError> {
        let ahead_ms = remote.wall_ms.saturating_sub(wall_ms);
        if ahead_ms > self.max_drift_ms {
            return Err(ClockError::Drift { ahead_ms });
        }
        self.last = Self::advance(self.last.max(remote), wall_ms);
        Ok(self.last)
    }

    /// The standard HLC rule, folded: wall time wins when it is past everything seen
    /// (logical resets), otherwise the latest seen timestamp ticks its logical part.
    fn advance(seen: Hlc, wall_ms: u64) -> Hlc {
        if wall_ms > seen.wall_ms {
            Hlc::new(wall_ms, 0)
        } else {
            seen.successor()
        }
    }
}

#[cfg(test)]
mod tests {
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
}
