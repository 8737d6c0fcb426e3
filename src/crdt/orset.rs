//! Observed-remove (add-wins) set, used for a user's devices.

use serde::{Deserialize, Serialize};

use super::kernel::DotKernel;
use super::CrdtError;
use crate::clock::{Actor, Hlc};

/// An add-wins set: a remove takes away only the adds it has observed. Each add keeps
/// its timestamp so an expiry floor can drop what was added before it.
/// Deltas are `OrSet`s themselves; apply one with `merge_delta` (or `merge`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Ord + Serialize",
    deserialize = "T: Ord + Deserialize<'de>"
))]
pub struct OrSet<T: Ord> {
    kernel: DotKernel<T, Hlc>,
}

impl<T: Ord> Default for OrSet<T> {
    fn default() -> Self {
        OrSet {
            kernel: DotKernel::default(),
        }
    }
}

impl<T: Ord + Clone> OrSet<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `element` under a fresh dot of `actor`, superseding its observed dots.
    pub fn add(&mut self, element: T, at: Hlc, actor: Actor) -> Result<OrSet<T>, CrdtError> {
        let delta = OrSet {
            kernel: self.kernel.write_delta(element, at, actor)?,
        };
        self.merge(&delta);
        Ok(delta)
    }

    /// Removes the observed adds of `element`; a concurrent unseen add survives.
    pub fn remove(&mut self, element: &T) -> OrSet<T> {
        let delta = OrSet {
            kernel: self.kernel.remove_delta(element),
        };
        self.merge(&delta);
        delta
    }

    pub fn contains(&self, element: &T) -> bool {
        self.kernel.dots(element).is_some()
    }

    /// Elements in ascending order.
    pub fn elements(&self) -> impl Iterator<Item = &T> {
        self.kernel.entries.keys()
    }

    pub fn len(&self) -> usize {
        self.kernel.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kernel.entries.is_empty()
    }

    pub fn merge(&mut self, other: &OrSet<T>) {
        self.kernel.merge(&other.kernel);
    }

    pub fn merge_delta(&mut self, delta: &OrSet<T>) {
        self.merge(delta);
    }

    /// Drops the adds made at or before `floor` (their dots stay seen).
    pub fn prune(&mut self, floor: Hlc) {
        self.kernel.retain(|at| *at > floor);
    }
}
