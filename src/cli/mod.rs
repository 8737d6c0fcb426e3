//! The `cartwheel` command line: the subcommands and their flags, one file each. This
//! module only parses and dispatches; each file turns its flags into a call on the
//! library and its result into output and an exit code. No protocol logic lives here.
//! A build without the `tools` feature has `init` and `node` only.

#[cfg(feature = "tools")]
mod abuse;
#[cfg(feature = "tools")]
mod bench;
#[cfg(feature = "tools")]
mod cluster;
mod init;
pub mod logs;
#[cfg(feature = "tools")]
mod measure;
mod node;
#[cfg(feature = "tools")]
mod sim;
#[cfg(feature = "tools")]
mod status;

use anyhow::Result;
use cartwheel::config::{Settings, Topology, TuningFlags};
use clap::{CommandFactory, Parser, Subcommand};
use logs::LogFormat;
use std::path::Path;

/// The topology every subcommand reads unless given `--topology`.
pub const DEFAULT_TOPOLOGY: &str = "regions/default.toml";

#[derive(Parser)]
#[command(
    name = "cartwheel",
    version,
    about = "A leaderless, multi-region session store"
)]
pub struct Cli {
    /// How log lines are written to stderr: `text`, or `json` (one object per line; a
    /// node's carry its id and region). The nodes `cluster up` and `sim` start inherit it.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        default_value = "text",
        env = logs::LOG_FORMAT_VARIABLE
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process; boxing the flags would only complicate clap's flatten.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Create a cluster's certificate authority, secrets and one certificate per
    /// topology node; or write node bundles from them; or add a session key.
    Init(init::InitArgs),
    /// Run one node in the foreground.
    Node(node::NodeArgs),
    #[cfg(feature = "tools")]
    /// Start and stop local clusters (one process per node on 127.0.0.1).
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    #[cfg(feature = "tools")]
    /// Show the members and state of a running cluster.
    Status(status::StatusArgs),
    #[cfg(feature = "tools")]
    /// Load a running cluster (or a Redis server) and report throughput and latency.
    Bench(bench::BenchArgs),
    #[cfg(feature = "tools")]
    /// Measure the failure detector on a local cluster (figures quoted in the README).
    Measure {
        #[command(subcommand)]
        what: measure::Measurement,
    },
    #[cfg(feature = "tools")]
    /// Attack a running local cluster as a hostile client or peer would; one row per
    /// attack with what was measured (exits 1 if any attack got through).
    Abuse(abuse::AbuseArgs),
    #[cfg(feature = "tools")]
    /// Start a cluster, run a scenario's workload, check that nothing acknowledged was lost.
    Sim(sim::SimArgs),
}

impl Cli {
    /// The command line, the flags of a `--config` file placed before the subcommand's
    /// own (`config::file`); clap's errors and `--help` end the process as `parse` does.
    pub fn parse_with_config_file() -> Result<Cli> {
        let argv = cartwheel::config::file::expand(Cli::command(), std::env::args_os().collect())?;
        Ok(Cli::parse_from(argv))
    }

    /// The node id of `cartwheel node`, which its JSON log lines carry (see `logs`).
    pub fn node_id(&self) -> Option<&str> {
        match &self.command {
            Command::Node(args) => Some(args.id()),
            _ => None,
        }
    }

    /// The runtime the subcommand runs on: a node's is sized by its `--threads`, every
    /// other command takes tokio's default.
    pub fn runtime(&self) -> Result<tokio::runtime::Runtime> {
        if let Command::Node(args) = &self.command {
            node::runtime(args)
        } else {
            Ok(tokio::runtime::Runtime::new()?)
        }
    }

    /// Runs the subcommand to its end; `Err` exits 1 with the error printed.
    pub async fn run(self) -> Result<()> {
        match self.command {
            Command::Init(args) => init::run(args),
            Command::Node(args) => node::run(args).await,
            #[cfg(feature = "tools")]
            Command::Cluster { command } => cluster::run(command).await,
            #[cfg(feature = "tools")]
            Command::Status(args) => status::run(args).await,
            #[cfg(feature = "tools")]
            Command::Bench(args) => bench::run(args).await,
            #[cfg(feature = "tools")]
            Command::Measure { what } => measure::run(what).await,
            #[cfg(feature = "tools")]
            Command::Abuse(args) => abuse::run(args).await,
            #[cfg(feature = "tools")]
            Command::Sim(args) => sim::run(args).await,
        }
    }
}

/// The validated settings of `topology` with `tuning`; warnings go to stderr.
fn settings(topology: &Path, tuning: &TuningFlags) -> Result<Settings> {
    let settings = Settings::new(Topology::load(topology)?, tuning)?;
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    Ok(settings)
}
