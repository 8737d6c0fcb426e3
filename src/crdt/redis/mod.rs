//! The conflict-free values behind the Redis commands: what one RESP key holds (a string,
//! a counter or a hash, plus its expiry), how a command changes it, and how two copies
//! written in different regions merge. It owns the semantics only; it must never parse
//! RESP, read a clock, do I/O or pick replicas. Timestamps (`Hlc`), the minting actor and
//! the current time come in as arguments. Like the rest of `crdt`, an operation returns a
//! delta, itself a small `RedisValue`, that every other replica applies by the ordinary
//! merge; merges never panic on decoded input; an operation that breaks a bound in
//! `limits` (section `resp types`) is refused with a `CrdtError` and changes nothing.
//!
//! # One region is Redis; several regions are Redis Enterprise Active-Active
//!
//! Inside one replica a command behaves as in Redis: `SET` overwrites any type, `INCR`
//! works on a string holding a base-10 64-bit integer, hash commands on a string (and
//! `INCR` or `SET ... GET` on a hash) fail with `-WRONGTYPE`, an expired key is gone.
//! What differs is what happens when two regions write one key before hearing of each
//! other ("concurrently"):
//!
//! | what | Redis alone | cartwheel across regions |
//! | --- | --- | --- |
//! | `SET` / `SET` | the later command wins | last writer wins on the hybrid logical clock, ties by actor: the same value everywhere |
//! | `SET` / `DEL` | the later command wins | the same rule: whole-key writes (`SET`, `DEL`, a type change, expiry) are last-writer-wins among themselves |
//! | `HSET f` / `DEL` | the later command wins | the field set survives (add-wins, "observed remove"): `DEL` removes only the fields (and increments) it had seen |
//! | `HSET f` / `HDEL f` | the later command wins | the set survives: `HDEL` removes only the writes of `f` it had seen |
//! | `HSET f` / `HSET f` | the later command wins | last writer wins per field |
//! | `INCRBY` / `INCRBY` | both apply | both apply: a counter sums every actor's increments exactly once |
//! | `INCRBY` / `DEL` | the later command wins | increments the `DEL` had seen are gone, concurrent ones survive (counting from 0) |
//! | `HINCRBY f` / `HINCRBY f` | both apply | one survives: a hash field is a register (use `INCRBY` on a key of its own to count across regions) |
//! | `SET` / `HSET` (type conflict) | the later command wins | the newer write (clock, then actor) decides the type; the loser is hidden, and the next whole-key write removes it |
//! | `EXPIRE` / `EXPIRE` | the later command wins | the longest TTL wins |
//! | `EXPIRE` / `PERSIST` | the later command wins | `PERSIST` wins: no deadline |
//! | `SET` (no `KEEPTTL`) / `EXPIRE` | the later command wins | if the `SET` wins the value, it has the `SET`'s own expiry; an `EXPIRE` of the value it replaced no longer counts |
//! | `SET NX` / `SET NX` | one succeeds | both may answer `OK` (each region saw no key); then the later write wins and the other client's value is gone |
//!
//! Conditions (`SET NX|XX`, `EXPIRE NX|XX|GT|LT`) and reads (`SET ... GET`, `INCR`'s
//! result) are decided on the state the applying replica holds when it applies the
//! operation: the coordinator's merged quorum read plus whatever reached this replica.
//! A write made concurrently in another region is not part of it, so a condition is
//! checked per region, not globally. `SET NX` is no lock across regions: the two regions
//! that both answered `OK` converge on one value, and the client whose value lost sees
//! the other's on its next `GET`.
//!
//! # Expiry
//!
//! A key's expiry belongs to its current whole-key write (its "epoch"): `SET` without
//! `KEEPTTL` starts one without a deadline (or with its `EX|PX|EXAT|PXAT`), `SET KEEPTTL`
//! and `INCR` on an integer string carry the deadline over. `EXPIRE`s of one epoch made
//! concurrently merge to the longest deadline, and a concurrent `PERSIST` wins over any
//! deadline; a later `EXPIRE` (one that had seen the `PERSIST`) sets a deadline again.
//! A key reborn from fields or increments made concurrently with its `DEL` keeps the
//! deadlines of `EXPIRE`s made concurrently with that `DEL`; a key made anew by a later
//! `HSET` or `INCR` starts without a deadline, as in Redis. Deadlines are milliseconds
//! since the epoch, computed by the edge from the command (`EX 10` at `now`); `EXPIRE`
//! with a time in the past stores a deadline already passed, so the key is gone at once.
//! `is_live(now_ms)` says whether the key may be served (nothing expired ever is); a
//! write to an expired key first ends it (as Redis's lazy expiry does), so `HSET` on an
//! expired hash starts a new one. The sweeper's delete (`sweep`) ends only the epoch it
//! found expired: any whole-key write made after it, or concurrently with a later
//! clock, survives; an `EXPIRE` raising the deadline concurrently with the sweep (in the
//! replication delay around the deadline) is lost with the value, as a Redis `EXPIRE`
//! racing the expiry would be.
//!
//! # How it is built
//!
//! A `RedisValue` is a product of lattices, each merged on its own: the winning
//! whole-key write (`Head`, max by (Hlc, actor)); hash fields in a dot kernel with a
//! causal context (the OR-set's add-wins without tombstones: a whole-key write or `HDEL`
//! puts the dots it saw in the context); counter slots, one per actor, each the actor's
//! running total under a version, plus for each actor the total a whole-key write had
//! seen (a slot counts its total minus that, so increments the write saw count zero
//! times and concurrent ones once); and expiry entries in a dot kernel keyed by epoch.
//! What a key shows (type, value, deadline) is a pure function of the merged state, so
//! every replica holding the same state answers the same.

mod counter;
mod expiry;
mod op;
mod value;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::clock::{Actor, Hlc};

pub use op::{
    ExpireCondition, GetExExpiry, RedisApplied, RedisOp, RedisOutcome, SetCondition, SetExpiry,
};
pub use value::{FieldView, RedisContent, RedisKind, RedisValue};

/// Why a Redis command was refused for the value the key holds; the state is unchanged.
/// Each message is the error line Redis itself answers, so the edge writes `-{message}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR hash value is not an integer")]
    HashValueNotInteger,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
}

/// Who made a write and when: ordered by the hybrid clock, then by actor, so any two
/// writes compare the same way on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub at: Hlc,
    pub actor: Actor,
}

impl Stamp {
    /// The stamp of a key no whole-key write has touched.
    pub const ZERO: Stamp = Stamp {
        at: Hlc::ZERO,
        actor: Actor(0),
    };
}

/// Parses a Redis integer the way Redis does (`string2ll`): optional `-`, base-10
/// digits, no `+`, no spaces, no leading zeros, within `i64`.
pub fn parse_integer(bytes: &[u8]) -> Option<i64> {
    if bytes == b"0" {
        return Some(0);
    }
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}
