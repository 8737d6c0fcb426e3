//! A deterministic, in-process simulation of cartwheel's replicated data path (the
//! "DST", after FoundationDB's simulation and TigerBeetle's VOPR).
//!
//! It owns a virtual world: K nodes in one to three regions, each storing the crate's
//! real objects (`object::Object`: kv values with dotted version vectors, and the
//! `user` and `auth` session documents) with the shipping replica's pure steps
//! (`replica::minted` for a kv write, `replica::applied` for a document operation,
//! `replica::merged` for every merge) on a virtual disk, placed by the real
//! `ring::Ring` through `membership::ownership::RingView`, coordinated by the shipping
//! rounds (`coordinator::round::WriteRound`, `ReadRound`: the same code a node runs
//! under tokio, driven here by `driver`), with hinted handoff and hint replay
//! (`hints`), repaired by their read repair and by the real Merkle `antientropy`
//! exchange. In about half the runs a spare node joins or a member leaves during the
//! workload (`membership`): writes reach the owners the change adds, gaining nodes
//! fetch their partitions as `handoff::transfer` does, and the change commits under
//! the next epoch. Time is a virtual millisecond counter, the network is a
//! priority queue of events ordered by (delivery time, sequence number), and every
//! random choice (workload, latency, loss, duplication, reordering, partitions,
//! crashes, the ring change) comes from one `StdRng` seeded by the run's seed, so a
//! seed replays exactly.
//!
//! It must never import tokio, quinn, sled or axum, read a clock, touch a disk or draw
//! randomness from anywhere but that one generator; everything it stores is bounded by
//! the `DST_*` limits below. It checks, continuously and at the end, that no
//! acknowledged write is lost (`check`), that every acknowledged document operation
//! shows by the CRDT's own semantics (`docs`), that a started ring change commits, and
//! that replicas converge after the final heal, and reports a violation with the seed
//! and the event number that revealed it.
//!
//! Replay a failing seed with `SIM_SEED=<seed> cargo test --lib dst`.

mod change;
mod check;
mod client;
mod deliver;
mod disk;
mod docs;
mod driver;
mod hints;
mod membership;
mod network;
mod sync;
mod world;

#[cfg(test)]
mod tests;

use crate::coordinator::quorum::Level;

/// Events one run may process (workload, drain and all); past it the run reports a
/// `Stuck` violation instead of looping.
pub const DST_EVENTS_MAX: u64 = 50_000;
/// Events waiting in the virtual network and timer queue; a message sent while it is
/// full is dropped (counted as lost), a timer is always queued.
pub const DST_QUEUE_MAX: usize = 8_192;
/// Nodes in a simulated cluster.
pub const DST_NODES_MAX: usize = 10;
/// Simulated clients (kv and document clients together).
pub const DST_CLIENTS_MAX: usize = 16;
/// Distinct keys the clients use.
pub const DST_KEYS_MAX: usize = 64;
/// Requests one node coordinates at once; a client request past it is refused
/// (`Overloaded`), like `limits::CLIENT_REQUESTS_IN_FLIGHT_MAX` in the real node.
pub const DST_COORDINATED_PER_NODE_MAX: usize = 64;
/// Writes the checker remembers (minted versions); past it the workload stops early.
pub const DST_WRITES_MAX: usize = 8_192;
/// Event descriptions kept for a violation report (the newest ones).
pub const DST_TRACE_TAIL_MAX: usize = 64;
/// Anti-entropy rounds over every replica pair after the final heal; not converging
/// within them is a violation.
pub const DST_FINAL_SYNC_ROUNDS_MAX: usize = 6;
/// Requests of one Merkle exchange before it is abandoned as a protocol bug.
pub const DST_EXCHANGE_STEPS_MAX: usize = 256;
/// Depth of the simulated Merkle trees (16 leaves: a few keys per partition).
pub const DST_TREE_DEPTH: u8 = 4;
/// Partitions of the simulated ring (the real default is 1024; 16 keeps the placement
/// table and the trees tiny while every key still lands on a rendezvous-chosen set).
pub const DST_PARTITIONS: u32 = 16;
/// Hints one simulated node holds; a hint past it is refused (no acknowledgement).
pub const DST_HINTS_PER_NODE_MAX: usize = 256;
/// Virtual time between two background anti-entropy sessions, in milliseconds.
pub const DST_ANTI_ENTROPY_INTERVAL_MS: u64 = 200;

/// What one run simulates. The topology (nodes, regions, latencies) and the fault
/// intensities are drawn from the seed; this fixes the shape of the workload.
#[derive(Clone, Debug)]
pub struct DstConfig {
    /// Virtual time during which clients issue requests and faults happen, in ms.
    pub workload_ms: u64,
    /// Simulated clients (at most `DST_CLIENTS_MAX`).
    pub clients: usize,
    /// Distinct keys (at most `DST_KEYS_MAX`); few keys mean many concurrent writes.
    pub keys: usize,
    /// Level of client reads (R); `Quorum` is 2 of N = 3.
    pub read_level: Level,
    /// Level of client writes (W); `Quorum` is 2 of N = 3.
    pub write_level: Level,
    /// How long a coordinator waits for its replicas, in virtual ms.
    pub request_timeout_ms: u64,
    /// Inject loss, duplication, reordering, partitions and crashes.
    pub faults: bool,
    /// Longest a node's flush of a version it minted for itself takes, in virtual ms
    /// (a crash within it loses the version at that node).
    pub flush_ms_max: u64,
    /// Test-only: the write round counts a replica's acknowledgement when it sends the
    /// replication request, before the replica stored anything
    /// (`WriteRound::plant_ack_before_store`, set only here). Must be caught.
    pub planted_bug: bool,
    /// Writes for dead replicas go to a live fallback as hints (sloppy quorum), which
    /// replays them when the owner is back; off, a dead replica is a failed ack.
    pub sloppy: bool,
    /// Test-only: a node restarted after a crash mints under its old actor instead of
    /// a new incarnation's, so it can hand out a dot again that its store lost but
    /// other replicas hold. Must be caught.
    pub planted_old_actor: bool,
    /// Clients, besides `clients`, that write and read one `user` and one `auth`
    /// session document (so documents add to the kv workload, not replace it).
    pub document_clients: usize,
}

impl Default for DstConfig {
    fn default() -> Self {
        DstConfig {
            workload_ms: 2_500,
            clients: 5,
            keys: 3,
            read_level: Level::Quorum,
            write_level: Level::Quorum,
            request_timeout_ms: 300,
            faults: true,
            flush_ms_max: 5,
            planted_bug: false,
            sloppy: true,
            planted_old_actor: false,
            document_clients: 2,
        }
    }
}

/// What a run that held every invariant did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DstReport {
    pub seed: u64,
    /// The topology drawn from the seed, e.g. `3 regions x 1 replica, 7 nodes`.
    pub topology: String,
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end, in ms.
    pub end_ms: u64,
    /// blake3 over every event description, in hex: equal runs have equal hashes.
    pub trace_hash: String,
    pub puts_acked: u64,
    pub puts_failed: u64,
    pub gets_ok: u64,
    pub gets_failed: u64,
    /// Acknowledged writes a completed read was checked against.
    pub reads_checked: u64,
    pub read_repairs: u64,
    /// Reads whose digests did not settle them, so read every replica's object.
    pub reads_in_full: u64,
    /// Keys the anti-entropy exchange repaired (during the run and after the heal).
    pub keys_synced: u64,
    /// Writes acknowledged with a hint's help (sloppy quorum).
    pub puts_hinted: u64,
    /// Hints a fallback handed to their owner once it was back.
    pub hints_replayed: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub messages_lost: u64,
    pub messages_duplicated: u64,
    /// Document operations (`user`, `auth`) acknowledged to a client.
    pub doc_ops_acked: u64,
    /// Acknowledged document operations checked against a read or a final replica.
    pub doc_ops_checked: u64,
    /// Ring changes (a join or a leave) that committed during the run.
    pub ring_changes: u64,
    /// Partitions a gaining node fetched during a ring change.
    pub partitions_transferred: u64,
    /// Acknowledged values missing only because the sibling cap dropped them for
    /// newer concurrent siblings (the documented compaction, not a loss).
    pub compacted: u64,
}

/// Which invariant broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// A completed quorum read, or the final state, lacks an acknowledged write.
    LostWrite,
    /// After the final heal and anti-entropy, replicas of a key differ.
    Diverged,
    /// Code under test panicked.
    Panic,
    /// The run did not finish within `DST_EVENTS_MAX` events.
    Stuck,
    /// The real pure code returned an error the data path never expects.
    Internal,
}

/// An invariant that failed, with what is needed to replay it.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "seed {seed}, event {event}: {kind:?}: {detail} (replay: SIM_SEED={seed} cargo test --lib dst)"
)]
pub struct DstViolation {
    pub seed: u64,
    /// Number of the event (1-based) at which the violation was seen.
    pub event: u64,
    pub kind: ViolationKind,
    pub detail: String,
    /// The newest event descriptions before the violation (at most `DST_TRACE_TAIL_MAX`).
    pub trace_tail: Vec<String>,
}

/// Runs one simulation of `config` with `seed`; `Ok` when every invariant held.
pub fn run(config: &DstConfig, seed: u64) -> Result<DstReport, DstViolation> {
    let mut world = world::World::new(config, seed);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.run()));
    match outcome {
        Ok(result) => result,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_else(|| "a panic without a message".to_string());
            Err(world.violation(ViolationKind::Panic, detail))
        }
    }
}

/// The seed named by the `SIM_SEED` environment variable, if it is set and a number.
pub fn seed_from_env() -> Option<u64> {
    std::env::var("SIM_SEED").ok()?.trim().parse().ok()
}
