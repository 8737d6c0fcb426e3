//! Actors, dots and version vectors: the causal partial order between object versions.
//!
//! Actors are replica nodes (one per incarnation: a node takes a new one after a
//! crash), never clients, so a vector names at most the nodes that ever coordinated a
//! write to one key (its replicas across regions and past owners), plus one for each
//! crash of such a node that wrote the key again. That is far below `VV_ACTORS_MAX`;
//! exceeding it means a bug, a hostile peer or a replica that crashed very often, and
//! since a vector can arrive from the network a merge that would exceed it returns
//! `VersionError::TooManyActors` and leaves the vector untouched instead of asserting.

use crate::ids::NodeId;
use crate::limits::VV_ACTORS_MAX;
use serde::{Deserialize, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;

/// A replica node as it appears in version vectors: a 64-bit hash of its node id and
/// its incarnation (`runtime::incarnation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Actor(pub u64);

impl Actor {
    /// The actor of one incarnation of a node: the first 8 bytes (little-endian) of
    /// blake3 of the node id, a zero byte (ids never hold one) and the incarnation
    /// (little-endian). A node takes a new incarnation whenever it may have sent a dot
    /// its store lost, so a restarted node never mints a dot again under an old actor.
    pub fn of_incarnation(node: &NodeId, incarnation: u64) -> Actor {
        let mut hasher = blake3::Hasher::new();
        hasher.update(node.as_str().as_bytes());
        hasher.update(&[0]);
        hasher.update(&incarnation.to_le_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        Actor(u64::from_le_bytes(first))
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One write event: the `counter`-th write coordinated by `actor`. Unique per write, so
/// two siblings with the same dot are the same write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dot {
    pub actor: Actor,
    pub counter: u64,
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.actor, self.counter)
    }
}

/// How two versions relate causally. `Before` means `self` happened before `other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Causality {
    Equal,
    Before,
    After,
    Concurrent,
}

/// Why a version vector or versioned object was refused, by an operation or a decoder.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("version vector would name {count} actors, more than the limit of {max}")]
    TooManyActors { count: usize, max: usize },
    #[error("write counter of actor {actor} is exhausted")]
    CounterOverflow { actor: Actor },
    #[error("version vector actors are not strictly ascending")]
    UnsortedActors,
    #[error("version vector holds a zero counter for actor {actor}")]
    ZeroCounter { actor: Actor },
    #[error("object holds {count} siblings, more than the limit of {max}")]
    TooManySiblings { count: usize, max: usize },
    #[error("object siblings are not strictly ascending by dot")]
    UnsortedSiblings,
    #[error("sibling dot {dot} is not covered by the object's version vector")]
    UncoveredSibling { dot: Dot },
}

/// A version vector: for each actor, how many of its writes are known. Kept as a vector
/// sorted by actor with no zero counters, so equal vectors are structurally equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "Vec<(Actor, u64)>")]
pub struct VersionVector {
    entries: Vec<(Actor, u64)>,
}

impl Serialize for VersionVector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.entries.serialize(serializer)
    }
}

impl TryFrom<Vec<(Actor, u64)>> for VersionVector {
    type Error = VersionError;

    fn try_from(entries: Vec<(Actor, u64)>) -> Result<Self, Self::Error> {
        VersionVector::from_entries(entries)
    }
}

impl VersionVector {
    pub fn new() -> Self {
        VersionVector::default()
    }

    /// Builds a vector from decoded entries, refusing anything but the canonical form:
    /// actors strictly ascending, counters non-zero, at most `VV_ACTORS_MAX` entries.
    pub fn from_entries(entries: Vec<(Actor, u64)>) -> Result<Self, VersionError> {
        if entries.len() > VV_ACTORS_MAX {
            return Err(VersionError::TooManyActors {
                count: entries.len(),
                max: VV_ACTORS_MAX,
            });
        }
        if let Some(&(actor, _)) = entries.iter().find(|(_, counter)| *counter == 0) {
            return Err(VersionError::ZeroCounter { actor });
        }
        if entries.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
            return Err(VersionError::UnsortedActors);
        }
        Ok(VersionVector { entries })
    }

    /// The (actor, counter) pairs, ascending by actor, no zero counters.
    pub fn entries(&self) -> &[(Actor, u64)] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of actors named.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// How many writes of `actor` are known (0 if none).
    pub fn get(&self, actor: Actor) -> u64 {
        match self.position(actor) {
            Ok(index) => self.entries[index].1,
            Err(_) => 0,
        }
    }

    /// Whether the write `dot` is already known to this vector.
    pub fn covers(&self, dot: &Dot) -> bool {
        dot.counter <= self.get(dot.actor)
    }

    /// Whether `self` knows everything `other` knows (`self >= other`).
    pub fn descends(&self, other: &VersionVector) -> bool {
        other
            .entries
            .iter()
            .all(|&(actor, counter)| self.get(actor) >= counter)
    }

    pub fn compare(&self, other: &VersionVector) -> Causality {
        let mut behind = false;
        let mut ahead = false;
        for (_, mine, theirs) in union(&self.entries, &other.entries) {
            ahead |= mine > theirs;
            behind |= mine < theirs;
        }
        match (behind, ahead) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// Pointwise maximum. Fails, leaving `self` unchanged, if the union of actors would
    /// exceed `VV_ACTORS_MAX`.
    pub fn merge(&mut self, other: &VersionVector) -> Result<(), VersionError> {
        if self.descends(other) {
            return Ok(());
        }
        let merged: Vec<(Actor, u64)> = union(&self.entries, &other.entries)
            .map(|(actor, mine, theirs)| (actor, mine.max(theirs)))
            .collect();
        if merged.len() > VV_ACTORS_MAX {
            return Err(VersionError::TooManyActors {
                count: merged.len(),
                max: VV_ACTORS_MAX,
            });
        }
        self.entries = merged;
        debug_assert!(self.descends(other), "a merged vector dominates its input");
        Ok(())
    }

    /// Records the next write of `actor` and returns its dot. Fails, leaving `self`
    /// unchanged, if `actor` is new and the vector is full, or its counter is exhausted.
    pub fn increment(&mut self, actor: Actor) -> Result<Dot, VersionError> {
        match self.position(actor) {
            Ok(index) => {
                let counter = self.entries[index].1.checked_add(1);
                let counter = counter.ok_or(VersionError::CounterOverflow { actor })?;
                self.entries[index].1 = counter;
                Ok(Dot { actor, counter })
            }
            Err(index) => {
                if self.entries.len() >= VV_ACTORS_MAX {
                    return Err(VersionError::TooManyActors {
                        count: self.entries.len() + 1,
                        max: VV_ACTORS_MAX,
                    });
                }
                self.entries.insert(index, (actor, 1));
                Ok(Dot { actor, counter: 1 })
            }
        }
    }

    fn position(&self, actor: Actor) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(entry, _)| entry.cmp(&actor))
    }
}

/// Walks the union of two sorted entry lists, yielding (actor, left counter, right
/// counter) with 0 for an actor one side does not name.
fn union<'a>(
    left: &'a [(Actor, u64)],
    right: &'a [(Actor, u64)],
) -> impl Iterator<Item = (Actor, u64, u64)> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let ordering = match (left.get(i), right.get(j)) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.0.cmp(&b.0),
        };
        let item = match ordering {
            Ordering::Less => (left[i].0, left[i].1, 0),
            Ordering::Greater => (right[j].0, 0, right[j].1),
            Ordering::Equal => (left[i].0, left[i].1, right[j].1),
        };
        i += usize::from(ordering != Ordering::Greater);
        j += usize::from(ordering != Ordering::Less);
        Some(item)
    })
}

#[cfg(test)]
mod tests;
