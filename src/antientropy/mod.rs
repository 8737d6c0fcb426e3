//! Merkle anti-entropy: one fixed-depth hash tree per partition (`tree`), the wire
//! messages of comparing two replicas (`message`), the initiator's walk down the
//! differing branches (`exchange`) and the stateless responder plus the bulk comparison
//! of partition roots (`responder`).
//!
//! Everything here is pure and deterministic: no tokio, quinn, sled or axum, no clock,
//! no I/O. The shell feeds it writes (digest changes), carries its messages, provides a
//! leaf's entries through a callback, and repairs the keys it names by exchanging and
//! merging objects, which this module never sees. Traffic grows with the number of
//! differing keys: roots of all shared partitions, then per differing partition a few
//! messages of node hashes and the entries of the differing leaves.
//!
//! Protocol, per pair of replicas (initiator A, responder B):
//! 1. A sends `Roots` (all shared partitions, `roots_requests`); B answers `RootsDiffer`
//!    (`respond_roots`); A checks it (`compare_roots`).
//! 2. For each differing partition A runs an `Exchange`: `TreeLevel` requests carrying
//!    A's hashes, B answering `Descendants` (its hashes below the nodes that differ),
//!    `InSync`, or `LeafEntries`; `LeafRequest` pages the remaining leaves.
//! 3. A's exchange ends with `Step::Done(Diff)` (keys to pull and to push) or
//!    `Step::InSync`.

mod error;
pub mod exchange;
pub mod message;
pub mod responder;
pub mod tombstones;
pub mod tree;
mod validate;

#[cfg(test)]
mod tests;

pub use error::{Bound, ExchangeError};
pub use exchange::{plan_levels, Diff, Exchange, ExchangeConfig, Step, StepError};
pub use message::{DecodeError, Entry, LeafPage, Message, MessageKind};
pub use responder::{compare_roots, respond, respond_roots, roots_requests, RootsOutcome};
pub use tree::{entry_hash, leaf_index, Hash, PartitionTree, TreeBatch, TreeError, EMPTY_HASH};
