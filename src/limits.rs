//! Every named bound of cartwheel, in one place, units last.
//!
//! Each limit says what happens when it is reached. Nothing here changes at run time;
//! flags that tune a bound are validated against these maxima in `config`.

// ---- keys, values, objects -------------------------------------------------------

/// Largest key a client may use. Over it: 413 `key_too_large`, nothing written.
pub const KEY_BYTES_MAX: usize = 1024;
/// Largest value a client may store. Over it: 413 `value_too_large`, nothing written.
pub const VALUE_BYTES_MAX: usize = 1024 * 1024;
/// Default sibling cap per object: past it the oldest siblings (by HLC, then dot) are
/// dropped, their dots staying covered by the version vector.
pub const SIBLINGS_MAX: usize = 8;
/// Largest sibling cap a caller may ask for and most siblings a decoded object may hold;
/// larger caps are treated as this one.
pub const SIBLINGS_CAP_MAX: usize = 64;
/// Most actors (replica node incarnations) one version vector may name; a merge or
/// write that would exceed it is refused with `VersionError::TooManyActors`, and
/// decoding rejects more.
pub const VV_ACTORS_MAX: usize = 64;
/// Largest encoded causal context a client may send back (header bytes).
pub const CONTEXT_BYTES_MAX: usize = 4096;

// ---- ring --------------------------------------------------------------------------

/// Default number of fixed partitions Q.
pub const PARTITIONS_DEFAULT: u32 = 1024;
/// Largest Q accepted from a flag or a topology file; `Ring::new` rejects more.
pub const PARTITIONS_MAX: u32 = 65_536;
/// Largest number of ring members; `Ring::new` rejects more (member indices are `u16`).
pub const RING_MEMBERS_MAX: usize = 1024;
/// Largest rendezvous order table (partitions × members, 2 bytes each, so 32 MiB);
/// `Ring::new` rejects more.
pub const RING_ORDER_ENTRIES_MAX: usize = 1 << 24;
/// Replicas per region when neither the topology nor a flag says.
pub const REPLICAS_PER_REGION_DEFAULT: u32 = 2;
/// Largest region a topology file may describe.
pub const NODES_PER_REGION_MAX: u32 = 1000;
/// Largest round trip accepted in a latency matrix.
pub const RTT_MS_MAX: f64 = 10_000.0;

// ---- storage -----------------------------------------------------------------------

/// Attempts of one read-modify-write against sled before giving up with `StorageError::Contention`.
pub const UPDATE_RETRIES_MAX: u32 = 64;

/// Entries one `scan_partition` call returns at most; a larger `limit` is clamped (callers page on).
pub const SCAN_ENTRIES_MAX: usize = 4096;

/// Largest group-commit gathering delay accepted by `--durability group:<ms>`.
pub const GROUP_COMMIT_DELAY_MS_MAX: u64 = 1000;

/// Group commit gathers (waits for company) only when writes arrive fast enough that
/// its window would gather at least this many: below it, flushing back to back costs
/// little and waiting would only add latency.
pub const GROUP_COMMIT_GATHER_MIN_WRITES: u64 = 4;

/// Bytes of sled page cache when the operator sets none.
pub const STORAGE_CACHE_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;

/// How long `CommitGate::shutdown` waits for the flusher's last flush before giving up.
pub const COMMIT_SHUTDOWN_DEADLINE_MS: u64 = 5000;

/// How long `SledStorage::open` waits for the store's file lock (sled releases it from a
/// background thread shortly after a close) before failing with `StorageError::Locked`.
pub const STORE_LOCK_WAIT_MS_MAX: u64 = 1000;

/// Pause between two attempts to take the store's file lock while opening.
pub const STORE_LOCK_RETRY_INTERVAL_MS: u64 = 10;

// ---- transport ---------------------------------------------------------------------

/// Largest frame accepted or produced, counting the version byte and payload (not the
/// 4-byte length prefix); a larger declared length is rejected before any allocation.
pub const FRAME_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Concurrent bidirectional streams (so in-flight handler tasks) a peer may open on one
/// connection; further requests wait in the peer's `open_bi` (back-pressure).
pub const STREAMS_PER_CONNECTION_MAX: u32 = 256;

/// Accepted inbound connections served at once; further ones are refused and counted.
pub const CONNECTIONS_MAX: usize = 1024;

/// Entries in a transport's address book; `set_peer` for a new node beyond it fails.
pub const PEERS_MAX: usize = 1024;
/// Most requests one batch to a peer carries.
pub const BATCH_REQUESTS_MAX: usize = 64;
/// Batches of one kind in flight to one peer; requests queued behind them travel
/// together in the next one (this is what makes batches under load).
pub const BATCHES_IN_FLIGHT_PER_PEER: usize = 4;
/// Requests of one kind waiting for one peer; a sender waits for room (backpressure).
pub const BATCH_QUEUE_PER_PEER: usize = 1024;

/// Interval of QUIC keep-alive pings on an idle connection, so NATs and the idle timer
/// do not drop a peer connection between requests.
pub const KEEP_ALIVE_INTERVAL_MS: u64 = 5_000;

/// Silence after which a QUIC connection is considered dead (must exceed the keep-alive).
pub const IDLE_TIMEOUT_MS: u32 = 30_000;

/// How long `shutdown` waits for connections to close gracefully before giving up.
pub const SHUTDOWN_GRACE_MS: u64 = 1_000;

/// Validity of certificates issued for the cluster CA and its nodes.
pub const CERTIFICATE_VALIDITY_YEARS: i32 = 20;

// ---- coordinator -------------------------------------------------------------------

/// Default time a coordinator waits for a quorum.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// Largest `--request-timeout-ms`.
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 60_000;
/// Replicas a write tries, in preference order, to coordinate its new version before
/// giving up with `unavailable`.
pub const MINT_ATTEMPTS_MAX: usize = 3;
/// Default for how far (ms) a remote HLC timestamp may run ahead of local wall time
/// before `HybridClock::observe` rejects it with `ClockError::Drift`.
pub const HLC_DRIFT_MS_MAX: u64 = 10_000;
/// Client requests a node serves at once; more wait up to the request timeout, then get
/// 503 `overloaded`.
pub const CLIENT_REQUESTS_IN_FLIGHT_MAX: usize = 4096;
/// Pipelined API connections (`/v1/pipeline`) a node keeps open at once; an upgrade
/// beyond it is answered 503 `overloaded` and the client stays on HTTP/1.1.
pub const PIPELINE_CONNECTIONS_MAX: usize = 1024;
/// Requests one pipelined connection has read and not yet answered; the node reads no
/// further frame from it until one is answered (back-pressure on the client).
pub const PIPELINE_IN_FLIGHT_MAX: usize = 1024;
/// Largest request frame on a pipelined connection: a value at its limit plus room for
/// the method, path and headers. A longer frame is answered `bad_frame` and closes it.
pub const PIPELINE_REQUEST_BYTES_MAX: usize = VALUE_BYTES_MAX + 64 * 1024;
/// Largest answer frame: every sibling of a key at the value limit, base64, plus room.
pub const PIPELINE_ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Read-repair writes in flight per node; further repairs are skipped (anti-entropy
/// catches them) rather than queued.
pub const READ_REPAIRS_IN_FLIGHT_MAX: usize = 256;
/// A read asks only the replicas its level needs (nearest first); when they have not
/// all answered after this long, it asks the others too. Long enough not to fire on a
/// busy local network, short enough that a replica gone before the failure detector
/// notices costs a read this much and not the request timeout.
pub const READ_SPECULATE_MS: u64 = 50;

/// How long a peer that refused a digest request (a node of a build before digest
/// reads, during a rolling upgrade) is asked for objects instead, before digests are
/// tried again.
pub const DIGESTLESS_RETRY_MS: u64 = 60_000;

// ---- SWIM membership -------------------------------------------------------------------

/// Largest member table (self included); members learned beyond it are ignored and counted in `members_over_limit`.
pub const MEMBERS_MAX: usize = 4096;
/// Largest number of outstanding extra probes and of relayed (indirect) probes each; further ones are skipped or refused and counted.
pub const PENDING_PROBES_MAX: usize = 64;
/// Default number of member updates piggybacked on one SWIM message (`SwimConfig::updates_per_message_max`).
pub const UPDATES_PER_MESSAGE_DEFAULT: usize = 16;
/// Hard cap of member updates in one received SWIM message; more is malformed (ignored and counted); the config may not exceed it.
pub const UPDATES_PER_MESSAGE_MAX: usize = 64;
/// Largest Lifeguard local health multiplier; timeouts stretch by at most (LOCAL_HEALTH_MAX + 1).
pub const LOCAL_HEALTH_MAX: u32 = 8;
/// Largest number of indirect probes (k) a config may ask for.
pub const INDIRECT_PROBES_MAX: usize = 16;
/// Largest gossip fanout a config may ask for.
pub const GOSSIP_FANOUT_MAX: usize = 16;
/// Largest suspicion multiplier (local or remote) a config may ask for.
pub const SUSPICION_MULTIPLIER_MAX: u32 = 64;
/// Largest retransmit multiplier (λ) a config may ask for.
pub const RETRANSMIT_MULTIPLIER_MAX: u32 = 32;
/// Shortest probe interval a config may ask for.
pub const PROBE_INTERVAL_MIN_MS: u64 = 10;
/// Longest probe interval a config may ask for.
pub const PROBE_INTERVAL_MAX_MS: u64 = 60_000;
/// Most seeds one `join` call contacts; further seeds are ignored.
pub const SEEDS_MAX: usize = 16;
/// Distinct suspecting nodes remembered per suspicion (more cannot shorten the timeout further).
pub const SUSPECTERS_MAX: usize = INDIRECT_PROBES_MAX + 1;
/// A gap between two calls into `Swim` longer than this means this node was stalled: its deadlines shift by the gap.
pub const STALL_GAP_MS: u64 = 200;
/// Messages the simulation holds for one paused node; further ones are dropped and counted.
pub const SIM_PAUSED_MESSAGES_MAX: usize = 100_000;
/// Messages in flight in the simulation; further ones are dropped and counted.
pub const SIM_IN_FLIGHT_MESSAGES_MAX: usize = 1_000_000;

// ---- Merkle anti-entropy ------------------------------------------------------------

// ---- anti-entropy: Merkle trees ------------------------------------------------------

/// Shallowest Merkle tree a partition may use (2 leaves); `PartitionTree::new` rejects less.
pub const TREE_DEPTH_MIN: u8 = 1;
/// Deepest Merkle tree a partition may use (65,536 leaves, 4 MiB of nodes per partition);
/// `PartitionTree::new` rejects more.
pub const TREE_DEPTH_MAX: u8 = 16;
/// Tree depth when the configuration names none: 1,024 leaves, 64 KiB of nodes per
/// partition (64 MiB for a node holding all 1,024 partitions).
pub const TREE_DEPTH_DEFAULT: u8 = 10;

// ---- anti-entropy: tree exchange -----------------------------------------------------

/// Most tree levels one exchange message descends (2^8 = 256 children per differing node).
pub const STEP_BITS_MAX: u8 = 8;
/// Levels one exchange message descends by default (32 children per differing node, so a
/// depth-10 tree is walked in two round trips).
pub const STEP_BITS_DEFAULT: u8 = 5;
/// Node hashes in one `TreeLevel` or `Descendants` message; a request whose answer could
/// exceed it is refused with `ExchangeError::TooLarge`, the initiator splits its work.
pub const HASHES_PER_MESSAGE_MAX: usize = 4096;
/// Partition roots in one `Roots` message; `roots_requests` splits longer lists.
pub const ROOTS_PER_MESSAGE_MAX: usize = 4096;
/// Leaves named by one `LeafRequest` or answered in one `LeafEntries` message; the rest
/// are listed as unsent and asked for again.
pub const LEAVES_PER_MESSAGE_MAX: usize = 4096;
/// Key-digest entries in one `LeafEntries` message; a longer leaf is paged by key.
pub const LEAF_ENTRIES_PER_MESSAGE_MAX: usize = 4096;
/// Key plus digest bytes in one `LeafEntries` message; a longer leaf is paged by key.
pub const LEAF_ENTRY_BYTES_PER_MESSAGE_MAX: usize = 1024 * 1024;
/// Longest key an exchange carries: one class byte plus a client key of `KEY_BYTES_MAX`
/// (1,024); longer keys are refused with `ExchangeError::KeyTooLarge`.
pub const ENTRY_KEY_BYTES_MAX: usize = KEY_BYTES_MAX + 1;
/// Keys one exchange reports (pull and push together); past it the exchange ends early
/// with `Diff::complete == false` and the next round repairs the rest.
pub const DIFF_KEYS_MAX: usize = 16_384;
/// Requests one exchange may send before it fails with `ExchangeError::TooManyRequests`
/// (guards against a peer that never lets the walk finish).
pub const EXCHANGE_REQUESTS_MAX: usize = 65_536;

/// Depth of a node's per-partition trees: 256 leaves, 16 KiB per partition (a node
/// holding 700 partitions keeps 11 MiB of trees).
pub const NODE_TREE_DEPTH: u8 = 8;
/// Pause between two anti-entropy rounds (each compares this node with one peer).
pub const ANTI_ENTROPY_ROUND_MS: u64 = 1_000;
/// Default `--anti-entropy-rate`: bytes per second one node spends on anti-entropy.
pub const ANTI_ENTROPY_BYTES_PER_S_DEFAULT: u64 = 8 * 1024 * 1024;
/// Anti-entropy rounds between two tombstone collection passes at least; more when a
/// quarter of the grace is longer (a pass reads and decodes up to
/// TOMBSTONE_SCAN_KEYS_MAX objects, so with the default hour's grace it runs every 15
/// minutes, not every 5 seconds).
pub const TOMBSTONE_GC_EVERY_ROUNDS: u64 = 5;
/// Keys one tombstone collection pass reads at most.
pub const TOMBSTONE_SCAN_KEYS_MAX: usize = 100_000;
/// Default `--tombstone-grace`.
pub const TOMBSTONE_GRACE_MS_DEFAULT: u64 = 3600 * 1000;
/// Keys fetched or pushed per repair message.
pub const REPAIR_KEYS_PER_MESSAGE_MAX: usize = 256;

// ---- hinted handoff ------------------------------------------------------------------

/// Hints one node holds for one owner; past it the oldest is dropped (anti-entropy
/// repairs what it held).
pub const HINTS_PER_NODE_MAX: u64 = 1_000_000;
/// Hints replayed in one message.
pub const HANDOFF_BATCH_MAX: usize = 256;
/// Pause between two rounds of hint replay.
pub const HINT_REPLAY_INTERVAL_MS: u64 = 100;
/// Default `--hint-replay-rate`, keys per second per node.
pub const HINT_REPLAY_RATE_DEFAULT: u64 = 20_000;
/// Default `--hint-window`: hints older than this are dropped.
pub const HINT_WINDOW_MS_DEFAULT: u64 = 3 * 3600 * 1000;

// ---- membership and ownership transfer ----------------------------------------------

/// How often the SWIM driver ticks the state machine (timeouts are deadlines, so this
/// only bounds their precision).
pub const GOSSIP_TICK_MS: u64 = 50;
/// Membership messages in flight from one node; more are dropped (SWIM tolerates loss).
pub const GOSSIP_SENDS_IN_FLIGHT_MAX: usize = 512;
/// How long a stopping node waits at most for every member to acknowledge its
/// "stopping" announcement (then it stops anyway; the failure detector covers the rest).
pub const STOP_ANNOUNCE_MS: u64 = 2_000;
/// How long a node that left keeps gossiping before its process exits.
pub const LEFT_LINGER_MS: u64 = 2_000;
/// Objects per page of a partition transfer.
pub const FETCH_ENTRIES_MAX: usize = 256;
/// Bytes per page of a partition transfer (a page ends at the first object past it).
pub const FETCH_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Pages one partition transfer may take before it is abandoned and retried.
pub const FETCH_PAGES_MAX: usize = 1_000_000;
/// Partitions a node fetches at once.
pub const TRANSFERS_IN_FLIGHT_MAX: usize = 4;
/// Pause between two rounds of the transfer worker.
pub const TRANSFER_ROUND_MS: u64 = 200;
/// How long a node keeps a partition it no longer owns before dropping its data.
pub const DROP_GRACE_MS: u64 = 30_000;
/// Keys of unowned partitions deleted per transfer round.
pub const DROP_KEYS_PER_ROUND_MAX: usize = 4096;
/// Writes forwarded to new owners during a ring change, in flight at once; more are
/// left to anti-entropy.
pub const FORWARDS_IN_FLIGHT_MAX: usize = 1024;

// ---- local clusters and sims -----------------------------------------------------------

/// How long `cluster up` waits for every node to be ready.
pub const CLUSTER_READY_TIMEOUT_S: u64 = 60;
/// How long `cluster leave` waits for a node to hand over its partitions and exit.
pub const LEAVE_TIMEOUT_S: u64 = 600;
/// How long a node may take to exit after SIGTERM before it is killed.
pub const NODE_EXIT_TIMEOUT_S: u64 = 10;
/// Acknowledged writes a sim keeps for its final check; beyond it the sim stops
/// recording and says so (the check would no longer be complete).
pub const SIM_RECORDED_WRITES_MAX: usize = 2_000_000;

// ---- session CRDTs -----------------------------------------------------------------

/// Live prefs keys per user; `LwwMap::set` of a new key beyond it fails with
/// `CrdtError::TooMany` and changes nothing (concurrent merges may exceed it).
pub const PREFS_MAX: usize = 100;
/// History entries kept per user (newest by HLC); older ones are dropped on merge.
pub const HISTORY_MAX: usize = 50;
/// Cart lines per user; adding a new sku beyond it fails with `CrdtError::TooMany`.
pub const CART_LINES_MAX: usize = 500;
/// Largest quantity of one cart line; outside 1..=it fails with `CrdtError::Quantity`.
pub const QUANTITY_MAX: u32 = 9999;
/// Expired records the sweeper deletes per second by default (`--sweep-rate`).
pub const SWEEP_RATE_DEFAULT: u64 = 100;
/// Expired records one sweep pass collects before deleting them; the rest wait for the
/// next pass.
pub const SWEEP_BATCH_MAX: usize = 1000;
/// Keys one sweep pass reads at most; the next pass goes on from there, so a store of
/// millions of documents costs each `--sweep-interval` a bounded scan.
pub const SWEEP_SCAN_KEYS_MAX: usize = 100_000;
/// Background refreshes (sliding expiry writes) in flight per node; beyond it a refresh
/// is skipped (the next use of the token retries it).
pub const REFRESHES_IN_FLIGHT_MAX: usize = 64;
/// Bytes of a session API request body.
pub const SESSION_BODY_BYTES_MAX: usize = 16 * 1024;
/// Characters of a user id, a device name, a sku, a pref name or a history item.
pub const SESSION_NAME_CHARS_MAX: usize = 128;
/// Characters of a pref value.
pub const PREF_VALUE_CHARS_MAX: usize = 1024;
/// Bytes of one user's session document as stored; a change past it is refused (413).
pub const SESSION_DOC_BYTES_MAX: usize = 64 * 1024;

// ---- Processes -------------------------------------------------------------------------

/// Most worker threads a node may be asked to run (`--threads`).
pub const NODE_THREADS_MAX: i64 = 256;

// ---- membership ----------------------------------------------------------------------

/// Distance from `u64::MAX` within which an incarnation or a status version claimed by a
/// received update (or a join) is refused: the update is ignored and counted in
/// `counters_near_maximum_ignored`, never refuted with a higher one, so no peer can push
/// a member's counters to where they could not grow any more.
pub const COUNTER_MARGIN: u64 = 1 << 32;
/// Bytes of the certificate a final-status proof carries; a longer one makes the
/// update malformed (ignored and counted). Node certificates are about 600 bytes.
pub const PROOF_CERTIFICATE_BYTES_MAX: usize = 4096;
/// Bytes of a final-status proof's signature (a DER ECDSA P-256 signature is at most
/// 72 bytes); a longer one makes the update malformed (ignored and counted).
pub const PROOF_SIGNATURE_BYTES_MAX: usize = 160;
/// Final-status proofs one received membership message may make this node check (each
/// costs one or two ECDSA verifications on the gossip path); the final statuses beyond
/// it are dropped and counted like unproven ones, and come again in later rounds (a
/// status already verified costs no check).
pub const PROOF_CHECKS_PER_MESSAGE_MAX: usize = 32;
