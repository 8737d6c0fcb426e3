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
mod tests;
