//! Tests of the Redis values: merge laws and convergence by proptest (`laws`), and the
//! behaviour each command promises, alone and across regions (`units`).

use super::*;
use crate::clock::{Actor, Hlc};

mod laws;
mod units;

pub(super) fn actor(replica: usize) -> Actor {
    Actor(replica as u64 + 1)
}

pub(super) fn at(wall_ms: u64) -> Hlc {
    Hlc::new(wall_ms, 0)
}
