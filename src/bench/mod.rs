//! `cartwheel bench`: a load generator with HDR histograms, against a cartwheel cluster,
//! a Redis server or an etcd cluster, with the same workload and the same measurement
//! for each.
//!
//! Closed loop: `clients` tasks each send one request after the other. Open loop: one
//! step every 1/`rate` seconds whatever the answers, each timed from when it was due,
//! so a stall shows up in the latency instead of slowing the sender down (no
//! coordinated omission); at most `clients` steps are in flight, and a step that waits
//! for a slot is still timed from its due time. Keys are loaded (or sessions logged
//! in) before timing so reads hit; a warm-up runs before the histograms start. Every
//! operation has its own histogram (`workload::Op`); a login-storm step is three
//! operations (login, validate, logout), the later two timed from their own start.

pub mod cost;
pub mod systems;
pub mod workload;

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use systems::{Session, Target};
use tokio::time::Instant;
pub use workload::{Op, Step, Workload};

/// Largest latency the histograms hold (one minute, in microseconds).
pub const LATENCY_US_MAX: u64 = 60_000_000;
/// Most keys a bench may use.
pub const BENCH_KEYS_MAX: u64 = 100_000_000;
/// Most sessions a session workload logs in before timing (one per key); each held
/// token takes about 150 bytes of the bench's memory.
pub const BENCH_SESSIONS_MAX: u64 = 1_000_000;
/// Largest session payload (`--value-bytes` of a session workload): half of a cartwheel
/// session document's limit, leaving room for the cart the run adds.
pub const SESSION_PAYLOAD_BYTES_MAX: usize = crate::limits::SESSION_DOC_BYTES_MAX / 2;
/// Most clients (closed loop) or requests in flight (open loop).
pub const BENCH_CLIENTS_MAX: usize = 4096;

/// How keys are picked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyDistribution {
    Uniform,
    /// Zipfian with exponent theta (> 0): a few keys take most requests.
    Zipf(f64),
}

impl std::str::FromStr for KeyDistribution {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "uniform" {
            return Ok(KeyDistribution::Uniform);
        }
        let theta = text
            .strip_prefix("zipf:")
            .and_then(|value| value.parse::<f64>().ok())
            .filter(|theta| *theta > 0.0 && theta.is_finite())
            .ok_or_else(|| format!("{text}: expected uniform or zipf:THETA (THETA > 0)"))?;
        Ok(KeyDistribution::Zipf(theta))
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub workload: Workload,
    /// Share of reads of the `kv` workload (the session workloads have fixed mixes).
    pub read_ratio: f64,
    pub keys: u64,
    pub value_bytes: usize,
    pub clients: usize,
    /// Requests per second (open loop); `None`: closed loop.
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub distribution: KeyDistribution,
    pub seed: u64,
}

impl BenchConfig {
    pub fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.read_ratio) {
            bail!("--read-ratio: must be between 0 and 1");
        }
        if self.keys == 0 || self.keys > BENCH_KEYS_MAX {
            bail!("--keys: must be between 1 and {BENCH_KEYS_MAX}");
        }
        if self.workload.needs_sessions() && self.keys > BENCH_SESSIONS_MAX {
            bail!(
                "--keys: {} makes one session per key, at most {BENCH_SESSIONS_MAX}",
                self.workload
            );
        }
        if self.workload != Workload::Kv && self.value_bytes > SESSION_PAYLOAD_BYTES_MAX {
            bail!(
                "--value-bytes: the session payload of {} is at most {SESSION_PAYLOAD_BYTES_MAX}",
                self.workload
            );
        }
        if self.clients == 0 || self.clients > BENCH_CLIENTS_MAX {
            bail!("--clients: must be between 1 and {BENCH_CLIENTS_MAX}");
        }
        if self.value_bytes == 0 || self.value_bytes > crate::limits::VALUE_BYTES_MAX {
            bail!(
                "--value-bytes: must be between 1 and {}",
                crate::limits::VALUE_BYTES_MAX
            );
        }
        if let Some(rate) = self.rate {
            if !(rate > 0.0 && rate.is_finite()) {
                bail!("--rate: must be above 0");
            }
        }
        if self.duration.is_zero() {
            bail!("--duration: must be above 0");
        }
        Ok(())
    }
}

/// Latencies of one operation.
pub struct OpHistogram {
    pub latency_us: Histogram<u64>,
    pub errors: u64,
}

impl OpHistogram {
    fn new() -> OpHistogram {
        OpHistogram {
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("valid histogram bounds"),
            errors: 0,
        }
    }

    fn record(&mut self, micros: u64, ok: bool) {
        if ok {
            let _ = self.latency_us.record(micros.clamp(1, LATENCY_US_MAX));
        } else {
            self.errors += 1;
        }
    }

    fn ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.latency_us.len(),
            "errors": self.errors,
            "p50": self.ms(0.5),
            "p99": self.ms(0.99),
            "p999": self.ms(0.999),
            "max": self.latency_us.max() as f64 / 1000.0,
        })
    }
}

/// Histograms of a run: one per operation of its workload, and all together.
pub struct Recorder {
    workload: Workload,
    ops: Vec<OpHistogram>,
    pub all: OpHistogram,
}

impl Recorder {
    fn new(workload: Workload) -> Recorder {
        Recorder {
            workload,
            ops: Op::ALL.iter().map(|_| OpHistogram::new()).collect(),
            all: OpHistogram::new(),
        }
    }

    fn record(&mut self, op: Op, micros: u64, ok: bool) {
        self.ops[op.index()].record(micros, ok);
        self.all.record(micros, ok);
    }

    /// Operations measured (answered, errors not counted).
    pub fn operations(&self) -> u64 {
        self.all.latency_us.len()
    }

    /// The histogram of one operation.
    pub fn op(&self, op: Op) -> &OpHistogram {
        &self.ops[op.index()]
    }

    /// The JSON summary: throughput (operations per second, every operation counted),
    /// errors and latency overall and per operation of the workload.
    pub fn summary(&self, measured: Duration) -> serde_json::Value {
        let done = self.all.latency_us.len();
        let mut latency = serde_json::json!({
            "p50": self.all.ms(0.5),
            "p99": self.all.ms(0.99),
            "p999": self.all.ms(0.999),
        });
        for op in self.workload.ops() {
            latency[op.name()] = self.op(*op).json();
        }
        serde_json::json!({
            "workload": self.workload.name(),
            "throughput_ops_s": done as f64 / measured.as_secs_f64().max(1e-9),
            "errors": self.all.errors,
            "latency_ms": latency,
        })
    }
}

fn key_name(index: u64) -> String {
    format!("bench-{index}")
}

fn value(size: usize) -> Vec<u8> {
    vec![b'v'; size]
}

/// Picks key indexes per the distribution (zipf ranks start at 1).
struct KeyPicker {
    keys: u64,
    zipf: Option<Zipf<f64>>,
}

impl KeyPicker {
    fn new(config: &BenchConfig) -> Result<KeyPicker> {
        let zipf = match config.distribution {
            KeyDistribution::Uniform => None,
            KeyDistribution::Zipf(theta) => Some(Zipf::new(config.keys, theta)?),
        };
        Ok(KeyPicker {
            keys: config.keys,
            zipf,
        })
    }

    fn pick(&self, rng: &mut StdRng) -> u64 {
        match &self.zipf {
            Some(zipf) => (zipf.sample(rng) as u64)
                .saturating_sub(1)
                .min(self.keys - 1),
            None => rng.gen_range(0..self.keys),
        }
    }
}

/// What `load` made before timing: the sessions of a session workload, by key index.
pub struct Loaded {
    sessions: Vec<Session>,
}

impl Loaded {
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }
}

/// Before timing: writes every key once (kv), or logs one session in per key with a
/// payload of `value_bytes` (session-read, cart-write); `clients` at a time.
pub async fn load(target: &Arc<Target>, config: &BenchConfig) -> Result<Loaded> {
    use futures::StreamExt;
    let body = value(config.value_bytes);
    let mut loaded = Loaded {
        sessions: Vec::new(),
    };
    match config.workload {
        Workload::Kv => {
            let failures: usize = futures::stream::iter(0..config.keys)
                .map(|index| {
                    let target = target.clone();
                    let body = body.clone();
                    async move { target.put(&key_name(index), &body).await.is_err() as usize }
                })
                .buffer_unordered(config.clients)
                .fold(0, |sum, failed| async move { sum + failed })
                .await;
            if failures > 0 {
                bail!("loading the keys failed for {failures} of {}", config.keys);
            }
        }
        Workload::SessionRead | Workload::CartWrite => {
            // In key order (`buffered`), so key i is session i.
            let mut made = futures::stream::iter(0..config.keys)
                .map(|index| {
                    let target = target.clone();
                    let body = body.clone();
                    async move {
                        target
                            .create_session(&workload::user_name(index), &body)
                            .await
                    }
                })
                .buffered(config.clients);
            while let Some(session) = made.next().await {
                match session {
                    Ok(session) => loaded.sessions.push(session),
                    Err(error) => bail!(
                        "logging session {} of {} in failed: {error:#}",
                        loaded.sessions.len(),
                        config.keys
                    ),
                }
            }
        }
        Workload::LoginStorm => {}
    }
    Ok(loaded)
}

/// A timed operation: which, how long in µs, whether it succeeded.
type Timed = (Op, u64, bool);

/// What a step needs besides the target: the sessions and the value written.
struct StepContext {
    target: Arc<Target>,
    sessions: Vec<Session>,
    body: Vec<u8>,
}

impl StepContext {
    fn session(&self, key: u64) -> Result<&Session> {
        usize::try_from(key)
            .ok()
            .and_then(|index| self.sessions.get(index))
            .ok_or_else(|| anyhow::anyhow!("no session for key {key}"))
    }

    /// Runs one step on key `key`, the first operation timed from `due`; returns the
    /// timed operations (at most three).
    async fn execute(&self, step: Step, key: u64, due: Instant) -> [Option<Timed>; 3] {
        let target = &self.target;
        let since = |start: Instant| start.elapsed().as_micros() as u64;
        let single = |op: Op, ok: bool| [Some((op, since(due), ok)), None, None];
        match step {
            Step::Read => single(Op::Read, target.get(&key_name(key)).await.is_ok()),
            Step::Write => single(
                Op::Write,
                target.put(&key_name(key), &self.body).await.is_ok(),
            ),
            Step::SessionRead => {
                let ok = match self.session(key) {
                    Ok(session) => target.session_read(session).await.is_ok(),
                    Err(_) => false,
                };
                single(Op::Read, ok)
            }
            Step::CartAdd { sku } => {
                let ok = match self.session(key) {
                    Ok(session) => target
                        .cart_add(session, &workload::sku_name(sku))
                        .await
                        .is_ok(),
                    Err(_) => false,
                };
                single(Op::CartAdd, ok)
            }
            Step::LoginStorm => {
                let login = target.login(&workload::user_name(key), &self.body).await;
                let login_timed = Some((Op::Login, since(due), login.is_ok()));
                let Ok(session) = login else {
                    return [login_timed, None, None];
                };
                let start = Instant::now();
                let valid = target.validate(&session).await.is_ok();
                let validate_timed = Some((Op::Validate, since(start), valid));
                let start = Instant::now();
                let out = target.logout(&session).await.is_ok();
                [
                    login_timed,
                    validate_timed,
                    Some((Op::Logout, since(start), out)),
                ]
            }
        }
    }
}

/// Runs warm-up then the measured period; returns the histograms of the measured part.
pub async fn run(target: Arc<Target>, config: &BenchConfig, loaded: Loaded) -> Result<Recorder> {
    config.check()?;
    if config.workload.needs_sessions() && loaded.sessions.len() as u64 != config.keys {
        bail!(
            "{} needs {} sessions, {} were logged in",
            config.workload,
            config.keys,
            loaded.sessions.len()
        );
    }
    let picker = Arc::new(KeyPicker::new(config)?);
    let recorder = Arc::new(Mutex::new(Recorder::new(config.workload)));
    let context = Arc::new(StepContext {
        target,
        sessions: loaded.sessions,
        body: value(config.value_bytes),
    });
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let window = (measure_from, end);
    match config.rate {
        None => closed_loop(&context, config, &picker, &recorder, window).await,
        Some(rate) => open_loop(&context, config, &picker, &recorder, window, rate).await,
    }
    drop(context);
    let recorder = Arc::try_unwrap(recorder)
        .map_err(|_| anyhow::anyhow!("a bench task outlived the run"))?
        .into_inner()
        .expect("recorder lock");
    Ok(recorder)
}

fn record_all(recorder: &Mutex<Recorder>, timed: [Option<Timed>; 3]) {
    let mut recorder = recorder.lock().expect("recorder lock");
    for (op, micros, ok) in timed.into_iter().flatten() {
        recorder.record(op, micros, ok);
    }
}

async fn closed_loop(
    context: &Arc<StepContext>,
    config: &BenchConfig,
    picker: &Arc<KeyPicker>,
    recorder: &Arc<Mutex<Recorder>>,
    (measure_from, end): (Instant, Instant),
) {
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..config.clients {
        let (context, picker, recorder) = (context.clone(), picker.clone(), recorder.clone());
        let mut rng =
            StdRng::seed_from_u64(config.seed ^ (client as u64).wrapping_mul(0x9E37_79B9));
        let (workload, read_ratio) = (config.workload, config.read_ratio);
        tasks.spawn(async move {
            while Instant::now() < end {
                let step = workload.pick(&mut rng, read_ratio);
                let key = picker.pick(&mut rng);
                let due = Instant::now();
                let timed = context.execute(step, key, due).await;
                if due >= measure_from && Instant::now() <= end {
                    record_all(&recorder, timed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn open_loop(
    context: &Arc<StepContext>,
    config: &BenchConfig,
    picker: &Arc<KeyPicker>,
    recorder: &Arc<Mutex<Recorder>>,
    (measure_from, end): (Instant, Instant),
    rate: f64,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(config.clients));
    let mut rng = StdRng::seed_from_u64(config.seed);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = tokio::task::JoinSet::new();
    let mut due = Instant::now();
    while due < end {
        tokio::time::sleep_until(due).await;
        let step = config.workload.pick(&mut rng, config.read_ratio);
        let key = picker.pick(&mut rng);
        // Waiting for a slot counts against the step: it is timed from `due`.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (context, recorder) = (context.clone(), recorder.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let timed = context.execute(step, key, due).await;
            if due >= measure_from {
                record_all(&recorder, timed);
            }
        });
        while tasks.try_join_next().is_some() {}
        due += interval;
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests;
