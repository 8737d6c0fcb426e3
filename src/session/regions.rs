//! The session service's side of the auth fence: what it needs to know of the other
//! regions (`RegionHealth`, which the runtime implements over the failure detector
//! and anti-entropy), and the fence it keeps (`Fence`: the `fence::AuthGuard` behind a
//! lock, moved on each validation).
//!
//! It decides nothing itself (`fence` does) and never waits: a validation asks the
//! mode and goes on.

use super::fence::{AuthGuard, GuardMode, RegionsView};
use crate::limits;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the fence needs from the node: the other regions as its failure detector sees
/// them, its clocks, and how far anti-entropy has come since a moment.
pub trait RegionHealth: Send + Sync + 'static {
    /// The other regions now (`all_dead_since_ms` on `now_monotonic_ms`'s clock).
    fn view(&self) -> RegionsView;
    /// Milliseconds on the wall clock anti-entropy stamps its syncs with.
    fn now_wall_ms(&self) -> u64;
    /// Milliseconds on a clock that never goes back.
    fn now_monotonic_ms(&self) -> u64;
    /// Whether anti-entropy has found every partition this node holds in sync with a
    /// majority of its replicas in some other region at or after `since_wall_ms`.
    fn caught_up_since(&self, since_wall_ms: u64) -> bool;
}

/// A node that knows no other region (a single-region cluster, or a test service):
/// never fenced, nothing to catch up.
#[derive(Debug, Default)]
pub struct NoOtherRegion {
    started: Option<std::time::Instant>,
}

impl RegionHealth for NoOtherRegion {
    fn view(&self) -> RegionsView {
        RegionsView::single_region()
    }
    fn now_wall_ms(&self) -> u64 {
        0
    }
    fn now_monotonic_ms(&self) -> u64 {
        self.started
            .map(|started| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
    fn caught_up_since(&self, _since_wall_ms: u64) -> bool {
        true
    }
}

/// The guard and when anti-entropy's progress was last asked (it walks every held
/// partition, so it is asked at most every `AUTH_CATCH_UP_CHECK_MS`).
struct Guarded {
    guard: AuthGuard,
    checked_ms: Option<u64>,
}

/// One node's fence over its `RegionHealth`.
pub(super) struct Fence {
    pub(super) health: Arc<dyn RegionHealth>,
    /// Revocations may leave a region out (`majority_quorum`): without that, every
    /// acknowledged one is in this region's quorum and the fence stays down.
    needed: bool,
    guarded: Mutex<Guarded>,
    /// The mode last found, as `GuardMode as u64`, for `/v1/status`.
    pub(super) shown: Arc<AtomicU64>,
}

impl Fence {
    pub(super) fn new(health: Arc<dyn RegionHealth>, shown: Arc<AtomicU64>, needed: bool) -> Fence {
        let guard = AuthGuard::new(health.now_wall_ms());
        let first = if needed {
            guard.mode()
        } else {
            GuardMode::Local
        };
        shown.store(mode_code(first), Ordering::Relaxed);
        Fence {
            health,
            needed,
            guarded: Mutex::new(Guarded {
                guard,
                checked_ms: None,
            }),
            shown,
        }
    }

    /// The mode validations answer in now.
    pub(super) fn mode(&self) -> GuardMode {
        if !self.needed {
            return GuardMode::Local;
        }
        let view = self.health.view();
        let (wall_ms, monotonic_ms) = (self.health.now_wall_ms(), self.health.now_monotonic_ms());
        let mut guarded = self.guarded.lock().expect("fence lock");
        let due = guarded.checked_ms.is_none_or(|checked| {
            monotonic_ms.saturating_sub(checked) >= limits::AUTH_CATCH_UP_CHECK_MS
        });
        let health = &self.health;
        let mut asked = false;
        let mode = guarded.guard.observe(&view, wall_ms, |since| {
            asked = due;
            due && health.caught_up_since(since)
        });
        if asked {
            guarded.checked_ms = Some(monotonic_ms);
        }
        self.shown.store(mode_code(mode), Ordering::Relaxed);
        mode
    }
}

/// `GuardMode` as the number `SessionStats::guard_mode` holds.
pub fn mode_code(mode: GuardMode) -> u64 {
    match mode {
        GuardMode::Local => 0,
        GuardMode::Fenced => 1,
        GuardMode::CatchingUp => 2,
    }
}

/// The name of the mode `SessionStats::guard_mode` holds.
pub fn mode_name(code: u64) -> &'static str {
    match code {
        0 => GuardMode::Local.name(),
        1 => GuardMode::Fenced.name(),
        _ => GuardMode::CatchingUp.name(),
    }
}
