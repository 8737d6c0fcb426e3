//! `cartwheel sim`: starts a topology as local processes, runs a scenario's workload
//! from clients in every region, checks that every acknowledged write reads back, and
//! prints a report. Exits non-zero when an invariant fails; stops every process it
//! started, also on Ctrl-C.

pub mod report;
pub mod scenario;
pub mod workload;

use crate::cluster::{Lifetime, LocalCluster};
use crate::config::{Settings, TuningFlags};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use report::{render, summary};
use scenario::Scenario;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use workload::{merge_tables, run_client, verify, ClientSpec};

/// What `cartwheel sim` was asked to do.
pub struct SimOptions {
    pub topology: PathBuf,
    pub scenario: PathBuf,
    pub duration: Option<Duration>,
    pub json: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    pub keep: bool,
    pub seed: Option<u64>,
    pub flags: TuningFlags,
}

/// Runs a simulation; `Ok(true)` when every invariant held.
pub async fn run(options: SimOptions) -> Result<bool> {
    let topology = crate::config::Topology::load(&options.topology)?;
    let settings = Settings::new(topology, &options.flags)?;
    for warning in &settings.warnings {
        eprintln!("warning: {warning}");
    }
    let scenario = Scenario::load(&options.scenario)?;
    let duration = options
        .duration
        .unwrap_or(Duration::from_secs_f64(scenario.duration_s));
    let seed = options.seed.unwrap_or_else(rand::random);
    let dir = match &options.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("cartwheel-sim-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let exe = std::env::current_exe().context("cannot find the cartwheel executable")?;
    println!(
        "sim: scenario {} on {} ({} nodes), {:.0} s, seed {seed}, cluster dir {}",
        scenario.name,
        options.topology.display(),
        settings.topology.nodes().count(),
        duration.as_secs_f64(),
        dir.display()
    );
    let mut cluster = LocalCluster::start(
        &exe,
        &options.topology,
        &dir,
        &settings,
        &options.flags,
        Lifetime::Attached,
    )
    .await?;
    println!("sim: cluster ready");
    let outcome = tokio::select! {
        outcome = drive(&cluster, &settings, &scenario, duration, seed) => Some(outcome),
        _ = tokio::signal::ctrl_c() => None,
    };
    cluster.stop().await;
    if !options.keep && options.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let Some(outcome) = outcome else {
        eprintln!("sim: interrupted; every node was stopped");
        std::process::exit(130);
    };
    let (table, verdict) = outcome?;
    println!("\n{}", render(&table));
    println!(
        "invariants: lost_acked_writes = {}, unreadable_keys = {} (of {} keys checked)",
        verdict.lost_acked_writes, verdict.unreadable_keys, verdict.keys_checked
    );
    for example in &verdict.examples {
        println!("  {example}");
    }
    if let Some(path) = &options.json {
        let value = summary(
            &scenario.name,
            seed,
            duration.as_secs_f64(),
            &table,
            &verdict,
        );
        std::fs::write(path, serde_json::to_vec_pretty(&value)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(verdict.lost_acked_writes == 0 && verdict.unreadable_keys == 0)
}

async fn drive(
    cluster: &LocalCluster,
    settings: &Settings,
    scenario: &Scenario,
    duration: Duration,
    seed: u64,
) -> Result<(report::Table, report::Verdict)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()?;
    let (stop, stopped) = watch::channel(false);
    let ops = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for spec in &settings.topology.regions {
        let nodes: Vec<_> = cluster
            .nodes
            .iter()
            .filter(|node| node.region == spec.name)
            .map(|node| node.http)
            .collect();
        for index in 0..scenario.workload.clients_per_region {
            let client = ClientSpec {
                region: spec.name.to_string(),
                index,
                nodes: nodes.clone(),
                keys: scenario.workload.keys_per_client,
                read_fraction: scenario.workload.read_fraction,
                value_bytes: scenario.workload.value_bytes,
                read: scenario.workload.read,
                write: scenario.workload.write,
                seed: seed ^ (clients.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            clients.push(tokio::spawn(run_client(
                client,
                http.clone(),
                stopped.clone(),
                ops.clone(),
            )));
        }
    }
    let bar = ProgressBar::new(duration.as_secs().max(1));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} s  {msg}").expect("valid template"),
    );
    let started = tokio::time::Instant::now();
    while started.elapsed() < duration {
        tokio::time::sleep(
            Duration::from_millis(250).min(duration.saturating_sub(started.elapsed())),
        )
        .await;
        bar.set_position(started.elapsed().as_secs());
        bar.set_message(format!("{} ops", ops.load(Ordering::Relaxed)));
    }
    let _ = stop.send(true);
    bar.finish_and_clear();
    let mut results = Vec::new();
    for client in clients {
        results.push(client.await.context("a workload client failed")?);
    }
    println!(
        "sim: workload done ({} ops); checking every acknowledged write",
        ops.load(Ordering::Relaxed)
    );
    let table = merge_tables(&results);
    let verdict = verify(&http, &results).await;
    Ok((table, verdict))
}
