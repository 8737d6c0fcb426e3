//! Last-writer-wins map, used for prefs. Each key holds one entry; the entry with the
//! highest (Hlc, actor) wins, and a removal is an entry without a value that wins or loses
//! by the same rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::CrdtError;
use crate::clock::{Actor, Hlc};
use crate::limits::PREFS_MAX;

fn prefs_max() -> usize {
    PREFS_MAX
}

/// One write. Ordered by (at, actor, value) so that even two writes with the same
/// timestamp and actor (only possible from a misbehaving replica) resolve the same way
/// everywhere; a removal (`None`) loses such a full tie.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LwwEntry<V> {
    pub at: Hlc,
    pub actor: Actor,
    pub value: Option<V>,
}

/// Deltas are `LwwMap`s holding one entry; apply with `merge_delta` (or `merge`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Ord + Serialize, V: Serialize",
    deserialize = "K: Ord + Deserialize<'de>, V: Deserialize<'de>"
))]
pub struct LwwMap<K: Ord, V> {
    entries: BTreeMap<K, LwwEntry<V>>,
    /// Live keys beyond which `set` refuses a new key. A local admission bound, not
    /// replicated state: it is not serialized (decoded maps get `limits::PREFS_MAX`) and a
    /// merge neither changes nor enforces it (two replicas adding concurrently may exceed it).
    #[serde(skip, default = "prefs_max")]
    max_live: usize,
}

impl<K: Ord + Clone, V: Ord + Clone> LwwMap<K, V> {
    /// An empty map admitting at most `max_live` live keys through `set` (prefs use
    /// `limits::PREFS_MAX`).
    pub fn new(max_live: usize) -> Self {
        LwwMap {
            entries: BTreeMap::new(),
            max_live,
        }
    }

    /// Sets `key` to `value` at `at`. Setting a key that is not live while `max_live` keys
    /// are live is refused with `CrdtError::TooMany` and changes nothing. A write older
    /// than the current entry still returns its delta but loses.
    pub fn set(&mut self, key: K, value: V, at: Hlc, actor: Actor) -> Result<Self, CrdtError> {
        if self.get(&key).is_none() && self.len_live() >= self.max_live {
            return Err(CrdtError::TooMany {
                what: "map keys",
                max: self.max_live,
            });
        }
        Ok(self.write(key, Some(value), at, actor))
    }

    /// Removes `key` at `at`: an entry without a value, resolved like any other write.
    pub fn remove(&mut self, key: K, at: Hlc, actor: Actor) -> Self {
        self.write(key, None, at, actor)
    }

    fn write(&mut self, key: K, value: Option<V>, at: Hlc, actor: Actor) -> Self {
        let mut delta = LwwMap::new(self.max_live);
        delta.entries.insert(key, LwwEntry { at, actor, value });
        self.merge(&delta);
        delta
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).and_then(|entry| entry.value.as_ref())
    }

    /// The winning entry for `key`, removal included.
    pub fn entry(&self, key: &K) -> Option<&LwwEntry<V>> {
        self.entries.get(key)
    }

    /// Live (key, value) pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries
            .iter()
            .filter_map(|(key, entry)| entry.value.as_ref().map(|value| (key, value)))
    }

    /// Whether the map holds no entry at all, removals included.
    pub fn is_clear(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len_live(&self) -> usize {
        self.entries.values().filter(|e| e.value.is_some()).count()
    }

    /// Per-key maximum.
    pub fn merge(&mut self, other: &Self) {
        for (key, theirs) in &other.entries {
            match self.entries.get_mut(key) {
                Some(mine) if *mine >= *theirs => {}
                Some(mine) => *mine = theirs.clone(),
                None => {
                    self.entries.insert(key.clone(), theirs.clone());
                }
            }
        }
    }

    pub fn merge_delta(&mut self, delta: &Self) {
        self.merge(delta);
    }

    /// Drops every entry written at or before `floor` (an expiry: nothing older survives).
    pub fn prune(&mut self, floor: Hlc) {
        self.entries.retain(|_, entry| entry.at > floor);
    }

    /// Drops removal entries older than `before`. Callers must only pass a horizon that
    /// every replica has passed (no write older than it is still in flight anywhere);
    /// otherwise an older value held elsewhere could come back on the next merge.
    pub fn prune_removed(&mut self, before: Hlc) {
        self.entries
            .retain(|_, entry| entry.value.is_some() || entry.at >= before);
    }
}
