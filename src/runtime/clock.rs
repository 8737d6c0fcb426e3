//! The node's data clock: the wall clock plus an offset that a chaos run (or a test) may
//! set, so one node's time can be skewed or moved days ahead without touching the
//! failure detector, which keeps reading the real clock.

use super::state::now_ms;
use crate::coordinator::WallClock;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Default)]
pub struct NodeClock {
    offset_ms: AtomicI64,
}

impl NodeClock {
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }
}

impl WallClock for NodeClock {
    fn now_ms(&self) -> u64 {
        let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
        u64::try_from(now.saturating_add(self.offset_ms())).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
