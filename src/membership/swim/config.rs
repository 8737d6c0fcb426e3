//! SWIM tuning knobs, their validation, and the formulas derived from them (suspicion
//! timeouts, retransmit budget). Pure arithmetic: no clock, no I/O.

use crate::limits::{
    GOSSIP_FANOUT_MAX, INDIRECT_PROBES_MAX, PROBE_INTERVAL_MAX_MS, PROBE_INTERVAL_MIN_MS,
    RETRANSMIT_MULTIPLIER_MAX, SUSPICION_MULTIPLIER_MAX, UPDATES_PER_MESSAGE_DEFAULT,
    UPDATES_PER_MESSAGE_MAX,
};
use serde::{Deserialize, Serialize};

/// Timing and fan-out of the failure detector. Every field is a flag of the binary.
///
/// Derived figures (n = members that are not dead, left or removed, self included;
/// `multiplier` is `remote_suspicion_multiplier` when the suspect is in another region):
/// - suspicion timeout with a single suspecting node:
///   `max = multiplier × log10(max(n, 10)) × probe_interval / 2`
///   (2 s local, 3 s remote at defaults for n ≤ 10; 6 s / 9 s at n = 1000);
/// - the floor it shrinks to as more nodes independently suspect: `min = max / 4`
///   (0.5 s local, 0.75 s remote at defaults for n ≤ 10);
/// - with C distinct suspecting nodes (the first accuser included) and
///   k = min(indirect_probes, n − 2):
///   `timeout(C) = max(min, max − (max − min) × ln(C + 1) / ln(k + 1))`,
///   measured by each node from the moment it first heard the suspicion
///   (C = 1: 1.25 s, C = 2: 0.81 s, C ≥ 3: 0.5 s locally at defaults);
/// - retransmit budget of one update: `ceil(retransmit_multiplier × log10(n + 1))`
///   (4 at n = 9, 13 at n = 1000); a suspicion this node verified itself goes out
///   twice that, since nobody relays a suspicion before verifying it.
///
/// All timeouts (probe, period, suspicion) are stretched by (local_health + 1).
/// With these defaults a crash in a 9-node, 3-region cluster is marked dead by every
/// other node after about 2.5 s (median; simulation figure in the SWIM tests).
/// `gossip_fanout = 0` gives classic piggyback-only SWIM, whose dissemination takes
/// O(log n) probe rounds: raise the suspicion multipliers with it (about 16 at 1,000
/// members) or refutations can arrive after the timeout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwimConfig {
    /// One probe period: each member probes one other member per period.
    pub probe_interval_ms: u64,
    /// Wait for a direct Ack before asking k others (target in the same region).
    pub probe_timeout_ms: u64,
    /// Same for a target in another region (the slower cross-region profile).
    pub remote_probe_timeout_ms: u64,
    /// k: members asked to probe indirectly when the direct probe times out.
    pub indirect_probes: usize,
    /// Scales the suspicion timeout of members in our region.
    pub suspicion_multiplier: u32,
    /// Scales the suspicion timeout of members in other regions.
    pub remote_suspicion_multiplier: u32,
    /// λ: each update is retransmitted about λ·log10(n + 1) times.
    pub retransmit_multiplier: u32,
    /// Extra piggyback-only Gossip rounds while updates are pending.
    pub gossip_interval_ms: u64,
    /// Members sent a Gossip per round; 0 disables Gossip (piggyback on probes only).
    pub gossip_fanout: usize,
    /// Push-pull full-state Sync with one random member.
    pub sync_interval_ms: u64,
    /// Most updates piggybacked on one message.
    pub updates_per_message_max: usize,
}

impl Default for SwimConfig {
    fn default() -> Self {
        SwimConfig {
            probe_interval_ms: 1000,
            probe_timeout_ms: 300,
            remote_probe_timeout_ms: 700,
            indirect_probes: 3,
            suspicion_multiplier: 4,
            remote_suspicion_multiplier: 6,
            retransmit_multiplier: 4,
            gossip_interval_ms: 200,
            gossip_fanout: 3,
            sync_interval_ms: 10_000,
            updates_per_message_max: UPDATES_PER_MESSAGE_DEFAULT,
        }
    }
}

/// What is wrong with a [`SwimConfig`]; each variant names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SwimConfigError {
    #[error("probe_interval_ms must be between {min} and {max}, got {got}")]
    ProbeInterval { got: u64, min: u64, max: u64 },
    #[error("probe_timeout_ms must be at least 1 and below probe_interval_ms ({interval}) to leave time for indirect probes, got {got}")]
    ProbeTimeout { got: u64, interval: u64 },
    #[error("remote_probe_timeout_ms must be at least probe_timeout_ms ({local}) and below probe_interval_ms ({interval}), got {got}")]
    RemoteProbeTimeout { got: u64, local: u64, interval: u64 },
    #[error("indirect_probes must be between 1 and {max}, got {got}")]
    IndirectProbes { got: usize, max: usize },
    #[error("suspicion_multiplier must be between 1 and {max}, got {got}")]
    SuspicionMultiplier { got: u32, max: u32 },
    #[error("remote_suspicion_multiplier must be between 1 and {max}, got {got}")]
    RemoteSuspicionMultiplier { got: u32, max: u32 },
    #[error("retransmit_multiplier must be between 1 and {max}, got {got}")]
    RetransmitMultiplier { got: u32, max: u32 },
    #[error("gossip_interval_ms must be at least 1 and at most probe_interval_ms ({interval}), got {got}")]
    GossipInterval { got: u64, interval: u64 },
    #[error("gossip_fanout must be at most {max}, got {got}")]
    GossipFanout { got: usize, max: usize },
    #[error("sync_interval_ms must be at least probe_interval_ms ({interval}), got {got}")]
    SyncInterval { got: u64, interval: u64 },
    #[error("updates_per_message_max must be between 1 and {max}, got {got}")]
    UpdatesPerMessage { got: usize, max: usize },
}

impl SwimConfig {
    /// Checks every field and the rules between fields.
    pub fn validate(&self) -> Result<(), SwimConfigError> {
        self.validate_timing()?;
        self.validate_counts()
    }

    fn validate_timing(&self) -> Result<(), SwimConfigError> {
        let interval = self.probe_interval_ms;
        if !(PROBE_INTERVAL_MIN_MS..=PROBE_INTERVAL_MAX_MS).contains(&interval) {
            return Err(SwimConfigError::ProbeInterval {
                got: interval,
                min: PROBE_INTERVAL_MIN_MS,
                max: PROBE_INTERVAL_MAX_MS,
            });
        }
        if self.probe_timeout_ms == 0 || self.probe_timeout_ms >= interval {
            return Err(SwimConfigError::ProbeTimeout {
                got: self.probe_timeout_ms,
                interval,
            });
        }
        if self.remote_probe_timeout_ms < self.probe_timeout_ms
            || self.remote_probe_timeout_ms >= interval
        {
            return Err(SwimConfigError::RemoteProbeTimeout {
                got: self.remote_probe_timeout_ms,
                local: self.probe_timeout_ms,
                interval,
            });
        }
        if self.gossip_interval_ms == 0 || self.gossip_interval_ms > interval {
            return Err(SwimConfigError::GossipInterval {
                got: self.gossip_interval_ms,
                interval,
            });
        }
        if self.sync_interval_ms < interval {
            return Err(SwimConfigError::SyncInterval {
                got: self.sync_interval_ms,
                interval,
            });
        }
        Ok(())
    }

    fn validate_counts(&self) -> Result<(), SwimConfigError> {
        if !(1..=INDIRECT_PROBES_MAX).contains(&self.indirect_probes) {
            return Err(SwimConfigError::IndirectProbes {
                got: self.indirect_probes,
                max: INDIRECT_PROBES_MAX,
            });
        }
        let multipliers = 1..=SUSPICION_MULTIPLIER_MAX;
        if !multipliers.contains(&self.suspicion_multiplier) {
            return Err(SwimConfigError::SuspicionMultiplier {
                got: self.suspicion_multiplier,
                max: SUSPICION_MULTIPLIER_MAX,
            });
        }
        if !multipliers.contains(&self.remote_suspicion_multiplier) {
            return Err(SwimConfigError::RemoteSuspicionMultiplier {
                got: self.remote_suspicion_multiplier,
                max: SUSPICION_MULTIPLIER_MAX,
            });
        }
        if !(1..=RETRANSMIT_MULTIPLIER_MAX).contains(&self.retransmit_multiplier) {
            return Err(SwimConfigError::RetransmitMultiplier {
                got: self.retransmit_multiplier,
                max: RETRANSMIT_MULTIPLIER_MAX,
            });
        }
        if self.gossip_fanout > GOSSIP_FANOUT_MAX {
            return Err(SwimConfigError::GossipFanout {
                got: self.gossip_fanout,
                max: GOSSIP_FANOUT_MAX,
            });
        }
        if !(1..=UPDATES_PER_MESSAGE_MAX).contains(&self.updates_per_message_max) {
            return Err(SwimConfigError::UpdatesPerMessage {
                got: self.updates_per_message_max,
                max: UPDATES_PER_MESSAGE_MAX,
            });
        }
        Ok(())
    }

    /// Suspicion timeout before any confirmation, unscaled by local health.
    pub fn suspicion_timeout_max_ms(&self, members: usize, remote: bool) -> u64 {
        let multiplier = if remote {
            self.remote_suspicion_multiplier
        } else {
            self.suspicion_multiplier
        };
        let scale = (members.max(10) as f64).log10();
        (f64::from(multiplier) * scale * self.probe_interval_ms as f64 / 2.0).round() as u64
    }

    /// The floor the suspicion timeout shrinks to once k nodes suspect.
    pub fn suspicion_timeout_min_ms(&self, members: usize, remote: bool) -> u64 {
        self.suspicion_timeout_max_ms(members, remote) / 4
    }

    /// Lifeguard's dynamic suspicion timeout when `suspecters` distinct nodes (the
    /// first accuser included) independently suspect, unscaled by local health.
    pub fn suspicion_timeout_ms(&self, members: usize, remote: bool, suspecters: usize) -> u64 {
        let max = self.suspicion_timeout_max_ms(members, remote);
        let min = self.suspicion_timeout_min_ms(members, remote);
        let expected = self.indirect_probes.min(members.saturating_sub(2)).max(1);
        let fraction = ((suspecters as f64 + 1.0).ln() / (expected as f64 + 1.0).ln()).min(1.0);
        let timeout = max as f64 - (max - min) as f64 * fraction;
        (timeout.round() as u64).max(min)
    }

    /// How many messages carry one update from this node: ceil(λ·log10(n + 1)), at least 1.
    pub fn retransmit_budget(&self, members: usize) -> u32 {
        let budget = (f64::from(self.retransmit_multiplier)
            * (members.saturating_add(1) as f64).log10())
        .ceil();
        (budget as u32).max(1)
    }
}
