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
