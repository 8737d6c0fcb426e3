//! State-based CRDTs with deltas for the session service's `user` class: an observed-remove
//! set (devices), a last-writer-wins map (prefs), a bounded newest-K history, an
//! observed-remove cart of quantity registers, and the `Session` document combining them.
//!
//! Everything here is pure and deterministic: timestamps (`Hlc`) and actors come in as
//! arguments; there is no I/O, no clock read and no randomness. Every operation returns a
//! delta, itself a small state of the same type, so a partial update (one sku, one pref)
//! travels alone and is applied by an ordinary merge. Merges never panic on decoded input;
//! operations that would cross a bound in `limits` are refused with a `CrdtError` and leave
//! the state unchanged. Removals leave no per-element tombstone: removed dots are covered by
//! the causal context only.

mod applied;
mod cart;
mod context;
mod doc;
mod history;
mod kernel;
mod lww;
mod orset;
pub mod redis;
mod session;
mod token;
mod user;
mod user_auth;

#[cfg(test)]
mod tests;

pub use applied::{AppliedOps, OpId};
pub use cart::{Cart, CartRegister};
pub use context::CausalContext;
pub use doc::{Doc, DocOp};
pub use history::{History, HistoryEntry};
pub use lww::{LwwEntry, LwwMap};
pub use orset::OrSet;
pub use session::{Session, SessionDelta};
pub use token::{
    is_successor_of, verdict, Rotation, TokenDoc, TokenIdentity, TokenLineage, TokenOp,
    TokenRecord, Verdict,
};
pub use user::{check_quantity, floor_for, DocLimits, UserChange, UserDoc, UserOp};
pub use user_auth::{AuditEntry, RevokedFamily, UserAuth, UserAuthOp};

/// Why a CRDT operation was refused; the state is unchanged in every case.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CrdtError {
    #[error("too many {what}: at most {max}")]
    TooMany { what: &'static str, max: usize },
    #[error("quantity {quantity} outside 1..={max}")]
    Quantity { quantity: i64, max: u32 },
    #[error("the document would be {bytes} bytes, the limit is {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("the stored record is of another class")]
    Mismatch,
    #[error("the document was refreshed after the deadline being expired")]
    StillLive,
    #[error("dot counter of an actor is exhausted")]
    CounterExhausted,
    #[error("the token was already rotated")]
    AlreadyRotated,
    /// A Redis command refused for what the key holds (its message is Redis's own).
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}
