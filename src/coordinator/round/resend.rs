//! When a round sends its requests again to the replicas that have not answered: the
//! transport never retries, so a lost request or reply would otherwise cost the
//! request timeout. The first resend comes `resend_after_ms` after the round's
//! starting point, each next one after twice the wait before, at most `RESENDS_MAX`
//! from each start. Pure: the rounds pass the time.

use super::speculation::Health;
use crate::limits;

/// `factor` times a measured p99 within `floor_ms..=max_ms`; `max_ms` while nothing is
/// measured: how long a peer is waited for before it is taken for late.
pub fn p99_patience_ms(p99_ms: Option<u64>, factor: u64, floor_ms: u64, max_ms: u64) -> u64 {
    p99_ms.map_or(max_ms, |p99_ms| {
        p99_ms.saturating_mul(factor).clamp(floor_ms, max_ms)
    })
}

/// How long a round waits for replies before it sends its request again to the
/// replicas that have not answered: `RESEND_P99_FACTOR` times the slowest measured p99
/// of the plan's replicas, within `RESEND_FLOOR_MS` and `RESEND_MAX_MS`.
pub fn resend_after_ms(health: &Health) -> u64 {
    p99_patience_ms(
        health.p99_ms.iter().flatten().max().copied(),
        limits::RESEND_P99_FACTOR,
        limits::RESEND_FLOOR_MS,
        limits::RESEND_MAX_MS,
    )
}

/// One round's resend schedule.
#[derive(Clone, Debug)]
pub struct Resends {
    first_wait_ms: u64,
    wait_ms: u64,
    /// When the next resend is due; `None`: none planned.
    at_ms: Option<u64>,
    /// Resends since the last `start`, and over the round's life.
    since_start: u32,
    total: u32,
}

impl Resends {
    /// A schedule waiting `first_wait_ms` before the first resend, not started.
    pub fn new(first_wait_ms: u64) -> Resends {
        Resends {
            first_wait_ms,
            wait_ms: first_wait_ms,
            at_ms: None,
            since_start: 0,
            total: 0,
        }
    }

    /// Plans the first resend one wait after `from_ms` (a new phase starts over).
    pub fn start(&mut self, from_ms: u64) {
        self.since_start = 0;
        self.wait_ms = self.first_wait_ms;
        self.at_ms = Some(from_ms.saturating_add(self.wait_ms));
    }

    /// When the next resend is due.
    pub fn at_ms(&self) -> Option<u64> {
        self.at_ms
    }

    /// Whether a resend is due at `now_ms`.
    pub fn is_due(&self, now_ms: u64) -> bool {
        self.at_ms.is_some_and(|at| now_ms >= at)
    }

    /// A resend was made at `now_ms`: the next comes after twice the wait, if any is
    /// left.
    pub fn made(&mut self, now_ms: u64) {
        self.since_start += 1;
        self.total += 1;
        self.at_ms = None;
        if self.since_start < limits::RESENDS_MAX {
            self.wait_ms = self.wait_ms.saturating_mul(2);
            self.at_ms = Some(now_ms.saturating_add(self.wait_ms));
        }
    }

    /// No more resends (the round no longer waits).
    pub fn cancel(&mut self) {
        self.at_ms = None;
    }

    /// Resends over the round's life.
    pub fn total(&self) -> u32 {
        self.total
    }
}
