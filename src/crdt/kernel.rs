//! The dot kernel shared by `OrSet` and `Cart`: key → (dot → value) plus a causal context.
//! A dot present in one state and absent from the other survives a merge only if the other
//! has not seen it; seen-and-absent means removed. This is what gives add-wins without
//! tombstones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CausalContext, CrdtError};
use crate::clock::{Actor, Dot};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DotKernel<K: Ord, V> {
    /// Never holds an empty inner map, so equal contents compare equal.
    pub(crate) entries: BTreeMap<K, BTreeMap<Dot, V>>,
    pub(crate) context: CausalContext,
}

impl<K: Ord, V> Default for DotKernel<K, V> {
    fn default() -> Self {
        DotKernel {
            entries: BTreeMap::new(),
            context: CausalContext::new(),
        }
    }
}

impl<K: Ord + Clone, V: Clone> DotKernel<K, V> {
    pub(crate) fn dots(&self, key: &K) -> Option<&BTreeMap<Dot, V>> {
        self.entries.get(key)
    }

    /// A delta writing `value` under a fresh dot of `actor` and superseding every dot of
    /// `key` this replica has observed. Does not change `self`.
    pub(crate) fn write_delta(&self, key: K, value: V, actor: Actor) -> Result<Self, CrdtError> {
        let dot = self.context.next_dot(actor)?;
        let mut delta = self.remove_delta(&key);
        delta.context.insert(dot);
        delta.entries.insert(key, BTreeMap::from([(dot, value)]));
        Ok(delta)
    }

    /// A delta removing the observed dots of `key` (a concurrent write keeps its dot).
    pub(crate) fn remove_delta(&self, key: &K) -> Self {
        let mut delta = DotKernel::default();
        for dot in self
            .entries
            .get(key)
            .into_iter()
            .flat_map(|dots| dots.keys())
        {
            delta.context.insert(*dot);
        }
        delta
    }

    /// Keeps only the values `keep` accepts; dropped dots stay in the context, so a
    /// dropped value is removed, not forgotten.
    pub(crate) fn retain(&mut self, keep: impl Fn(&V) -> bool) {
        for dots in self.entries.values_mut() {
            dots.retain(|_, value| keep(value));
        }
        self.entries.retain(|_, dots| !dots.is_empty());
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        for (key, dots) in self.entries.iter_mut() {
            let theirs = other.entries.get(key);
            dots.retain(|dot, _| {
                theirs.is_some_and(|theirs| theirs.contains_key(dot))
                    || !other.context.contains(dot)
            });
        }
        for (key, dots) in &other.entries {
            for (dot, value) in dots {
                if self.context.contains(dot) {
                    continue;
                }
                self.entries
                    .entry(key.clone())
                    .or_default()
                    .entry(*dot)
                    .or_insert_with(|| value.clone());
            }
        }
        self.entries.retain(|_, dots| !dots.is_empty());
        self.context.join(&other.context);
    }
}

impl<K: Ord + Clone, V: Clone> DotKernel<K, V> {
    /// A delta removing every observed dot of every key (a whole-key overwrite or delete;
    /// concurrent writes keep their dots). It carries the whole causal context, which
    /// says no more than a full-state merge of this kernel would (a seen dot absent here
    /// is removed everywhere anyway) and costs a copy of the compact context instead of
    /// one insertion per live dot.
    pub(crate) fn remove_all_delta(&self) -> Self {
        DotKernel {
            entries: BTreeMap::new(),
            context: self.context.clone(),
        }
    }

    /// Whether this kernel has seen nothing at all (no entry, an empty context).
    pub(crate) fn is_bottom(&self) -> bool {
        self.entries.is_empty() && self.context == CausalContext::new()
    }
}
