//! `cartwheel sim`: starts a topology as local processes, runs a scenario's workload
//! from clients in every region, checks that every acknowledged write reads back, and
//! prints a report. Exits non-zero when an invariant fails; stops every process it
//! started, also on Ctrl-C.

pub mod abuse;
pub mod clients;
pub mod converge;
pub mod driver;
pub mod dst;
pub mod faults;
pub mod feedwatch;
pub mod inject;
pub mod live;
pub mod measure;
pub mod report;
pub mod resp;
pub mod routes;
pub mod scenario;
pub mod sessions;
pub mod timeline;
pub mod workload;

use crate::cluster::{Lifetime, LocalCluster};
use crate::config::{Settings, TuningFlags};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use report::{render, summary};
use routes::Routes;
use scenario::{FaultAction, Scenario, WorkloadKind};
use std::path::PathBuf;
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
    pub svg: Option<PathBuf>,
    /// Write every operation of the kv workload here, one JSON object per line.
    pub history: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    pub keep: bool,
    pub seed: Option<u64>,
    pub flags: TuningFlags,
}

/// Runs a simulation; `Ok(true)` when every invariant held.
pub async fn run(options: SimOptions) -> Result<bool> {
    let scenario = Scenario::load(&options.scenario)?;
    let flags = node_flags(&options, &scenario)?;
    let topology = crate::config::Topology::load(&options.topology)?;
    let settings = Settings::new(topology, &flags)?;
    for warning in &settings.warnings {
        eprintln!("warning: {warning}");
    }
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
        &flags,
        Lifetime::Attached,
    )
    .await?;
    println!("sim: cluster ready");
    converge::wait_guards_local(&reqwest::Client::new(), &cluster.nodes).await;
    let outcome = tokio::select! {
        outcome = drive(&mut cluster, &settings, &scenario, duration, seed, options.history.as_deref()) => Some(outcome),
        _ = tokio::signal::ctrl_c() => None,
    };
    cluster.stop().await;
    // A temporary directory goes once the run passed; a failed run keeps it, so the node
    // logs and stores behind the failure can be read.
    let temporary = !options.keep && options.dir.is_none();
    let clean_up = |failed: bool| match (temporary, failed) {
        (false, _) => {}
        (true, false) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        (true, true) => println!(
            "sim: kept {} (node logs and data) for the failed run",
            dir.display()
        ),
    };
    let Some(outcome) = outcome else {
        clean_up(false);
        eprintln!("sim: interrupted; every node was stopped");
        std::process::exit(130);
    };
    if outcome.is_err() {
        clean_up(true);
    }
    let Outcome {
        table,
        verdict,
        fault_log,
        moved,
        convergence,
        sessions: session_verdict,
        mut timeline,
        kv_ran,
        session_availability,
        driver,
        resp: resp_verdict,
        resp_availability,
        feed,
    } = outcome?;
    let availability = timeline::availability(&timeline);
    if let Some(path) = &options.svg {
        timeline.converged_s = timeline
            .heal_s
            .zip(convergence)
            .map(|(heal, took)| heal + took.as_secs_f64());
        std::fs::write(path, timeline::render(&timeline))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    for line in &fault_log {
        println!("fault {line}");
    }
    println!("\n{}", render(&table));
    if kv_ran {
        println!(
            "invariants: lost_acked_writes = {}, resurrected_deletes = {}, unreadable_keys = {}, acked_reads_not_found = {} (of {} keys checked)",
            verdict.lost_acked_writes, verdict.resurrected_deletes, verdict.unreadable_keys, verdict.acked_reads_not_found, verdict.keys_checked
        );
    }
    if let Some(session_verdict) = &session_verdict {
        sessions::print(session_verdict);
    }
    if let Some(resp_verdict) = &resp_verdict {
        resp::print(resp_verdict);
    }
    if let Some(feed) = &feed {
        feedwatch::print(feed);
    }
    print_driver(&driver);
    match convergence {
        Some(took) => println!(
            "converged: every replica of every partition agrees, {:.1} s after the last fault",
            took.as_secs_f64()
        ),
        None if !scenario.expect.judges("converged") => {
            println!("convergence not judged in this scenario")
        }
        None => println!(
            "NOT converged within {} s after the last fault",
            converge::CONVERGENCE_TIMEOUT_S
        ),
    }
    if let Some(moved) = &moved {
        println!(
            "ownership: {} ring changes moved {} partition replicas ({:.4} of all {}); placement's expected minimum for these changes is {} ({:.2} x)",
            moved.changes, moved.moved, moved.fraction, moved.total, moved.expected, moved.moved as f64 / moved.expected.max(1) as f64
        );
    }
    for example in &verdict.examples {
        println!("  {example}");
    }
    let mut value = summary(
        &scenario.name,
        seed,
        duration.as_secs_f64(),
        &table,
        &verdict,
    );
    value["invariants"]["converged"] = serde_json::json!(convergence.is_some());
    value["convergence_s"] = serde_json::json!(convergence.map(|took| took.as_secs_f64()));
    if let Some(session_verdict) = &session_verdict {
        sessions::add_to_summary(&mut value, session_verdict);
    }
    if let Some(resp_verdict) = &resp_verdict {
        resp::add_to_summary(&mut value, resp_verdict);
        value["resp_availability_during_faults"] = serde_json::json!(resp_availability);
    }
    if let Some(feed) = &feed {
        value["invariants"]["feed_changes_missed"] = serde_json::json!(feed.missed);
        value["feed"] = serde_json::json!(feed);
    }
    if let Some(moved) = &moved {
        value["ownership"] = serde_json::json!({ "ring_changes": moved.changes, "partition_replicas_moved": moved.moved, "fraction": moved.fraction, "expected_minimum": moved.expected });
    }
    let misses = scenario.expect.misses(&value["invariants"]);
    value["expected"] = serde_json::json!({ "met": misses.is_empty(), "misses": misses });
    if misses.is_empty() && scenario.expect.expects_violation() {
        println!(
            "expected outcome met: the checker caught the violation this unsafe setting allows"
        );
    }
    for miss in &misses {
        println!("UNEXPECTED: {miss}");
    }
    value["availability_during_faults"] = serde_json::json!(availability);
    if session_verdict.is_some() {
        value["session_availability_during_faults"] = serde_json::json!(session_availability);
    }
    value["driver"] = driver;
    println!(
        "{}",
        report::row(&value, scenario.expect.expects_violation(), &misses)
    );
    clean_up(!misses.is_empty());
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&value)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(misses.is_empty())
}

/// One line of what the clients' drivers did: per region, attempts after a request's
/// first, nodes held down and moved off, and requests that failed every attempt.
fn print_driver(driver: &serde_json::Value) {
    let Some(regions) = driver.as_object() else {
        return;
    };
    let parts: Vec<String> = regions
        .iter()
        .map(|(region, counts)| {
            format!(
                "{region} {} retries, {} failovers, {} exhausted, {} speculations",
                counts["retries"], counts["failovers"], counts["exhausted"], counts["speculations"]
            )
        })
        .collect();
    println!("driver: {}", parts.join("; "));
}

/// The node flags of a run: the scenario's own, or the command line's (not both), with
/// `--chaos` added when the schedule injects faults through the nodes.
fn node_flags(options: &SimOptions, scenario: &Scenario) -> Result<TuningFlags> {
    let mut flags = match &scenario.flags {
        Some(own) => {
            let given = options.flags.to_args();
            if !given.is_empty() {
                anyhow::bail!(
                    "scenario {} sets its own node flags; drop {} from the command line",
                    scenario.name,
                    given.join(" ")
                );
            }
            own.clone()
        }
        None => options.flags.clone(),
    };
    if scenario.faults.iter().any(|step| step.action.needs_chaos()) {
        flags.chaos = true;
    }
    Ok(flags)
}

/// What a run produced.
struct Outcome {
    /// Time from the last fault until every replica agreed, if they did.
    convergence: Option<Duration>,
    table: report::Table,
    verdict: report::Verdict,
    fault_log: Vec<String>,
    moved: Option<Moved>,
    /// What the session checks found, for a session workload.
    sessions: Option<sessions::SessionVerdict>,
    /// The run over time (kv workload), for `--svg`.
    timeline: timeline::Timeline,
    /// Whether kv clients ran (a session workload runs none).
    kv_ran: bool,
    /// Share of session operations that met their expectation in each region while a
    /// fault was on (empty without session clients).
    session_availability: std::collections::BTreeMap<String, f64>,
    /// Each region's driver: retries, failovers, requests that failed every attempt.
    driver: serde_json::Value,
    /// What the RESP checks found, when RESP clients ran.
    resp: Option<resp::RespVerdict>,
    /// Share of RESP operations answered in each region while a fault was on.
    resp_availability: std::collections::BTreeMap<String, f64>,
    /// What each region's change-feed subscriber heard of the kv writes.
    feed: Option<feedwatch::FeedVerdict>,
}

/// Partition replicas that changed owner during the run.
struct Moved {
    moved: u64,
    total: u64,
    fraction: f64,
    /// What placement moves at least, on average, for the same changes.
    expected: u64,
    changes: usize,
}

/// Sums what the nodes fetched, when the schedule changed the ring, next to what
/// rendezvous placement moves at least on average: a join into a region of n nodes
/// moves k/(n+1) of that region's Q·k partition replicas to the new node, a leave the
/// leaver's k/n share.
async fn ownership_moves(
    cluster: &LocalCluster,
    http: &reqwest::Client,
    scenario: &Scenario,
    settings: &Settings,
) -> Option<Moved> {
    let mut nodes: std::collections::BTreeMap<String, f64> = settings
        .topology
        .regions
        .iter()
        .map(|spec| (spec.name.to_string(), spec.nodes.len() as f64))
        .collect();
    let replicas = settings.topology.replicas_per_region();
    let q = f64::from(settings.topology.partitions);
    let mut expected = 0.0;
    let mut changes = 0;
    for step in &scenario.faults {
        let (region, joins) = match &step.action {
            FaultAction::Join { region } => (region.clone(), true),
            FaultAction::Leave { node } => (
                settings
                    .topology
                    .region_of(&crate::ids::NodeId(node.clone()))
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
                false,
            ),
            _ => continue,
        };
        let k = replicas
            .get(&crate::ids::Region(region.clone()))
            .copied()
            .unwrap_or(0) as f64;
        let n = nodes.entry(region).or_insert(0.0);
        if joins {
            expected += q * k / (*n + 1.0);
            *n += 1.0;
        } else {
            expected += q * k / n.max(1.0);
            *n -= 1.0;
        }
        changes += 1;
    }
    if changes == 0 {
        return None;
    }
    let mut moved = 0;
    let mut total = 0;
    for node in &cluster.nodes {
        if let Ok(status) = crate::cluster::fetch_status(http, node.http).await {
            moved += status.partitions_fetched;
            total = u64::from(status.partitions) * u64::from(status.replicas_total);
        }
    }
    Some(Moved {
        moved,
        total,
        fraction: moved as f64 / total.max(1) as f64,
        expected: expected as u64,
        changes,
    })
}

/// The topology's region names, in its order.
fn region_names(settings: &Settings) -> Vec<String> {
    let regions = settings.topology.regions.iter();
    regions.map(|spec| spec.name.to_string()).collect()
}

/// Starts the kv workload's clients in every region.
fn spawn_kv_clients(
    settings: &Settings,
    scenario: &Scenario,
    shared: &sessions::Shared,
    seed: u64,
) -> Vec<tokio::task::JoinHandle<workload::ClientResult>> {
    let mut clients = Vec::new();
    for spec in &settings.topology.regions {
        for index in 0..scenario.workload.clients_per_region {
            let client = ClientSpec {
                region: spec.name.to_string(),
                index,
                driver: shared
                    .drivers
                    .of(spec.name.as_str())
                    .expect("every region has a driver")
                    .clone(),
                faulted: shared.faulted.clone(),
                keys: scenario.workload.keys_per_client,
                read_fraction: scenario.workload.read_fraction,
                value_bytes: scenario.workload.value_bytes,
                read: scenario.workload.read,
                write: scenario.workload.write,
                delete_fraction: scenario.workload.delete_fraction,
                epoch: shared.epoch,
                seed: seed ^ (clients.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            clients.push(tokio::spawn(run_client(
                client,
                shared.stop.clone(),
                shared.live.clone(),
            )));
        }
    }
    clients
}

async fn drive(
    cluster: &mut LocalCluster,
    settings: &Settings,
    scenario: &Scenario,
    duration: Duration,
    seed: u64,
    history: Option<&std::path::Path>,
) -> Result<Outcome> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()?;
    let (stop, stopped) = watch::channel(false);
    let routes = Routes::of(cluster);
    let faulted = Arc::new(report::FaultsOn::default());
    let regions = region_names(settings);
    let live = Arc::new(live::LiveCounts::new(&regions));
    let drivers = driver::Drivers::start(&regions, &routes).await?;
    let shared = sessions::Shared {
        http: http.clone(),
        routes: routes.clone(),
        drivers: Arc::new(drivers),
        faulted: faulted.clone(),
        stop: stopped.clone(),
        live: live.clone(),
        epoch: std::time::Instant::now(),
        regions: Arc::new(regions),
    };
    let (clients, session_clients) = match &scenario.workload.kind {
        WorkloadKind::Kv(beside) => (
            spawn_kv_clients(settings, scenario, &shared, seed),
            match beside {
                // Seeded apart from the kv clients, so adding them changes no kv choice.
                Some(beside) => sessions::spawn(
                    beside.clients_per_region,
                    &beside.mix,
                    &shared,
                    seed.rotate_left(17),
                ),
                None => Vec::new(),
            },
        ),
        WorkloadKind::Sessions(mix) => {
            let per_region = scenario.workload.clients_per_region;
            (Vec::new(), sessions::spawn(per_region, mix, &shared, seed))
        }
    };
    // Each region's subscriber of the change feed, for the kv clients' writes.
    let watchers = (!clients.is_empty()).then(|| feedwatch::spawn(&http, &routes, &shared.regions));
    // Seeded apart from the other clients, so adding them changes no other choice.
    let resp_clients = match &scenario.resp {
        Some(mix) => resp::spawn(mix, &shared, seed.rotate_left(29)),
        None => Vec::new(),
    };
    let bar = ProgressBar::new(duration.as_secs().max(1));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} s  {msg}").expect("valid template"),
    );
    // Fault times and the timeline share the clients' time zero.
    let started = shared.epoch;
    let progress = async {
        let mut shown = (started, live.snapshot());
        while started.elapsed() < duration {
            tokio::time::sleep(
                Duration::from_millis(250).min(duration.saturating_sub(started.elapsed())),
            )
            .await;
            bar.set_position(started.elapsed().as_secs());
            bar.set_message(format!("{} ops", live.total()));
            if shown.0.elapsed() >= live::LIVE_INTERVAL {
                let now = (std::time::Instant::now(), live.snapshot());
                let lines = live::progress_lines(
                    &shown.1,
                    &now.1,
                    now.0.duration_since(shown.0).as_secs_f64(),
                    started.elapsed().as_secs_f64(),
                    faulted.in_force().as_deref(),
                );
                for line in lines {
                    // A hidden bar (output not a terminal) prints nothing of its own.
                    match bar.is_hidden() {
                        true => println!("{line}"),
                        false => bar.println(line),
                    }
                }
                shown = now;
            }
        }
    };
    let (_, fault_log) = tokio::join!(
        progress,
        faults::run(cluster, &scenario.faults, &routes, started, &faulted)
    );
    let _ = stop.send(true);
    bar.finish_and_clear();
    let mut results = Vec::new();
    for client in clients {
        results.push(client.await.context("a workload client failed")?);
    }
    let session_results = clients::join_all(session_clients, "session").await?;
    let resp_results = clients::join_all(resp_clients, "RESP").await?;
    let fault_log = fault_log?;
    let lines = fault_log.lines.clone();
    // The heal: every replica must end with the same data. Timed from the last fault.
    let healed_at = fault_log.healed_at.unwrap_or_else(std::time::Instant::now);
    let convergence = if scenario.expect.judges("converged") {
        converge::wait_converged(&http, &cluster.nodes, healed_at).await
    } else {
        None
    };
    println!(
        "sim: workload done ({} ops); checking every acknowledged write",
        live.total()
    );
    let kv_samples = results.iter().flat_map(|result| {
        result.samples.iter().map(|sample| timeline::Sample {
            region: result.region.clone(),
            start_s: sample.start_s,
            latency_ms: sample.latency_ms,
            ok: sample.ok,
        })
    });
    let timeline = timeline_of(
        scenario,
        settings,
        kv_samples.collect(),
        &fault_log,
        shared.epoch,
    );
    let session_samples = sessions::samples(&session_results, &shared.regions);
    let session_availability = timeline::availability(&timeline_of(
        scenario,
        settings,
        session_samples,
        &fault_log,
        shared.epoch,
    ));
    let resp_samples = resp::samples(&resp_results, &shared.regions);
    let resp_availability = timeline::availability(&timeline_of(
        scenario,
        settings,
        resp_samples,
        &fault_log,
        shared.epoch,
    ));
    if let Some(path) = history {
        write_history(path, &results)?;
    }
    let mut table = merge_tables(&results);
    let verdict = verify(&http, &results, &routes).await;
    let feed = match watchers {
        Some(watchers) => Some(watchers.finish(&results).await),
        None => None,
    };
    let session_verdict = sessions::check(&shared, &session_results, &mut table).await;
    let resp_verdict = resp::check(&shared, &resp_results, &mut table).await;
    let moved = ownership_moves(cluster, &http, scenario, settings).await;
    let kv_ran = !results.is_empty();
    Ok(Outcome {
        kv_ran,
        session_availability,
        driver: shared.drivers.summary(),
        table,
        verdict,
        fault_log: lines,
        moved,
        convergence,
        sessions: session_verdict,
        timeline,
        resp: resp_verdict,
        resp_availability,
        feed,
    })
}

/// Writes the recorded operations as JSON lines: start and end (s since the run
/// began), client region, node, request, key and outcome.
fn write_history(path: &std::path::Path, results: &[workload::ClientResult]) -> Result<()> {
    use std::io::Write;
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for result in results {
        for sample in &result.samples {
            let line = serde_json::json!({
                "start_s": sample.start_s,
                "end_s": sample.start_s + sample.latency_ms / 1000.0,
                "region": result.region,
                "node": sample.node.to_string(),
                "op": sample.op,
                "key": sample.key,
                "ok": sample.ok,
            });
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The run's operations per region and second, with the fault windows.
fn timeline_of(
    scenario: &Scenario,
    settings: &Settings,
    samples: Vec<timeline::Sample>,
    fault_log: &faults::FaultLog,
    epoch: std::time::Instant,
) -> timeline::Timeline {
    let faults = fault_log
        .windows
        .iter()
        .map(|(start_s, end_s, label)| timeline::FaultWindow {
            start_s: *start_s,
            end_s: *end_s,
            label: label.clone(),
        })
        .collect();
    timeline::Timeline {
        title: format!("{}: throughput, errors and p99 per region", scenario.name),
        series: timeline::bucket(&samples, 1.0, &region_names(settings)),
        faults,
        heal_s: fault_log
            .healed_at
            .map(|at| at.saturating_duration_since(epoch).as_secs_f64()),
        converged_s: None,
    }
}
