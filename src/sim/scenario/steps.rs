//! The fault schedule of a scenario: `[[faults]]` steps and their validation.

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::DURATION_S_MAX;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFault {
    pub(super) at_s: f64,
    action: String,
    node: Option<String>,
    region: Option<String>,
    for_s: Option<f64>,
    /// `both` (default) or `outbound` (only the target's own requests are lost).
    direction: Option<String>,
    offset_ms: Option<i64>,
    drop: Option<f64>,
    duplicate: Option<f64>,
    delay_ms: Option<f64>,
    jitter_ms: Option<f64>,
    gap_s: Option<f64>,
}

/// One step of a fault schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultStep {
    /// Seconds after the workload starts.
    pub at_s: f64,
    pub action: FaultAction,
}

/// Who a network fault cuts off.
#[derive(Clone, Debug, PartialEq)]
pub enum NetworkTarget {
    Region(String),
    Node(String),
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultAction {
    /// A new node joins `region`.
    Join { region: String },
    /// `node` leaves gracefully (hands over its partitions, then exits).
    Leave { node: String },
    /// SIGKILL `node`.
    Kill { node: String },
    /// Start a killed `node` again with its data.
    Restart { node: String },
    /// SIGSTOP `node` for `for_s` seconds, then SIGCONT.
    Pause { node: String, for_s: f64 },
    /// SIGKILL every node of `region` (a region outage).
    KillRegion { region: String },
    /// Start every killed node of `region` again with its data.
    RestartRegion { region: String },
    /// Cut `target` off from every other node for `for_s` seconds: both ways, or only
    /// its own requests (`one_way`), through the nodes' fault layer.
    Partition {
        target: NetworkTarget,
        one_way: bool,
        for_s: f64,
    },
    /// Lose, duplicate and delay (so reorder) messages between every node for `for_s`.
    Lossy {
        drop: f64,
        duplicate: f64,
        delay_ms: f64,
        jitter_ms: f64,
        for_s: f64,
    },
    /// Move `node`'s data clock by `offset_ms` for `for_s` seconds.
    ClockSkew {
        node: String,
        offset_ms: i64,
        for_s: f64,
    },
    /// `node` answers every peer `delay_ms` late for `for_s` seconds (a gray failure).
    Slow {
        node: String,
        delay_ms: f64,
        for_s: f64,
    },
    /// SIGKILL `node` and delete its data directory (a lost disk); `restart` brings it
    /// back empty.
    Wipe { node: String },
    /// Stop (SIGTERM) and restart every node, one after the other, `gap_s` apart.
    RollingRestart { gap_s: f64 },
}

impl FaultAction {
    /// How long a timed fault lasts (it heals by itself), if it is one.
    pub fn duration_s(&self) -> Option<f64> {
        match self {
            FaultAction::Partition { for_s, .. }
            | FaultAction::Lossy { for_s, .. }
            | FaultAction::ClockSkew { for_s, .. }
            | FaultAction::Slow { for_s, .. } => Some(*for_s),
            _ => None,
        }
    }

    /// Whether the nodes must serve the fault-injection endpoints for this step.
    pub fn needs_chaos(&self) -> bool {
        matches!(
            self,
            FaultAction::Partition { .. }
                | FaultAction::Lossy { .. }
                | FaultAction::ClockSkew { .. }
                | FaultAction::Slow { .. }
        )
    }
}

/// Most steps in one schedule.
pub const FAULT_STEPS_MAX: usize = 1000;
/// Largest clock skew a step may apply (a day).
pub const CLOCK_SKEW_MS_MAX: i64 = 86_400_000;

fn seconds(index: usize, name: &str, value: Option<f64>, action: &str) -> Result<f64> {
    let value = value.with_context(|| format!("faults[{index}]: action {action} needs {name}"))?;
    if !(value > 0.0 && value <= DURATION_S_MAX) {
        bail!("faults[{index}].{name}: must be above 0, got {value}");
    }
    Ok(value)
}

fn rate(index: usize, name: &str, value: Option<f64>) -> Result<f64> {
    let value = value.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&value) {
        bail!("faults[{index}].{name}: must be between 0 and 1, got {value}");
    }
    Ok(value)
}

fn network_target(index: usize, raw: &RawFault) -> Result<NetworkTarget> {
    match (&raw.node, &raw.region) {
        (Some(node), None) => Ok(NetworkTarget::Node(node.clone())),
        (None, Some(region)) => Ok(NetworkTarget::Region(region.clone())),
        _ => bail!(
            "faults[{index}]: action {} needs node or region (one of them)",
            raw.action
        ),
    }
}

pub(super) fn fault_action(index: usize, raw: &RawFault) -> Result<FaultAction> {
    let need = |field: &str, value: &Option<String>| {
        value
            .clone()
            .with_context(|| format!("faults[{index}]: action {} needs {field}", raw.action))
    };
    let action = raw.action.as_str();
    let step = match action {
        "join" => FaultAction::Join { region: need("region", &raw.region)? },
        "leave" => FaultAction::Leave { node: need("node", &raw.node)? },
        "kill" => FaultAction::Kill { node: need("node", &raw.node)? },
        "restart" => FaultAction::Restart { node: need("node", &raw.node)? },
        "wipe" => FaultAction::Wipe { node: need("node", &raw.node)? },
        "pause" => FaultAction::Pause {
            node: need("node", &raw.node)?,
            for_s: seconds(index, "for_s", raw.for_s, action)?,
        },
        "kill-region" => FaultAction::KillRegion { region: need("region", &raw.region)? },
        "restart-region" => FaultAction::RestartRegion { region: need("region", &raw.region)? },
        "partition" => FaultAction::Partition {
            target: network_target(index, raw)?,
            one_way: match raw.direction.as_deref().unwrap_or("both") {
                "both" => false,
                "outbound" => true,
                other => bail!("faults[{index}].direction: {other:?} is not both or outbound"),
            },
            for_s: seconds(index, "for_s", raw.for_s, action)?,
        },
        "lossy" => {
            let delay = |name: &str, value: Option<f64>| -> Result<f64> {
                let value = value.unwrap_or(0.0);
                if !(0.0..=60_000.0).contains(&value) {
                    bail!("faults[{index}].{name}: must be between 0 and 60000 ms, got {value}");
                }
                Ok(value)
            };
            FaultAction::Lossy {
                drop: rate(index, "drop", raw.drop)?,
                duplicate: rate(index, "duplicate", raw.duplicate)?,
                delay_ms: delay("delay_ms", raw.delay_ms)?,
                jitter_ms: delay("jitter_ms", raw.jitter_ms)?,
                for_s: seconds(index, "for_s", raw.for_s, action)?,
            }
        }
        "clock-skew" => {
            let offset_ms = raw
                .offset_ms
                .with_context(|| format!("faults[{index}]: action clock-skew needs offset_ms"))?;
            if offset_ms.abs() > CLOCK_SKEW_MS_MAX {
                bail!("faults[{index}].offset_ms: at most {CLOCK_SKEW_MS_MAX} either way");
            }
            FaultAction::ClockSkew {
                node: need("node", &raw.node)?,
                offset_ms,
                for_s: seconds(index, "for_s", raw.for_s, action)?,
            }
        }
        "slow" => match raw.delay_ms {
            Some(delay_ms) if delay_ms > 0.0 && delay_ms <= 60_000.0 => FaultAction::Slow {
                node: need("node", &raw.node)?,
                delay_ms,
                for_s: seconds(index, "for_s", raw.for_s, action)?,
            },
            _ => bail!("faults[{index}]: action slow needs delay_ms between 0 and 60000"),
        },
        "rolling-restart" => FaultAction::RollingRestart {
            gap_s: seconds(index, "gap_s", raw.gap_s, action)?,
        },
        other => bail!("faults[{index}].action: unknown action {other:?} (join, leave, kill, restart, pause, kill-region, restart-region, partition, lossy, clock-skew, slow, wipe, rolling-restart)"),
    };
    Ok(step)
}
