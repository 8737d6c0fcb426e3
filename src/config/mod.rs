//! Configuration in two steps: raw input (a TOML topology file and command-line flags)
//! is checked into a validated [`Settings`] that every other module trusts.
//!
//! Every rule that spans fields lives here (replicas per region against nodes, R and W
//! against N, a complete latency matrix), and every error names the field and the rule
//! broken. Nothing here opens a socket or starts a task.

use crate::coordinator::quorum::{Level, Requirement};
use crate::ids::{NodeId, Region};
use crate::limits;
use crate::membership::swim::SwimConfig;
use crate::storage::Durability;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

mod advertise;
pub mod file;
mod flags;
mod http;
mod resp;
mod session;
mod tls;
pub use advertise::{advertised, Advertise, AdvertiseError, Listener};
pub use flags::TuningFlags;
pub use http::{HttpFlags, HttpSettings};
pub use resp::{RespFlags, RespSettings};
pub use session::{ClassPolicy, SessionFlags, SessionSettings};
pub use tls::{EdgeTls, TlsSetupError, HTTP_ALPN};

/// What is wrong with a topology file or a flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read topology file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("topology file {path} is not valid TOML for a topology: {message}")]
    Parse { path: String, message: String },
    #[error("{field}: {rule}")]
    Invalid { field: String, rule: String },
}

fn invalid(field: impl Into<String>, rule: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        rule: rule.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    #[serde(default)]
    cluster: RawCluster,
    regions: Vec<RawRegion>,
    #[serde(default)]
    latency: RawLatency,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    partitions: Option<u32>,
    replicas_per_region: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    name: String,
    nodes: u32,
    replicas: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLatency {
    intra_region_rtt_ms: Option<f64>,
    jitter_ms: Option<f64>,
    #[serde(default)]
    rtt_ms: BTreeMap<String, f64>,
}

/// One region of a validated topology.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionSpec {
    pub name: Region,
    /// Node ids `<region>-1 ..= <region>-<nodes>`.
    pub nodes: Vec<NodeId>,
    pub replicas: u32,
}

/// Emulated network delays between regions.
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    pub intra_region_rtt_ms: f64,
    pub jitter_ms: f64,
    /// Round trip per unordered pair of distinct regions, keyed with the smaller name first.
    pub rtt_ms: BTreeMap<(Region, Region), f64>,
}

impl Latency {
    /// Round trip between two regions (symmetric).
    pub fn rtt_between(&self, a: &Region, b: &Region) -> f64 {
        if a == b {
            return self.intra_region_rtt_ms;
        }
        let key = if a < b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        self.rtt_ms.get(&key).copied().unwrap_or(0.0)
    }
}

/// A validated topology: regions, their nodes and replica counts, the latency matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub partitions: u32,
    pub regions: Vec<RegionSpec>,
    pub latency: Latency,
}

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, ConfigError> {
        let text = read_bounded(path, limits::TOPOLOGY_BYTES_MAX, "a topology file").map_err(
            |source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            },
        )?;
        Topology::parse(&text).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates topology text.
    pub fn parse(text: &str) -> Result<Topology, ConfigError> {
        let raw: RawTopology = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: String::new(),
            message: error.message().to_string(),
        })?;
        let partitions = raw.cluster.partitions.unwrap_or(limits::PARTITIONS_DEFAULT);
        if partitions == 0 || partitions > limits::PARTITIONS_MAX {
            return Err(invalid(
                "cluster.partitions",
                format!(
                    "must be between 1 and {}, got {partitions}",
                    limits::PARTITIONS_MAX
                ),
            ));
        }
        let regions = validate_regions(&raw)?;
        let latency = validate_latency(&raw.latency, &regions)?;
        Ok(Topology {
            partitions,
            regions,
            latency,
        })
    }

    pub fn region_of(&self, node: &NodeId) -> Option<&Region> {
        self.regions
            .iter()
            .find(|spec| spec.nodes.contains(node))
            .map(|spec| &spec.name)
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&NodeId, &Region)> {
        self.regions
            .iter()
            .flat_map(|spec| spec.nodes.iter().map(move |node| (node, &spec.name)))
    }

    /// N: replicas of every key, summed over regions.
    pub fn replicas_total(&self) -> u32 {
        self.regions.iter().map(|spec| spec.replicas).sum()
    }

    /// The ring of the topology's own nodes (before any join or leave).
    pub fn initial_ring(&self) -> Result<crate::ring::Ring, crate::ring::RingError> {
        let members = self
            .nodes()
            .map(|(id, region)| crate::ring::RingMember {
                id: id.clone(),
                region: region.clone(),
                weight: 1,
            })
            .collect();
        let config = crate::ring::RingConfig {
            partitions: self.partitions,
            replicas_per_region: self.replicas_per_region(),
        };
        crate::ring::Ring::new(members, config, 1)
    }

    /// A Q that keeps a join or leave within about 1.1 x the ideal share in every region,
    /// when the configured Q does not; `None` when it does. The ring caps each node at
    /// 1.05 x its share, and moves stay near the ideal only when that cap sits about 1.5
    /// sd of the rendezvous noise above the share: Q x k / (n - k) >= 900 for n nodes and
    /// k replicas (issue 25, measured at 100 nodes: Q = 16384 misses, 32768 holds). The
    /// answer is a power of two, at most what the order table allows for these nodes.
    pub fn recommended_partitions(&self) -> Option<u32> {
        let nodes: usize = self.regions.iter().map(|spec| spec.nodes.len()).sum();
        let table_allows = (limits::RING_ORDER_ENTRIES_MAX / nodes.max(1)) as u32;
        let ceiling = limits::PARTITIONS_MAX.min(table_allows);
        let needed = self
            .regions
            .iter()
            .filter(|spec| spec.nodes.len() > spec.replicas as usize && spec.replicas > 0)
            .map(|spec| {
                let spare = (spec.nodes.len() - spec.replicas as usize) as u64;
                (900 * spare).div_ceil(u64::from(spec.replicas))
            })
            .max()?;
        let wanted = u32::try_from(needed.next_power_of_two())
            .unwrap_or(u32::MAX)
            .min(1 << ceiling.ilog2().min(31));
        (wanted > self.partitions).then_some(wanted)
    }

    pub fn replicas_per_region(&self) -> BTreeMap<Region, u32> {
        self.regions
            .iter()
            .map(|spec| (spec.name.clone(), spec.replicas))
            .collect()
    }

    /// Applies `--replicas-per-region` and `--partitions` and checks the result again.
    pub fn with_overrides(
        mut self,
        replicas_per_region: Option<u32>,
        partitions: Option<u32>,
    ) -> Result<Topology, ConfigError> {
        if let Some(partitions) = partitions {
            if partitions == 0 || partitions > limits::PARTITIONS_MAX {
                return Err(invalid(
                    "--partitions",
                    format!(
                        "must be between 1 and {}, got {partitions}",
                        limits::PARTITIONS_MAX
                    ),
                ));
            }
            self.partitions = partitions;
        }
        if let Some(replicas) = replicas_per_region {
            for spec in &mut self.regions {
                check_replicas(
                    "--replicas-per-region",
                    &spec.name,
                    replicas,
                    spec.nodes.len(),
                )?;
                spec.replicas = replicas;
            }
        }
        Ok(self)
    }
}

fn check_replicas(
    field: &str,
    region: &Region,
    replicas: u32,
    nodes: usize,
) -> Result<(), ConfigError> {
    if replicas == 0 {
        return Err(invalid(
            field,
            format!("region {region} needs at least 1 replica"),
        ));
    }
    if replicas as usize > nodes {
        return Err(invalid(
            field,
            format!("region {region} has {nodes} nodes but {replicas} replicas per region were asked for; replicas per region may not exceed the nodes in that region"),
        ));
    }
    Ok(())
}

/// A file's text, refusing a file longer than `limit` bytes (read no further than
/// that; `what` names the kind of file in the error) or one that is not UTF-8.
fn read_bounded(path: &Path, limit: usize, what: &str) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("longer than {limit} bytes, the most {what} may hold"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn validate_regions(raw: &RawTopology) -> Result<Vec<RegionSpec>, ConfigError> {
    if raw.regions.is_empty() {
        return Err(invalid(
            "regions",
            "the topology needs at least one [[regions]] entry",
        ));
    }
    let default_replicas = raw
        .cluster
        .replicas_per_region
        .unwrap_or(limits::REPLICAS_PER_REGION_DEFAULT);
    let mut seen = BTreeSet::new();
    let mut regions = Vec::new();
    let mut nodes_total = 0usize;
    for (index, region) in raw.regions.iter().enumerate() {
        let field = format!("regions[{index}]");
        let name = Region::new(&region.name)
            .map_err(|error| invalid(format!("{field}.name"), error.to_string()))?;
        if !seen.insert(name.clone()) {
            return Err(invalid(
                format!("{field}.name"),
                format!("region {name} is listed twice"),
            ));
        }
        if region.nodes == 0 || region.nodes > limits::NODES_PER_REGION_MAX {
            return Err(invalid(
                format!("{field}.nodes"),
                format!(
                    "region {name} must have between 1 and {} nodes, got {}",
                    limits::NODES_PER_REGION_MAX,
                    region.nodes
                ),
            ));
        }
        // Checked before the node ids are made: a short file naming many large regions
        // must not make a node build millions of ids it could never place on a ring.
        nodes_total += region.nodes as usize;
        if nodes_total > limits::RING_MEMBERS_MAX {
            return Err(invalid(
                format!("{field}.nodes"),
                format!(
                    "the topology names more than {} nodes in all, the most a ring holds",
                    limits::RING_MEMBERS_MAX
                ),
            ));
        }
        let replicas = region.replicas.unwrap_or(default_replicas);
        let replicas_field = if region.replicas.is_some() {
            format!("{field}.replicas")
        } else {
            "cluster.replicas_per_region".to_string()
        };
        check_replicas(&replicas_field, &name, replicas, region.nodes as usize)?;
        let nodes = (1..=region.nodes)
            .map(|number| NodeId::new(&format!("{name}-{number}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| invalid(format!("{field}.name"), error.to_string()))?;
        regions.push(RegionSpec {
            name,
            nodes,
            replicas,
        });
    }
    Ok(regions)
}

fn validate_latency(raw: &RawLatency, regions: &[RegionSpec]) -> Result<Latency, ConfigError> {
    let check_ms = |field: &str, value: f64| {
        if !(0.0..=limits::RTT_MS_MAX).contains(&value) {
            Err(invalid(
                field,
                format!(
                    "must be between 0 and {} ms, got {value}",
                    limits::RTT_MS_MAX
                ),
            ))
        } else {
            Ok(value)
        }
    };
    let intra_region_rtt_ms = check_ms(
        "latency.intra_region_rtt_ms",
        raw.intra_region_rtt_ms.unwrap_or(0.5),
    )?;
    let jitter_ms = check_ms("latency.jitter_ms", raw.jitter_ms.unwrap_or(0.0))?;
    let known: BTreeSet<&Region> = regions.iter().map(|spec| &spec.name).collect();
    let mut rtt_ms = BTreeMap::new();
    for (pair, value) in &raw.rtt_ms {
        let field = format!("latency.rtt_ms.\"{pair}\"");
        let (a, b) = pair
            .split_once('/')
            .ok_or_else(|| invalid(&field, "a key must name two regions as \"a/b\""))?;
        let (a, b) = (Region(a.to_string()), Region(b.to_string()));
        for region in [&a, &b] {
            if !known.contains(region) {
                return Err(invalid(
                    &field,
                    format!("region {region} is not in the topology"),
                ));
            }
        }
        if a == b {
            return Err(invalid(
                &field,
                "a region's own round trip is latency.intra_region_rtt_ms",
            ));
        }
        let key = if a < b { (a, b) } else { (b, a) };
        if rtt_ms.insert(key, check_ms(&field, *value)?).is_some() {
            return Err(invalid(&field, "this pair of regions is given twice"));
        }
    }
    for (i, first) in regions.iter().enumerate() {
        for second in &regions[i + 1..] {
            let (a, b) = if first.name < second.name {
                (&first.name, &second.name)
            } else {
                (&second.name, &first.name)
            };
            if !rtt_ms.contains_key(&(a.clone(), b.clone())) {
                return Err(invalid(
                    "latency.rtt_ms",
                    format!("the latency matrix is missing the round trip between {a} and {b} (add \"{a}/{b}\" = <ms>)"),
                ));
            }
        }
    }
    Ok(Latency {
        intra_region_rtt_ms,
        jitter_ms,
        rtt_ms,
    })
}

/// Validated settings of a cluster: topology plus quorum defaults.
#[derive(Clone, Debug)]
pub struct Settings {
    pub topology: Topology,
    pub read: Level,
    pub write: Level,
    pub durability: Durability,
    pub request_timeout: Duration,
    /// Failure detector and gossip settings.
    pub swim: SwimConfig,
    /// Write hints to fallbacks for replicas that are down.
    pub sloppy: bool,
    pub hint_window: Duration,
    pub hint_replay_rate: u64,
    pub anti_entropy_rate: u64,
    pub tombstone_grace: Duration,
    pub session: SessionSettings,
    /// The client edge's timeouts and connection caps.
    pub http: HttpSettings,
    /// The RESP edge's timeouts and connection cap.
    pub resp: RespSettings,
    /// Non-fatal findings to print at start (e.g. R + W <= N).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Checks flags against the topology.
    pub fn new(topology: Topology, flags: &TuningFlags) -> Result<Settings, ConfigError> {
        let topology = topology.with_overrides(flags.replicas_per_region, flags.partitions)?;
        let n = topology.replicas_total();
        let multi_region = topology.regions.len() > 1;
        let read = flags
            .read
            .or(flags.r.map(Level::Count))
            .unwrap_or(Level::LocalQuorum);
        let default_write = if multi_region {
            Level::RegionSafe
        } else {
            Level::Quorum
        };
        let write = flags
            .write
            .or(flags.w.map(Level::Count))
            .unwrap_or(default_write);
        let field_of = |explicit_count: bool, name: &str| {
            if explicit_count {
                format!("--{}", &name[..1])
            } else {
                format!("--{name}")
            }
        };
        check_level(&topology, read, &field_of(flags.r.is_some(), "read"))?;
        check_level(&topology, write, &field_of(flags.w.is_some(), "write"))?;
        if read == Level::RegionSafe {
            return Err(invalid("--read", "region_safe is a write level; reads use local_quorum, quorum, each_quorum, one, all or a count"));
        }
        let mut warnings = Vec::new();
        if let (Some(r), Some(w)) = (flags.r, flags.w) {
            if r + w <= n {
                warnings.push(format!("R + W = {r} + {w} <= N = {n}: reads may miss acknowledged writes until repair reaches them"));
            }
        }
        if flags.durability == Some(Durability::Memory) {
            warnings.push("--durability none: writes are acknowledged before they reach the disk; W replicas losing power together lose the last ~500 ms of acknowledged writes".to_string());
        }
        let request_timeout_ms = flags
            .request_timeout_ms
            .unwrap_or(limits::REQUEST_TIMEOUT_MS_DEFAULT);
        if request_timeout_ms == 0 || request_timeout_ms > limits::REQUEST_TIMEOUT_MS_MAX {
            return Err(invalid(
                "--request-timeout-ms",
                format!(
                    "must be between 1 and {} ms",
                    limits::REQUEST_TIMEOUT_MS_MAX
                ),
            ));
        }
        let session = SessionSettings::new(
            &topology,
            &flags.session,
            !flags.strict_quorum,
            &mut warnings,
        )?;
        let http = HttpSettings::new(&flags.http)?;
        let resp = RespSettings::new(&flags.resp)?;
        Ok(Settings {
            session,
            http,
            resp,
            topology,
            read,
            write,
            durability: flags.durability.unwrap_or_default(),
            request_timeout: Duration::from_millis(request_timeout_ms),
            swim: swim_config(flags)?,
            sloppy: !flags.strict_quorum,
            tombstone_grace: flags
                .tombstone_grace
                .unwrap_or(Duration::from_millis(limits::TOMBSTONE_GRACE_MS_DEFAULT)),
            anti_entropy_rate: flags
                .anti_entropy_rate
                .unwrap_or(limits::ANTI_ENTROPY_BYTES_PER_S_DEFAULT),
            hint_window: flags
                .hint_window
                .unwrap_or(Duration::from_millis(limits::HINT_WINDOW_MS_DEFAULT)),
            hint_replay_rate: match flags.hint_replay_rate {
                Some(0) => {
                    return Err(invalid(
                        "--hint-replay-rate",
                        "must be at least 1 key per second",
                    ))
                }
                Some(rate) => rate,
                None => limits::HINT_REPLAY_RATE_DEFAULT,
            },
            warnings,
        })
    }
}

fn swim_config(flags: &TuningFlags) -> Result<SwimConfig, ConfigError> {
    let defaults = SwimConfig::default();
    let config = SwimConfig {
        probe_interval_ms: flags
            .probe_interval_ms
            .unwrap_or(defaults.probe_interval_ms),
        probe_timeout_ms: flags.probe_timeout_ms.unwrap_or(defaults.probe_timeout_ms),
        remote_probe_timeout_ms: flags
            .remote_probe_timeout_ms
            .unwrap_or(defaults.remote_probe_timeout_ms),
        indirect_probes: flags.indirect_probes.unwrap_or(defaults.indirect_probes),
        suspicion_multiplier: flags
            .suspicion_multiplier
            .unwrap_or(defaults.suspicion_multiplier),
        remote_suspicion_multiplier: flags
            .remote_suspicion_multiplier
            .unwrap_or(defaults.remote_suspicion_multiplier),
        ..defaults
    };
    config
        .validate()
        .map_err(|error| invalid("membership flags", error.to_string()))?;
    Ok(config)
}

/// A level must be satisfiable by the replica set of every key from every region.
pub fn check_level(topology: &Topology, level: Level, field: &str) -> Result<(), ConfigError> {
    let regions: Vec<Region> = topology
        .regions
        .iter()
        .flat_map(|spec| std::iter::repeat_n(spec.name.clone(), spec.replicas as usize))
        .collect();
    for spec in &topology.regions {
        Requirement::new(level, &regions, &spec.name).map_err(|error| {
            invalid(
                field,
                format!(
                    "{error} (N = {} over {} regions)",
                    regions.len(),
                    topology.regions.len()
                ),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
