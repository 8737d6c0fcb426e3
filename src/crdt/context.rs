//! The causal context of a dotted store: every dot ever seen, as contiguous counters per
//! actor plus a cloud of dots beyond a gap. Kept canonical (always fully compacted) so two
//! contexts holding the same dots compare equal.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::CrdtError;
use crate::clock::{Actor, Dot};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext {
    /// Actor → highest counter `n` such that dots 1..=n are all seen.
    compact: BTreeMap<Actor, u64>,
    /// Seen dots not contiguous with `compact`.
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn contains(&self, dot: &Dot) -> bool {
        self.compact
            .get(&dot.actor)
            .is_some_and(|counter| dot.counter <= *counter)
            || self.cloud.contains(dot)
    }

    /// The next dot `actor` may mint: one past everything seen from it.
    pub(crate) fn next_dot(&self, actor: Actor) -> Result<Dot, CrdtError> {
        let contiguous = self.compact.get(&actor).copied().unwrap_or(0);
        let clouded = self
            .cloud
            .range(
                Dot { actor, counter: 0 }..=Dot {
                    actor,
                    counter: u64::MAX,
                },
            )
            .next_back()
            .map_or(0, |dot| dot.counter);
        let counter = contiguous
            .max(clouded)
            .checked_add(1)
            .ok_or(CrdtError::CounterExhausted)?;
        Ok(Dot { actor, counter })
    }

    pub(crate) fn insert(&mut self, dot: Dot) {
        if !self.contains(&dot) {
            self.cloud.insert(dot);
            self.compact();
        }
    }

    pub(crate) fn join(&mut self, other: &CausalContext) {
        for (actor, counter) in &other.compact {
            let mine = self.compact.entry(*actor).or_insert(0);
            *mine = (*mine).max(*counter);
        }
        self.cloud.extend(other.cloud.iter().copied());
        self.compact();
    }

    /// Folds cloud dots that became contiguous into `compact` and drops covered ones. The
    /// cloud is ordered by (actor, counter), so one pass suffices.
    fn compact(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        for dot in cloud {
            let contiguous = self.compact.get(&dot.actor).copied().unwrap_or(0);
            if dot.counter <= contiguous {
                continue;
            }
            if dot.counter == contiguous + 1 {
                self.compact.insert(dot.actor, dot.counter);
            } else {
                self.cloud.insert(dot);
            }
        }
        self.compact.retain(|_, counter| *counter > 0);
    }
}
