//! `cartwheel bench`: a load generator with HDR histograms, against a cartwheel cluster
//! or a Redis server, with the same workload and the same measurement for both.
//!
//! Closed loop: `clients` tasks each send one request after the other. Open loop: one
//! request every 1/`rate` seconds whatever the answers, each timed from when it was
//! due, so a stall shows up in the latency instead of slowing the sender down (no
//! coordinated omission); at most `clients` requests are in flight, and a request that
//! waits for a slot is still timed from its due time. Keys are loaded before timing so
//! reads hit; a warm-up runs before the histograms start.

pub mod target;

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use target::Target;
use tokio::time::Instant;

/// Largest latency the histograms hold (one minute, in microseconds).
pub const LATENCY_US_MAX: u64 = 60_000_000;
/// Most keys a bench may use.
pub const BENCH_KEYS_MAX: u64 = 100_000_000;
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

/// Histograms of a run: reads, writes, and both together.
pub struct Recorder {
    pub read: OpHistogram,
    pub write: OpHistogram,
    pub all: OpHistogram,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            read: OpHistogram::new(),
            write: OpHistogram::new(),
            all: OpHistogram::new(),
        }
    }

    fn record(&mut self, read: bool, micros: u64, ok: bool) {
        let op = if read {
            &mut self.read
        } else {
            &mut self.write
        };
        op.record(micros, ok);
        self.all.record(micros, ok);
    }

    /// The JSON summary: throughput, errors and latency overall and per operation.
    pub fn summary(&self, measured: Duration) -> serde_json::Value {
        let done = self.all.latency_us.len();
        serde_json::json!({
            "throughput_ops_s": done as f64 / measured.as_secs_f64().max(1e-9),
            "errors": self.all.errors,
            "latency_ms": {
                "p50": self.all.ms(0.5),
                "p99": self.all.ms(0.99),
                "p999": self.all.ms(0.999),
                "read": self.read.json(),
                "write": self.write.json(),
            },
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

/// Writes every key once, `clients` at a time, before timing starts.
pub async fn load(target: &Arc<Target>, config: &BenchConfig) -> Result<()> {
    use futures::StreamExt;
    let body = value(config.value_bytes);
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
    Ok(())
}

/// One request: a read or a write of a picked key; returns (read?, µs, ok).
async fn one(
    target: &Target,
    read: bool,
    key: u64,
    body: &[u8],
    due: Instant,
) -> (bool, u64, bool) {
    let name = key_name(key);
    let ok = if read {
        target.get(&name).await.is_ok()
    } else {
        target.put(&name, body).await.is_ok()
    };
    (read, due.elapsed().as_micros() as u64, ok)
}

/// Runs warm-up then the measured period; returns the histograms of the measured part.
pub async fn run(target: Arc<Target>, config: &BenchConfig) -> Result<Recorder> {
    config.check()?;
    let picker = Arc::new(KeyPicker::new(config)?);
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    match config.rate {
        None => closed_loop(&target, config, &picker, &recorder, measure_from, end).await,
        Some(rate) => open_loop(&target, config, &picker, &recorder, measure_from, end, rate).await,
    }
    let recorder = Arc::try_unwrap(recorder)
        .map_err(|_| anyhow::anyhow!("a bench task outlived the run"))?
        .into_inner()
        .expect("recorder lock");
    Ok(recorder)
}

async fn closed_loop(
    target: &Arc<Target>,
    config: &BenchConfig,
    picker: &Arc<KeyPicker>,
    recorder: &Arc<Mutex<Recorder>>,
    measure_from: Instant,
    end: Instant,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..config.clients {
        let (target, picker, recorder) = (target.clone(), picker.clone(), recorder.clone());
        let mut rng =
            StdRng::seed_from_u64(config.seed ^ (client as u64).wrapping_mul(0x9E37_79B9));
        let body = value(config.value_bytes);
        let read_ratio = config.read_ratio;
        tasks.spawn(async move {
            while Instant::now() < end {
                let read = rng.gen_bool(read_ratio);
                let key = picker.pick(&mut rng);
                let due = Instant::now();
                let (read, micros, ok) = one(&target, read, key, &body, due).await;
                if due >= measure_from && Instant::now() <= end {
                    recorder
                        .lock()
                        .expect("recorder lock")
                        .record(read, micros, ok);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn open_loop(
    target: &Arc<Target>,
    config: &BenchConfig,
    picker: &Arc<KeyPicker>,
    recorder: &Arc<Mutex<Recorder>>,
    measure_from: Instant,
    end: Instant,
    rate: f64,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(config.clients));
    let mut rng = StdRng::seed_from_u64(config.seed);
    let body = Arc::new(value(config.value_bytes));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = tokio::task::JoinSet::new();
    let mut due = Instant::now();
    while due < end {
        tokio::time::sleep_until(due).await;
        let read = rng.gen_bool(config.read_ratio);
        let key = picker.pick(&mut rng);
        // Waiting for a slot counts against the request: it is timed from `due`.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (target, recorder, body) = (target.clone(), recorder.clone(), body.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let (read, micros, ok) = one(&target, read, key, &body, due).await;
            if due >= measure_from {
                recorder
                    .lock()
                    .expect("recorder lock")
                    .record(read, micros, ok);
            }
        });
        while tasks.try_join_next().is_some() {}
        due += interval;
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_parse_and_zipf_prefers_low_ranks() {
        assert_eq!("uniform".parse(), Ok(KeyDistribution::Uniform));
        assert_eq!("zipf:0.99".parse(), Ok(KeyDistribution::Zipf(0.99)));
        assert!("zipf:-1".parse::<KeyDistribution>().is_err());
        assert!("gauss".parse::<KeyDistribution>().is_err());
        let config = BenchConfig {
            read_ratio: 0.5,
            keys: 1000,
            value_bytes: 8,
            clients: 1,
            rate: None,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            distribution: KeyDistribution::Zipf(1.2),
            seed: 7,
        };
        let picker = KeyPicker::new(&config).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let picks: Vec<u64> = (0..10_000).map(|_| picker.pick(&mut rng)).collect();
        assert!(picks.iter().all(|key| *key < 1000));
        let hottest = picks.iter().filter(|key| **key == 0).count();
        assert!(hottest > 1000, "rank 1 drew {hottest} of 10000");
    }

    #[test]
    fn bad_configs_are_refused() {
        let good = BenchConfig {
            read_ratio: 0.5,
            keys: 10,
            value_bytes: 8,
            clients: 4,
            rate: Some(100.0),
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            distribution: KeyDistribution::Uniform,
            seed: 1,
        };
        assert!(good.check().is_ok());
        for bad in [
            BenchConfig {
                read_ratio: 1.5,
                ..good.clone()
            },
            BenchConfig {
                keys: 0,
                ..good.clone()
            },
            BenchConfig {
                clients: 0,
                ..good.clone()
            },
            BenchConfig {
                rate: Some(0.0),
                ..good.clone()
            },
            BenchConfig {
                value_bytes: 0,
                ..good.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_summary_has_the_documented_fields() {
        let mut recorder = Recorder::new();
        for micros in [1_000, 2_000, 3_000] {
            recorder.record(true, micros, true);
        }
        recorder.record(false, 10_000, true);
        recorder.record(false, 0, false);
        let summary = recorder.summary(Duration::from_secs(2));
        assert_eq!(summary["throughput_ops_s"], 2.0);
        assert_eq!(summary["errors"], 1);
        assert!(summary["latency_ms"]["p99"].as_f64().unwrap() >= 9.9);
        assert_eq!(summary["latency_ms"]["read"]["count"], 3);
        assert_eq!(summary["latency_ms"]["write"]["errors"], 1);
        assert!(summary["latency_ms"]["read"]["p999"].is_number());
    }
}
