//! `cartwheel bench` as a command: its flags and the run that loads a target, prints a
//! progress bar and the JSON summary. The measuring is the bench module's; this only
//! turns flags into its configuration and its summary into output.

use anyhow::{Context, Result};
use cartwheel::bench::{self, systems};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// `cartwheel` (the cluster in --dir), `redis://127.0.0.1:PORT` or
    /// `etcd://127.0.0.1:PORT[,127.0.0.1:PORT...]`.
    #[arg(long, default_value = "cartwheel")]
    target: systems::TargetSpec,
    /// Cluster directory of a cartwheel target.
    #[arg(long, default_value = ".cartwheel")]
    dir: PathBuf,
    /// Workload: kv (get/put, --read-ratio), session-read (90 % session reads, 10 % cart
    /// adds), cart-write (50 % / 50 %) or login-storm (login, validate, logout).
    #[arg(long, default_value = "kv")]
    workload: bench::Workload,
    /// Share of reads of the kv workload (the rest are writes).
    #[arg(long, default_value_t = 0.5)]
    read_ratio: f64,
    /// Keys, all written once before timing (session-read, cart-write: sessions, all
    /// logged in before timing; login-storm: users).
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    #[arg(long, default_value_t = 2048)]
    value_bytes: usize,
    /// Closed loop: concurrent clients; open loop: most requests in flight.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Open loop at this many requests per second (default: closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// `uniform` or `zipf:THETA`.
    #[arg(long, default_value = "uniform")]
    distribution: bench::KeyDistribution,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Cartwheel read / write quorums as replica counts (default: the cluster's).
    #[arg(long = "r")]
    r: Option<u32>,
    #[arg(long = "w")]
    w: Option<u32>,
    /// Cartwheel kv requests: `token` sends each key to one of its replicas (from the
    /// ring map a node serves), `spread` to every node in turn.
    #[arg(long, value_enum, default_value = "token")]
    routing: systems::Routing,
    /// Cartwheel requests: `pipeline` carries every client's requests on one connection
    /// per node (`/v1/pipeline`), as the Redis client does; `http` uses one HTTP/1.1
    /// request at a time per connection, a connection per client.
    #[arg(long, value_enum, default_value = "pipeline")]
    protocol: systems::Protocol,
    /// Redis: send `WAIT N 0` after each write and count it done when N replicas have it.
    #[arg(long)]
    redis_wait: Option<u32>,
    /// Redis: connections to open, each request on the next (1: one multiplexed
    /// connection for every client, as a client library keeps).
    #[arg(long, default_value_t = 1)]
    redis_connections: usize,
    #[arg(long)]
    seed: Option<u64>,
    /// Write the JSON summary here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let config = bench::BenchConfig {
        workload: args.workload,
        read_ratio: args.read_ratio,
        keys: args.keys,
        value_bytes: args.value_bytes,
        clients: args.clients,
        rate: args.rate,
        warmup: args.warmup,
        duration: args.duration,
        distribution: args.distribution,
        seed: args.seed.unwrap_or_else(rand::random),
    };
    config.check()?;
    let levels = systems::Levels {
        read: args.r,
        write: args.w,
    };
    let target = systems::Target::connect(
        &args.target,
        Some(&args.dir),
        systems::RedisClient {
            wait_replicas: args.redis_wait,
            connections: args.redis_connections,
        },
        args.clients,
        systems::CartwheelClient {
            routing: args.routing,
            protocol: args.protocol,
        },
    )
    .await?
    .with_levels(levels);
    let target = std::sync::Arc::new(target);
    eprintln!("bench: {}: loading {} keys", config.workload, config.keys);
    let loaded = bench::load(&target, &config).await?;
    let total = config.warmup + config.duration;
    let bar = indicatif::ProgressBar::new(total.as_secs().max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} s {msg}")
            .expect("valid template"),
    );
    let ticker = {
        let bar = bar.clone();
        let warmup = config.warmup;
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let elapsed = started.elapsed();
                bar.set_position(elapsed.as_secs());
                bar.set_message(if elapsed < warmup {
                    "warm-up"
                } else {
                    "measuring"
                });
            }
        })
    };
    let failovers = target.failovers();
    // The nodes' cost is sampled when the measured part starts (the load above and the
    // warm-up left out) and again when the run ends.
    let cost_dir = match &args.target {
        systems::TargetSpec::Cartwheel { .. } => Some(args.dir.clone()),
        _ => None,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let cost_before = cost_dir.clone().map(|dir| {
        let http = http.clone();
        let warmup = config.warmup;
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            bench::cost::sample(&dir, &http).await
        })
    });
    let recorder = bench::run(target, &config, loaded).await?;
    ticker.abort();
    bar.finish_and_clear();
    let mut summary = recorder.summary(config.duration);
    if let (Some(dir), Some(before)) = (&cost_dir, cost_before) {
        let after = bench::cost::sample(dir, &http).await;
        if let (Ok(Some(before)), Some(after)) = (before.await, after) {
            summary["nodes"] = after.per_op(&before, recorder.operations());
        }
    }
    summary["target"] = serde_json::json!(args.target.describe(&args.dir));
    summary["mode"] = serde_json::json!(if config.rate.is_some() {
        "open"
    } else {
        "closed"
    });
    summary["seed"] = serde_json::json!(config.seed);
    if let Some(failovers) = failovers {
        let failovers = failovers.load(std::sync::atomic::Ordering::Relaxed);
        summary["failovers"] = serde_json::json!(failovers);
    }
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
