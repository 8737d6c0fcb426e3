//! Scenario files (`sim/*.toml`): the workload a simulation runs and for how long.
//! `[workload] kind` picks the kv workload (the default) or the session workload,
//! whose knobs live in a `[sessions]` table (see `sim::sessions`). A kv scenario with a
//! `[sessions]` table runs session clients beside its kv clients
//! (`sessions.clients_per_region` of them per region), so every fault is also judged by
//! the session invariants. A `[resp]` table runs RESP (Redis protocol) clients beside
//! either workload (see `sim::resp`), judged by the RESP invariants.

use super::resp::{RawResp, RespMix};
use super::sessions::{RawSessions, SessionMix};
use crate::coordinator::quorum::Level;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::Path;

mod expect;
mod steps;

use crate::config::TuningFlags;
use clap::Parser;
pub use expect::{Expect, Expectations};

/// A scenario's `flags`, parsed with the same rules as the command line.
#[derive(Parser)]
struct ScenarioFlags {
    #[command(flatten)]
    flags: TuningFlags,
}
use steps::{fault_action, RawFault};
pub use steps::{FaultAction, FaultStep, NetworkTarget, FAULT_STEPS_MAX};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    duration_s: f64,
    workload: RawWorkload,
    #[serde(default)]
    faults: Vec<RawFault>,
    sessions: Option<RawSessions>,
    resp: Option<RawResp>,
    /// Node flags this scenario runs with (e.g. `["--w", "1", "--strict-quorum"]`).
    #[serde(default)]
    flags: Vec<String>,
    /// What the checker must find: invariant name = "zero" | "some" | "any" | true | false.
    #[serde(default)]
    expect: std::collections::BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    /// `kv` (default) or `sessions`.
    kind: Option<String>,
    clients_per_region: u32,
    read_fraction: Option<f64>,
    keys_per_client: Option<u32>,
    value_bytes: Option<usize>,
    read: Option<String>,
    write: Option<String>,
    /// Share of kv writes that are deletes (default 0).
    delete_fraction: Option<f64>,
}

/// A validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub duration_s: f64,
    pub workload: Workload,
    /// In time order.
    pub faults: Vec<FaultStep>,
    /// Node flags of this scenario (`flags = [...]`), parsed like the command line's.
    pub flags: Option<TuningFlags>,
    pub expect: Expectations,
    /// RESP clients beside the workload (`[resp]`).
    pub resp: Option<RespMix>,
}

/// Session clients that run beside a kv workload.
#[derive(Clone, Debug)]
pub struct SessionsBeside {
    pub clients_per_region: u32,
    pub mix: SessionMix,
}

/// Session clients per region beside a kv workload when `[sessions]` does not say.
pub const SESSION_CLIENTS_BESIDE_DEFAULT: u32 = 2;

/// What the clients run.
#[derive(Clone, Debug)]
pub enum WorkloadKind {
    /// Reads and writes of opaque values (`Workload`'s kv fields), and session clients
    /// beside them when the scenario has a `[sessions]` table.
    Kv(Option<SessionsBeside>),
    /// Logins, session reads and changes, rotations and logouts.
    Sessions(SessionMix),
}

#[derive(Clone, Debug)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub clients_per_region: u32,
    /// The kv fields below are only used by `WorkloadKind::Kv`.
    pub read_fraction: f64,
    pub keys_per_client: u32,
    pub value_bytes: usize,
    pub read: Option<Level>,
    pub write: Option<Level>,
    pub delete_fraction: f64,
}

/// Most clients per region a scenario may ask for.
pub const CLIENTS_PER_REGION_MAX: u32 = 256;
/// Most keys per client.
pub const KEYS_PER_CLIENT_MAX: u32 = 100_000;
/// Longest scenario.
pub const DURATION_S_MAX: f64 = 86_400.0;

/// The workload kind, checking that each kind gets only its own fields; for the session
/// workload the kv fields, which it does not use, are filled with inert values.
fn workload_kind(raw: &mut RawScenario) -> Result<WorkloadKind> {
    let workload = &mut raw.workload;
    match workload.kind.as_deref().unwrap_or("kv") {
        "kv" => {
            let beside = match raw.sessions.take() {
                None => None,
                Some(sessions) => {
                    let clients_per_region = sessions
                        .clients_per_region
                        .unwrap_or(SESSION_CLIENTS_BESIDE_DEFAULT);
                    if clients_per_region == 0 || clients_per_region > CLIENTS_PER_REGION_MAX {
                        bail!("sessions.clients_per_region: must be between 1 and {CLIENTS_PER_REGION_MAX}");
                    }
                    let mix = SessionMix::from_raw(&sessions)?;
                    Some(SessionsBeside {
                        clients_per_region,
                        mix,
                    })
                }
            };
            let missing = [
                ("read_fraction", workload.read_fraction.is_none()),
                ("keys_per_client", workload.keys_per_client.is_none()),
                ("value_bytes", workload.value_bytes.is_none()),
            ];
            if let Some((field, _)) = missing.iter().find(|(_, absent)| *absent) {
                bail!("workload.{field}: required by the kv workload");
            }
            Ok(WorkloadKind::Kv(beside))
        }
        "sessions" => {
            let kv_fields = [
                ("read_fraction", workload.read_fraction.is_some()),
                ("keys_per_client", workload.keys_per_client.is_some()),
                ("value_bytes", workload.value_bytes.is_some()),
                ("read", workload.read.is_some()),
                ("write", workload.write.is_some()),
            ];
            if let Some((field, _)) = kv_fields.iter().find(|(_, present)| *present) {
                bail!("workload.{field}: only for the kv workload (the session service picks levels per class)");
            }
            workload.read_fraction = Some(0.0);
            workload.keys_per_client = Some(1);
            workload.value_bytes = Some(16);
            let sessions = raw.sessions.take().unwrap_or_default();
            if sessions.clients_per_region.is_some() {
                bail!("sessions.clients_per_region: only beside a kv workload (a session workload has workload.clients_per_region)");
            }
            let mix = SessionMix::from_raw(&sessions)?;
            Ok(WorkloadKind::Sessions(mix))
        }
        other => bail!("workload.kind: unknown kind {other:?} (kv, sessions)"),
    }
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("scenario {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Scenario> {
        let mut raw: RawScenario = toml::from_str(text)
            .map_err(|error| anyhow::anyhow!("{}", error.to_string().trim()))?;
        let kind = workload_kind(&mut raw)?;
        let workload = &raw.workload;
        if !(raw.duration_s > 0.0 && raw.duration_s <= DURATION_S_MAX) {
            bail!(
                "duration_s: must be above 0 and at most {DURATION_S_MAX}, got {}",
                raw.duration_s
            );
        }
        if workload.clients_per_region == 0 || workload.clients_per_region > CLIENTS_PER_REGION_MAX
        {
            bail!("workload.clients_per_region: must be between 1 and {CLIENTS_PER_REGION_MAX}");
        }
        let read_fraction = workload.read_fraction.unwrap_or_default();
        let keys_per_client = workload.keys_per_client.unwrap_or_default();
        let value_bytes = workload.value_bytes.unwrap_or_default();
        let delete_fraction = workload.delete_fraction.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&delete_fraction) {
            bail!("workload.delete_fraction: must be between 0 and 1, got {delete_fraction}");
        }
        if !(0.0..=1.0).contains(&read_fraction) {
            bail!("workload.read_fraction: must be between 0 and 1, got {read_fraction}");
        }
        if keys_per_client == 0 || keys_per_client > KEYS_PER_CLIENT_MAX {
            bail!("workload.keys_per_client: must be between 1 and {KEYS_PER_CLIENT_MAX}");
        }
        if !(16..=crate::limits::VALUE_BYTES_MAX).contains(&value_bytes) {
            bail!(
                "workload.value_bytes: must be between 16 and {}",
                crate::limits::VALUE_BYTES_MAX
            );
        }
        let level = |field: &str, text: &Option<String>| -> Result<Option<Level>> {
            text.as_deref()
                .map(|t| {
                    t.parse::<Level>()
                        .with_context(|| format!("workload.{field}"))
                })
                .transpose()
        };
        if raw.faults.len() > FAULT_STEPS_MAX {
            bail!("faults: at most {FAULT_STEPS_MAX} steps");
        }
        let mut faults = Vec::new();
        for (index, step) in raw.faults.iter().enumerate() {
            if !(0.0..=raw.duration_s).contains(&step.at_s) {
                bail!(
                    "faults[{index}].at_s: must be between 0 and duration_s ({}), got {}",
                    raw.duration_s,
                    step.at_s
                );
            }
            faults.push(FaultStep {
                at_s: step.at_s,
                action: fault_action(index, step)?,
            });
        }
        faults.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let flags = if raw.flags.is_empty() {
            None
        } else {
            let args = std::iter::once("cartwheel").chain(raw.flags.iter().map(String::as_str));
            let parsed = ScenarioFlags::try_parse_from(args)
                .map_err(|error| anyhow::anyhow!("flags: {}", error.to_string().trim()))?;
            Some(parsed.flags)
        };
        let resp = raw.resp.as_ref().map(RespMix::from_raw).transpose()?;
        Ok(Scenario {
            resp,
            flags,
            expect: Expectations::parse(&raw.expect)?,
            name: raw.name.clone(),
            duration_s: raw.duration_s,
            faults,
            workload: Workload {
                kind,
                clients_per_region: workload.clients_per_region,
                read_fraction,
                keys_per_client,
                value_bytes,
                read: level("read", &workload.read)?,
                write: level("write", &workload.write)?,
                delete_fraction,
            },
        })
    }
}

#[cfg(test)]
mod tests;
