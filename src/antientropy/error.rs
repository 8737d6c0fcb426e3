//! Why an anti-entropy message was refused or an exchange cannot go on, and which bound
//! a message broke. Both sides of the exchange (`exchange`) and the shape checks
//! (`validate`) return these; it lives apart so neither needs the other for its error
//! type. It must stay pure: no I/O, no clock.

use super::message::MessageKind;
use crate::ids::PartitionId;
use crate::limits::{ENTRY_KEY_BYTES_MAX, EXCHANGE_REQUESTS_MAX, STEP_BITS_MAX};

/// What a limit counted when a message exceeded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Node hashes in one message, or in the answer a request asks for.
    Hashes,
    /// Partition roots in one `Roots` message.
    Roots,
    /// Leaves named or answered in one message.
    Leaves,
    /// Key-digest entries in one `LeafEntries` message.
    Entries,
    /// Key and digest bytes in one `LeafEntries` message.
    EntryBytes,
}

/// Why a message was refused or an exchange cannot go on. The exchange that returned it
/// is finished; the shell drops it and may start a new one later.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("a step of {step_bits} levels is outside 1..={STEP_BITS_MAX}")]
    StepOutOfRange { step_bits: u8 },
    #[error("the peer's tree has depth {theirs}, ours {ours}")]
    DepthMismatch { ours: u8, theirs: u8 },
    #[error("the message is about partition {got}, the exchange about {expected}")]
    PartitionMismatch {
        expected: PartitionId,
        got: PartitionId,
    },
    #[error("level {level} with reply level {reply_level} does not fit depth {depth} (at most {STEP_BITS_MAX} levels per step)")]
    LevelOutOfRange {
        level: u8,
        reply_level: u8,
        depth: u8,
    },
    #[error("node {index} does not exist at level {level}")]
    IndexOutOfRange { level: u8, index: u32 },
    #[error("indexes, leaves, partitions or keys are not strictly increasing")]
    NotIncreasing,
    #[error("{indexes} indexes but {hashes} hashes")]
    LengthMismatch { indexes: usize, hashes: usize },
    #[error("{what:?}: {count} is over the limit of {max}")]
    TooLarge {
        what: Bound,
        count: usize,
        max: usize,
    },
    #[error("the message names nothing")]
    Empty,
    #[error("a key of {len} bytes is longer than {ENTRY_KEY_BYTES_MAX}")]
    KeyTooLarge { len: usize },
    #[error("an entry listed under leaf {leaf} belongs to another leaf")]
    WrongLeaf { leaf: u32 },
    #[error("a {got:?} message is not an answer to what was asked")]
    Unexpected { got: MessageKind },
    #[error("the answer names node {index} at level {level}, which was not asked about")]
    NotRequested { level: u8, index: u32 },
    #[error("the answer lists partition {partition} both as differing and as not held")]
    Contradictory { partition: PartitionId },
    #[error("the answer makes no progress (an empty incomplete page, or nothing at all)")]
    NoProgress,
    #[error("the exchange sent {EXCHANGE_REQUESTS_MAX} requests without finishing")]
    TooManyRequests,
    #[error("the exchange has already finished")]
    Finished,
}
