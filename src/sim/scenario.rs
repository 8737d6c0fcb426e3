//! Scenario files (`sim/*.toml`): the workload a simulation runs and for how long.

use crate::coordinator::quorum::Level;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    duration_s: f64,
    workload: RawWorkload,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    clients_per_region: u32,
    read_fraction: f64,
    keys_per_client: u32,
    value_bytes: usize,
    read: Option<String>,
    write: Option<String>,
}

/// A validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub duration_s: f64,
    pub workload: Workload,
}

#[derive(Clone, Debug)]
pub struct Workload {
    pub clients_per_region: u32,
    pub read_fraction: f64,
    pub keys_per_client: u32,
    pub value_bytes: usize,
    pub read: Option<Level>,
    pub write: Option<Level>,
}

/// Most clients per region a scenario may ask for.
pub const CLIENTS_PER_REGION_MAX: u32 = 256;
/// Most keys per client.
pub const KEYS_PER_CLIENT_MAX: u32 = 100_000;
/// Longest scenario.
pub const DURATION_S_MAX: f64 = 86_400.0;

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("scenario {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Scenario> {
        let raw: RawScenario =
            toml::from_str(text).map_err(|error| anyhow::anyhow!("{}", error.message()))?;
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
        if !(0.0..=1.0).contains(&workload.read_fraction) {
            bail!(
                "workload.read_fraction: must be between 0 and 1, got {}",
                workload.read_fraction
            );
        }
        if workload.keys_per_client == 0 || workload.keys_per_client > KEYS_PER_CLIENT_MAX {
            bail!("workload.keys_per_client: must be between 1 and {KEYS_PER_CLIENT_MAX}");
        }
        if workload.value_bytes < 16 || workload.value_bytes > crate::limits::VALUE_BYTES_MAX {
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
        Ok(Scenario {
            name: raw.name.clone(),
            duration_s: raw.duration_s,
            workload: Workload {
                clients_per_region: workload.clients_per_region,
                read_fraction: workload.read_fraction,
                keys_per_client: workload.keys_per_client,
                value_bytes: workload.value_bytes,
                read: level("read", &workload.read)?,
                write: level("write", &workload.write)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenarios_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim/steady.toml");
        let scenario = Scenario::load(&path).unwrap();
        assert_eq!(scenario.name, "steady");
    }

    #[test]
    fn errors_name_the_field() {
        let text = "name = \"x\"\nduration_s = 1\n[workload]\nclients_per_region = 1\nread_fraction = 1.5\nkeys_per_client = 1\nvalue_bytes = 64\n";
        let message = format!("{:#}", Scenario::parse(text).unwrap_err());
        assert!(message.contains("read_fraction"), "{message}");
        let text = text.replace(
            "read_fraction = 1.5",
            "read_fraction = 0.5\nwrite = \"most\"",
        );
        let message = format!("{:#}", Scenario::parse(&text).unwrap_err());
        assert!(
            message.contains("workload.write") && message.contains("most"),
            "{message}"
        );
        let text = text.replace("write = \"most\"", "colour = 1");
        assert!(format!("{:#}", Scenario::parse(&text).unwrap_err()).contains("colour"));
    }
}
