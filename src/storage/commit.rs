//! `CommitGate`: carries out the durability policy for callers that must not acknowledge
//! a write before it is on disk.
//!
//! It owns the group-commit flusher task (one per store) and the ticket protocol that
//! tells each caller when a flush covered its writes. It must never flush on an async
//! worker thread (flushes run in `spawn_blocking`), and it keeps no queue of waiters: a
//! monotonic ticket counter and a `watch` of the highest covered ticket replace one.
//!
//! Ticket protocol: a caller whose writes have completed takes ticket `t` by incrementing
//! `requested`. The flusher reads `requested` immediately before it starts a flush; every
//! ticket up to that reading was taken before the flush began, so its writes are covered.
//! After the flush it publishes that reading as `flushed` (or as `failed`, with the error).

use super::{Durability, Storage, StorageError};
use crate::limits::{COMMIT_SHUTDOWN_DEADLINE_MS, GROUP_COMMIT_GATHER_MIN_WRITES};
use crate::stats::{Histogram, SIZE_BOUNDS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Name of the flusher task in logs.
const FLUSHER_NAME: &str = "group-commit";

/// Why `durable` could not confirm that the caller's writes are on disk.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CommitError {
    /// The flush that covered the caller's writes failed; they may not be durable.
    #[error("flush failed: {0}")]
    Flush(Arc<StorageError>),
    /// The blocking flush task panicked or was cancelled (e.g. runtime shutting down).
    #[error("flush task did not finish: {reason}")]
    FlushTaskFailed { reason: String },
    /// The gate was shut down before a flush covered the caller's writes.
    #[error("commit gate is shut down")]
    Closed,
    /// `shutdown` gave up waiting for the flusher's last flush.
    #[error("group-commit flusher did not stop within {deadline_ms} ms")]
    ShutdownTimeout { deadline_ms: u64 },
}

/// What the flusher has published so far.
#[derive(Clone, Debug, Default)]
struct Progress {
    /// Highest ticket covered by a successful flush.
    flushed: u64,
    /// Highest ticket covered by a failed flush, and that flush's error.
    failed: u64,
    error: Option<CommitError>,
}

impl Progress {
    /// A later successful flush also covers tickets whose earlier flush failed, so
    /// success is checked first.
    fn outcome(&self, ticket: u64) -> Option<Result<(), CommitError>> {
        if self.flushed >= ticket {
            Some(Ok(()))
        } else if self.failed >= ticket {
            Some(Err(self.error.clone().unwrap_or(CommitError::Closed)))
        } else {
            None
        }
    }
}

/// State shared by callers and the flusher.
struct Tickets {
    requested: AtomicU64,
    wake: Notify,
}

struct Group {
    tickets: Arc<Tickets>,
    progress: watch::Receiver<Progress>,
    /// Sending `true`, or dropping this sender, asks the flusher to stop.
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

enum Policy {
    EachWrite {
        closed: AtomicBool,
    },
    /// `--durability none`: nothing to wait for.
    Memory {
        closed: AtomicBool,
    },
    Group(Group),
}

/// What the flushes cost: how many waiting writes each covered (its group) and how long
/// the flush (the fsync) took.
#[derive(Debug)]
pub struct CommitStats {
    pub group_writes: Histogram,
    pub flush_latency: Histogram,
}

impl Default for CommitStats {
    fn default() -> Self {
        CommitStats {
            group_writes: Histogram::new(SIZE_BOUNDS),
            flush_latency: Histogram::latency(),
        }
    }
}

/// Waits for durability according to a `Durability` policy. Dropping the gate (or
/// calling `shutdown`) stops its flusher after a last flush for waiting callers.
pub struct CommitGate {
    storage: Arc<dyn Storage>,
    policy: Policy,
    stats: Arc<CommitStats>,
}

impl CommitGate {
    /// Builds the gate; in group-commit mode starts its flusher task, so it must be
    /// called inside a tokio runtime.
    pub fn new(storage: Arc<dyn Storage>, durability: Durability) -> CommitGate {
        let stats = Arc::new(CommitStats::default());
        let policy = match durability {
            Durability::FlushEachWrite => Policy::EachWrite {
                closed: AtomicBool::new(false),
            },
            Durability::Memory => Policy::Memory {
                closed: AtomicBool::new(false),
            },
            Durability::GroupCommit { max_delay_ms } => {
                Policy::Group(start_group(storage.clone(), max_delay_ms, stats.clone()))
            }
        };
        CommitGate {
            storage,
            policy,
            stats,
        }
    }

    /// The flushes' sizes and latencies.
    pub fn stats(&self) -> &Arc<CommitStats> {
        &self.stats
    }

    /// Returns once every write that completed before this call is durable.
    pub async fn durable(&self) -> Result<(), CommitError> {
        match &self.policy {
            Policy::EachWrite { closed } => {
                if closed.load(Ordering::SeqCst) {
                    return Err(CommitError::Closed);
                }
                self.stats.group_writes.observe(1);
                flush_blocking(self.storage.clone(), &self.stats).await
            }
            Policy::Memory { closed } => match closed.load(Ordering::SeqCst) {
                true => Err(CommitError::Closed),
                false => Ok(()),
            },
            Policy::Group(group) => group.durable().await,
        }
    }

    /// Stops the flusher after it has covered every caller already waiting, and waits
    /// for it (at most `COMMIT_SHUTDOWN_DEADLINE_MS`). Later `durable` calls fail with
    /// `Closed`. Calling it again is harmless.
    pub async fn shutdown(&self) -> Result<(), CommitError> {
        match &self.policy {
            Policy::EachWrite { closed } | Policy::Memory { closed } => {
                closed.store(true, Ordering::SeqCst);
                Ok(())
            }
            Policy::Group(group) => group.shutdown().await,
        }
    }
}

fn start_group(storage: Arc<dyn Storage>, max_delay_ms: u64, stats: Arc<CommitStats>) -> Group {
    let tickets = Arc::new(Tickets {
        requested: AtomicU64::new(0),
        wake: Notify::new(),
    });
    let (progress_sender, progress) = watch::channel(Progress::default());
    let (shutdown, shutdown_receiver) = watch::channel(false);
    let flusher = Flusher {
        storage,
        tickets: tickets.clone(),
        delay: Duration::from_millis(max_delay_ms),
        progress: progress_sender,
        shutdown: shutdown_receiver,
        stopping: false,
        stats,
    };
    let task = tokio::spawn(flusher.run());
    Group {
        tickets,
        progress,
        shutdown,
        task: Mutex::new(Some(task)),
    }
}

impl Group {
    async fn durable(&self) -> Result<(), CommitError> {
        if *self.shutdown.borrow() {
            return Err(CommitError::Closed);
        }
        let ticket = self.tickets.requested.fetch_add(1, Ordering::SeqCst) + 1;
        // A stored permit survives until the flusher looks, so no wake-up is lost.
        self.tickets.wake.notify_one();
        let mut progress = self.progress.clone();
        loop {
            if let Some(outcome) = progress.borrow_and_update().outcome(ticket) {
                return outcome;
            }
            if progress.changed().await.is_err() {
                // The flusher ended; its last publication may still cover us.
                return progress
                    .borrow()
                    .outcome(ticket)
                    .unwrap_or(Err(CommitError::Closed));
            }
        }
    }

    async fn shutdown(&self) -> Result<(), CommitError> {
        self.shutdown.send_replace(true);
        let task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(task) = task else {
            return Ok(());
        };
        let deadline = Duration::from_millis(COMMIT_SHUTDOWN_DEADLINE_MS);
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(join_error)) => Err(CommitError::FlushTaskFailed {
                reason: join_error.to_string(),
            }),
            Err(_) => Err(CommitError::ShutdownTimeout {
                deadline_ms: COMMIT_SHUTDOWN_DEADLINE_MS,
            }),
        }
    }
}

/// The group-commit background worker.
struct Flusher {
    storage: Arc<dyn Storage>,
    tickets: Arc<Tickets>,
    delay: Duration,
    progress: watch::Sender<Progress>,
    shutdown: watch::Receiver<bool>,
    /// Set once shutdown was asked: no more gathering, exit when nothing is pending.
    stopping: bool,
    stats: Arc<CommitStats>,
}

impl Flusher {
    async fn run(mut self) {
        tracing::debug!(worker = FLUSHER_NAME, "started");
        let mut covered: u64 = 0;
        // When the previous flush started, the arrival rate seen over recent flushes,
        // and when the previous flush ended if that rate called it load.
        let mut last_start: Option<Instant> = None;
        let mut arrivals = Arrivals::default();
        let mut loaded_flush_ended: Option<Instant> = None;
        loop {
            let pending = self.tickets.requested.load(Ordering::SeqCst) > covered;
            if !pending {
                if self.stopping {
                    break;
                }
                self.idle().await;
                continue;
            }
            // Gather only under load: within `delay` of a previous flush, when writes
            // arrive fast enough that a whole window would gather at least
            // GROUP_COMMIT_GATHER_MIN_WRITES. Otherwise flushes run back to back (the
            // writes arriving during one share the next) and a write to an idle store
            // is flushed at once, instead of waiting out a window that buys little.
            if let Some(ended) = loaded_flush_ended.filter(|_| !self.stopping) {
                self.gather_until(ended + self.delay).await;
            }
            let previous = covered;
            covered = self.tickets.requested.load(Ordering::SeqCst);
            let started = Instant::now();
            if let Some(last) = last_start {
                arrivals.record(covered - previous, started - last);
            }
            last_start = Some(started);
            self.stats.group_writes.observe(covered - previous);
            let outcome = flush_blocking(self.storage.clone(), &self.stats).await;
            loaded_flush_ended = arrivals.would_fill(self.delay).then(Instant::now);
            self.publish(covered, outcome);
        }
        tracing::debug!(worker = FLUSHER_NAME, "stopped");
    }

    /// Sleeps until a caller takes a ticket or shutdown is asked.
    async fn idle(&mut self) {
        tokio::select! {
            _ = self.tickets.wake.notified() => {}
            _ = self.shutdown.changed() => self.stopping = true,
        }
    }

    /// Lets more callers join the coming flush until `until`, unless shutdown cuts the
    /// wait short.
    async fn gather_until(&mut self, until: Instant) {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = self.shutdown.changed() => self.stopping = true,
        }
    }

    fn publish(&self, covered: u64, outcome: Result<(), CommitError>) {
        self.progress.send_modify(|progress| match outcome {
            Ok(()) => progress.flushed = covered,
            Err(error) => {
                tracing::warn!(worker = FLUSHER_NAME, %error, "group flush failed");
                progress.failed = covered;
                progress.error = Some(error);
            }
        });
    }
}

/// The rate at which writes reach the flusher: moving averages of the writes each
/// flush covered and of the time between flush starts. Their ratio, unlike an average
/// of per-flush ratios, is not inflated by short intervals between back-to-back flushes.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Arrivals {
    writes: f64,
    nanos: f64,
}

impl Arrivals {
    /// Weight of the newest flush in the moving averages.
    const WEIGHT: f64 = 0.125;

    pub(super) fn record(&mut self, writes: u64, interval: Duration) {
        let (writes, nanos) = (writes as f64, interval.as_nanos() as f64);
        if self.nanos == 0.0 && self.writes == 0.0 {
            (self.writes, self.nanos) = (writes, nanos);
        } else {
            self.writes += Self::WEIGHT * (writes - self.writes);
            self.nanos += Self::WEIGHT * (nanos - self.nanos);
        }
    }

    /// Whether writes arrive fast enough that a window of `delay` would gather
    /// `GROUP_COMMIT_GATHER_MIN_WRITES`.
    pub(super) fn would_fill(&self, delay: Duration) -> bool {
        if delay.is_zero() || self.writes == 0.0 {
            return false;
        }
        self.writes * delay.as_nanos() as f64 >= GROUP_COMMIT_GATHER_MIN_WRITES as f64 * self.nanos
    }
}

async fn flush_blocking(storage: Arc<dyn Storage>, stats: &CommitStats) -> Result<(), CommitError> {
    let started = Instant::now();
    let flushed = tokio::task::spawn_blocking(move || storage.flush()).await;
    stats.flush_latency.observe_duration(started.elapsed());
    match flushed {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(CommitError::Flush(Arc::new(error))),
        Err(join_error) => Err(CommitError::FlushTaskFailed {
            reason: join_error.to_string(),
        }),
    }
}
