//! Ownership transfer: a node fetches every partition it owns (now, or in the pending
//! ring) but does not hold yet, page by page from a current owner, merging each object;
//! then it announces it is ready for the pending generation.
//!
//! Sources are current owners that hold the partition, preferring a leaving node (it has
//! everything it acknowledged), then the local region. A failed source is skipped; a
//! partition with no source left is retried on the next round.
//!
//! The same fetch fills a node that lost its store (`ClusterState::start_filling`): each
//! partition it holds comes whole from one source, anti-entropy comparing it only after,
//! so the data crosses the network once instead of from every replica pushing it.

use crate::coordinator::ClusterView;
use crate::ids::{NodeId, PartitionId};
use crate::limits;
use crate::membership::swim::Status;
use crate::replica::Replica;
use crate::runtime::gossip::Gossip;
use crate::runtime::state::{now_ms, ClusterState};
use crate::transport::Transport;
use crate::wire::{PeerRequest, PeerResponse};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Why one transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("no live owner of {0} to fetch it from")]
    NoSource(PartitionId),
    #[error("fetching {partition} from {source_node} failed: {reason}")]
    Fetch {
        partition: PartitionId,
        source_node: NodeId,
        reason: String,
    },
}

/// Counters of the transfer worker.
#[derive(Debug, Default)]
pub struct TransferStats {
    pub partitions_fetched: std::sync::atomic::AtomicU64,
    pub objects_fetched: std::sync::atomic::AtomicU64,
    /// Key and object bytes of the objects fetched.
    pub bytes_fetched: std::sync::atomic::AtomicU64,
    /// Partitions of a lost store fetched whole from one replica.
    pub partitions_filled: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
}

pub struct TransferWorker {
    pub state: Arc<ClusterState>,
    pub transport: Transport<PeerRequest, PeerResponse>,
    pub replica: Arc<Replica>,
    pub gossip: Arc<Gossip>,
    pub stats: Arc<TransferStats>,
}

impl TransferWorker {
    /// Nodes to fetch `partition` from, best first: its current owners, then the rest.
    fn sources(&self, partition: PartitionId) -> Vec<NodeId> {
        let view = self.state.view();
        let members = self.state.members();
        let leaving = |node: &NodeId| {
            members
                .iter()
                .any(|m| m.info.node == *node && m.status == Status::Leaving)
        };
        let mut sources: Vec<(bool, bool, NodeId)> = view
            .current
            .replicas(partition)
            .into_iter()
            .filter(|(node, _)| *node != self.state.me && !self.state.is_dead(node))
            .map(|(node, region)| (!leaving(&node), region != self.state.region, node))
            .collect();
        sources.sort();
        let mut sources: Vec<NodeId> = sources.into_iter().map(|(_, _, node)| node).collect();
        // Then every other live member, its own region first: a ring change can give a
        // partition to owners that all lack it (balanced placement moves partitions
        // between the nodes that stay, not only the changed node's), while a node that
        // no longer owns it still holds it until DROP_GRACE_MS has passed. One that
        // does not hold it refuses at once, and the next is asked.
        let mut others: Vec<(bool, NodeId)> = members
            .iter()
            .filter(|m| m.status != Status::Removed)
            .map(|m| &m.info)
            .filter(|info| info.node != self.state.me && !self.state.is_dead(&info.node))
            .filter(|info| !sources.contains(&info.node))
            .map(|info| (info.region != self.state.region, info.node.clone()))
            .collect();
        others.sort();
        sources.extend(others.into_iter().map(|(_, node)| node));
        sources
    }

    async fn fetch_from(
        &self,
        partition: PartitionId,
        source: &NodeId,
    ) -> Result<(), TransferError> {
        let failed = |reason: String| TransferError::Fetch {
            partition,
            source_node: source.clone(),
            reason,
        };
        let mut after = Vec::new();
        for _page in 0..limits::FETCH_PAGES_MAX {
            let request = PeerRequest::FetchPartition {
                partition,
                after: after.clone(),
                limit: limits::FETCH_ENTRIES_MAX as u32,
            };
            let (entries, more) = match self.transport.request(source, &request).await {
                Ok(PeerResponse::Entries { entries, more }) => (entries, more),
                Ok(PeerResponse::Error(error)) => return Err(failed(error.to_string())),
                Ok(_) => return Err(failed("unexpected response".into())),
                Err(error) => return Err(failed(error.to_string())),
            };
            if let Some(last) = entries.last() {
                after = last.key.clone();
            }
            self.stats
                .objects_fetched
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
            let bytes: usize = entries
                .iter()
                .map(|entry| entry.key.len() + crate::object::encode_object(&entry.object).len())
                .sum();
            self.stats
                .bytes_fetched
                .fetch_add(bytes as u64, Ordering::Relaxed);
            self.replica
                .merge_entries(partition, entries)
                .await
                .map_err(|error| failed(error.to_string()))?;
            if !more {
                return Ok(());
            }
        }
        Err(failed(format!(
            "more than {} pages",
            limits::FETCH_PAGES_MAX
        )))
    }

    /// Fetches `partition` whole from the first source that answers every page.
    async fn fetch_whole(&self, partition: PartitionId) -> Result<(), TransferError> {
        let mut last_error = TransferError::NoSource(partition);
        for source in self.sources(partition) {
            match self.fetch_from(partition, &source).await {
                Ok(()) => return Ok(()),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// Fetches a partition this node owns but does not hold; then it holds it.
    async fn fetch(&self, partition: PartitionId) -> Result<(), TransferError> {
        self.fetch_whole(partition).await?;
        self.state.mark_held(partition);
        self.stats
            .partitions_fetched
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Fetches `partition`, which this node holds but lost with its store, whole from one
    /// source; then anti-entropy may compare it.
    async fn fill(&self, partition: PartitionId) -> Result<(), TransferError> {
        self.fetch_whole(partition).await?;
        self.state.filled(partition);
        self.stats.partitions_filled.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Fills the partitions of a lost store, a few at a time.
    async fn fill_round(&self) {
        let filling = self.state.filling();
        for chunk in filling.chunks(limits::TRANSFERS_IN_FLIGHT_MAX) {
            let results = futures::future::join_all(chunk.iter().map(|p| self.fill(*p))).await;
            for error in results.into_iter().filter_map(Result::err) {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, "filling a partition failed; will retry");
            }
        }
    }

    /// One round: fetch what is missing (a few partitions at a time), then announce
    /// readiness for the pending generation once nothing is missing.
    async fn round(&self) {
        let missing = self.state.missing_partitions();
        if missing.is_empty() {
            let view = self.state.view();
            let me = self.state.member(&self.state.me);
            if view.target.is_some() && me.is_some_and(|me| me.ready_for != view.generation) {
                let outputs = self
                    .state
                    .with_swim(|swim| swim.set_ready_for(view.generation, now_ms()));
                self.gossip.send_all(outputs);
            }
            return;
        }
        for chunk in missing.chunks(limits::TRANSFERS_IN_FLIGHT_MAX) {
            self.state
                .transfers_in_flight
                .store(chunk.len() as u64, Ordering::Relaxed);
            let results = futures::future::join_all(chunk.iter().map(|p| self.fetch(*p))).await;
            for error in results.into_iter().filter_map(Result::err) {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, "transfer failed; will retry");
            }
        }
        self.state.transfers_in_flight.store(0, Ordering::Relaxed);
    }

    /// Drops the data of partitions this node held but no longer owns, once they have
    /// been out of its hands for DROP_GRACE_MS (requests routed by a stale ring still
    /// find them meanwhile). Deletes at most DROP_KEYS_PER_ROUND_MAX keys per round.
    fn drop_round(&self, unowned_since: &mut BTreeMap<PartitionId, u64>) {
        let view = self.state.view();
        let mut owned: BTreeSet<PartitionId> = view
            .current
            .partitions_of(&self.state.me)
            .into_iter()
            .collect();
        if let Some(target) = &view.target {
            owned.extend(target.partitions_of(&self.state.me));
        }
        let now = now_ms();
        let held = self.state.held();
        unowned_since.retain(|partition, _| held.contains(partition) && !owned.contains(partition));
        let mut budget = limits::DROP_KEYS_PER_ROUND_MAX;
        for partition in held.iter().filter(|p| !owned.contains(p)) {
            let since = *unowned_since.entry(*partition).or_insert(now);
            if now.saturating_sub(since) < limits::DROP_GRACE_MS || budget == 0 {
                continue;
            }
            let storage = self.replica.storage();
            match storage.scan_partition(*partition, None, budget) {
                Ok(page) if page.is_empty() => {
                    // Its records are gone: their expiry entries go too, a page a round.
                    if drop_expiry_entries(storage.as_ref(), *partition, &mut budget) {
                        continue;
                    }
                    self.state.unmark_held(*partition);
                    self.state.filled(*partition);
                    // Its tree and key count described data that is gone.
                    self.replica.trees().forget(*partition);
                    tracing::info!(%partition, "dropped a partition this node no longer owns");
                }
                Ok(page) => {
                    budget -= page.len();
                    for (key, _) in page {
                        if let Err(error) = storage.delete(&crate::storage::StoreKey {
                            partition: *partition,
                            key,
                        }) {
                            tracing::warn!(%error, "cannot drop a key of an unowned partition");
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot scan an unowned partition"),
            }
        }
    }

    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut unowned_since = BTreeMap::new();
        loop {
            self.fill_round().await;
            self.round().await;
            self.drop_round(&mut unowned_since);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(limits::TRANSFER_ROUND_MS)) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    }
}

/// Drops up to `budget` expiry entries of a dropped partition whose record is gone (a
/// write that came in since keeps its own); says whether the page read was full, so
/// more may be left for the next round.
fn drop_expiry_entries(
    storage: &dyn crate::storage::Storage,
    partition: PartitionId,
    budget: &mut usize,
) -> bool {
    let page = match storage.expiry_due(
        partition,
        None,
        u64::MAX,
        *budget,
        limits::SWEEP_INDEX_PAGE_BYTES_MAX,
    ) {
        Ok(page) => page,
        Err(error) => {
            tracing::warn!(%error, "cannot read the expiry index of an unowned partition");
            return true;
        }
    };
    *budget = budget.saturating_sub(page.len());
    let full = !page.is_empty() && *budget == 0;
    for entry in page {
        let key = crate::storage::StoreKey::new(partition, entry.key);
        let gone = &mut |current: Option<&[u8]>| current.is_none();
        if let Err(error) = storage.expiry_drop(&key, entry.deadline_ms, gone) {
            tracing::warn!(%error, "cannot drop an expiry entry of an unowned partition");
        }
    }
    full
}
