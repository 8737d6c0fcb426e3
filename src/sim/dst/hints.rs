//! Hinted handoff in the simulation: a fallback keeps a version for a dead replica
//! (`Payload::Hint`) and hands it over, merged with the replica's own pure step, once
//! the owner is up and reachable again (at each anti-entropy tick and before the final
//! sync). Hints are durable: a crash of the fallback keeps them. At most
//! `DST_HINTS_PER_NODE_MAX` per node; a hint past it is not acknowledged.

use super::world::World;
use super::{DstViolation, ViolationKind, DST_HINTS_PER_NODE_MAX};
use crate::object::{Object, ObjectKey};
use crate::replica::merged;

impl World {
    /// Keeps `object` for `owner` at `node`; whether it was kept (then acknowledged).
    pub(super) fn keep_hint(
        &mut self,
        node: usize,
        owner: usize,
        key: ObjectKey,
        object: &Object,
    ) -> Result<bool, DstViolation> {
        let hints = &mut self.nodes[node].hints;
        let slot = (owner, key.storage_bytes());
        let held = hints.remove(&slot);
        if held.is_none() && hints.len() >= DST_HINTS_PER_NODE_MAX {
            return Ok(false);
        }
        let kept = merged(held.map(|(_, object)| object), object).map_err(|error| {
            let detail = format!("a hint could not be merged: {error}");
            self.violation(ViolationKind::Internal, detail)
        })?;
        self.nodes[node].hints.insert(slot, (key, kept));
        Ok(true)
    }

    /// Every up fallback hands its hints to the owners that are up and reachable.
    pub(super) fn replay_hints(&mut self) -> Result<(), DstViolation> {
        let partitions = self.view.current.partition_count();
        for node in 0..self.nodes.len() {
            if !self.nodes[node].up || self.nodes[node].hints.is_empty() {
                continue;
            }
            let due: Vec<(usize, Vec<u8>)> = self.nodes[node]
                .hints
                .keys()
                .filter(|(owner, _)| self.nodes[*owner].up && self.net.connected(node, *owner))
                .cloned()
                .collect();
            for slot in due {
                let Some((key, object)) = self.nodes[node].hints.remove(&slot) else {
                    continue;
                };
                let owner = slot.0;
                let partition = key.partition(partitions);
                self.nodes[owner]
                    .store
                    .merge(partition, &key, &object)
                    .map_err(|error| {
                        let detail = format!("hint replay refused: {error}");
                        self.violation(ViolationKind::Internal, detail)
                    })?;
                self.report.hints_replayed += 1;
                let (from, to) = (&self.nodes[node].id, &self.nodes[owner].id);
                self.trace
                    .record(format!("{} hint {from}>{to} replayed", self.now));
            }
        }
        Ok(())
    }
}
