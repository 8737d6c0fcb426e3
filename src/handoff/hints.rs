//! Hinted handoff: a write for a replica the failure detector holds dead is stored on a
//! fallback node as a hint naming the intended owner, and replayed to the owner once it
//! is alive again: batched, rate-limited, deleted on acknowledgement, resumed after a
//! restart of either side (hints are durable). A hint older than the hint window is
//! dropped (anti-entropy covers it); hints per owner are bounded, and when full the
//! oldest is dropped, never a client write refused.

use crate::coordinator::ClusterView;
use crate::ids::NodeId;
use crate::limits;
use crate::membership::swim::Status;
use crate::object::{Object, ObjectKey};
use crate::runtime::state::{now_ms, ClusterState};
use crate::storage::{AuxSpace, Storage, StorageError};
use crate::transport::Transport;
use crate::wire::{HandoffEntry, PeerRequest, PeerResponse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Version of the hint record format.
pub const HINT_FORMAT_VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct HintRecord {
    key: ObjectKey,
    object: Object,
    stored_ms: u64,
}

/// Counters shown in `/v1/status`.
#[derive(Debug, Default)]
pub struct HintStats {
    pub stored: AtomicU64,
    pub replayed: AtomicU64,
    pub dropped: AtomicU64,
}

/// The hints this node holds for other nodes.
pub struct Hints {
    storage: Arc<dyn Storage>,
    pending: Mutex<BTreeMap<NodeId, u64>>,
    sequence: AtomicU64,
    pub stats: HintStats,
}

fn owner_prefix(owner: &NodeId) -> Vec<u8> {
    let mut prefix = owner.as_str().as_bytes().to_vec();
    prefix.push(0);
    prefix
}

fn owner_of(key: &[u8]) -> Option<NodeId> {
    let end = key.iter().position(|byte| *byte == 0)?;
    NodeId::new(std::str::from_utf8(&key[..end]).ok()?).ok()
}

impl Hints {
    /// Opens the hints of a store, counting what is pending per owner.
    pub fn open(storage: Arc<dyn Storage>) -> Result<Hints, StorageError> {
        let mut pending: BTreeMap<NodeId, u64> = BTreeMap::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = storage.aux_scan(
                AuxSpace::Hints,
                &[],
                after.as_deref(),
                limits::SCAN_ENTRIES_MAX,
            )?;
            for (key, _) in &page {
                if let Some(owner) = owner_of(key) {
                    *pending.entry(owner).or_default() += 1;
                }
            }
            match page.last() {
                Some((key, _)) => after = Some(key.clone()),
                None => break,
            }
        }
        Ok(Hints {
            storage,
            pending: Mutex::new(pending),
            sequence: AtomicU64::new(now_ms() << 16),
            stats: HintStats::default(),
        })
    }

    /// Stores a hint for `owner`. When the owner already has HINTS_PER_NODE_MAX, its
    /// oldest hint is dropped first.
    pub fn store(
        &self,
        owner: &NodeId,
        key: ObjectKey,
        object: Object,
    ) -> Result<(), StorageError> {
        let prefix = owner_prefix(owner);
        let full = self
            .pending
            .lock()
            .expect("hints lock")
            .get(owner)
            .copied()
            .unwrap_or(0)
            >= limits::HINTS_PER_NODE_MAX;
        if full {
            if let Some((oldest, _)) = self
                .storage
                .aux_scan(AuxSpace::Hints, &prefix, None, 1)?
                .into_iter()
                .next()
            {
                self.storage.aux_delete(AuxSpace::Hints, &oldest)?;
                self.forget(owner, 1);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut hint_key = prefix;
        hint_key.extend_from_slice(&self.sequence.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let mut bytes = vec![HINT_FORMAT_VERSION];
        rmp_serde::encode::write(
            &mut bytes,
            &HintRecord {
                key,
                object,
                stored_ms: now_ms(),
            },
        )
        .expect("encoding to a Vec cannot fail");
        self.storage.aux_put(AuxSpace::Hints, &hint_key, &bytes)?;
        *self
            .pending
            .lock()
            .expect("hints lock")
            .entry(owner.clone())
            .or_default() += 1;
        self.stats.stored.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn forget(&self, owner: &NodeId, count: u64) {
        let mut pending = self.pending.lock().expect("hints lock");
        if let Some(left) = pending.get_mut(owner) {
            *left = left.saturating_sub(count);
            if *left == 0 {
                pending.remove(owner);
            }
        }
    }

    /// Hints pending per owner.
    pub fn pending(&self) -> BTreeMap<NodeId, u64> {
        self.pending.lock().expect("hints lock").clone()
    }

    /// Up to `limit` of `owner`'s oldest hints that are still inside the window; older
    /// ones are dropped on the way.
    fn batch(
        &self,
        owner: &NodeId,
        limit: usize,
        window_ms: u64,
        now: u64,
    ) -> Result<Vec<(Vec<u8>, HandoffEntry)>, StorageError> {
        let page = self
            .storage
            .aux_scan(AuxSpace::Hints, &owner_prefix(owner), None, limit)?;
        let mut batch = Vec::new();
        for (key, bytes) in page {
            let record = bytes
                .split_first()
                .filter(|(version, _)| **version == HINT_FORMAT_VERSION)
                .and_then(|(_, body)| rmp_serde::from_slice::<HintRecord>(body).ok());
            match record {
                Some(record) if now.saturating_sub(record.stored_ms) <= window_ms => batch.push((
                    key,
                    HandoffEntry {
                        key: record.key,
                        object: record.object,
                    },
                )),
                _ => {
                    // Expired or unreadable: anti-entropy repairs what it held.
                    self.storage.aux_delete(AuxSpace::Hints, &key)?;
                    self.forget(owner, 1);
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(batch)
    }

    fn delete_all(&self, owner: &NodeId) -> Result<(), StorageError> {
        loop {
            let page = self.storage.aux_scan(
                AuxSpace::Hints,
                &owner_prefix(owner),
                None,
                limits::SCAN_ENTRIES_MAX,
            )?;
            if page.is_empty() {
                return Ok(());
            }
            for (key, _) in &page {
                self.storage.aux_delete(AuxSpace::Hints, key)?;
            }
            self.forget(owner, page.len() as u64);
            self.stats
                .dropped
                .fetch_add(page.len() as u64, Ordering::Relaxed);
        }
    }
}

/// Replays hints to owners that are alive again.
pub struct HintWorker {
    pub hints: Arc<Hints>,
    pub state: Arc<ClusterState>,
    pub transport: Transport<PeerRequest, PeerResponse>,
    /// Keys replayed per second at most (`--hint-replay-rate`).
    pub rate_per_s: u64,
    /// Hints older than this are dropped (`--hint-window`).
    pub window_ms: u64,
}

impl HintWorker {
    /// Sends one batch to `owner`; returns how many hints it delivered.
    async fn replay(&self, owner: &NodeId, budget: usize) -> Result<usize, String> {
        let batch = self
            .hints
            .batch(
                owner,
                budget.min(limits::HANDOFF_BATCH_MAX),
                self.window_ms,
                now_ms(),
            )
            .map_err(|error| error.to_string())?;
        if batch.is_empty() {
            return Ok(0);
        }
        let (keys, entries): (Vec<Vec<u8>>, Vec<HandoffEntry>) = batch.into_iter().unzip();
        match self
            .transport
            .request(owner, &PeerRequest::Handoff { entries })
            .await
        {
            Ok(PeerResponse::Done) => {}
            Ok(other) => return Err(format!("unexpected answer {other:?}")),
            Err(error) => return Err(error.to_string()),
        }
        for key in &keys {
            self.hints
                .storage
                .aux_delete(AuxSpace::Hints, key)
                .map_err(|error| error.to_string())?;
        }
        self.hints.forget(owner, keys.len() as u64);
        self.hints
            .stats
            .replayed
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        Ok(keys.len())
    }

    async fn round(&self, budget: &mut f64) {
        for owner in self.hints.pending().into_keys() {
            let member = self.state.member(&owner);
            if matches!(
                member.as_ref().map(|m| m.status),
                Some(Status::Left | Status::Removed)
            ) {
                // Its partitions have new owners, which rebuild from the replicas.
                let _ = self.hints.delete_all(&owner);
                continue;
            }
            if member.is_none() || self.state.is_dead(&owner) {
                continue;
            }
            while *budget >= 1.0 {
                match self.replay(&owner, *budget as usize).await {
                    Ok(0) => break,
                    Ok(sent) => *budget -= sent as f64,
                    Err(error) => {
                        tracing::debug!(%owner, %error, "hint replay failed; will retry");
                        break;
                    }
                }
            }
        }
    }

    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let interval = Duration::from_millis(limits::HINT_REPLAY_INTERVAL_MS);
        let mut budget = 0.0;
        loop {
            // Token bucket: the rate per second, at most one second of burst.
            budget = (budget + self.rate_per_s as f64 * interval.as_secs_f64())
                .min(self.rate_per_s as f64);
            self.round(&mut budget).await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests;
