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
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_flag_values() {
        assert_eq!("flush".parse(), Ok(Durability::FlushEachWrite));
        assert_eq!(
            "group:2".parse(),
            Ok(Durability::GroupCommit { max_delay_ms: 2 })
        );
        assert_eq!(
            "group:0".parse(),
            Ok(Durability::GroupCommit { max_delay_ms: 0 })
        );
        assert_eq!(
            Durability::default(),
            Durability::GroupCommit { max_delay_ms: 2 }
        );
        assert_eq!(Durability::default().to_string(), "group:2");
        assert_eq!("none".parse(), Ok(Durability::Memory));
        assert_eq!(Durability::Memory.to_string(), "none");
    }

    #[test]
    fn refuses_bad_flags_with_the_reason() {
        for input in ["", "Flush", "group", "fsync", "flush:1", "None", "none:1"] {
            assert_eq!(
                input.parse::<Durability>(),
                Err(DurabilityParseError::Unknown {
                    input: input.to_string()
                }),
                "{input:?}"
            );
        }
        for input in [
            "group:",
            "group:x",
            "group:-1",
            "group:+3",
            "group: 2",
            "group:99999999999999999999",
        ] {
            assert_eq!(
                input.parse::<Durability>(),
                Err(DurabilityParseError::BadDelay {
                    input: input.to_string()
                }),
                "{input:?}"
            );
        }
        let too_large = format!("group:{}", GROUP_COMMIT_DELAY_MS_MAX + 1);
        assert_eq!(
            too_large.parse::<Durability>(),
            Err(DurabilityParseError::DelayTooLarge {
                delay_ms: GROUP_COMMIT_DELAY_MS_MAX + 1,
                max_ms: GROUP_COMMIT_DELAY_MS_MAX
            })
        );
        let message = "fsync".parse::<Durability>().unwrap_err().to_string();
        assert!(message.contains("group:<ms>"), "{message}");
    }

    proptest! {
        #[test]
        fn display_round_trips(delay in 0..=GROUP_COMMIT_DELAY_MS_MAX, each in any::<bool>()) {
            let durability = if each {
                Durability::FlushEachWrite
            } else {
                Durability::GroupCommit { max_delay_ms: delay }
            };
            prop_assert_eq!(durability.to_string().parse::<Durability>(), Ok(durability));
        }
    }
}
