//! A page of a cluster-wide scan of one class: the keys of one partition at or after a
//! position (`ring::position_in_partition`), read from as many of the partition's
//! replicas as a read level needs and merged per key, with the position the next page
//! starts at.
//!
//! Each replica answers the keys it holds from the position on, by (position, key),
//! cut only between positions (`replica::scan`). The merged page ends where the
//! shortest cut page ends, so every key before that end was offered by every replica
//! that answered: a key a quorum of replicas holds is on the page that covers its
//! position, whatever each replica held. It decides nothing about liveness (the caller
//! reads the merged objects) and keeps no state between pages: the position is all a
//! caller keeps, so the next page may be asked of any node.

use super::quorum::{Level, Progress};
use super::{Coordinator, CoordinatorError, Planned, Reply};
use crate::ids::PartitionId;
use crate::limits;
use crate::object::{position_of, Class, Object, ObjectKey};
use crate::wire::{PartitionEntry, PeerRequest, PeerResponse};
use std::collections::BTreeMap;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The merged keys of one page and where the next starts.
#[derive(Debug)]
pub struct ScanPage {
    /// Keys with their merged objects, by (position, key).
    pub entries: Vec<(ObjectKey, Object)>,
    /// The position the next page of this partition starts at; `None` when the page
    /// reached the partition's end.
    pub next: Option<u32>,
}

/// One replica's page: its entries and whether it cut them short.
pub type ReplicaPage = (Vec<PartitionEntry>, bool);

/// The merge of the pages replicas answered for the page starting at `from`: entries
/// before the smallest cut end (each replica's last position + 1), merged per key.
pub fn merge_pages(pages: Vec<ReplicaPage>, from: u32, partitions: u32) -> ScanPage {
    let end = pages
        .iter()
        .filter(|(_, more)| *more)
        .map(|(entries, _)| {
            last_position(entries, partitions).map_or(from, |last| last.saturating_add(1))
        })
        .min();
    let mut merged: BTreeMap<(u32, Vec<u8>), Object> = BTreeMap::new();
    for (entries, _) in pages {
        for PartitionEntry { key, object } in entries {
            let Some(position) = position_of(&key, partitions) else {
                continue;
            };
            if position < from || end.is_some_and(|end| position >= end) {
                continue;
            }
            match merged.entry((position, key)) {
                std::collections::btree_map::Entry::Vacant(vacant) => {
                    vacant.insert(object);
                }
                std::collections::btree_map::Entry::Occupied(mut occupied) => {
                    // Objects that cannot merge (a key of two kinds) keep the first:
                    // the key is still listed, and a read of it answers the truth.
                    let _ = occupied.get_mut().merge(&object, limits::SIBLINGS_MAX);
                }
            }
        }
    }
    let entries = merged
        .into_iter()
        .filter_map(|((_, key), object)| Some((ObjectKey::from_storage_bytes(&key)?, object)))
        .collect();
    ScanPage { entries, next: end }
}

fn last_position(entries: &[PartitionEntry], partitions: u32) -> Option<u32> {
    entries
        .iter()
        .filter_map(|entry| position_of(&entry.key, partitions))
        .max()
}

/// What a scan page asks of each replica.
#[derive(Clone, Copy, Debug)]
pub struct PageAsk {
    pub partition: PartitionId,
    pub class: Class,
    pub from: u32,
    pub keys_max: usize,
    pub level: Level,
}

impl Coordinator {
    /// The ring's partition count (fixed for a cluster).
    pub fn partition_count(&self) -> u32 {
        self.cluster.view().current.partition_count()
    }

    /// The page `ask` names, from as many replicas of the partition as its level
    /// needs (nearest first, one more for each that fails), merged.
    pub async fn scan_page(&self, ask: PageAsk) -> Result<ScanPage, CoordinatorError> {
        let partitions = self.partition_count();
        let Planned {
            nodes,
            mut tracker,
            dead,
            ..
        } = self.plan_partition(ask.partition, ask.level)?;
        let voters = tracker.replicas();
        // Live replicas first (local region first, as planned), the dead last.
        let mut order: Vec<usize> = (0..voters).filter(|index| !dead[*index]).collect();
        order.extend((0..voters).filter(|index| dead[*index]));
        let request = PeerRequest::ScanClass {
            partition: ask.partition,
            class: ask.class,
            from: ask.from,
            keys: u32::try_from(ask.keys_max).unwrap_or(u32::MAX),
            bytes: u32::try_from(limits::RESP_SCAN_PAGE_BYTES_MAX).unwrap_or(u32::MAX),
        };
        let (sender, mut receiver) = mpsc::channel::<Reply>(voters.max(1));
        let (mut asked, mut next) = (vec![false; voters], 0);
        let mut pages = Vec::new();
        let started = Instant::now();
        loop {
            while !tracker.could_meet_with(&asked) && next < order.len() {
                asked[order[next]] = true;
                self.spawn_send(&sender, order[next], &nodes[order[next]], request.clone());
                next += 1;
            }
            match tracker.progress() {
                Progress::Met => return Ok(merge_pages(pages, ask.from, partitions)),
                Progress::Failed { needed, acked } => {
                    return Err(CoordinatorError::QuorumNotReached {
                        level: ask.level,
                        needed,
                        acked,
                        replicas: voters,
                    })
                }
                Progress::Pending => {}
            }
            let reply = tokio::time::timeout_at(started + self.timeout, receiver.recv()).await;
            let Ok(Some(Reply { index, response })) = reply else {
                return Err(CoordinatorError::Timeout {
                    level: ask.level,
                    needed: tracker.requirement().total,
                    acked: tracker.acked(),
                    answered: tracker.answered(),
                    replicas: voters,
                    after_ms: super::whole_ms(self.timeout),
                    short: tracker.shortfall(),
                });
            };
            let ok = match *response {
                // A cut page without entries would never move on: not an answer.
                Ok(PeerResponse::Entries { entries, more }) if !(more && entries.is_empty()) => {
                    pages.push((entries, more));
                    true
                }
                _ => false,
            };
            tracker.record(index, ok);
        }
    }
}

#[cfg(test)]
mod tests;
