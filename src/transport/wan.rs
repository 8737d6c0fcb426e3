//! WAN emulation: the delay a request pays on its way to another region.
//!
//! The machines running cartwheel have no traffic shaper, so the requester sleeps one
//! one-way delay before sending and another after the response arrives; a request then
//! costs about one round trip to the destination region. This module only computes
//! delays (a pure function of the model, the two regions and an RNG passed in); it must
//! never sleep, read a clock or touch the network: the transport does the sleeping.

use crate::ids::Region;
use rand::Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// Round-trip times between regions, as in the topology file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WanModel {
    /// RTT in milliseconds per pair of regions; symmetric, so either order may be stored.
    /// An empty matrix disables cross-region emulation (every cross-region delay is 0).
    pub rtt_ms: BTreeMap<(Region, Region), f64>,
    /// RTT between two nodes of the same region.
    pub intra_region_rtt_ms: f64,
    /// Each one-way delay adds a uniform jitter in `[0, jitter_ms / 2]`.
    pub jitter_ms: f64,
}

/// Why the model cannot give a delay.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WanError {
    #[error("WAN model has no round-trip time between regions {from} and {to}")]
    MissingRtt { from: Region, to: Region },
    #[error("WAN model value {what} = {value} ms must be a finite number >= 0")]
    InvalidValue { what: String, value: f64 },
}

impl WanModel {
    /// A model that adds no delay at all (real networks, unit tests).
    pub fn disabled() -> Self {
        WanModel::default()
    }

    /// Checks that every value is a finite non-negative number and, unless the matrix is
    /// empty (emulation disabled), that every pair of distinct `regions` has an RTT.
    pub fn validate(&self, regions: &[Region]) -> Result<(), WanError> {
        check_value("intra_region_rtt_ms", self.intra_region_rtt_ms)?;
        check_value("jitter_ms", self.jitter_ms)?;
        for ((from, to), &value) in &self.rtt_ms {
            check_value(&format!("rtt_ms[{from}, {to}]"), value)?;
        }
        if self.rtt_ms.is_empty() {
            return Ok(());
        }
        for (index, from) in regions.iter().enumerate() {
            for to in &regions[index + 1..] {
                self.rtt(from, to)?;
            }
        }
        Ok(())
    }

    /// The round-trip time between two regions, looked up in either order.
    pub fn rtt(&self, from: &Region, to: &Region) -> Result<Duration, WanError> {
        if from == to {
            return Ok(millis(self.intra_region_rtt_ms));
        }
        if self.rtt_ms.is_empty() {
            return Ok(Duration::ZERO);
        }
        let forward = (from.clone(), to.clone());
        let backward = (to.clone(), from.clone());
        self.rtt_ms
            .get(&forward)
            .or_else(|| self.rtt_ms.get(&backward))
            .map(|&value| millis(value))
            .ok_or_else(|| WanError::MissingRtt {
                from: from.clone(),
                to: to.clone(),
            })
    }

    /// One direction of a request from `from` to `to`: half the RTT plus a uniform
    /// jitter in `[0, jitter_ms / 2]`.
    pub fn one_way_delay<R: Rng + ?Sized>(
        &self,
        from: &Region,
        to: &Region,
        rng: &mut R,
    ) -> Result<Duration, WanError> {
        let half_rtt = self.rtt(from, to)? / 2;
        let jitter_max_ms = self.jitter_ms / 2.0;
        // Guards gen_range, which panics on an empty or non-finite range.
        let jitter = if jitter_max_ms.is_finite() && jitter_max_ms > 0.0 {
            millis(rng.gen_range(0.0..=jitter_max_ms))
        } else {
            Duration::ZERO
        };
        Ok(half_rtt + jitter)
    }
}

fn check_value(what: &str, value: f64) -> Result<(), WanError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(WanError::InvalidValue {
            what: what.to_string(),
            value,
        })
    }
}

/// Milliseconds to a duration; negative, NaN or absurd values become zero rather than
/// panicking (`validate` reports them properly).
fn millis(value: f64) -> Duration {
    Duration::try_from_secs_f64(value / 1000.0).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;
