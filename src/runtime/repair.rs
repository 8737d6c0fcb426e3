//! The anti-entropy driver: each round compares this node's partitions with one peer
//! that shares them (roots first, then only the differing branches), pulls the objects
//! the peer has newer, pushes the ones it lacks, and merges both sides by version.
//! Rounds go round-robin over the peers, a peer that came back alive first, under a
//! bandwidth budget.

use super::state::{now_ms, ClusterState};
use crate::antientropy::{compare_roots, roots_requests, Exchange, Hash, Message, Step};
use crate::coordinator::{ClusterView, WallClock};
use crate::ids::{NodeId, PartitionId};
use crate::limits;
use crate::membership::swim::Liveness;
use crate::object::ObjectKey;
use crate::replica::Replica;
use crate::transport::Transport;
use crate::wire::{HandoffEntry, PeerRequest, PeerResponse};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Counters shown in `/v1/status`.
#[derive(Debug, Default)]
pub struct RepairStats {
    pub rounds: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub keys_pulled: AtomicU64,
    pub keys_pushed: AtomicU64,
    /// (peer, partition) pairs found different and not yet seen equal, with when first seen.
    pub divergent: Mutex<BTreeMap<(NodeId, PartitionId), u64>>,
    /// When each (peer, partition) was last found in sync.
    pub synced: Mutex<BTreeMap<(NodeId, PartitionId), u64>>,
    pub tombstones_collected: AtomicU64,
    /// When (wall ms) the auth guard, catching up, last found this node not caught up
    /// (`runtime::regions`; 0 once it is): for a while after, rounds come every
    /// `ANTI_ENTROPY_CATCH_UP_ROUND_MS` with peers of other regions, so the node
    /// validates from its own region again within about a second, not a minute. A
    /// request lapses by itself: a guard that stops asking (fenced) stops the rush.
    pub catch_up_asked_ms: AtomicU64,
    pub catch_up_wake: tokio::sync::Notify,
}

impl RepairStats {
    /// Asks for catch-up rounds (`wanted`) or ends them.
    pub fn want_catch_up(&self, wanted: bool) {
        let at = if wanted { now_ms().max(1) } else { 0 };
        let was = self.catch_up_asked_ms.swap(at, Ordering::Relaxed);
        if wanted && !self.catching_up_at(was) {
            self.catch_up_wake.notify_one();
        }
    }

    /// Whether catch-up rounds are asked for now.
    pub fn catching_up(&self) -> bool {
        self.catching_up_at(self.catch_up_asked_ms.load(Ordering::Relaxed))
    }

    fn catching_up_at(&self, asked_ms: u64) -> bool {
        asked_ms > 0 && now_ms().saturating_sub(asked_ms) <= 2 * limits::AUTH_CATCH_UP_CHECK_MS
    }
}

impl RepairStats {
    pub fn out_of_sync(&self) -> usize {
        let divergent = self.divergent.lock().expect("divergent lock");
        divergent
            .keys()
            .map(|(_, partition)| *partition)
            .collect::<BTreeSet<_>>()
            .len()
    }

    pub fn oldest_divergence_ms(&self) -> u64 {
        let divergent = self.divergent.lock().expect("divergent lock");
        divergent
            .values()
            .min()
            .map(|since| now_ms().saturating_sub(*since))
            .unwrap_or(0)
    }
}

pub struct RepairWorker {
    /// A tombstone is collected this long after every replica was seen in sync past it.
    pub tombstone_grace_ms: u64,
    /// The data clock deletes are stamped with.
    pub clock: Arc<super::clock::NodeClock>,
    pub state: Arc<ClusterState>,
    pub transport: Transport<PeerRequest, PeerResponse>,
    pub replica: Arc<Replica>,
    pub stats: Arc<RepairStats>,
    /// Bytes per second (`--anti-entropy-rate`).
    pub rate_bytes_per_s: u64,
}

/// Why one comparison stopped.
#[derive(Debug, thiserror::Error)]
enum RepairError {
    #[error("{0}")]
    Transport(String),
    #[error("unexpected answer from the peer")]
    Unexpected,
    #[error("exchange: {0}")]
    Exchange(String),
}

impl RepairWorker {
    async fn ask(&self, peer: &NodeId, request: PeerRequest) -> Result<PeerResponse, RepairError> {
        self.transport
            .request(peer, &request)
            .await
            .map_err(|error| RepairError::Transport(error.to_string()))
    }

    /// One anti-entropy message to the peer and its answer, counting bytes.
    async fn exchange_message(
        &self,
        peer: &NodeId,
        message: Message,
    ) -> Result<Message, RepairError> {
        self.stats
            .bytes_sent
            .fetch_add(message.encoded_len() as u64, Ordering::Relaxed);
        match self.ask(peer, PeerRequest::AntiEntropy(message)).await? {
            PeerResponse::AntiEntropy(answer) => {
                self.stats
                    .bytes_received
                    .fetch_add(answer.encoded_len() as u64, Ordering::Relaxed);
                Ok(answer)
            }
            _ => Err(RepairError::Unexpected),
        }
    }

    /// Partitions both this node (holding them) and `peer` own in the current ring,
    /// those whose tree is not yet rebuilt after a start, or whose data is still being
    /// fetched after this node lost its store, left out (every key would look different).
    fn shared(&self, peer: &NodeId) -> Vec<(PartitionId, Hash)> {
        let view = self.state.view();
        let trees = self.replica.trees();
        let theirs: BTreeSet<PartitionId> = view.current.partitions_of(peer).into_iter().collect();
        view.current
            .partitions_of(&self.state.me)
            .into_iter()
            .filter(|p| theirs.contains(p) && trees.ready(*p) && self.state.comparable(*p))
            .map(|p| (p, trees.root(p)))
            .collect()
    }

    /// Compares everything shared with `peer` and repairs what differs; returns bytes used.
    async fn compare(&self, peer: &NodeId) -> Result<u64, RepairError> {
        let before = self.stats.bytes_sent.load(Ordering::Relaxed)
            + self.stats.bytes_received.load(Ordering::Relaxed);
        let mut differing = Vec::new();
        let mut equal = Vec::new();
        for request in roots_requests(self.shared(peer)) {
            let asked: Vec<PartitionId> = match &request {
                Message::Roots { partitions } => partitions.iter().map(|(p, _)| *p).collect(),
                _ => Vec::new(),
            };
            let answer = self.exchange_message(peer, request.clone()).await?;
            let outcome = compare_roots(&request, answer)
                .map_err(|error| RepairError::Exchange(error.to_string()))?;
            equal.extend(
                asked
                    .into_iter()
                    .filter(|p| !outcome.differing.contains(p) && !outcome.not_held.contains(p)),
            );
            differing.extend(outcome.differing);
        }
        {
            let mut divergent = self.stats.divergent.lock().expect("divergent lock");
            let mut synced = self.stats.synced.lock().expect("synced lock");
            let now = self.clock.now_ms();
            for partition in &equal {
                divergent.remove(&(peer.clone(), *partition));
                synced.insert((peer.clone(), *partition), now);
            }
            for partition in &differing {
                divergent
                    .entry((peer.clone(), *partition))
                    .or_insert_with(|| self.clock.now_ms());
            }
        }
        for partition in differing {
            self.repair_partition(peer, partition).await?;
        }
        let after = self.stats.bytes_sent.load(Ordering::Relaxed)
            + self.stats.bytes_received.load(Ordering::Relaxed);
        Ok(after - before)
    }

    async fn repair_partition(
        &self,
        peer: &NodeId,
        partition: PartitionId,
    ) -> Result<(), RepairError> {
        let tree = Arc::new(self.replica.trees().snapshot(partition));
        let (mut exchange, mut message) = Exchange::start(partition, &tree);
        for _ in 0..limits::EXCHANGE_REQUESTS_MAX {
            let answer = self.exchange_message(peer, message).await?;
            // Our leaves' entries come from a scan of the partition: on the blocking pool.
            let (storage, trees, tree) = (
                self.replica.storage().clone(),
                self.replica.trees().clone(),
                tree.clone(),
            );
            let step;
            (step, exchange) = tokio::task::spawn_blocking(move || {
                let step = exchange.on_message(answer, &tree, |leaf| {
                    trees.leaf_entries(storage.as_ref(), partition, leaf)
                });
                (step, exchange)
            })
            .await
            .map_err(|error| RepairError::Exchange(error.to_string()))?;
            let step = step.map_err(|error| RepairError::Exchange(format!("{error:?}")))?;
            match step {
                Step::Send(next) => message = next,
                Step::InSync => return Ok(()),
                Step::Done(diff) => {
                    self.pull(peer, partition, diff.keys_to_pull).await?;
                    return self.push(peer, partition, diff.keys_to_push).await;
                }
            }
        }
        Err(RepairError::Exchange("too many requests".into()))
    }

    async fn pull(
        &self,
        peer: &NodeId,
        partition: PartitionId,
        keys: Vec<Vec<u8>>,
    ) -> Result<(), RepairError> {
        for chunk in keys.chunks(limits::REPAIR_KEYS_PER_MESSAGE_MAX) {
            let request = PeerRequest::FetchKeys {
                partition,
                keys: chunk
                    .iter()
                    .cloned()
                    .map(serde_bytes::ByteBuf::from)
                    .collect(),
            };
            let PeerResponse::Entries { entries, .. } = self.ask(peer, request).await? else {
                return Err(RepairError::Unexpected);
            };
            let bytes = entries_bytes(
                entries
                    .iter()
                    .map(|entry| (entry.key.as_slice(), &entry.object)),
            );
            self.stats
                .bytes_received
                .fetch_add(bytes as u64, Ordering::Relaxed);
            self.stats
                .keys_pulled
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
            self.replica
                .merge_entries(partition, entries)
                .await
                .map_err(|error| RepairError::Transport(error.to_string()))?;
        }
        Ok(())
    }

    async fn push(
        &self,
        peer: &NodeId,
        partition: PartitionId,
        keys: Vec<Vec<u8>>,
    ) -> Result<(), RepairError> {
        for chunk in keys.chunks(limits::REPAIR_KEYS_PER_MESSAGE_MAX) {
            let objects = self
                .replica
                .objects(partition, chunk)
                .map_err(|error| RepairError::Transport(error.to_string()))?;
            let entries: Vec<HandoffEntry> = objects
                .into_iter()
                .filter_map(|entry| {
                    ObjectKey::from_storage_bytes(&entry.key).map(|key| HandoffEntry {
                        key,
                        object: entry.object,
                    })
                })
                .collect();
            let bytes = entries_bytes(
                entries
                    .iter()
                    .map(|entry| (entry.key.key.as_slice(), &entry.object)),
            );
            self.stats
                .bytes_sent
                .fetch_add(bytes as u64, Ordering::Relaxed);
            self.stats
                .keys_pushed
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
            if !matches!(
                self.ask(peer, PeerRequest::Handoff { entries }).await?,
                PeerResponse::Done
            ) {
                return Err(RepairError::Unexpected);
            }
        }
        Ok(())
    }

    /// When each other replica of `partition` was last seen in sync with this node.
    fn synced_times(&self, partition: PartitionId) -> Vec<Option<u64>> {
        let view = self.state.view();
        let synced = self.stats.synced.lock().expect("synced lock");
        view.current
            .replicas(partition)
            .into_iter()
            .filter(|(node, _)| *node != self.state.me)
            .map(|(node, _)| synced.get(&(node, partition)).copied())
            .collect()
    }

    /// Collects the tombstones that every other replica of their partition was seen
    /// holding (in sync after the delete) longer than the grace ago. Scans at most
    /// TOMBSTONE_SCAN_KEYS_MAX keys per pass, a page at a time on the blocking pool:
    /// reading and decoding every object of a page on an async worker stalled every
    /// request that worker served (tens of milliseconds per 10,000 keys).
    async fn collect_tombstones(&self) {
        let view = self.state.view();
        let held = self.state.held();
        let mut budget = limits::TOMBSTONE_SCAN_KEYS_MAX;
        for partition in view
            .current
            .partitions_of(&self.state.me)
            .into_iter()
            .filter(|p| held.contains(p))
        {
            let synced = Arc::new(self.synced_times(partition));
            if synced.iter().any(Option::is_none) {
                continue;
            }
            let mut collected: Vec<(serde_bytes::ByteBuf, [u8; 32])> = Vec::new();
            let mut after: Option<Vec<u8>> = None;
            while budget > 0 {
                let pass = TombstonePage {
                    replica: self.replica.clone(),
                    partition,
                    after: after.take(),
                    limit: budget.min(limits::SCAN_ENTRIES_MAX),
                    synced: synced.clone(),
                    now_ms: self.clock.now_ms(),
                    grace_ms: self.tombstone_grace_ms,
                };
                let Ok(Some(page)) = tokio::task::spawn_blocking(move || pass.collect()).await
                else {
                    break;
                };
                budget = budget.saturating_sub(page.scanned);
                self.stats
                    .tombstones_collected
                    .fetch_add(page.collected.len() as u64, Ordering::Relaxed);
                collected.extend(page.collected);
                after = page.last;
                if after.is_none() {
                    break;
                }
            }
            // Every other replica was seen holding these same tombstones: tell them to
            // collect them too, so no replica hands them back to another.
            for chunk in collected.chunks(limits::REPAIR_KEYS_PER_MESSAGE_MAX) {
                for (peer, _) in view
                    .current
                    .replicas(partition)
                    .into_iter()
                    .filter(|(node, _)| *node != self.state.me)
                {
                    let request = PeerRequest::CollectTombstones {
                        partition,
                        entries: chunk.to_vec(),
                    };
                    if let Err(error) = self.ask(&peer, request).await {
                        tracing::debug!(%peer, %error, "could not pass on collected tombstones");
                    }
                }
            }
        }
    }

    /// Live peers that share partitions with this node, ordered for the next rounds.
    fn peers(&self) -> Vec<NodeId> {
        let view = self.state.view();
        let members = self.state.members();
        view.current
            .members()
            .iter()
            .map(|member| member.id.clone())
            .filter(|node| {
                *node != self.state.me
                    && members
                        .iter()
                        .any(|m| m.info.node == *node && m.liveness == Liveness::Alive)
            })
            .collect()
    }

    /// Of `peers`, those in another region than this node's.
    fn remote(&self, peers: &[NodeId]) -> Vec<NodeId> {
        let view = self.state.view();
        peers
            .iter()
            .filter(|peer| {
                view.current
                    .members()
                    .iter()
                    .any(|member| member.id == **peer && member.region != self.state.region)
            })
            .cloned()
            .collect()
    }

    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        if self.rate_bytes_per_s == 0 {
            tracing::warn!("anti-entropy is off (--anti-entropy-rate 0)");
            return;
        }
        let mut next = 0usize;
        let mut next_remote = 0usize;
        let mut was_alive: BTreeSet<NodeId> = BTreeSet::new();
        let mut budget = 0.0f64;
        let mut last = tokio::time::Instant::now();
        loop {
            let catching_up = self.stats.catching_up();
            let pause_ms = match catching_up {
                true => limits::ANTI_ENTROPY_CATCH_UP_ROUND_MS,
                false => limits::ANTI_ENTROPY_ROUND_MS,
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(pause_ms)) => {}
                _ = self.stats.catch_up_wake.notified(), if !catching_up => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
            let now = tokio::time::Instant::now();
            budget = (budget
                + self.rate_bytes_per_s as f64 * now.duration_since(last).as_secs_f64())
            .min(self.rate_bytes_per_s as f64);
            last = now;
            if budget <= 0.0 {
                continue;
            }
            let peers = self.peers();
            if peers.is_empty() {
                continue;
            }
            // A peer that just came back is compared at once.
            let returned = peers
                .iter()
                .find(|peer| !was_alive.contains(*peer))
                .cloned();
            was_alive = peers.iter().cloned().collect();
            let remote = self.remote(&peers);
            let peer = match (returned, self.stats.catching_up()) {
                (Some(peer), _) => peer,
                // Catching up: the other regions' replicas are what the guard waits on.
                (None, true) if !remote.is_empty() => {
                    next_remote = (next_remote + 1) % remote.len();
                    remote[next_remote].clone()
                }
                (None, _) => {
                    next = (next + 1) % peers.len();
                    peers[next].clone()
                }
            };
            match self.compare(&peer).await {
                Ok(bytes) => budget -= bytes as f64,
                Err(error) => tracing::debug!(%peer, %error, "anti-entropy round failed"),
            }
            let rounds = self.stats.rounds.fetch_add(1, Ordering::Relaxed) + 1;
            if rounds.is_multiple_of(gc_every_rounds(self.tombstone_grace_ms)) {
                self.collect_tombstones().await;
            }
        }
    }
}

/// Key and encoded object bytes of repaired entries, as counted in the statistics.
fn entries_bytes<'a>(
    entries: impl Iterator<Item = (&'a [u8], &'a crate::object::Object)>,
) -> usize {
    entries
        .map(|(key, object)| key.len() + crate::object::encode_object(object).len())
        .sum()
}

/// Anti-entropy rounds between two tombstone collection passes: a quarter of the grace,
/// at least TOMBSTONE_GC_EVERY_ROUNDS. Collecting a tombstone later only keeps it longer.
fn gc_every_rounds(grace_ms: u64) -> u64 {
    (grace_ms / 4 / limits::ANTI_ENTROPY_ROUND_MS).max(limits::TOMBSTONE_GC_EVERY_ROUNDS)
}

/// One page of a tombstone collection pass, run on the blocking pool.
struct TombstonePage {
    replica: Arc<Replica>,
    partition: PartitionId,
    after: Option<Vec<u8>>,
    limit: usize,
    /// When each other replica of the partition was last seen in sync.
    synced: Arc<Vec<Option<u64>>>,
    now_ms: u64,
    grace_ms: u64,
}

/// What one page scanned and collected.
struct CollectedPage {
    scanned: usize,
    /// The last key scanned; `None` when the partition has no more.
    last: Option<Vec<u8>>,
    collected: Vec<(serde_bytes::ByteBuf, [u8; 32])>,
}

impl TombstonePage {
    /// Scans the page and collects its tombstones; `None` when the store failed.
    fn collect(self) -> Option<CollectedPage> {
        let page = self
            .replica
            .storage()
            .scan_partition(self.partition, self.after.as_deref(), self.limit)
            .ok()?;
        let scanned = page.len();
        let last = (scanned >= self.limit)
            .then(|| page.last().map(|(key, _)| key.clone()))
            .flatten();
        let mut collected = Vec::new();
        for (key, bytes) in page {
            let Ok(object) = crate::object::decode_object(&bytes) else {
                continue;
            };
            // Repair neither pulls nor pushes such a tombstone, so a replica that
            // collected it does not get it back.
            let past_grace = crate::object::is_tombstone(&object)
                && crate::antientropy::tombstones::collectable(
                    object.deleted_ms(),
                    &self.synced,
                    self.now_ms,
                    self.grace_ms,
                );
            if !past_grace {
                continue;
            }
            let digest = object.digest_stored(&bytes);
            if let Ok(true) =
                self.replica
                    .collect_tombstone(self.partition, key.clone(), &bytes, digest)
            {
                collected.push((serde_bytes::ByteBuf::from(key), digest));
            }
        }
        Some(CollectedPage {
            scanned,
            last,
            collected,
        })
    }
}

#[cfg(test)]
mod tests;
