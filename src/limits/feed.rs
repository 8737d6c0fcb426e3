//! The bounds of the change feed and what is built on it (client tracking, keyspace
//! notifications); `limits` re-exports them.

use super::*;

/// Bytes of changes one node's feed keeps (`feed::Change::cost_bytes`: a change's key
/// and 96 bytes). Past it the oldest go, and a reader whose position went with them is
/// told it fell behind (and invalidates everything the feed covers). About 130 K
/// changes of 32-byte keys: 13 s of this machine's top write rate.
pub const FEED_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most changes one read of a feed returns (`PeerRequest::FeedRead`); the reader asks
/// again for the rest.
pub const FEED_PAGE_ENTRIES_MAX: usize = 4096;
/// About the most bytes of changes one read returns (at least one change).
pub const FEED_PAGE_BYTES_MAX: usize = 512 * 1024;
const _: () = assert!(FEED_PAGE_BYTES_MAX + KEY_BYTES_MAX * 2 < FRAME_BYTES_MAX);
/// Longest a feed read waits for a change before it answers an empty page; below the
/// request timeout, so a waiting read is never taken for a dead peer. The reader asks
/// again at once.
pub const FEED_WAIT_MS: u64 = 1_000;
const _: () = assert!(FEED_WAIT_MS * 2 <= REQUEST_TIMEOUT_MS_DEFAULT);
/// Wait before a hub reads again from a peer whose read failed (and whose listeners
/// were told everything may have changed).
pub const FEED_RETRY_MS: u64 = 500;
/// Changes a hub remembers (key and digest) to deliver a change once though several
/// replicas of its region report it; oldest forgotten first.
pub const FEED_SEEN_MAX: usize = 65_536;
/// Bytes of undelivered events one listener (a RESP connection, an HTTP feed) may hold.
/// Past it they are replaced by one "everything may have changed" (the listener's
/// client invalidates all it holds), never dropped silently.
pub const LISTENER_PENDING_BYTES_MAX: usize = 256 * 1024;
/// Listeners one node serves at once (connections tracking keys or subscribed); past
/// it `CLIENT TRACKING ON` and `SUBSCRIBE` are refused.
pub const LISTENERS_MAX: usize = 10_000;
/// Bytes of the node's tracking table (each tracked key and the listeners that read
/// it, at 64 bytes plus the key per entry and 8 per listener). Past it the oldest
/// tracked key is dropped and its listeners told it changed, as Redis does at
/// `tracking-table-max-keys`.
pub const TRACKING_TABLE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Prefixes one `CLIENT TRACKING ... BCAST` may name.
pub const TRACKING_PREFIXES_MAX: usize = 64;
/// How often the hub looks at the member list for the nodes of its region whose feeds
/// it reads (and stops reading when nobody listens).
pub const FEED_PEERS_REFRESH_MS: u64 = 1_000;
/// Largest `--near-cache-bytes` (the session service's near-cache of session
/// documents; past its bound the oldest entries go).
pub const NEAR_CACHE_BYTES_MAX: usize = 4 * 1024 * 1024 * 1024;
/// How long a simulation's feed subscriber asks each read to wait for a change.
pub const SIM_FEED_WAIT_MS: u64 = 1_000;
/// Time a subscriber's read gets past its wait before it counts as failed.
pub const SIM_FEED_GRACE_MS: u64 = 4_000;
/// Reads a subscriber makes after the run to take in what the nodes applied last.
pub const SIM_FEED_DRAIN_READS_MAX: u32 = 20;
/// Keys a subscriber remembers (the sim's kv keys are far fewer).
pub const SIM_FEED_KEYS_MAX: usize = 1_000_000;

// ---- the HTTP feed (`GET /v1/feed`) ----

/// Feed requests (long polls and event streams) one node serves at once; one more is
/// answered 503 `overloaded`. Each reads every feed of its region once a second at
/// most while it waits, so this also bounds the feed reads a node sends.
pub const FEED_STREAMS_MAX: usize = 128;
/// Characters of a feed position (`position=` or `Last-Event-ID`); a longer one is
/// answered 400 `bad_position`.
pub const FEED_POSITION_CHARS_MAX: usize = 8192;
/// Nodes a feed position may name (a region's nodes); more is 400 `bad_position`.
pub const FEED_POSITION_NODES_MAX: usize = 64;
// Each node takes at most 84 bytes (a 63-character id, two integers, their headers).
const _: () = assert!((FEED_POSITION_NODES_MAX * 84 + 8) * 4 / 3 < FEED_POSITION_CHARS_MAX);
/// Keys one feed request may name (`key=`, repeated); more is 400 `bad_filter`.
pub const FEED_FILTER_KEYS_MAX: usize = 16;
/// Bytes of the keys and prefix one feed request names, together; more is 400
/// `bad_filter`.
pub const FEED_FILTER_BYTES_MAX: usize = 4096;
/// Longest a long poll waits for a change (`wait_ms`, also its default): below common
/// load balancers' 30 s and 60 s timeouts, and kept below the node's request deadline
/// by `FEED_POLL_DEADLINE_MARGIN_MS`.
pub const FEED_POLL_WAIT_MS_MAX: u64 = 25_000;
/// How far below the request deadline (`--http-request-deadline-ms`) a long poll
/// answers at the latest.
pub const FEED_POLL_DEADLINE_MARGIN_MS: u64 = 2_000;
/// About the most bytes of changes (as JSON) one long-poll answer carries; the rest
/// come with the next request, from the position the answer gives.
pub const FEED_RESPONSE_BYTES_MAX: usize = 1024 * 1024;
/// How often an event stream with nothing to say sends a heartbeat (at most a third of
/// the idle timeout, so it never reads as idle).
pub const FEED_HEARTBEAT_MS: u64 = 15_000;
/// Longest one event stream lasts; then it ends, and the client reconnects with its
/// `Last-Event-ID` (and its credential is checked again).
pub const FEED_STREAM_MS_MAX: u64 = 10 * 60 * 1000;
/// Changes one event stream remembers (a hash of key, digest and kind: 16 bytes each)
/// to send a change once though several replicas report it; oldest forgotten first.
pub const FEED_STREAM_SEEN_MAX: usize = 8192;
/// After the first node of a round of feed reads brings a change, how long the reader
/// waits for the other nodes' reads (the other replicas' reports of the same change),
/// so one answer lists it once and its position covers every report.
pub const FEED_GATHER_MS: u64 = 50;
/// How long past its wait a round of feed reads (`GET /v1/feed`) waits for a node's
/// answer (a read travels to a peer and back); a node that has not answered by then
/// counts as not answering, and the reader is behind. Within
/// `FEED_POLL_DEADLINE_MARGIN_MS`, so a long poll still answers before its deadline.
pub const FEED_ROUND_GRACE_MS: u64 = 1_000;
const _: () = assert!(FEED_ROUND_GRACE_MS < FEED_POLL_DEADLINE_MARGIN_MS);
/// How often a node reports into its feed the records whose deadline passed
/// (`replica::deadlines`): an expiry reaches the feed's readers at most this late, and
/// each pass reads the expiry index of every held partition once.
pub const EXPIRY_REPORT_INTERVAL_MS: u64 = 1_000;
/// Index entries one expiry report pass reads at most; the rest wait for the next.
pub const EXPIRY_REPORT_ENTRIES_MAX: usize = 50_000;
/// How long a hub waits after a read of a region node's feed brought changes before it
/// reads that feed again, so that under load one answer carries the changes of this
/// window instead of one each; an invalidation waits at most this much longer.
pub const FEED_GATHER_PAUSE_MS: u64 = 5;
