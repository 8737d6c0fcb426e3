//! The counter behind `INCRBY`/`DECRBY`: one slot per actor (replica node incarnation)
//! holding that actor's running total under a version only it raises, plus, per actor,
//! the slot a whole-key write (`SET`, `DEL`, expiry) had seen when it removed the
//! counter. A slot counts `total - removed total` while its version is newer than the
//! removal, else nothing: increments a removal saw count zero times, increments made
//! concurrently with it count once, whatever the merge order and duplication. Both maps
//! merge per actor by maximum, so this is a join-semilattice. It must never drop a slot
//! on its own: a removed slot still cancels a stale copy of itself arriving later.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{RedisError, Stamp};
use crate::clock::{Actor, Hlc};
use crate::crdt::CrdtError;
use crate::limits::RESP_COUNTER_ACTORS_MAX;

/// One actor's running total. Totals are `i128` so an actor's back-and-forth increments
/// across many removals never overflow the total while the value shown stays in `i64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Slot {
    pub(crate) version: u64,
    pub(crate) at: Hlc,
    pub(crate) total: i128,
}

/// What a whole-key write saw of one actor's slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Removed {
    pub(crate) version: u64,
    pub(crate) total: i128,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counter {
    slots: BTreeMap<Actor, Slot>,
    removed: BTreeMap<Actor, Removed>,
}

impl Counter {
    /// What `actor`'s slot adds to the value, `None` if a removal covers all of it.
    fn contribution(&self, actor: &Actor, slot: &Slot) -> Option<i128> {
        let removed = self.removed.get(actor);
        if removed.is_some_and(|removed| removed.version >= slot.version) {
            return None;
        }
        let base = removed.map_or(0, |removed| removed.total);
        Some(slot.total.saturating_sub(base))
    }

    /// The sum of the surviving increments (saturated: only decoded nonsense or
    /// concurrent increments far past `i64` come near the ends).
    pub(crate) fn sum(&self) -> i128 {
        self.slots
            .iter()
            .filter_map(|(actor, slot)| self.contribution(actor, slot))
            .fold(0i128, i128::saturating_add)
    }

    /// The newest surviving increment.
    pub(crate) fn newest(&self) -> Option<Stamp> {
        self.slots
            .iter()
            .filter(|(actor, slot)| self.contribution(actor, slot).is_some())
            .map(|(actor, slot)| Stamp {
                at: slot.at,
                actor: *actor,
            })
            .max()
    }

    /// The newest timestamp held, removed slots included.
    pub(crate) fn newest_at(&self) -> Hlc {
        self.slots
            .values()
            .map(|slot| slot.at)
            .max()
            .unwrap_or(Hlc::ZERO)
    }

    /// A delta adding `by` to `actor`'s slot. A new actor beyond
    /// `RESP_COUNTER_ACTORS_MAX` slots is refused.
    pub(crate) fn add_delta(&self, by: i64, at: Hlc, actor: Actor) -> Result<Counter, CrdtError> {
        let slot = self.slots.get(&actor);
        if slot.is_none() && self.slots.len() >= RESP_COUNTER_ACTORS_MAX {
            return Err(CrdtError::TooMany {
                what: "counter actors",
                max: RESP_COUNTER_ACTORS_MAX,
            });
        }
        let seen = slot.map_or(0, |slot| slot.version).max(
            self.removed
                .get(&actor)
                .map_or(0, |removed| removed.version),
        );
        let version = seen.checked_add(1).ok_or(CrdtError::CounterExhausted)?;
        let total = slot
            .map_or(0, |slot| slot.total)
            .checked_add(i128::from(by))
            .ok_or(RedisError::Overflow)?;
        Ok(Counter {
            slots: BTreeMap::from([(actor, Slot { version, at, total })]),
            removed: BTreeMap::new(),
        })
    }

    /// A delta removing every increment seen here: each slot, and the removal of it.
    pub(crate) fn reset_delta(&self) -> Counter {
        let removed = self
            .slots
            .iter()
            .map(|(actor, slot)| {
                let removed = Removed {
                    version: slot.version,
                    total: slot.total,
                };
                (*actor, removed)
            })
            .collect();
        Counter {
            slots: self.slots.clone(),
            removed,
        }
    }

    pub(crate) fn is_bottom(&self) -> bool {
        self.slots.is_empty() && self.removed.is_empty()
    }

    pub(crate) fn merge(&mut self, other: &Counter) {
        join_max(&mut self.slots, &other.slots);
        join_max(&mut self.removed, &other.removed);
    }
}

/// Per-key maximum.
fn join_max<V: Ord + Copy>(mine: &mut BTreeMap<Actor, V>, theirs: &BTreeMap<Actor, V>) {
    for (actor, value) in theirs {
        let entry = mine.entry(*actor).or_insert(*value);
        if *value > *entry {
            *entry = *value;
        }
    }
}
