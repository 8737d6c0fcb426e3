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
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn region(name: &str) -> Region {
        Region::new(name).unwrap()
    }

    fn model(jitter_ms: f64) -> WanModel {
        let mut rtt_ms = BTreeMap::new();
        rtt_ms.insert((region("us-east"), region("eu-west")), 80.0);
        WanModel {
            rtt_ms,
            intra_region_rtt_ms: 0.5,
            jitter_ms,
        }
    }

    #[test]
    fn delay_is_half_the_rtt_in_both_orders() {
        let mut rng = StdRng::seed_from_u64(7);
        let wan = model(0.0);
        let east = region("us-east");
        let west = region("eu-west");
        let expected = Duration::from_millis(40);
        assert_eq!(wan.one_way_delay(&east, &west, &mut rng), Ok(expected));
        assert_eq!(wan.one_way_delay(&west, &east, &mut rng), Ok(expected));
        assert_eq!(
            wan.one_way_delay(&east, &east, &mut rng),
            Ok(Duration::from_micros(250))
        );
    }

    #[test]
    fn jitter_stays_within_half_the_jitter() {
        let mut rng = StdRng::seed_from_u64(11);
        let wan = model(10.0);
        let (east, west) = (region("us-east"), region("eu-west"));
        let mut distinct = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let delay = wan.one_way_delay(&east, &west, &mut rng).unwrap();
            assert!(delay >= Duration::from_millis(40), "{delay:?}");
            assert!(delay <= Duration::from_millis(45), "{delay:?}");
            distinct.insert(delay);
        }
        assert!(distinct.len() > 100, "jitter should vary the delay");
    }

    #[test]
    fn missing_pair_is_an_error_unless_emulation_is_disabled() {
        let mut rng = StdRng::seed_from_u64(1);
        let wan = model(0.0);
        let error = wan
            .one_way_delay(&region("us-east"), &region("us-west"), &mut rng)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "WAN model has no round-trip time between regions us-east and us-west"
        );
        let disabled = WanModel::disabled();
        assert_eq!(
            disabled.one_way_delay(&region("us-east"), &region("us-west"), &mut rng),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn validate_checks_values_and_completeness() {
        let regions = [region("us-east"), region("eu-west")];
        assert_eq!(model(1.0).validate(&regions), Ok(()));
        let three = [region("us-east"), region("eu-west"), region("us-west")];
        assert!(matches!(
            model(1.0).validate(&three),
            Err(WanError::MissingRtt { .. })
        ));
        let mut broken = model(1.0);
        broken.jitter_ms = f64::NAN;
        assert!(matches!(
            broken.validate(&regions),
            Err(WanError::InvalidValue { .. })
        ));
        broken.jitter_ms = -1.0;
        let mut rng = StdRng::seed_from_u64(3);
        // An unvalidated bad model must still not panic.
        assert!(broken
            .one_way_delay(&regions[0], &regions[1], &mut rng)
            .is_ok());
    }
}
