//! The durability flag: when a write counts as durable. Parsing and printing only; the
//! policy itself is carried out by `CommitGate`.

use crate::limits::GROUP_COMMIT_DELAY_MS_MAX;
use std::fmt;
use std::str::FromStr;

/// Gathering delay of the default policy: short enough to add little to a p99 write
/// budget of 100 ms, long enough to share one fsync among the writes of a busy node.
pub const GROUP_COMMIT_DELAY_MS_DEFAULT: u64 = 2;

/// When a write counts as durable, and so when a replica may acknowledge it.
///
/// The default is `GroupCommit { max_delay_ms: 2 }`: writes wait at most 2 ms (plus one
/// flush) for company, then share a single flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Flag `flush`: every caller's wait runs its own flush.
    FlushEachWrite,
    /// Flag `group:<ms>`: one flusher per store covers every waiting caller with one
    /// flush. Under load (writes arrive fast enough that a window of `max_delay_ms`
    /// gathers `GROUP_COMMIT_GATHER_MIN_WRITES`) it first waits until `max_delay_ms`
    /// after the previous flush for company; otherwise it flushes at once, back to back.
    GroupCommit { max_delay_ms: u64 },
    /// Flag `none`: acknowledged once in the store's memory; the store's own
    /// background flush (every 500 ms) writes it out. What Redis without an
    /// append-only file promises: W replicas losing power at once lose recent writes.
    Memory,
}

impl Default for Durability {
    fn default() -> Self {
        Durability::GroupCommit {
            max_delay_ms: GROUP_COMMIT_DELAY_MS_DEFAULT,
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::FlushEachWrite => f.write_str("flush"),
            Durability::Memory => f.write_str("none"),
            Durability::GroupCommit { max_delay_ms } => write!(f, "group:{max_delay_ms}"),
        }
    }
}

/// Why a durability flag was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurabilityParseError {
    #[error(
        "unknown durability {input:?}: expected `flush`, `group:<ms>` (e.g. `group:2`) or `none`"
    )]
    Unknown { input: String },
    #[error(
        "durability {input:?}: the delay after `group:` must be a whole number of milliseconds"
    )]
    BadDelay { input: String },
    #[error("durability group delay {delay_ms} ms is above the maximum of {max_ms} ms")]
    DelayTooLarge { delay_ms: u64, max_ms: u64 },
}

impl FromStr for Durability {
    type Err = DurabilityParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input == "flush" {
            return Ok(Durability::FlushEachWrite);
        }
        if input == "none" {
            return Ok(Durability::Memory);
        }
        let Some(delay) = input.strip_prefix("group:") else {
            return Err(DurabilityParseError::Unknown {
                input: input.to_string(),
            });
        };
        // u64's parser accepts a leading '+', which is not part of the flag's grammar.
        if delay.is_empty() || !delay.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(DurabilityParseError::BadDelay {
                input: input.to_string(),
            });
        }
        let max_delay_ms: u64 = delay.parse().map_err(|_| DurabilityParseError::BadDelay {
            input: input.to_string(),
        })?;
        if max_delay_ms > GROUP_COMMIT_DELAY_MS_MAX {
            return Err(DurabilityParseError::DelayTooLarge {
                delay_ms: max_delay_ms,
                max_ms: GROUP_COMMIT_DELAY_MS_MAX,
            });
        }
        Ok(Durability::GroupCommit { max_delay_ms })
    }
}

#[cfg(test)]
mod tests;
