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

/// Locks the sled store's writers are split over: a writer of a key holds the stripe its
/// key hashes to while it reads and writes it (`storage::stripes`). A fixed array; two
/// keys sharing a stripe only wait for each other's read and insert.
pub const STORAGE_WRITE_STRIPES: usize = 1024;

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

/// Bytes of answers a replica remembers to answer a repeated `Apply` without applying it
/// again (`replica::once`); past them the oldest are forgotten.
pub const APPLIED_ONCE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Locks those answers are split over (an `Apply` holds one while it runs).
pub const APPLIED_ONCE_STRIPES: usize = 64;

// ---- transport ---------------------------------------------------------------------

/// Largest frame accepted or produced, counting the version byte and payload (not the
/// 4-byte length prefix); a larger declared length is rejected before any allocation.
pub const FRAME_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Concurrent bidirectional streams (so in-flight handler tasks) a peer may open on one
/// connection; further requests wait in the peer's `open_bi` (back-pressure).
pub const STREAMS_PER_CONNECTION_MAX: u32 = 256;

/// Accepted inbound connections served at once; further ones are refused and counted.
pub const CONNECTIONS_MAX: usize = 1024;

/// Emulated delays (`transport::delay`) holding a kernel timer at once: one file
/// descriptor each, for at most a delay's last 200 ms (a whole WAN hop). A delay that
/// finds them all taken ends on tokio's timer alone: never early, up to about 2 ms late,
/// and counted.
pub const PRECISE_DELAYS_MAX: usize = 1024;

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
/// A remote minter of a write safe to carry out twice is waited for this many times
/// its measured p99, at least `MINT_PATIENCE_FLOOR_MS` and at most
/// `MINT_PATIENCE_MAX_MS` (the most while nothing is measured); then the next replica
/// in order is asked (`MintAnswer::Late`).
pub const MINT_PATIENCE_P99_FACTOR: u64 = 4;
pub const MINT_PATIENCE_FLOOR_MS: u64 = 25;
pub const MINT_PATIENCE_MAX_MS: u64 = 300;
/// A round whose level is still pending sends its request again to the replicas that
/// have not answered (a message the network lost: the transport never retries) after
/// this many times the slowest measured p99 of its replicas, at least
/// `RESEND_FLOOR_MS` and at most `RESEND_MAX_MS` (the most while nothing is measured),
/// the wait doubling each time, at most `RESENDS_MAX` times. Safe: a merge is
/// idempotent, a read changes nothing, and a replica applies an `Apply` from another
/// node once (`replica::once`).
pub const RESEND_P99_FACTOR: u64 = 4;
pub const RESEND_FLOOR_MS: u64 = 150;
pub const RESEND_MAX_MS: u64 = 300;
pub const RESENDS_MAX: u32 = 2;
/// A peer this node has asked something and heard nothing from (no answer of any
/// kind) for this long is treated as dead by this node's coordinator (its writes go to
/// fallbacks, its reads skip it), whatever the failure detector says: a link that lost
/// its way out (a one-way partition) or a node stopped before anyone suspected it
/// costs a request a fast "unavailable" instead of the request timeout. The peer is
/// asked again (a digest read) at most every `PEER_SILENT_PROBE_MS`; its first answer
/// ends the silence.
pub const PEER_SILENT_AFTER_MS: u64 = 1_000;
pub const PEER_SILENT_PROBE_MS: u64 = 250;
/// How long `/v1/cluster` waits for each member's overview; one that has not answered
/// by then is shown unreachable with that reason.
pub const OVERVIEW_TIMEOUT_MS: u64 = 1_000;
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
/// further frame from it until one is answered (back-pressure on the client). Each one
/// may hold its answer (a value, up to `VALUE_BYTES_MAX`) while it is produced, so this
/// also bounds one connection's answers in the making.
pub const PIPELINE_IN_FLIGHT_MAX: usize = 64;
/// Requests in flight over all pipelined connections of a node; a connection waits for
/// one before it reads its next frame. A quarter of `CLIENT_REQUESTS_IN_FLIGHT_MAX`, so
/// pipelined clients (16 connections of one abuser would otherwise do) cannot take
/// every slot the node admits requests into, and the answers in the making stay
/// within this many values.
pub const PIPELINE_NODE_IN_FLIGHT_MAX: usize = CLIENT_REQUESTS_IN_FLIGHT_MAX / 4;
/// Largest request frame on a pipelined connection: a value at its limit plus room for
/// the method, path and headers. A longer frame is answered `bad_frame` and closes it.
pub const PIPELINE_REQUEST_BYTES_MAX: usize = VALUE_BYTES_MAX + 64 * 1024;
/// Largest answer frame: every sibling of a key at the value limit, base64, plus room.
pub const PIPELINE_ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Read-repair writes in flight per node; further repairs are skipped (anti-entropy
/// catches them) rather than queued.
pub const READ_REPAIRS_IN_FLIGHT_MAX: usize = 256;
/// A read asks only the replicas its level needs (nearest first); when they have not
/// all answered after their observed p99 response time, it asks the others too, and
/// never later than this (the delay before anything is measured, and for replicas whose
/// p99 is beyond it, which are asked last): a replica gone before the failure detector
/// notices costs a read at most this much and not the request timeout.
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
/// Sleeps `cartwheel measure emulation` takes per row (one timer, delay and
/// concurrency), each remembered (8 bytes); a larger `--count` is refused.
pub const MEASURE_SLEEPS_PER_ROW_MAX: usize = 1_000_000;
/// Longest delay and most sleepers at once `cartwheel measure emulation` accepts.
pub const MEASURE_DELAY_MS_MAX: f64 = 10_000.0;
pub const MEASURE_SLEEPERS_MAX: usize = 10_000;

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
/// Pause before the start-time rebuild of the trees tries again the partitions the store
/// could not read (`replica::trees::Trees::rebuild_pending`).
pub const TREE_REBUILD_RETRY: std::time::Duration = std::time::Duration::from_secs(10);
/// Pause between two anti-entropy rounds (each compares this node with one peer).
pub const ANTI_ENTROPY_ROUND_MS: u64 = 1_000;
/// Anti-entropy round interval while the auth guard catches up (`runtime::repair`):
/// one comparison with another region's replica every tenth of a second.
pub const ANTI_ENTROPY_CATCH_UP_ROUND_MS: u64 = 100;
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
/// Bytes per page of a partition transfer: a page ends before the first object that
/// would pass it, carrying at least one object (`handoff::page`).
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
/// How long a local restart waits for every reachable node to hold the old process
/// dead (a node refuses a join under the id of a member it holds alive); past it the
/// node is started anyway and refuses itself with a clear error if still held alive.
pub const RESTART_WAIT_DEAD_S: u64 = 30;
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
/// Expired records one node's sweeper deletes at once (each a read of every replica and
/// an expire write): with one at a time a sweep was as slow as those round trips, about
/// 600 a second on one node whatever `--sweep-rate` allowed.
pub const SWEEP_IN_FLIGHT_MAX: usize = 16;
/// Expiry index entries one sweep pass reads at most (each due: the index holds
/// nothing else in its range); the next pass goes on from there.
pub const SWEEP_INDEX_ENTRIES_MAX: usize = 100_000;
/// Bytes of expiry index entries (deadline and key) one page of a sweep pass holds.
pub const SWEEP_INDEX_PAGE_BYTES_MAX: usize = 1024 * 1024;
/// Records the one-time expiry index backfill (a store written before the index)
/// reads per step; a step also stops once it read `EXPIRY_BACKFILL_STEP_BYTES_MAX`.
pub const EXPIRY_BACKFILL_KEYS_PER_STEP: usize = 1024;
/// Bytes of records one backfill step reads (it stops after the record that passes it).
pub const EXPIRY_BACKFILL_STEP_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Pause between backfill steps, so the backfill takes a bounded share of a core
/// (about 10 K records a second: 20 M records in about half an hour).
pub const EXPIRY_BACKFILL_STEP_PAUSE_MS: u64 = 100;
/// Background refreshes (sliding expiry writes) in flight per node; beyond it a refresh
/// is skipped (the next use of the token retries it).
pub const REFRESHES_IN_FLIGHT_MAX: usize = 64;
/// Bytes of a session API request body.
pub const SESSION_BODY_BYTES_MAX: usize = 16 * 1024;
/// Characters of a user id, a device name, a sku, a pref name or a history item.
pub const SESSION_NAME_CHARS_MAX: usize = 128;
/// Characters of a pref value.
pub const PREF_VALUE_CHARS_MAX: usize = 1024;
/// Operation ids one user's document remembers (the newest by when they were applied);
/// a retry whose id has been pushed out by newer writes is applied again. 64 ids cost
/// at most 1.5 KiB of the document (16 bytes of id, up to 9 of time, framing).
pub const APPLIED_OPS_MAX: usize = 64;
/// Characters of an `Idempotency-Key` header; a longer or non-printable one is refused
/// (400 `bad_idempotency_key`) and nothing is written.
pub const IDEMPOTENCY_KEY_CHARS_MAX: usize = 128;
/// Bytes of one user's session document as stored; a change past it is refused (413).
pub const SESSION_DOC_BYTES_MAX: usize = 64 * 1024;

// ---- Processes -------------------------------------------------------------------------

/// Most worker threads a node may be asked to run (`--threads`).
pub const NODE_THREADS_MAX: i64 = 256;

// ---- contexts-quic ----

/// Bytes of the tag that authenticates a causal context (keyed blake3, truncated). A
/// context whose tag does not match is refused with `400 bad_context`.
pub const CONTEXT_TAG_BYTES: usize = 16;

/// Time a peer has to complete the QUIC (mutual TLS) handshake of an inbound
/// connection. Past it the half-open connection is dropped and counted
/// (`handshakes_timed_out`); it never held a connection slot.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 3_000;
/// Inbound QUIC handshakes in progress at once (hard bound). A connection attempt
/// beyond it is refused at once (`CONNECTION_REFUSED`, counted `handshakes_refused`),
/// so half-open handshakes cannot pile up; slots free as handshakes end or time out.
pub const HANDSHAKES_IN_PROGRESS_MAX: usize = 256;
/// Handshakes in progress above which a connection attempt from an address not yet
/// validated is answered with a QUIC Retry (stateless address validation, counted
/// `handshakes_retried`): a spoofed source address never gets a handshake started,
/// a real peer answers the Retry and continues. Below it no round trip is added.
pub const HANDSHAKES_BEFORE_RETRY: usize = 32;

// ---- sizes-tools: object sizes, secrets, bundles, decoders ----------------------------

/// Largest topology file a node or a tool reads; a longer one is refused with
/// `ConfigError::Read` before it is parsed.
pub const TOPOLOGY_BYTES_MAX: usize = 1024 * 1024;
/// Largest config file (`cartwheel node --config`) a node reads; a longer one is
/// refused with `ConfigFileError::Read` before it is parsed.
pub const CONFIG_FILE_BYTES_MAX: usize = 1024 * 1024;

/// Bytes a frame keeps free around the largest object: the envelope (sender id and
/// region), the message's variant, a key of `KEY_BYTES_MAX` and the entry's framing.
pub const OBJECT_ENVELOPE_BYTES: usize = 64 * 1024;
/// Largest stored object as encoded (a kv object with its siblings, or a document): a
/// write that would make it larger is refused at the minting replica with 413
/// `object_too_large`, nothing written. So any message carrying one object (a merge, a
/// hint, a read's answer, a transfer page of one entry) fits in a frame.
pub const OBJECT_BYTES_MAX: usize = FRAME_BYTES_MAX - OBJECT_ENVELOPE_BYTES;
/// What one kv sibling counts for beyond its value's bytes against `SIBLINGS_BYTES_MAX`:
/// an upper bound of its dot, timestamp and framing as encoded (about 40 bytes).
pub const SIBLING_OVERHEAD_BYTES: usize = 64;
/// Room an object keeps for its version vector: `VV_ACTORS_MAX` entries of at most 32
/// encoded bytes each, plus the object's own header.
pub const OBJECT_VV_BYTES_MAX: usize = VV_ACTORS_MAX * 32 + 1024;
/// Bytes of a kv object's siblings, each its value plus `SIBLING_OVERHEAD_BYTES`. A
/// write past it is refused (413 `object_too_large`, nothing written). A merge of
/// siblings written concurrently on other replicas keeps the newest ones that fit and
/// drops the older, their dots staying covered by the version vector, as the sibling
/// count cap does; so no replica ever holds a kv object over `OBJECT_BYTES_MAX`.
pub const SIBLINGS_BYTES_MAX: usize = OBJECT_BYTES_MAX - OBJECT_VV_BYTES_MAX;

/// Bytes of encoding room a thread keeps between two `object::encode_object` calls, so
/// that an object is encoded without growing a fresh buffer step by step. An encoding
/// that needed more gives its larger buffer back afterwards.
pub const ENCODE_SCRATCH_BYTES_MAX: usize = 64 * 1024;

// A session document is refused past its own limit long before an object's.
const _: () = assert!(SESSION_DOC_BYTES_MAX * 8 < OBJECT_BYTES_MAX);
const _: () = assert!(VALUE_BYTES_MAX + SIBLING_OVERHEAD_BYTES < SIBLINGS_BYTES_MAX);

/// Fewest random bytes an admin or session secret may hold; a node refuses to start
/// with a shorter (or empty) secret file, naming it.
pub const SECRET_BYTES_MIN: usize = 32;
/// Largest secret file a node reads (a session key file holds at most
/// `SESSION_KEYS_MAX` lines); a longer one is refused at start.
pub const SECRET_FILE_BYTES_MAX: usize = 64 * 1024;
/// Session keys one cluster keeps (the newest issues tokens, all validate them);
/// `cartwheel init --rotate-session-secret` refuses to add one more until the oldest
/// line is removed.
pub const SESSION_KEYS_MAX: usize = 16;

// ---- HTTP and pipeline edge ----

/// Bytes of a request body on a route that takes none (GET, DELETE, the pipeline
/// upgrade). More is answered 413 `body_too_large` and the connection is closed.
pub const HTTP_EMPTY_BODY_BYTES_MAX: usize = 4 * 1024;
/// Longest `x-request-id` a node echoes and logs; a longer one is ignored (neither
/// echoed nor logged), the request served as without one.
pub const REQUEST_ID_BYTES_MAX: usize = 128;
/// Bytes of an admin request body (fault plans, clock offsets). More is answered 413
/// `body_too_large` and the connection is closed.
pub const HTTP_ADMIN_BODY_BYTES_MAX: usize = 64 * 1024;
/// Default time (ms) a client has to send a request head once its first byte arrived
/// (`--http-header-timeout-ms`); then the connection is closed without an answer.
pub const HTTP_HEADER_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default time (ms) a client has to send a whole request body (`--http-body-timeout-ms`);
/// then it is answered 408 `body_timeout` and the connection is closed.
pub const HTTP_BODY_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default time (ms) a connection may sit with no request open and no byte moving
/// (`--http-idle-timeout-ms`): longer than the 60 s idle timeout of common load
/// balancers, so they close first. Then the node closes it; pipelined connections with
/// nothing in flight too.
pub const HTTP_IDLE_TIMEOUT_MS_DEFAULT: u64 = 75_000;
/// Default time (ms) from a complete request head to the end of its answer's handler
/// (`--http-request-deadline-ms`); then it is answered 503 `timeout`. Above the
/// coordinator's own request timeout plus the wait for admission.
pub const HTTP_REQUEST_DEADLINE_MS_DEFAULT: u64 = 30_000;
/// Default time (ms) a write to a client may make no progress (`--http-write-timeout-ms`):
/// a client that stops reading is cut off then and its parked answers are freed.
pub const HTTP_WRITE_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Longest any of the HTTP timeouts above may be set to.
pub const HTTP_TIMEOUT_MS_MAX: u64 = 3_600_000;
/// Default open client connections per node (`--http-connections-max`), as Redis's
/// `maxclients`; one more is answered 503 `overloaded` and closed.
pub const HTTP_CONNECTIONS_MAX_DEFAULT: usize = 10_000;
/// Default open client connections per client IP address
/// (`--http-connections-per-address-max`); one more is answered 503 `overloaded` and
/// closed. Leaves room for `cartwheel bench` and the sims, which connect from loopback.
pub const HTTP_CONNECTIONS_PER_ADDRESS_MAX_DEFAULT: usize = 1024;
/// Largest value either connection cap may be set to.
pub const HTTP_CONNECTIONS_MAX_MAX: usize = 1_000_000;
/// Refusals (503 `overloaded` answers to connections over a cap) being written at once;
/// beyond it a connection over a cap is closed without an answer.
pub const HTTP_REFUSALS_IN_FLIGHT_MAX: usize = 256;
/// How long (ms) the node keeps reading and discarding after it closed its side of a
/// connection, so the client reads the answer instead of a reset; then it closes.
pub const HTTP_LINGER_MS: u64 = 1_000;
/// Bytes the node reads and discards while lingering at most; then it closes.
pub const HTTP_LINGER_BYTES_MAX: usize = 1024 * 1024;
/// How long (ms) the listener waits after a failed accept (e.g. out of file
/// descriptors) before it accepts again.
pub const HTTP_ACCEPT_BACKOFF_MS: u64 = 50;
/// Request frame bytes one pipelined connection holds read and not yet answered; the
/// node reads no further frame from it until answers free some. At least one request
/// frame at its limit.
pub const PIPELINE_CONNECTION_REQUEST_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Request frame bytes all pipelined connections of a node hold at once; each reads no
/// further frame until answers free some.
pub const PIPELINE_NODE_REQUEST_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Answer frame bytes waiting to be written on one pipelined connection. An answer that
/// would pass it (or `PIPELINE_NODE_ANSWER_BYTES_MAX`) cuts the connection off at once
/// and frees what it held, as Redis's client output buffer limit does: a client that
/// does not read its answers cannot make the node hold more. At least one answer frame
/// at its limit.
pub const PIPELINE_CONNECTION_ANSWER_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Answer frame bytes waiting to be written on all pipelined connections of a node.
pub const PIPELINE_NODE_ANSWER_BYTES_MAX: usize = 512 * 1024 * 1024;

// ---- sessions (issue 19: tokens and the session service) -------------------------------

/// Longest `--session-lifetime` a node accepts; beyond it the node refuses to start. A
/// user's auth record (not-before time, audit entries) is kept this long after its last
/// entry, so it outlives every token it can refuse.
pub const SESSION_LIFETIME_MS_MAX: u64 = 400 * 86_400_000;
/// Bytes of the tag a token carries (a keyed blake3 of its key id and random part):
/// a token without the right tag is refused by arithmetic, without any read.
pub const TOKEN_TAG_BYTES: usize = 16;
/// Entries of the negative cache of genuine tokens found in no region; a new entry
/// overwrites the one in its slot (48 bytes each: about 400 KiB per node).
pub const NEGATIVE_CACHE_ENTRIES_MAX: usize = 8192;
/// Entries of the table of token identities a node has found valid (`session::
/// identities`), which lets a validation read a token and its checks in one round; a
/// new entry overwrites the one in its slot. At most 32 + 32 bytes of hashes and a user
/// name of `IDENTITY_CACHE_USER_BYTES_MAX` each: under 5 MiB per node, about 1 MiB
/// with short user names.
pub const IDENTITY_CACHE_ENTRIES_MAX: usize = 8192;
/// Bytes of a user name the identity table keeps (`SESSION_NAME_CHARS_MAX` characters
/// of up to four bytes); an identity with a longer one is not kept.
pub const IDENTITY_CACHE_USER_BYTES_MAX: usize = 4 * SESSION_NAME_CHARS_MAX;
/// How long a token found in no region is answered `token_unknown` from the negative
/// cache without a cross-region read; after it the next validation reads again.
pub const NEGATIVE_CACHE_TTL_MS: u64 = 5_000;
/// Client addresses whose failed validations are counted (a fixed table of token
/// buckets, 40 bytes each: about 640 KiB per node). An address whose slot is held by
/// another address still in debt is not limited (it fails open) until that slot frees.
pub const FAILURE_LIMITER_ADDRESSES_MAX: usize = 16_384;
/// Failed validations (401s) one client address may make at once (the default of
/// `--failed-validations-burst`); past them (until it earns some back) a genuine token
/// of its missing locally is answered `token_unknown` without the cross-region read, and
/// its rejections are answered after `OVER_LIMIT_REJECTION_DELAY`. Valid tokens are
/// never refused or slowed by it.
pub const FAILED_VALIDATIONS_BURST: u32 = 200;
/// Failed validations per second a client address earns back after its burst (the
/// default of `--failed-validations-per-s`).
pub const FAILED_VALIDATIONS_PER_S: u32 = 50;
/// How long a rejection of a token from a client address over its failed-validation
/// limit waits before it is answered (with no admission permit held). A client that
/// floods made-up tokens then waits this long for each answer, so its flood falls to
/// about one request per connection per this delay instead of taking the node's CPU;
/// valid tokens from that address are answered at once.
pub const OVER_LIMIT_REJECTION_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
/// Revoked token families (the chains of rotations that began at one login) kept in a
/// user's auth record, newest first. When one more is revoked the oldest is dropped and
/// the user's not-before time is raised to its revocation, so every token it named
/// stays refused (with the user's other tokens of that time).
pub const REVOKED_FAMILIES_MAX: usize = 64;
/// Audit entries kept per user (newest first); older ones are dropped on merge.
pub const AUDIT_ENTRIES_MAX: usize = 32;
/// Characters of the text fields of an audit entry (device, region, event); longer
/// text is cut.
pub const AUDIT_TEXT_CHARS_MAX: usize = 128;
/// The sweeper erases a record only once its deadline is at least this far behind the
/// sweeper's own clock, so a node whose clock runs fast by less than this does not
/// erase sessions that are still valid by everyone else's clock.
pub const SWEEP_CLOCK_MARGIN_MS: u64 = 10 * 60 * 1000;

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

// ---- auth through region outages ----

/// How long a revoker must have held every node of a region dead before it may leave
/// that region out of a revocation: by then the cut-off region's nodes have fenced
/// themselves (its own view of a whole other region lags the others' view of it; the
/// SWIM simulation test in `session::fence` measures the lag at the default tuning).
/// Until it has passed, a revocation waits (within `AUTH_REVOCATION_WAIT_MS`).
pub const AUTH_FENCE_MARGIN_MS: u64 = 3_000;
/// How long a revocation (logout, rotation, revoke-all, a reused family) may wait for
/// a region that stops answering to be held dead for `AUTH_FENCE_MARGIN_MS`, or for
/// its replicas to answer; past it the revocation fails with `revocation_unconfirmed`
/// (it may have reached some replicas: a retry is harmless).
pub const AUTH_REVOCATION_WAIT_MS: u64 = 10_000;
/// Pause between two attempts of a revocation waiting for the failure detector.
pub const AUTH_REVOCATION_POLL_MS: u64 = 100;
/// How often a catching-up node asks anti-entropy whether it is done (it walks every
/// partition the node holds); between two asks it stays catching up.
pub const AUTH_CATCH_UP_CHECK_MS: u64 = 250;
/// A stall of the node (time between two failure-detector steps, e.g. a paused
/// process) this long or longer makes its auth fence catch up again, as after an
/// absence; shorter ones (a busy machine) do not. Below `AUTH_FENCE_MARGIN_MS`: a
/// revocation leaves a region out only once it has been held dead for the margin.
pub const AUTH_STALL_CATCH_UP_MS: u64 = 1_000;

// ---- speculation and gray failure ----

/// A read speculates (asks the replicas it has not asked yet) once the replicas it asked
/// are later than their own observed p99 response time, but never sooner than this: a
/// replica a few milliseconds behind on a quiet local network is not worth a second
/// request.
pub const READ_SPECULATE_FLOOR_MS: u64 = 3;
/// Half of the sliding window over which a peer's response times are kept (a sample
/// lands in the newer half; the older is dropped when a half passes), so a peer that
/// turned slow, or recovered, shows within two halves.
pub const LATENCY_WINDOW_MS: u64 = 5_000;
/// Samples a peer's window must hold before its p99 is believed; with fewer, a read
/// speculates after `READ_SPECULATE_MS` as it did before anything was measured.
pub const LATENCY_SAMPLES_MIN: u64 = 20;
/// Peers whose response times are tracked; a new one beyond it replaces the one
/// heard from the longest ago (which then counts as unmeasured).
pub const LATENCY_PEERS_MAX: usize = 256;
/// Speculation budget: each read earns this many thousandths of a speculation, so
/// speculative reads stay at most this share of reads (after the burst); a read that
/// finds the budget empty waits for its replicas until its deadline and is counted in
/// `speculations_refused`.
pub const SPECULATION_SHARE_PER_MILLE: u64 = 100;
/// Speculations the budget holds when full (a fresh node starts full): enough for the
/// reads that reach a replica gone quiet before the failure detector suspects it.
pub const SPECULATION_BURST: u64 = 200;

// ---- sim driver (the sim's clients fail over like a real driver) ----------------------

/// How long a sim client waits for a TCP connection to a node; past it the node counts
/// as not answering, is held down and the request goes to another node of the region
/// (nothing was sent, so every request may be retried).
pub const SIM_CONNECT_TIMEOUT_MS: u64 = 250;
/// How long a sim client waits for the answer to a read (kv or session); past it the
/// node is held down and the read is sent to another node of the region.
pub const SIM_READ_ATTEMPT_TIMEOUT_MS: u64 = 1_000;
/// How long a sim client waits for the answer to a write; above the nodes' own request
/// timeout (`REQUEST_TIMEOUT_MS_DEFAULT`), so a node that is alive answers first. Past
/// it the node is held down; a kv write is sent again elsewhere with its context, a
/// session write counts as failed with an unknown outcome.
pub const SIM_WRITE_ATTEMPT_TIMEOUT_MS: u64 = 3_000;
/// Attempts of one sim request (the first and its retries), each on a different node of
/// the client's region; after the last the request counts as failed.
pub const SIM_ATTEMPTS_MAX: usize = 3;
/// How long a sim driver holds a node down after it failed to answer; then one request
/// tries it again. While every node of a region is held down, that region's clients
/// pause instead of sending.
pub const SIM_NODE_DOWN_MS: u64 = 2_000;
/// Longest a sim driver holds a node down: each failure right after a hold doubles
/// the hold up to this, so a node that stays away costs one timed-out request per
/// hold, not one every `SIM_NODE_DOWN_MS`.
pub const SIM_NODE_DOWN_MAX_MS: u64 = 16_000;
/// How often a sim driver fetches its region's ring map again (node states and
/// replica placement for token-aware routing).
pub const SIM_RING_REFRESH_MS: u64 = 1_000;
/// How long a sim read waits for its first node before the same read also goes to the
/// next node of the region (`Retry::Speculate`): above a healthy read's p99 on the
/// default topology (about 30 ms), so few reads are sent twice.
pub const SIM_SPECULATE_MS: u64 = 40;

// ---- RESP: edge, types, keyspace, scan, chaos (limits/resp.rs) ----

mod resp;
pub use resp::*;

// ---- change feed, client tracking, keyspace notifications (limits/feed.rs) ----

mod feed;
pub use feed::*;
