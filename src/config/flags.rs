//! The tuning flags shared by every command that starts nodes, and how they travel to
//! child processes.

use crate::coordinator::quorum::Level;
use crate::storage::Durability;
use std::time::Duration;

/// Cluster-wide tuning flags, shared by `node`, `cluster up` and `sim`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct TuningFlags {
    /// Replicas of every key in each region (overrides the topology file).
    #[arg(long, value_name = "COUNT")]
    pub replicas_per_region: Option<u32>,
    /// Number of fixed partitions Q (overrides the topology file).
    #[arg(long, value_name = "COUNT")]
    pub partitions: Option<u32>,
    /// Default read level: one, local_quorum, quorum, each_quorum, all, or a count.
    #[arg(long, value_name = "LEVEL", conflicts_with = "r")]
    pub read: Option<Level>,
    /// Default write level: one, local_quorum, quorum, each_quorum, all, region_safe, or a count.
    #[arg(long, value_name = "LEVEL", conflicts_with = "w")]
    pub write: Option<Level>,
    /// Default read quorum as a raw replica count (same as --read COUNT).
    #[arg(long = "r", value_name = "COUNT")]
    pub r: Option<u32>,
    /// Default write quorum as a raw replica count (same as --write COUNT).
    #[arg(long = "w", value_name = "COUNT")]
    pub w: Option<u32>,
    /// When a write is durable: `flush` (fsync every write), `group:<ms>` (group
    /// commit: under load a flush waits until <ms> after the previous one, otherwise
    /// flushes run back to back) or `none` (memory only). Default group:2.
    #[arg(long, value_name = "POLICY")]
    pub durability: Option<Durability>,
    /// Storage cache of each node in MiB (default 256): what bounds a node's memory,
    /// whatever the data size.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub cache_mb: Option<u64>,
    /// Worker threads of each node (default: one per core; `cluster up` and `sim`,
    /// which start every node on this machine, share the cores among them). With 1,
    /// the node runs on tokio's current-thread scheduler.
    #[arg(long, value_name = "COUNT", value_parser = clap::value_parser!(u16).range(1..=crate::limits::NODE_THREADS_MAX))]
    pub threads: Option<u16>,
    /// How long a coordinator waits for replicas before answering with a timeout.
    #[arg(long, value_name = "MS")]
    pub request_timeout_ms: Option<u64>,
    /// Strict quorums: never write to fallbacks when a replica is down (no hints).
    #[arg(long)]
    pub strict_quorum: bool,
    /// Hints older than this are dropped (anti-entropy repairs instead), e.g. 3h.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub hint_window: Option<Duration>,
    /// Hinted writes a node replays per second at most.
    #[arg(long, value_name = "KEYS")]
    pub hint_replay_rate: Option<u64>,
    /// A tombstone is collected this long after every replica was seen holding it, e.g. 1h.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub tombstone_grace: Option<Duration>,
    /// Bytes per second a node spends on anti-entropy at most (0 turns it off).
    #[arg(long, value_name = "BYTES")]
    pub anti_entropy_rate: Option<u64>,
    /// Serve the fault-injection admin endpoint on every node (chaos runs only).
    #[arg(long)]
    pub chaos: bool,
    /// SWIM: how often each node probes one member (default 1000).
    #[arg(long, value_name = "MS")]
    pub probe_interval_ms: Option<u64>,
    /// SWIM: how long a probe of a member in the same region waits for its ack (default 300).
    #[arg(long, value_name = "MS")]
    pub probe_timeout_ms: Option<u64>,
    /// SWIM: the same for a member in another region (default 700).
    #[arg(long, value_name = "MS")]
    pub remote_probe_timeout_ms: Option<u64>,
    /// SWIM: members asked to probe a silent member indirectly (default 3).
    #[arg(long, value_name = "K")]
    pub indirect_probes: Option<usize>,
    /// SWIM: suspicion timeout multiplier for the same region (default 4).
    #[arg(long, value_name = "FACTOR")]
    pub suspicion_multiplier: Option<u32>,
    /// SWIM: suspicion timeout multiplier for members in other regions (default 6).
    #[arg(long, value_name = "FACTOR")]
    pub remote_suspicion_multiplier: Option<u32>,
    #[command(flatten)]
    pub session: super::SessionFlags,
    #[command(flatten)]
    pub http: super::HttpFlags,
    #[command(flatten)]
    pub resp: super::RespFlags,
}

/// Appends `--name value` to `args` when there is a value.
pub(super) fn push_flag(args: &mut Vec<String>, name: &str, value: Option<String>) {
    if let Some(value) = value {
        args.push(format!("--{name}"));
        args.push(value);
    }
}

impl TuningFlags {
    /// The flags as command-line arguments, to pass the same tuning to child processes.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut push = |name: &str, value: Option<String>| push_flag(&mut args, name, value);
        let text = |value: Option<&dyn ToString>| value.map(|v| v.to_string());
        push(
            "replicas-per-region",
            text(self.replicas_per_region.as_ref().map(|v| v as _)),
        );
        push("partitions", text(self.partitions.as_ref().map(|v| v as _)));
        push("read", text(self.read.as_ref().map(|v| v as _)));
        push("write", text(self.write.as_ref().map(|v| v as _)));
        push("r", text(self.r.as_ref().map(|v| v as _)));
        push("w", text(self.w.as_ref().map(|v| v as _)));
        push("durability", text(self.durability.as_ref().map(|v| v as _)));
        push("threads", text(self.threads.as_ref().map(|v| v as _)));
        push("cache-mb", text(self.cache_mb.as_ref().map(|v| v as _)));
        push(
            "request-timeout-ms",
            text(self.request_timeout_ms.as_ref().map(|v| v as _)),
        );
        push(
            "probe-interval-ms",
            text(self.probe_interval_ms.as_ref().map(|v| v as _)),
        );
        push(
            "probe-timeout-ms",
            text(self.probe_timeout_ms.as_ref().map(|v| v as _)),
        );
        push(
            "remote-probe-timeout-ms",
            text(self.remote_probe_timeout_ms.as_ref().map(|v| v as _)),
        );
        push(
            "indirect-probes",
            text(self.indirect_probes.as_ref().map(|v| v as _)),
        );
        push(
            "suspicion-multiplier",
            text(self.suspicion_multiplier.as_ref().map(|v| v as _)),
        );
        push(
            "remote-suspicion-multiplier",
            text(self.remote_suspicion_multiplier.as_ref().map(|v| v as _)),
        );
        push(
            "hint-window",
            self.hint_window.map(|v| format!("{}ms", v.as_millis())),
        );
        push(
            "hint-replay-rate",
            text(self.hint_replay_rate.as_ref().map(|v| v as _)),
        );
        push(
            "tombstone-grace",
            self.tombstone_grace.map(|v| format!("{}ms", v.as_millis())),
        );
        push(
            "anti-entropy-rate",
            text(self.anti_entropy_rate.as_ref().map(|v| v as _)),
        );
        for (flag, on) in [
            ("--strict-quorum", self.strict_quorum),
            ("--chaos", self.chaos),
        ] {
            if on {
                args.push(flag.to_string());
            }
        }
        args.extend(self.session.to_args());
        args.extend(self.http.to_args());
        args.extend(self.resp.to_args());
        args
    }
}
