//! `cartwheel node`: one node in the foreground until SIGINT, SIGTERM, a leave or a
//! duplicate id stops it. Turns flags and the cluster directory's files into
//! `NodeOptions`; what the node does is `node::start`'s.

use super::{settings, DEFAULT_TOPOLOGY};
use anyhow::{bail, Context, Result};
use cartwheel::cluster::{self, ReadyFile};
use cartwheel::config::{Settings, TuningFlags};
use cartwheel::ids::{NodeId, Region};
use cartwheel::node::{self, DataDir, NodeOptions, Seed};
use cartwheel::runtime::gossip::Exit;
use cartwheel::{limits, transport};
use std::net::SocketAddr;
use std::path::PathBuf;

/// File descriptors a node needs besides its client connections: the store's files,
/// the QUIC socket, logs.
const OPEN_FILES_SLACK: u64 = 256;

/// Every flag below may come from a config file instead (`--config`, `config::file`):
/// a later occurrence of a flag replaces an earlier one, so the command line, which
/// follows the file's flags, wins.
#[derive(clap::Args)]
#[command(args_override_self = true)]
pub struct NodeArgs {
    /// TOML file of flags: `key = value` per flag of this command, spelled as the flag
    /// (`replicas-per-region = 3`, or `replicas_per_region`); `true` turns a switch on,
    /// an array gives a list; relative paths are taken from the file's folder. Flags
    /// on the command line (or set by their environment variable) win over the file; an
    /// unknown key or a wrong value stops the node, naming the key.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// This node's id, as named by the topology (e.g. us-east-1), or a new one for a
    /// node that joins a running cluster (then --region is needed).
    #[arg(long)]
    id: String,
    /// Region of a node the topology does not name.
    #[arg(long)]
    region: Option<String>,
    /// Cluster directory holding tls/ (made by `cartwheel init`); data goes to DIR/data/ID.
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value = DEFAULT_TOPOLOGY)]
    topology: PathBuf,
    /// Data directory (default DIR/data/ID).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Keep data in memory only (lost when the node stops).
    #[arg(long, conflicts_with = "data")]
    memory: bool,
    /// HTTP API address to bind (0.0.0.0:PORT for every interface, which needs
    /// --advertise-http).
    #[arg(long, default_value = "127.0.0.1:0")]
    http: SocketAddr,
    /// HTTP address clients are handed (`/v1/ring`, `/v1/status`) and other nodes
    /// publish, when it is not the bound one (a NAT, or --http 0.0.0.0:PORT); port 0
    /// means the bound port. Default: the bound address.
    #[arg(long, value_name = "IP:PORT")]
    advertise_http: Option<SocketAddr>,
    /// RESP (Redis protocol) address, or `off` for none. A non-loopback address needs
    /// --resp-password-file; 0.0.0.0:PORT needs --advertise-resp too.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:0")]
    resp: String,
    /// RESP address this node's `/v1/status` reports, when it is not the bound one;
    /// port 0 means the bound port. Default: the bound address.
    #[arg(long, value_name = "IP:PORT")]
    advertise_resp: Option<SocketAddr>,
    /// File whose first line is the password RESP clients must give (`AUTH`, `HELLO
    /// AUTH`); without it the RESP listener binds only a loopback address.
    #[arg(long, value_name = "PATH")]
    resp_password_file: Option<PathBuf>,
    /// PEM certificate chain for TLS on the RESP listener (clients use `rediss://`).
    #[arg(long, value_name = "PATH", requires = "resp_tls_key")]
    resp_tls_cert: Option<PathBuf>,
    /// PEM private key of --resp-tls-cert.
    #[arg(long, value_name = "PATH", requires = "resp_tls_cert")]
    resp_tls_key: Option<PathBuf>,
    /// PEM certificate chain for TLS on the HTTP listener (clients use `https://`).
    #[arg(long, value_name = "PATH", requires = "http_tls_key")]
    http_tls_cert: Option<PathBuf>,
    /// PEM private key of --http-tls-cert.
    #[arg(long, value_name = "PATH", requires = "http_tls_cert")]
    http_tls_key: Option<PathBuf>,
    /// QUIC (UDP) address to bind for other nodes (0.0.0.0:PORT for every interface,
    /// which needs --advertise-quic).
    #[arg(long, default_value = "127.0.0.1:0")]
    quic: SocketAddr,
    /// QUIC address the other nodes dial, gossiped to them, when it is not the bound
    /// one (a NAT, or --quic 0.0.0.0:PORT); port 0 means the bound port. Peers check
    /// this node's certificate by its node id, not by this address. Default: the bound
    /// address.
    #[arg(long, value_name = "IP:PORT")]
    advertise_quic: Option<SocketAddr>,
    /// Members to learn the cluster from, as NODE@IP:PORT (their advertised QUIC
    /// address), comma separated.
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<Seed>,
    /// Write a JSON file with this node's addresses (the advertised ones) once it
    /// listens.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    #[command(flatten)]
    tuning: TuningFlags,
}

impl NodeArgs {
    /// The node id as given (checked in `options`).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A node's runtime: `--threads` workers, or one per core. One worker is tokio's
/// current-thread scheduler: the thread that waits for I/O also runs the tasks.
pub fn runtime(args: &NodeArgs) -> Result<tokio::runtime::Runtime> {
    let mut builder = match args.tuning.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(usize::from(threads));
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    Ok(builder.enable_all().build()?)
}

pub async fn run(args: NodeArgs) -> Result<()> {
    if let Some(config) = &args.config {
        tracing::info!(config = %config.display(), "flags read from a config file");
    }
    let options = options(&args)?;
    let id = options.id.clone();
    let mut running = node::start(options).await?;
    if let Some(path) = &args.ready_file {
        let ready = ReadyFile {
            id: running.id.clone(),
            region: running.region.clone(),
            http: running.http_addr,
            quic: running.quic_addr,
            resp: running.resp_addr,
            pid: std::process::id(),
        };
        cluster::write_atomically(path, &serde_json::to_vec(&ready)?)?;
    }
    let resp = running
        .resp_addr
        .map_or(String::new(), |addr| format!(", RESP on {addr}"));
    tracing::info!(
        "node {} ({}) serving HTTP on {}{resp} and QUIC on {}",
        running.id,
        running.region,
        running.http_addr,
        running.quic_addr
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let exit = tokio::select! {
        _ = tokio::signal::ctrl_c() => Exit::Running,
        _ = terminate.recv() => Exit::Running,
        exit = running.exited() => exit,
    };
    tracing::info!(?exit, "stopping");
    running.shutdown().await;
    match exit {
        Exit::DuplicateId { address } => {
            bail!("node id {id} is already used by a live member at {address}; pick another id")
        }
        Exit::Left => {
            tracing::info!("node {id} left the cluster");
            Ok(())
        }
        Exit::Running => Ok(()),
    }
}

/// The node's options from its flags and the files of its cluster directory; a flag
/// or file that is wrong stops the node here, naming it.
fn options(args: &NodeArgs) -> Result<NodeOptions> {
    let id = NodeId::new(&args.id).map_err(|error| anyhow::anyhow!("--id: {error}"))?;
    let settings = settings(&args.topology, &args.tuning)?;
    let region = args
        .region
        .as_deref()
        .map(Region::new)
        .transpose()
        .map_err(|error| anyhow::anyhow!("--region: {error}"))?;
    if settings.topology.region_of(&id).is_none() && region.is_none() {
        let known: Vec<String> = settings
            .topology
            .nodes()
            .map(|(node, _)| node.to_string())
            .collect();
        bail!(
            "--id: node {id} is not in {} (its nodes are {}); a new node needs --region",
            args.topology.display(),
            known.join(", ")
        );
    }
    if let Some(region) = region.as_ref().or(settings.topology.region_of(&id)) {
        super::logs::add_process_field("region", region.as_str());
    }
    warn_if_few_open_files(&settings);
    // A secret file that is present but empty, short or malformed stops the node here
    // with the file's name; only a missing file turns its feature off.
    let admin_key = cluster::load_admin_key(&args.dir)?;
    let session_secrets = cluster::secrets::load_session_secrets_if_any(&args.dir)?;
    if session_secrets.is_none() {
        tracing::warn!(
            "no session secret in {} (run `cartwheel init`); the session API is off, \
             and kv answers carry no causal context (writes sending one are refused)",
            args.dir.join("tls").display()
        );
    }
    let tls_dir = args.dir.join("tls");
    let tls = transport::NodeTls::load(&tls_dir, &id).with_context(|| {
        format!(
            "no certificate for node {id} in {} (run `cartwheel init --dir {}`)",
            tls_dir.display(),
            args.dir.display()
        )
    })?;
    let data = if args.memory {
        DataDir::Memory
    } else {
        DataDir::Disk(
            args.data
                .clone()
                .unwrap_or_else(|| args.dir.join("data").join(id.as_str())),
        )
    };
    Ok(NodeOptions {
        id,
        region,
        chaos: args.tuning.chaos,
        admin_key,
        session_keys: session_secrets,
        settings,
        tls,
        data,
        cache_bytes: args
            .tuning
            .cache_mb
            .map_or(limits::STORAGE_CACHE_BYTES_DEFAULT, |mb| mb * 1024 * 1024),
        http_bind: args.http,
        quic_bind: args.quic,
        advertise: cartwheel::config::Advertise {
            quic: args.advertise_quic,
            http: args.advertise_http,
            resp: args.advertise_resp,
        },
        seeds: args.seeds.clone(),
        resp_bind: resp_bind(&args.resp)?,
        resp_password: resp_password(args.resp_password_file.as_deref())?,
        resp_tls: edge_tls(&args.resp_tls_cert, &args.resp_tls_key, &[], "resp")?,
        http_tls: edge_tls(
            &args.http_tls_cert,
            &args.http_tls_key,
            cartwheel::config::HTTP_ALPN,
            "http",
        )?,
    })
}

/// TLS for the `listener` (`resp`, `http`) listener from its two flags (clap makes
/// sure both or neither are given).
fn edge_tls(
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
    alpn: &[&[u8]],
    listener: &str,
) -> Result<Option<cartwheel::config::EdgeTls>> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    let tls = cartwheel::config::EdgeTls::from_files(cert, key, alpn)
        .with_context(|| format!("--{listener}-tls-cert / --{listener}-tls-key"))?;
    Ok(Some(tls))
}

/// `--resp`: an address, or `off`.
fn resp_bind(text: &str) -> Result<Option<SocketAddr>> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let addr = text
        .parse()
        .map_err(|error| anyhow::anyhow!("--resp {text}: {error} (an address, or off)"))?;
    Ok(Some(addr))
}

/// `--resp-password-file`: its first line.
fn resp_password(path: Option<&std::path::Path>) -> Result<Option<cartwheel::resp::Password>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--resp-password-file: cannot read {}", path.display()))?;
    let password = cartwheel::resp::password_from_file_text(&text)
        .with_context(|| format!("--resp-password-file {}", path.display()))?;
    Ok(Some(password))
}

/// Every client connection takes a file descriptor; past the limit accepts wait.
fn warn_if_few_open_files(settings: &Settings) {
    let connections = settings.http.connections_max as u64;
    match node::raise_open_files_limit() {
        Some(open_files) if open_files < connections + OPEN_FILES_SLACK => tracing::warn!(
            "this process may open {open_files} files, fewer than \
             --http-connections-max ({connections}) plus {OPEN_FILES_SLACK} for the store \
             and sockets; connections past it wait (raise `ulimit -n`)"
        ),
        _ => {}
    }
}
