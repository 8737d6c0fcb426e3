//! Dotted version vector sibling sets (Preguiça, Baquero et al., "Dotted Version
//! Vectors"; Riak's `riak_object` with dots): an object is a version vector plus the
//! concurrent values still alive, each tagged with the dot of the write that made it.
//!
//! A write names the replica that coordinates it and the causal context the client read;
//! it supersedes exactly the siblings that context covers, so concurrent writes survive
//! as siblings and a write that has seen them all leaves one value. Replica merge keeps
//! a sibling unless the other side has seen its dot and dropped it.
//!
//! Siblings are bounded: past the cap the oldest ones by (HLC timestamp, dot) are
//! dropped, like Riak's sibling limit but compacting instead of refusing the write. The
//! dropped dots stay covered by the version vector, so no merge can bring them back.
//! A merge may also bound the siblings' bytes (`merge_bounded`): the newest siblings
//! whose weights fit the budget are kept, the rest dropped the same way. Compaction is
//! a pure function of the sibling set, so merge stays commutative and idempotent at
//! any size, and is also associative while no merge exceeds a cap.

use super::hlc::Hlc;
use super::vv::{Causality, Dot, VersionError, VersionVector};
use super::Actor;
use crate::limits::SIBLINGS_CAP_MAX;
use serde::{Deserialize, Serialize};

/// One live value of an object and the write that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling<V> {
    pub dot: Dot,
    pub timestamp: Hlc,
    pub value: V,
}

/// A replicated object: its version vector and its siblings, kept sorted by dot so equal
/// objects are structurally equal. Every sibling's dot is covered by the vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "VersionedParts<V>",
    bound(deserialize = "V: Deserialize<'de>")
)]
pub struct Versioned<V> {
    vv: VersionVector,
    siblings: Vec<Sibling<V>>,
}

/// The decoded shape of [`Versioned`], checked by `Versioned::from_parts` before use.
#[derive(Deserialize)]
struct VersionedParts<V> {
    vv: VersionVector,
    siblings: Vec<Sibling<V>>,
}

impl<V> TryFrom<VersionedParts<V>> for Versioned<V> {
    type Error = VersionError;

    fn try_from(parts: VersionedParts<V>) -> Result<Self, Self::Error> {
        Versioned::from_parts(parts.vv, parts.siblings)
    }
}

impl<V> Default for Versioned<V> {
    fn default() -> Self {
        Versioned {
            vv: VersionVector::new(),
            siblings: Vec::new(),
        }
    }
}

impl<V> Versioned<V> {
    /// An object nothing has been written to.
    pub fn new() -> Self {
        Versioned::default()
    }

    /// Rebuilds an object from stored or received parts, refusing any that break the
    /// invariants: at most `SIBLINGS_CAP_MAX` siblings, strictly ascending by dot, each
    /// dot non-zero and covered by `vv`.
    pub fn from_parts(vv: VersionVector, siblings: Vec<Sibling<V>>) -> Result<Self, VersionError> {
        if siblings.len() > SIBLINGS_CAP_MAX {
            return Err(VersionError::TooManySiblings {
                count: siblings.len(),
                max: SIBLINGS_CAP_MAX,
            });
        }
        if siblings.windows(2).any(|pair| pair[0].dot >= pair[1].dot) {
            return Err(VersionError::UnsortedSiblings);
        }
        if let Some(sibling) = siblings
            .iter()
            .find(|sibling| sibling.dot.counter == 0 || !vv.covers(&sibling.dot))
        {
            return Err(VersionError::UncoveredSibling { dot: sibling.dot });
        }
        Ok(Versioned { vv, siblings })
    }

    /// The version vector and the siblings (ascending by dot).
    pub fn into_parts(self) -> (VersionVector, Vec<Sibling<V>>) {
        (self.vv, self.siblings)
    }

    /// Live siblings, ascending by dot.
    pub fn siblings(&self) -> &[Sibling<V>] {
        &self.siblings
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.siblings.iter().map(|sibling| &sibling.value)
    }

    /// The causal context to hand to a client with the values it read; the client's next
    /// write sends it back to `mint`.
    pub fn context(&self) -> &VersionVector {
        &self.vv
    }

    /// True when no value is live (nothing written, or everything superseded).
    pub fn is_empty(&self) -> bool {
        self.siblings.is_empty()
    }

    /// Number of live siblings.
    pub fn len(&self) -> usize {
        self.siblings.len()
    }

    /// The sibling with the newest (timestamp, dot): the last-writer-wins choice.
    pub fn newest(&self) -> Option<&Sibling<V>> {
        self.siblings
            .iter()
            .max_by_key(|sibling| (sibling.timestamp, sibling.dot))
    }

    /// How this object's history relates to `other`'s.
    pub fn compare(&self, other: &Versioned<V>) -> Causality {
        self.vv.compare(&other.vv)
    }

    /// The same object with every value transformed (dots, timestamps, vector kept).
    pub fn map_values<W>(&self, mut transform: impl FnMut(&V) -> W) -> Versioned<W> {
        Versioned {
            vv: self.vv.clone(),
            siblings: self
                .siblings
                .iter()
                .map(|sibling| Sibling {
                    dot: sibling.dot,
                    timestamp: sibling.timestamp,
                    value: transform(&sibling.value),
                })
                .collect(),
        }
    }

    /// A blake3 digest of the version vector and the sibling dots, not the values (a dot
    /// names one write, so equal dots mean equal values). Equal objects digest equally;
    /// Merkle anti-entropy uses it as the entry hash.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"cartwheel.versioned.v1");
        hasher.update(&(self.vv.len() as u64).to_le_bytes());
        for &(actor, counter) in self.vv.entries() {
            hasher.update(&actor.0.to_le_bytes());
            hasher.update(&counter.to_le_bytes());
        }
        hasher.update(&(self.siblings.len() as u64).to_le_bytes());
        for sibling in &self.siblings {
            hasher.update(&sibling.dot.actor.0.to_le_bytes());
            hasher.update(&sibling.dot.counter.to_le_bytes());
        }
        *hasher.finalize().as_bytes()
    }

    /// Records a write of `value` coordinated by replica `actor`, with the causal
    /// `context` the client read (empty for a blind write). Siblings the context covers
    /// are superseded; the others stay, so a blind write never loses an existing value.
    /// Returns the new write's dot. On error (too many actors, counter exhausted) the
    /// object is unchanged.
    pub fn mint(
        &mut self,
        actor: Actor,
        context: &VersionVector,
        value: V,
        timestamp: Hlc,
        cap: usize,
    ) -> Result<Dot, VersionError> {
        let mut vv = self.vv.clone();
        vv.merge(context)?;
        // Counting from the merged vector, not only the local one, means a context that
        // knows of a later write by `actor` (e.g. after local data loss) cannot make this
        // write reuse that write's dot.
        let dot = vv.increment(actor)?;
        self.siblings
            .retain(|sibling| !context.covers(&sibling.dot));
        // The new counter exceeds every dot of `actor` the old vector covered, so the new
        // dot is not already present; insert it at its sorted place.
        let index = self.siblings.partition_point(|sibling| sibling.dot < dot);
        self.siblings.insert(
            index,
            Sibling {
                dot,
                timestamp,
                value,
            },
        );
        self.vv = vv;
        self.compact(cap, usize::MAX, |_| 0);
        self.debug_check_invariants();
        Ok(dot)
    }

    /// Keeps the newest siblings by (timestamp, dot) while at most `cap` of them weigh
    /// at most `bytes_max` together (each `weight(sibling)`), and drops the others; the
    /// newest one always stays. A cap of 0 counts as 1 and one above `SIBLINGS_CAP_MAX`
    /// as that maximum.
    fn compact(&mut self, cap: usize, bytes_max: usize, weight: impl Fn(&Sibling<V>) -> usize) {
        let cap = cap.clamp(1, SIBLINGS_CAP_MAX);
        let total = self.siblings.iter().fold(0usize, |total, sibling| {
            total.saturating_add(weight(sibling))
        });
        if self.siblings.len() <= cap && total <= bytes_max {
            return;
        }
        let mut ages: Vec<(Hlc, Dot, usize)> = self
            .siblings
            .iter()
            .map(|sibling| (sibling.timestamp, sibling.dot, weight(sibling)))
            .collect();
        ages.sort_unstable_by(|a, b| b.cmp(a));
        // The newest ones, up to the first that does not fit: a prefix by age, so what
        // is kept is always newer than what is dropped.
        let mut kept = 0;
        let mut bytes = 0usize;
        for &(_, _, weight) in &ages {
            if kept == cap || (kept > 0 && bytes.saturating_add(weight) > bytes_max) {
                break;
            }
            kept += 1;
            bytes = bytes.saturating_add(weight);
        }
        // Dots are unique, so exactly `kept` siblings are at least as new as this one.
        let (timestamp, dot, _) = ages[kept - 1];
        let oldest_kept = (timestamp, dot);
        self.siblings
            .retain(|sibling| (sibling.timestamp, sibling.dot) >= oldest_kept);
        debug_assert_eq!(self.siblings.len(), kept);
    }

    fn debug_check_invariants(&self) {
        debug_assert!(
            self.siblings
                .windows(2)
                .all(|pair| pair[0].dot < pair[1].dot),
            "siblings are strictly ascending by dot"
        );
        debug_assert!(
            self.siblings
                .iter()
                .all(|sibling| self.vv.covers(&sibling.dot)),
            "every sibling is covered by the version vector"
        );
    }
}

impl<V: Clone> Versioned<V> {
    /// Merges another replica's copy into this one. A sibling survives if the other side
    /// holds the same dot or has not seen it; the vectors take their pointwise maximum;
    /// then the sibling cap applies. On error (too many actors) the object is unchanged.
    pub fn merge(&mut self, other: &Versioned<V>, cap: usize) -> Result<(), VersionError> {
        self.merge_bounded(other, cap, usize::MAX, |_| 0)
    }

    /// `merge`, then also a byte budget: the newest siblings whose `weight`s add up to
    /// at most `bytes_max` stay (the newest always does), the older ones are dropped,
    /// their dots still covered by the vector. Concurrent writes minted on different
    /// replicas can then never add up to an object too large to send.
    pub fn merge_bounded(
        &mut self,
        other: &Versioned<V>,
        cap: usize,
        bytes_max: usize,
        weight: impl Fn(&Sibling<V>) -> usize,
    ) -> Result<(), VersionError> {
        let mut vv = self.vv.clone();
        vv.merge(&other.vv)?;
        let mine = std::mem::take(&mut self.siblings);
        let mut merged = Vec::with_capacity(mine.len().max(other.siblings.len()));
        let mut theirs = other.siblings.iter().peekable();
        for sibling in mine {
            while let Some(next) = theirs.next_if(|next| next.dot < sibling.dot) {
                if !self.vv.covers(&next.dot) {
                    merged.push(next.clone());
                }
            }
            let shared = theirs.next_if(|next| next.dot == sibling.dot).is_some();
            if shared || !other.vv.covers(&sibling.dot) {
                merged.push(sibling);
            }
        }
        merged.extend(theirs.filter(|next| !self.vv.covers(&next.dot)).cloned());
        self.siblings = merged;
        self.vv = vv;
        self.compact(cap, bytes_max, weight);
        self.debug_check_invariants();
        debug_assert!(
            self.vv.descends(&other.vv),
            "a merged object dominates its input"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;
