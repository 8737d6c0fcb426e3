//! The virtual network and timer queue: events ordered by (delivery time, sequence
//! number), message payloads between clients, coordinators and replicas, and the seeded
//! faults a message meets on its way (loss, duplication, extra delay that reorders,
//! partitions between node sets, crashed receivers).
//!
//! It never reads a clock: the world passes the current virtual time and the one RNG.

use super::check::{describe, describe_vv};
use super::{DST_QUEUE_MAX, DST_TRACE_TAIL_MAX};
use crate::clock::{Dot, Hlc, VersionVector};
use crate::coordinator::round::Phase;
use crate::crdt::DocOp;
use crate::object::{Blob, Object, ObjectKey};
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::{BTreeMap, VecDeque};

/// A request a client made, unique per run.
pub(super) type OpId = u64;

/// A request a coordinator fans out: unique per node over all its incarnations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ReqId {
    pub incarnation: u32,
    pub number: u64,
}

/// Who sends or receives a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Address {
    Node(usize),
    Client(usize),
}

/// What a write asks of the replica that makes it: a kv value over a causal context
/// (`replica::minted`), or an operation on a document (`replica::applied`).
#[derive(Clone, Debug)]
pub(super) enum Change {
    Kv { value: Blob, context: VersionVector },
    Doc(DocOp),
}

/// What the replica that made a write answers: the kv version's dot (documents have
/// none), the object it stored, and what travels to the other replicas (the whole kv
/// object, or the document's delta).
#[derive(Clone, Debug)]
pub(super) struct Minted {
    pub dot: Option<Dot>,
    pub stored: Object,
    pub object: Object,
}

/// What a client learns about its request.
#[derive(Clone, Debug)]
pub(super) enum Outcome {
    /// A write was acknowledged: the version minted, and the object the minter stored.
    /// `hinted`: a fallback's hint counted toward the level, so a read may miss it
    /// until the hint is replayed (sloppy quorum).
    Put {
        dot: Option<Dot>,
        stored: Object,
        hinted: bool,
    },
    /// A read met its level: the merge of the replies (`None`: no replica had the key).
    Get { merged: Option<Object> },
    /// The level was not met, or the coordinator was overloaded.
    Failed { why: &'static str },
}

/// Every message of the simulated data path.
#[derive(Clone, Debug)]
pub(super) enum Payload {
    ClientGet {
        op: OpId,
        key: ObjectKey,
    },
    ClientPut {
        op: OpId,
        key: ObjectKey,
        change: Change,
    },
    ClientReply {
        op: OpId,
        outcome: Outcome,
    },
    /// Coordinator → replica: make a new version (`replica::minted`) or apply a
    /// document operation (`replica::applied`).
    Mint {
        req: ReqId,
        key: ObjectKey,
        change: Change,
        at: Hlc,
    },
    /// Coordinator → replica: merge this version (replication).
    Replicate {
        req: ReqId,
        key: ObjectKey,
        object: Object,
    },
    /// Coordinator → fallback: keep this version for `owner`, which is down (a hint);
    /// answered with `Stored` once kept.
    Hint {
        req: ReqId,
        owner: usize,
        key: ObjectKey,
        object: Object,
    },
    /// Coordinator → replica: merge this version (read repair), no answer expected.
    Repair {
        key: ObjectKey,
        object: Object,
    },
    /// Coordinator → replica: your object; `phase` of the read it belongs to.
    Read {
        req: ReqId,
        key: ObjectKey,
        phase: Phase,
    },
    /// Coordinator → replica: the digest of your object (`Object::digest`).
    ReadDigest {
        req: ReqId,
        key: ObjectKey,
        phase: Phase,
    },
    /// Replica → coordinator: the version minted, or `None` when minting failed;
    /// `durable` unless the replica is the coordinator's own node, which sends the
    /// version on before its flush ends (then `Flushed` follows).
    Minted {
        req: ReqId,
        minted: Option<Box<Minted>>,
        durable: bool,
    },
    /// A node to itself: its flush ended, so the version it minted for `req` is
    /// durable and counts as its acknowledgement.
    Flushed {
        req: ReqId,
    },
    /// A node to itself: the record that life `life` sends early is durable.
    Armed {
        life: u64,
    },
    /// Replica → coordinator: the replicated version is stored (durable).
    Stored {
        req: ReqId,
    },
    ReadReply {
        req: ReqId,
        object: Option<Object>,
        phase: Phase,
    },
    DigestReply {
        req: ReqId,
        digest: Option<[u8; 32]>,
        phase: Phase,
    },
}

impl Payload {
    /// The versions a message carries, for the trace: dots and contexts, never values.
    pub fn detail(&self) -> String {
        match self {
            Payload::ClientPut { change, .. } | Payload::Mint { change, .. } => match change {
                Change::Kv { context, .. } => format!("ctx [{}]", describe_vv(context)),
                Change::Doc(op) => format!("{op:?}"),
            },
            Payload::Replicate { object, .. }
            | Payload::Repair { object, .. }
            | Payload::Hint { object, .. } => describe(Some(object)),
            Payload::Minted {
                minted: Some(minted),
                ..
            } => match minted.dot {
                Some(dot) => format!("{dot} {}", describe(Some(&minted.object))),
                None => describe(Some(&minted.object)),
            },
            Payload::ReadReply { object, .. } => describe(object.as_ref()),
            _ => String::new(),
        }
    }

    /// A short name for the trace.
    pub fn name(&self) -> &'static str {
        match self {
            Payload::ClientGet { .. } => "get",
            Payload::ClientPut { .. } => "put",
            Payload::ClientReply { .. } => "reply",
            Payload::Mint { .. } => "mint",
            Payload::Replicate { .. } => "replicate",
            Payload::Repair { .. } => "repair",
            Payload::Hint { .. } => "hint",
            Payload::Read { .. } => "read",
            Payload::ReadDigest { .. } => "read-digest",
            Payload::Minted { .. } => "minted",
            Payload::Flushed { .. } => "flushed",
            Payload::Armed { .. } => "armed",
            Payload::Stored { .. } => "stored",
            Payload::ReadReply { .. } => "read-reply",
            Payload::DigestReply { .. } => "digest-reply",
        }
    }
}

/// Something that happens at a virtual time.
#[derive(Clone, Debug)]
pub(super) enum Event {
    Deliver {
        from: Address,
        to: Address,
        payload: Box<Payload>,
    },
    ClientWake {
        client: usize,
    },
    ClientTimeout {
        client: usize,
        op: OpId,
    },
    CoordinatorTimeout {
        node: usize,
        req: ReqId,
    },
    Restart {
        node: usize,
    },
    /// Draw the next fault: a crash (restart scheduled) or a partition (heal scheduled).
    Fault,
    Heal,
    AntiEntropy,
    /// The workload ends: stop faults and new requests, heal, drain.
    EndWorkload,
}

/// Fault intensities drawn from the seed.
#[derive(Clone, Copy, Debug)]
pub(super) struct Faults {
    pub loss: f64,
    pub duplicate: f64,
    pub reorder: f64,
    pub reorder_ms_max: u64,
}

impl Faults {
    pub const NONE: Faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        reorder_ms_max: 0,
    };
}

/// The queue of events and the state of the links.
pub(super) struct Network {
    queue: BTreeMap<(u64, u64), Event>,
    sequence: u64,
    pub faults: Faults,
    /// Side of each node while a partition is in force; nodes on different sides
    /// cannot exchange messages.
    pub sides: Option<Vec<bool>>,
    /// One-way latency between nodes, in ms (symmetric).
    pub latency_ms: Vec<Vec<u64>>,
    pub lost: u64,
    pub duplicated: u64,
}

impl Network {
    pub fn new(latency_ms: Vec<Vec<u64>>, faults: Faults) -> Self {
        Network {
            queue: BTreeMap::new(),
            sequence: 0,
            faults,
            sides: None,
            latency_ms,
            lost: 0,
            duplicated: 0,
        }
    }

    /// Queues `event` at time `at`; timers are never dropped.
    pub fn schedule(&mut self, at: u64, event: Event) {
        self.sequence += 1;
        self.queue.insert((at, self.sequence), event);
    }

    /// The next event in (time, sequence) order.
    pub fn pop(&mut self) -> Option<(u64, Event)> {
        self.queue.pop_first().map(|((at, _), event)| (at, event))
    }

    /// Whether two nodes can talk now (a partition cuts them apart).
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.sides.as_ref().is_none_or(|sides| sides[a] == sides[b])
    }

    /// Sends `payload` at `now`, applying loss, duplication and reordering. A node's
    /// message to itself is a local call: delivered at once, never faulted.
    pub fn send(
        &mut self,
        now: u64,
        rng: &mut StdRng,
        from: Address,
        to: Address,
        payload: Payload,
    ) {
        let base = match (from, to) {
            (Address::Node(a), Address::Node(b)) if a == b => {
                let payload = Box::new(payload);
                self.schedule(now, Event::Deliver { from, to, payload });
                return;
            }
            (Address::Node(a), Address::Node(b)) => {
                if !self.connected(a, b) {
                    self.lost += 1;
                    return;
                }
                self.latency_ms[a][b]
            }
            // Clients sit next to the node they talk to.
            _ => 1,
        };
        if self.queue.len() >= DST_QUEUE_MAX || rng.gen_bool(self.faults.loss) {
            self.lost += 1;
            return;
        }
        let copies = if rng.gen_bool(self.faults.duplicate) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = base + rng.gen_range(0..=base / 4 + 1);
            if rng.gen_bool(self.faults.reorder) {
                delay += rng.gen_range(0..=self.faults.reorder_ms_max);
            }
            let event = Event::Deliver {
                from,
                to,
                payload: Box::new(payload.clone()),
            };
            self.schedule(now + delay, event);
        }
    }
}

/// The trace of a run: a blake3 hash over every event description, plus the newest
/// descriptions for a violation report.
pub(super) struct Trace {
    hasher: blake3::Hasher,
    tail: VecDeque<String>,
}

impl Trace {
    pub fn new() -> Self {
        Trace {
            hasher: blake3::Hasher::new(),
            tail: VecDeque::with_capacity(DST_TRACE_TAIL_MAX),
        }
    }

    pub fn record(&mut self, line: String) {
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        if self.tail.len() == DST_TRACE_TAIL_MAX {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    pub fn hash_hex(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }

    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }
}
