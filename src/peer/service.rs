//! Answers other nodes' requests (and this node's own coordinator): replica reads and
//! writes, membership messages, and pages of partitions for ownership transfer.

use super::served::{Kind, ServedLatencies};
use crate::clock::{Hlc, VersionError};
use crate::coordinator::ClusterView;
use crate::crdt::DocOp;
use crate::handoff::hints::Hints;
use crate::ids::{NodeId, PartitionId};
use crate::limits;
use crate::object::{MergeError, Object, ObjectKey};
use crate::replica::scan::ClassScan;
use crate::replica::{Replica, ReplicaError};
use crate::runtime::gossip::Gossip;
use crate::runtime::state::ClusterState;
use crate::transport::PeerInfo;
use crate::wire::{PeerError, PeerRequest, PeerResponse, Refusal};
use std::sync::Arc;

pub struct PeerService {
    pub replica: Arc<Replica>,
    pub hints: Arc<Hints>,
    pub state: Arc<ClusterState>,
    pub gossip: Arc<Gossip>,
    /// Bounds write forwards to new owners in flight (FORWARDS_IN_FLIGHT_MAX).
    pub forwards: Arc<tokio::sync::Semaphore>,
    /// Repair and anti-entropy messages refused (not held, over a limit, malformed).
    pub refused: Arc<std::sync::atomic::AtomicU64>,
    /// How long each kind of request took to answer.
    pub served: Arc<ServedLatencies>,
    /// Builds this node's `Overview` (set by the node once its parts exist; until then
    /// an `Overview` is refused).
    pub overview: std::sync::OnceLock<OverviewSource>,
}

/// What builds a node's overview from its parts.
pub type OverviewSource = Arc<dyn Fn() -> crate::wire::NodeOverview + Send + Sync>;

/// A replica's failure as its answer. A refused operation, and a version vector that
/// would name too many actors (every replica would refuse it alike: a limit of the
/// key, not a fault of this node), are refusals the client sees as such.
fn storage_error(error: ReplicaError) -> PeerResponse {
    let (refusal, message) = match &error {
        ReplicaError::Merge(MergeError::Doc(refused)) => {
            (Refusal::of(refused), refused.to_string())
        }
        ReplicaError::Merge(MergeError::Version(too_many @ VersionError::TooManyActors { .. })) => {
            (Refusal::Limit, too_many.to_string())
        }
        ReplicaError::Merge(too_large @ MergeError::TooLarge { .. }) => {
            (Refusal::ObjectTooLarge, too_large.to_string())
        }
        _ => return PeerResponse::Error(PeerError::Storage(error.to_string())),
    };
    PeerResponse::Error(PeerError::Refused { refusal, message })
}

impl PeerService {
    pub async fn serve(&self, from: Option<&PeerInfo>, request: PeerRequest) -> PeerResponse {
        let kind = Kind::of(&request);
        let started = std::time::Instant::now();
        let response = self.answer(from, request).await;
        self.served.observe(kind, &response, started.elapsed());
        response
    }

    async fn answer(&self, from: Option<&PeerInfo>, request: PeerRequest) -> PeerResponse {
        match request {
            PeerRequest::Get { .. } | PeerRequest::Digest { .. } | PeerRequest::Merge { .. } => {
                self.serve_item(request).await
            }
            PeerRequest::Batch(requests) => self.serve_batch(requests).await,
            request @ (PeerRequest::Mint { .. } | PeerRequest::Apply { .. }) => {
                let stored = self.mint_stored(from.map(|from| &from.node), &request);
                if matches!(stored, PeerResponse::Error(_)) {
                    return stored;
                }
                match self.replica.durable().await {
                    Ok(()) => stored,
                    Err(error) => storage_error(error),
                }
            }
            PeerRequest::Swim(message) => {
                if let Some(address) = self.gossip.refuse_duplicate(&message) {
                    return PeerResponse::Error(PeerError::DuplicateId(address));
                }
                if let Some(from) = from {
                    self.gossip.receive(&from.node, &from.region, message);
                }
                PeerResponse::Done
            }
            PeerRequest::FetchPartition {
                partition,
                after,
                limit,
            } => self.fetch(partition, after, limit),
            PeerRequest::ScanClass {
                partition,
                class,
                from,
                keys,
                bytes,
            } => self.scan_class(ClassScan {
                partition,
                class,
                from,
                keys_max: (keys as usize).clamp(1, limits::RESP_SCAN_PAGE_KEYS_MAX),
                bytes_max: (bytes as usize).clamp(1, limits::RESP_SCAN_PAGE_BYTES_MAX),
            }),
            PeerRequest::AntiEntropy(message) => self.anti_entropy(message).await,
            PeerRequest::FeedRead { from, wait_ms } => {
                let wait = u64::from(wait_ms).min(limits::FEED_WAIT_MS);
                let page = self
                    .replica
                    .feed()
                    .read_waiting(
                        from,
                        std::time::Duration::from_millis(wait),
                        limits::FEED_PAGE_ENTRIES_MAX,
                        limits::FEED_PAGE_BYTES_MAX,
                    )
                    .await;
                PeerResponse::Feed(Box::new(page))
            }
            PeerRequest::Overview => match self.overview.get() {
                Some(overview) => PeerResponse::Overview(Box::new(overview())),
                None => PeerResponse::Error(PeerError::Overloaded),
            },
            PeerRequest::CollectTombstones { partition, entries } => {
                if entries.len() > limits::REPAIR_KEYS_PER_MESSAGE_MAX
                    || !self.state.held().contains(&partition)
                {
                    self.refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return PeerResponse::Error(PeerError::BadRequest(format!(
                        "{} tombstones of {partition}: over the limit or not held here",
                        entries.len()
                    )));
                }
                for (key, digest) in entries {
                    if let Err(error) =
                        self.replica
                            .collect_tombstone_if(partition, key.into_vec(), digest)
                    {
                        return storage_error(error);
                    }
                }
                PeerResponse::Done
            }
            PeerRequest::FetchKeys { partition, keys } => {
                if keys.len() > limits::REPAIR_KEYS_PER_MESSAGE_MAX
                    || !self.state.held().contains(&partition)
                {
                    self.refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return PeerResponse::Error(PeerError::BadRequest(format!(
                        "{} keys of {partition}: over the limit or not held here",
                        keys.len()
                    )));
                }
                let keys: Vec<Vec<u8>> = keys
                    .into_iter()
                    .map(serde_bytes::ByteBuf::into_vec)
                    .collect();
                match self.replica.objects(partition, &keys) {
                    Ok(entries) => PeerResponse::Entries {
                        entries,
                        more: false,
                    },
                    Err(error) => storage_error(error),
                }
            }
            PeerRequest::Hint { owner, key, object } => {
                if let Err(error) = self.hints.store(&owner, key, object) {
                    return PeerResponse::Error(PeerError::Storage(error.to_string()));
                }
                match self.replica.durable().await {
                    Ok(()) => PeerResponse::Done,
                    Err(error) => storage_error(error),
                }
            }
            PeerRequest::Handoff { entries } => {
                if entries.len() > limits::HANDOFF_BATCH_MAX {
                    return PeerResponse::Error(PeerError::BadRequest(format!(
                        "{} hints in one batch, the limit is {}",
                        entries.len(),
                        limits::HANDOFF_BATCH_MAX
                    )));
                }
                match self.replica.merge_objects(entries).await {
                    Ok(()) => PeerResponse::Done,
                    Err(error) => storage_error(error),
                }
            }
        }
    }

    /// Answers a `Get` or a `Digest` from the store, at once; `None` for any other
    /// request.
    pub fn read(&self, request: &PeerRequest) -> Option<PeerResponse> {
        let response = match request {
            PeerRequest::Get { key } => match self.replica.get(key) {
                Ok(object) => PeerResponse::Object(object),
                Err(error) => storage_error(error),
            },
            PeerRequest::Digest { key } => match self.replica.digest(key) {
                Ok(digest) => PeerResponse::Digest(digest),
                Err(error) => storage_error(error),
            },
            _ => return None,
        };
        Some(response)
    }

    /// A request that may travel in a batch. A merge is answered `Done`: the sender
    /// has the object already, so it does not travel back.
    async fn serve_item(&self, request: PeerRequest) -> PeerResponse {
        if let Some(response) = self.read(&request) {
            return response;
        }
        match request {
            PeerRequest::Merge { key, object } => match self.replica.merge(&key, &object).await {
                Ok(object) => {
                    self.forward_to_pending(&key, &object);
                    PeerResponse::Done
                }
                Err(error) => storage_error(error),
            },
            _ => PeerResponse::Error(PeerError::BadRequest(
                "only reads and merges travel in batches".to_string(),
            )),
        }
    }

    /// Serves a batch's requests concurrently (the writes share their durability
    /// wait) and answers in order; a batch over the limit or with another kind of
    /// request inside is refused whole.
    async fn serve_batch(&self, requests: Vec<PeerRequest>) -> PeerResponse {
        let batchable = |request: &PeerRequest| crate::runtime::batch::Kind::of(request).is_some();
        if requests.len() > limits::BATCH_REQUESTS_MAX || !requests.iter().all(batchable) {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return PeerResponse::Error(PeerError::BadRequest(format!(
                "a batch of {} requests: over the limit of {} or not all reads and merges",
                requests.len(),
                limits::BATCH_REQUESTS_MAX
            )));
        }
        let answers = requests.into_iter().map(|request| self.serve_item(request));
        PeerResponse::Batch(futures::future::join_all(answers).await)
    }

    /// Makes and stores the version a `Mint` or `Apply` asks for, without waiting for
    /// it to be durable (`Replica::durable`); any other request is refused. An `Apply`
    /// `from` another node that was applied already gets its first answer
    /// (`Replica::apply_op_once`). Borrows the request: this node's own mint keeps it
    /// to send elsewhere should this one fail, and nothing of it is stored but a copy of
    /// the value.
    pub fn mint_stored(&self, from: Option<&NodeId>, request: &PeerRequest) -> PeerResponse {
        match request {
            PeerRequest::Mint {
                key,
                context,
                value,
                timestamp,
            } => match self
                .replica
                .mint_stored(key, context, value.as_ref(), *timestamp)
            {
                Ok(object) => self.stored(key, object),
                Err(error) => storage_error(error),
            },
            PeerRequest::Apply { key, op, at } => self.apply(from, key, op, *at),
            _ => PeerResponse::Error(PeerError::BadRequest(
                "only Mint and Apply make a new version".to_string(),
            )),
        }
    }

    fn apply(&self, from: Option<&NodeId>, key: &ObjectKey, op: &DocOp, at: Hlc) -> PeerResponse {
        let applied = match from {
            Some(from) => self.replica.apply_op_once(from, key, op, at),
            None => self.replica.apply_op_stored(key, op, at),
        };
        match applied {
            Ok((stored, delta, outcome)) => {
                self.forward_to_pending(key, &stored);
                PeerResponse::Applied {
                    stored: Box::new(stored),
                    delta: Box::new(delta),
                    outcome,
                }
            }
            Err(error) => storage_error(error),
        }
    }

    /// A write this replica stored is forwarded to the owners the pending ring adds for
    /// its partition, so a coordinator that has not yet heard of the change cannot leave
    /// them behind. Best effort: skipped when too many forwards are in flight.
    fn stored(&self, key: &ObjectKey, object: Object) -> PeerResponse {
        self.forward_to_pending(key, &object);
        PeerResponse::Stored(object)
    }

    fn forward_to_pending(&self, key: &ObjectKey, object: &Object) {
        let view = self.state.view();
        if view.target.is_some() {
            let partition = key.partition(view.current.partition_count());
            let (_, extra) = view.replicas_for(partition, &self.state.region);
            for replica in extra
                .into_iter()
                .filter(|replica| replica.node != self.state.me)
            {
                let Ok(permit) = self.forwards.clone().try_acquire_owned() else {
                    break;
                };
                let request = PeerRequest::Merge {
                    key: key.clone(),
                    object: object.clone(),
                };
                let transport = self.gossip.transport();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Some(transport) = transport {
                        let _ = transport.request(&replica.node, &request).await;
                    }
                });
            }
        }
    }

    /// Answers a peer's anti-entropy message about partitions this node holds; a
    /// message about another partition, or malformed, is refused and counted.
    /// Answers on the blocking pool when leaves are asked for: reading a leaf's
    /// entries scans its partition in the store. A partition whose tree is not yet
    /// rebuilt after a start, or whose data this node is still fetching from one replica
    /// after losing its store, is answered as not held: the peer leaves it for now.
    async fn anti_entropy(&self, message: crate::antientropy::Message) -> PeerResponse {
        let trees = self.replica.trees().clone();
        let comparable = |p: PartitionId| self.state.comparable(p) && trees.ready(p);
        let answer = match &message {
            crate::antientropy::Message::Roots { .. } => {
                crate::antientropy::respond_roots(&message, |p| {
                    comparable(p).then(|| trees.root(p))
                })
                .map_err(|error| error.to_string())
            }
            _ => match message.partition() {
                Some(partition) if comparable(partition) => {
                    let storage = self.replica.storage().clone();
                    tokio::task::spawn_blocking(move || {
                        let tree = trees.snapshot(partition);
                        crate::antientropy::respond(&message, &tree, |leaf| {
                            trees.leaf_entries(storage.as_ref(), partition, leaf)
                        })
                        .map_err(|error| format!("{error:?}"))
                    })
                    .await
                    .unwrap_or_else(|error| Err(error.to_string()))
                }
                _ => Err("a partition this node does not hold".to_string()),
            },
        };
        match answer {
            Ok(answer) => PeerResponse::AntiEntropy(answer),
            Err(reason) => {
                self.refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                PeerResponse::Error(PeerError::BadRequest(format!("anti-entropy: {reason}")))
            }
        }
    }

    /// One page of a partition this node holds, bounded in entries and bytes.
    fn fetch(
        &self,
        partition: crate::ids::PartitionId,
        after: Vec<u8>,
        limit: u32,
    ) -> PeerResponse {
        if !self.state.held().contains(&partition) {
            return PeerResponse::Error(PeerError::NotOwner(partition));
        }
        let limit = (limit as usize).clamp(1, limits::FETCH_ENTRIES_MAX);
        let after = if after.is_empty() {
            None
        } else {
            Some(after.as_slice())
        };
        let page = match self
            .replica
            .storage()
            .scan_partition(partition, after, limit)
        {
            Ok(page) => page,
            Err(error) => return PeerResponse::Error(PeerError::Storage(error.to_string())),
        };
        let full = page.len() == limit;
        let (entries, more) = crate::handoff::page::page(page, full, limits::FETCH_BYTES_MAX);
        PeerResponse::Entries { entries, more }
    }

    /// A SCAN page of a partition this node holds (`PeerRequest::ScanClass`); a
    /// partition it does not hold (yet) is refused, so the coordinator asks another
    /// replica instead of taking an empty page for the truth.
    fn scan_class(&self, scan: ClassScan) -> PeerResponse {
        if !self.state.held().contains(&scan.partition) {
            return PeerResponse::Error(PeerError::NotOwner(scan.partition));
        }
        match self.replica.class_page(&scan) {
            Ok((entries, more)) => PeerResponse::Entries { entries, more },
            Err(error @ ReplicaError::TooManyToScan { .. }) => {
                PeerResponse::Error(PeerError::BadRequest(error.to_string()))
            }
            Err(error) => storage_error(error),
        }
    }
}

#[cfg(test)]
mod tests;
