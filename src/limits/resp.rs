//! The bounds of the RESP edge, its types and keyspace and the RESP chaos workload;
//! `limits` re-exports them, so every named bound is still `crate::limits::NAME`.

use super::*;

// ---- resp edge ----

/// Arguments (the command name included) one RESP request may carry; a request
/// announcing more is answered `-ERR Protocol error: invalid multibulk length` and
/// the connection is closed, as Redis does. Room for an `MSET` of 32,767 pairs.
pub const RESP_ARGUMENTS_MAX: usize = 65_536;
/// Longest bulk string (one argument) of a request: a value at the kv limit plus
/// room for its framing. A longer announced length is answered `-ERR Protocol error:
/// invalid bulk length` and the connection is closed before any of it is buffered.
pub const RESP_BULK_BYTES_MAX: usize = VALUE_BYTES_MAX + 64 * 1024;
/// Longest inline command line (`PING\r\n`, what telnet sends), as Redis's
/// `PROTO_INLINE_MAX_SIZE`; a longer line is answered `-ERR Protocol error: too big
/// inline request` and the connection is closed.
pub const RESP_INLINE_BYTES_MAX: usize = 64 * 1024;
/// Longest count line of a request (`*<count>\r\n`, `$<length>\r\n`); longer is
/// answered `-ERR Protocol error: too big count string` and the connection is closed.
pub const RESP_COUNT_LINE_BYTES_MAX: usize = 32;
/// What one decoded argument costs in memory beside its bytes (its handle in the
/// argument list); counted against `RESP_BUFFERED_BYTES_MAX` so a request of many
/// empty arguments is bounded too.
pub const RESP_ARGUMENT_OVERHEAD_BYTES: usize = 48;
/// Request bytes one connection holds read and not yet answered (the unfinished
/// request's arguments and the bytes after them); past it the connection is answered
/// `-ERR Protocol error: ...` and closed, as Redis's `client-query-buffer-limit`.
/// At least a few requests at their largest.
pub const RESP_BUFFERED_BYTES_MAX: usize = 4 * RESP_BULK_BYTES_MAX;
/// Bytes read from a connection in one read at most.
pub const RESP_READ_CHUNK_BYTES: usize = 16 * 1024;
/// Answer bytes a connection gathers before it writes them: answers to pipelined
/// requests go out in one write, but never more than this is held unwritten (the
/// connection writes, then decodes the next request).
pub const RESP_OUTPUT_BYTES_MAX: usize = 2 * RESP_BULK_BYTES_MAX;
/// Default open RESP connections per node (`--resp-connections-max`), as Redis's
/// `maxclients`; one more is answered `-ERR max number of clients reached` and closed.
pub const RESP_CONNECTIONS_MAX_DEFAULT: usize = 10_000;
/// Default of `--resp-connections-per-address-max`: open RESP connections from one
/// client IP address (an application server's pool); one more is answered `-ERR max
/// number of clients from your address reached` and closed.
pub const RESP_CONNECTIONS_PER_ADDRESS_MAX_DEFAULT: usize = 1024;
/// Default time (ms) a RESP connection may sit with no request open and no byte
/// moving (`--resp-idle-timeout-ms`); then it is closed. Above the HTTP edge's: session
/// middleware keeps pooled connections open between page views, and its clients
/// reconnect when one was closed.
pub const RESP_IDLE_TIMEOUT_MS_DEFAULT: u64 = 300_000;
/// Default time (ms) a client has to finish a request once its first byte arrived
/// (`--resp-request-timeout-ms`), as the HTTP edge's header timeout; then the
/// connection is closed.
pub const RESP_REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default time (ms) a write of answers to a client may take (`--resp-write-timeout-ms`):
/// a client that stops reading is cut off then.
pub const RESP_WRITE_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Refusals (`-ERR max number of clients reached`) being written at once; beyond it a
/// connection over the cap is closed without an answer.
pub const RESP_REFUSALS_IN_FLIGHT_MAX: usize = 256;
/// Longest password `AUTH` checks (the operator's file, and what a client sends); a
/// longer file stops the node at start, a longer attempt is refused like a wrong one.
pub const RESP_PASSWORD_BYTES_MAX: usize = 1024;
/// Longest client name (`CLIENT SETNAME`, `HELLO ... SETNAME`) and library name or
/// version (`CLIENT SETINFO`); a longer one is answered `-ERR`.
pub const RESP_CLIENT_NAME_BYTES_MAX: usize = 256;

/// Requests of one connection's pipeline that run at once: consecutive single-key data
/// commands on distinct keys (a wave); a request past it starts the next wave.
pub const RESP_PIPELINE_WAVE_MAX: usize = 32;
/// Pipelined requests running beside their connection's first, over the whole node;
/// with none free a wave stops growing (each holds at most one value).
pub const RESP_PIPELINED_IN_FLIGHT_MAX: usize = 1024;

// ---- resp types ----

/// Fields one Redis hash may hold: an `HSET` adding a field beyond it is refused with
/// `CrdtError::TooMany` and changes nothing. Two regions adding different fields at
/// once may together pass it (a merge never drops a field); the next `HSET` of a new
/// field is then refused until `HDEL` brings the count under it. A Redis value's bytes
/// (a string's, or the sum of a hash's field names and values) are bounded by
/// `VALUE_BYTES_MAX` the same way (`CrdtError::TooLarge`).
pub const RESP_HASH_FIELDS_MAX: usize = 4096;
/// Bytes of one hash field name; a longer one is refused with `CrdtError::TooLarge`
/// and nothing is written.
pub const RESP_FIELD_NAME_BYTES_MAX: usize = 1024;
/// Actors (replica node incarnations) one Redis counter keeps a slot for. An `INCRBY`
/// minted by a new actor while this many hold slots is refused with
/// `CrdtError::TooMany` (the edge answers `-ERR`) and changes nothing; actors already
/// holding a slot go on counting. Slots are only freed when the key's tombstone is
/// collected (after `DEL` or expiry), since a concurrent increment of a removed slot
/// needs it to count exactly once. A slot costs about 32 bytes of the stored key (64 once
/// a delete has seen it).
pub const RESP_COUNTER_ACTORS_MAX: usize = 64;

// A Redis value is refused past `VALUE_BYTES_MAX`; a key holding a string overwritten
// concurrently with a hash written up to the bound in each of three regions still fits
// one stored object.
const _: () = assert!(4 * VALUE_BYTES_MAX + OBJECT_ENVELOPE_BYTES < OBJECT_BYTES_MAX);

// ---- resp keyspace ----

/// Per-key reads or writes one multi-key RESP command (`MGET`, `MSET`, `DEL`,
/// `UNLINK`, `EXISTS`) keeps in flight at once; its other keys wait for a slot, so a
/// command naming thousands of keys costs the cluster no more than this many rounds at
/// a time.
pub const RESP_KEYS_IN_FLIGHT_MAX: usize = 32;
/// Value bytes one `MGET` reply may gather; past it the command answers an error
/// instead of holding more values in memory.
pub const RESP_MULTI_REPLY_BYTES_MAX: usize = 64 * 1024 * 1024;

// ---- resp scan ----

/// Keys of one class one replica examines to answer one SCAN page of a partition
/// (`PeerRequest::ScanClass`): the page is ordered by key hash, not by the store's
/// key order, so the replica reads the partition's whole class range. A partition
/// holding more RESP keys than this is refused (`-ERR`, retried nowhere) rather than
/// answered from part of it: with 1024 partitions that is some 268 million keys per
/// cluster before SCAN and DBSIZE stop working.
pub const RESP_SCAN_REPLICA_KEYS_EXAMINED_MAX: usize = 262_144;
/// Stored bytes (keys and objects) of one replica's SCAN page. A page ends before the
/// group of keys (of one hash position) that would pass it, but always holds at least
/// one group: a single object fits a frame on its own (`OBJECT_BYTES_MAX`).
pub const RESP_SCAN_PAGE_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Keys one replica's SCAN page holds at most; `COUNT` asks for fewer, never more.
pub const RESP_SCAN_PAGE_KEYS_MAX: usize = 1024;
/// Partitions one `SCAN` call visits at most (even when they are all empty): a call
/// on a sparse cluster answers a non-zero cursor and an empty or short page, as Redis
/// may, and the client calls again.
pub const RESP_SCAN_PARTITIONS_PER_CALL_MAX: usize = 64;
/// Partitions whose pages one `SCAN` call or `DBSIZE` reads at once.
pub const RESP_SCAN_PARTITIONS_IN_FLIGHT_MAX: usize = 8;
/// Keys `DBSIZE` counts at most: it scans the whole cluster, and past this many keys
/// it answers `-ERR` (never a wrong number) instead of going on.
pub const RESP_DBSIZE_KEYS_MAX: u64 = 10_000_000;
/// Time `DBSIZE`'s scan of the cluster may take; past it the command answers `-ERR`
/// (never a partial count).
pub const RESP_DBSIZE_MS: u64 = 30_000;
/// Bytes of a `SCAN ... MATCH` pattern; a longer one answers `-ERR` (matching costs up
/// to key length × pattern length steps per key).
pub const RESP_SCAN_PATTERN_BYTES_MAX: usize = 512;

// ---- resp chaos ----

/// Operations (writes and reads) one RESP client of `cartwheel sim` records; when full
/// the client stops early and the report says so (a check over part of a history
/// would not be complete).
pub const SIM_RESP_RECORDS_PER_CLIENT_MAX: usize = 200_000;
/// Attempts of one RESP operation of the sim (each on the next node of the client's
/// region once one failed); past it the operation counts as failed, and a write as
/// maybe applied.
pub const SIM_RESP_ATTEMPTS_MAX: u32 = 3;
/// How long a sim RESP client waits for a connection to a node; then it tries the next
/// node of its region.
pub const SIM_RESP_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// How long a sim RESP client waits for one answer; then the attempt counts as maybe
/// applied and the client moves to the next node of its region.
pub const SIM_RESP_RESPONSE_TIMEOUT_MS: u64 = 3_000;
/// Pause of a sim RESP client after an operation failed every attempt (a region down),
/// so it does not spin on refused connections.
pub const SIM_RESP_FAILED_PAUSE_MS: u64 = 100;
/// How long the sim's final RESP check keeps re-reading a key that does not yet show
/// what its history allows before it counts the key as lost (or unreadable).
pub const SIM_RESP_SETTLE_MS: u64 = 10_000;
/// Pause between two final-check reads of one RESP key.
pub const SIM_RESP_POLL_MS: u64 = 250;

// ---- resp tracking and notifications ----

/// Channels and patterns one connection may be subscribed to at once (`SUBSCRIBE`,
/// `PSUBSCRIBE`); a request that would pass it is answered `-ERR` and subscribes to
/// none of its channels.
pub const RESP_SUBSCRIPTIONS_MAX: usize = 1024;
/// Longest channel name or pattern a connection may subscribe to: room for a keyspace
/// channel (`__keyspace@0__:` and a key at `KEY_BYTES_MAX`). Patterns are also bounded
/// by `RESP_SCAN_PATTERN_BYTES_MAX` (the glob matcher's bound).
pub const RESP_CHANNEL_BYTES_MAX: usize = KEY_BYTES_MAX + 64;
/// Keys one invalidation push names at most; more changes waiting go out in several
/// pushes (each between two answers).
pub const RESP_INVALIDATE_KEYS_PER_PUSH_MAX: usize = 1024;
/// Bytes of invalidations (keys) waiting for a connection that other connections
/// redirect to (`CLIENT TRACKING ON REDIRECT id`); past it they are replaced by one
/// "flush everything" (a null invalidation), never dropped silently.
pub const RESP_REDIRECT_PENDING_BYTES_MAX: usize = 256 * 1024;
/// What one waiting redirected invalidation costs beside its keys' bytes.
pub const RESP_REDIRECT_ITEM_BYTES: usize = 64;
