//! The messages nodes send each other over the transport.
//!
//! These types are the wire format (rmp-serde inside a versioned frame, see
//! `transport`); adding a variant at the end is compatible, changing one is not.

use crate::clock::{Hlc, VersionVector};
use crate::ids::PartitionId;
use crate::membership::swim::SwimMessage;
use crate::object::{Blob, Object, ObjectKey};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Read the local replica of a key.
    Get { key: ObjectKey },
    /// Coordinate a new version of a key on this replica.
    Mint {
        key: ObjectKey,
        context: VersionVector,
        value: Option<Blob>,
        timestamp: Hlc,
    },
    /// Merge a version into this replica (replication and read repair).
    Merge { key: ObjectKey, object: Object },
    /// A membership message (one-way: the reply is `Done`).
    Swim(SwimMessage),
    /// Hold `object` for `owner`, a replica that is down (hinted handoff).
    Hint {
        owner: crate::ids::NodeId,
        key: ObjectKey,
        object: Object,
    },
    /// Hints replayed to their owner: merge them all.
    Handoff { entries: Vec<HandoffEntry> },
    /// A Merkle anti-entropy message (roots, tree levels, leaf entries).
    AntiEntropy(crate::antientropy::Message),
    /// Tombstones another replica collected after seeing every replica hold them:
    /// delete each one still stored with exactly this digest.
    CollectTombstones {
        partition: PartitionId,
        entries: Vec<(serde_bytes::ByteBuf, [u8; 32])>,
    },
    /// The objects of some keys of a partition (anti-entropy repair).
    FetchKeys {
        partition: PartitionId,
        keys: Vec<serde_bytes::ByteBuf>,
    },
    /// A page of a partition's objects, in key order, after `after` (ownership transfer).
    FetchPartition {
        partition: PartitionId,
        #[serde(with = "serde_bytes")]
        after: Vec<u8>,
        limit: u32,
    },
    /// Apply an operation to a document (`auth`, `user`) as this replica at `at`; the
    /// answer is `Applied` with the delta the coordinator sends to the other replicas.
    Apply {
        key: ObjectKey,
        op: crate::crdt::DocOp,
        at: Hlc,
    },
    /// Several `Get`s and `Digest`s, or several `Merge`s, queued for this node while
    /// earlier ones were in flight; served concurrently, answered by a `Batch` in the
    /// same order. At most `BATCH_REQUESTS_MAX`, never nested.
    Batch(Vec<PeerRequest>),
    /// The digest of the local replica of a key (`Object::digest`): a quorum read
    /// gets one replica's object and only this from the others.
    Digest { key: ObjectKey },
    /// A page of one class's objects of a partition (a cluster-wide SCAN): those whose
    /// key lies at or after position `from` within the partition
    /// (`ring::position_in_partition`), by (position, key), at most `keys` of them and
    /// about `bytes` stored bytes, never cut between two keys of one position. The
    /// answer is `Entries`; `more` says keys lie past the last position sent.
    ScanClass {
        partition: PartitionId,
        class: crate::object::Class,
        from: u32,
        keys: u32,
        bytes: u32,
    },
    /// This node's figures for an operator's overview of the cluster (`/v1/cluster`,
    /// the dashboard): answered `Overview`.
    Overview,
    /// The changes this node's replica applied from `from` on (`crate::feed`), waiting
    /// up to `wait_ms` (at most `FEED_WAIT_MS`) for one if none is due: answered
    /// `Feed`.
    FeedRead {
        from: crate::feed::Cursor,
        wait_ms: u32,
    },
}

impl PeerRequest {
    /// Whether a replica may be asked to carry this out again, or another replica
    /// instead, when it is unknown whether the first did: false for an operation that
    /// counts each application (a counter increment), true for every other (versions
    /// and document operations merge to the same state when applied twice).
    pub fn repeatable(&self) -> bool {
        match self {
            PeerRequest::Apply { op, .. } => op.repeatable(),
            _ => true,
        }
    }
}

/// One hinted write on its way to its owner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HandoffEntry {
    pub key: ObjectKey,
    pub object: Object,
}

/// One stored object of a partition: its storage key (class tag + key) and object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartitionEntry {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    pub object: Object,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    Object(Option<Object>),
    Stored(Object),
    Done,
    AntiEntropy(crate::antientropy::Message),
    /// A page of a partition; `more` says whether to ask again after the last key.
    Entries {
        entries: Vec<PartitionEntry>,
        more: bool,
    },
    Error(PeerError),
    /// The document after an `Apply`, and the delta that carries the change.
    Applied {
        stored: Box<Object>,
        delta: Box<Object>,
        /// What a Redis command answers (`None` for the session documents, and from
        /// nodes that predate it: the field is new, so it defaults).
        #[serde(default)]
        outcome: Option<crate::crdt::redis::RedisOutcome>,
    },
    /// The answers to a `Batch`, in its order.
    Batch(Vec<PeerResponse>),
    /// The answer to a `Digest`: `None` if the replica holds nothing for the key.
    Digest(Option<[u8; 32]>),
    /// The answer to an `Overview`.
    Overview(Box<NodeOverview>),
    /// The answer to a `FeedRead`.
    Feed(Box<crate::feed::Page>),
}

/// One node's figures as the dashboard shows them: counters since it started (the
/// reader takes differences between two overviews for rates and recent latencies).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeOverview {
    pub partitions_owned: u32,
    pub partitions_held: u32,
    /// Keys stored, when the node knows without counting (`None`: unknown).
    pub keys: Option<u64>,
    pub reads: u64,
    pub writes: u64,
    pub failures: u64,
    /// Hints held here for owners that were down.
    pub hints_pending: u64,
    pub partitions_out_of_sync: u32,
    pub oldest_divergence_s: f64,
    pub transfers_in_flight: u64,
    pub ring_epoch: u64,
    pub ring_change_pending: bool,
    /// Coordinated requests by operation and class, every level and outcome together.
    pub latency: Vec<OpLatency>,
}

/// The latency histogram of one (operation, class): a count per bucket of
/// `stats::LATENCY_BOUNDS_US` and one over the last bound.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpLatency {
    pub op: String,
    pub class: String,
    pub counts: Vec<u64>,
    pub sum_ms: f64,
}

/// A replica's refusal, with a code the coordinator branches on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PeerError {
    #[error("replica storage failed: {0}")]
    Storage(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("replica overloaded")]
    Overloaded,
    #[error("partition {0} is not held by this node")]
    NotOwner(PartitionId),
    #[error("a live member already uses this node id, at {0}")]
    DuplicateId(String),
    /// The operation breaks a rule of its document (a limit, a quantity); nothing changed.
    #[error("refused: {message}")]
    Refused { refusal: Refusal, message: String },
}

/// Why an operation on a document was refused, as clients are told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The document would grow past its size limit.
    TooLarge,
    /// A count or value limit (cart lines, prefs, quantity).
    Limit,
    /// The document was refreshed after the deadline an expiry named.
    StillLive,
    /// The key holds another kind of record.
    Mismatch,
    /// The write would make the stored object larger than `OBJECT_BYTES_MAX`.
    ObjectTooLarge,
    /// A rotation of a token already rotated to another successor.
    AlreadyRotated,
}

impl Refusal {
    pub fn of(error: &crate::crdt::CrdtError) -> Refusal {
        use crate::crdt::CrdtError;
        match error {
            CrdtError::TooLarge { .. } => Refusal::TooLarge,
            CrdtError::StillLive => Refusal::StillLive,
            CrdtError::Mismatch => Refusal::Mismatch,
            CrdtError::AlreadyRotated => Refusal::AlreadyRotated,
            CrdtError::Redis(crate::crdt::redis::RedisError::WrongType) => Refusal::Mismatch,
            CrdtError::Redis(_) => Refusal::Limit,
            CrdtError::TooMany { .. }
            | CrdtError::Quantity { .. }
            | CrdtError::CounterExhausted => Refusal::Limit,
        }
    }
}
