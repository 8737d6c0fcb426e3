//! CommitGate in both modes: it waits for a flush that covers the caller's writes,
//! coalesces concurrent callers in group mode, reports flush failures, and shuts down.

use super::super::*;
use crate::ids::PartitionId;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A memory store that counts flushes and can be told to fail them.
struct Counting {
    inner: MemoryStorage,
    flushes: AtomicUsize,
    fail: AtomicBool,
}

impl Counting {
    fn new() -> Arc<Counting> {
        Arc::new(Counting {
            inner: MemoryStorage::new(1).expect("memory store"),
            flushes: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
        })
    }
    fn flushes(&self) -> usize {
        self.flushes.load(Ordering::SeqCst)
    }
}

impl Storage for Counting {
    fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }
    fn update(
        &self,
        key: &StoreKey,
        f: &mut UpdateFn<'_>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.update(key, f)
    }
    fn delete(&self, key: &StoreKey) -> Result<(), StorageError> {
        self.inner.delete(key)
    }
    fn delete_if(&self, key: &StoreKey, expected: &[u8]) -> Result<bool, StorageError> {
        self.inner.delete_if(key, expected)
    }
    fn scan_partition(
        &self,
        partition: PartitionId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        self.inner.scan_partition(partition, after, limit)
    }
    fn expiry_due(
        &self,
        partition: PartitionId,
        after: Option<&ExpiryEntry>,
        until_ms: u64,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<ExpiryEntry>, StorageError> {
        self.inner
            .expiry_due(partition, after, until_ms, limit, bytes_max)
    }
    fn expiry_put(&self, key: &StoreKey, deadline_ms: u64) -> Result<(), StorageError> {
        self.inner.expiry_put(key, deadline_ms)
    }
    fn expiry_drop(
        &self,
        key: &StoreKey,
        deadline_ms: u64,
        stale: &mut StaleFn<'_>,
    ) -> Result<bool, StorageError> {
        self.inner.expiry_drop(key, deadline_ms, stale)
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(StorageError::Corrupt {
                what: "test",
                detail: "injected flush failure".to_string(),
            });
        }
        self.inner.flush()
    }
    fn len(&self) -> Result<u64, StorageError> {
        self.inner.len()
    }
    fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.inner.size_on_disk()
    }
    fn aux_put(&self, space: AuxSpace, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.inner.aux_put(space, key, value)
    }
    fn aux_delete(&self, space: AuxSpace, key: &[u8]) -> Result<(), StorageError> {
        self.inner.aux_delete(space, key)
    }
    fn aux_scan(
        &self,
        space: AuxSpace,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        self.inner.aux_scan(space, prefix, after, limit)
    }
}

fn write(storage: &dyn Storage, key: &[u8]) -> StoreKey {
    let key = StoreKey::new(PartitionId(0), key.to_vec());
    storage
        .update(&key, &mut |_| Ok(Some(b"v".to_vec().into())))
        .expect("write");
    key
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

const MODES: [Durability; 2] = [
    Durability::FlushEachWrite,
    Durability::GroupCommit { max_delay_ms: 1 },
];

#[tokio::test]
async fn a_write_survives_a_power_loss_once_durable_returns() {
    for durability in MODES {
        let storage = Counting::new();
        let gate = CommitGate::new(storage.clone(), durability);
        let key = write(storage.as_ref(), b"acknowledged");
        assert_send(gate.durable()).await.expect("durable");
        storage.inner.lose_unflushed_writes();
        assert_eq!(
            storage.get(&key).expect("get"),
            Some(b"v".to_vec()),
            "{durability}"
        );
        assert!(storage.flushes() >= 1, "{durability}");
        gate.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn flush_each_write_flushes_once_per_caller() {
    let storage = Counting::new();
    let gate = CommitGate::new(storage.clone(), Durability::FlushEachWrite);
    for index in 0..5u8 {
        write(storage.as_ref(), &[index]);
        gate.durable().await.expect("durable");
    }
    assert_eq!(storage.flushes(), 5);
}

#[tokio::test]
async fn memory_durability_never_flushes_and_refuses_after_shutdown() {
    let storage = Counting::new();
    let gate = CommitGate::new(storage.clone(), Durability::Memory);
    for index in 0..5u8 {
        write(storage.as_ref(), &[index]);
        gate.durable().await.expect("durable");
    }
    assert_eq!(storage.flushes(), 0);
    gate.shutdown().await.expect("shutdown");
    assert!(matches!(gate.durable().await, Err(CommitError::Closed)));
}

#[tokio::test]
async fn group_commit_coalesces_concurrent_callers() {
    const CALLERS: usize = 64;
    let storage = Counting::new();
    let gate = Arc::new(CommitGate::new(
        storage.clone(),
        Durability::GroupCommit { max_delay_ms: 50 },
    ));
    let mut waiters = Vec::new();
    for index in 0..CALLERS {
        let (gate, storage) = (gate.clone(), storage.clone());
        waiters.push(tokio::spawn(async move {
            write(storage.as_ref(), &(index as u32).to_be_bytes());
            gate.durable().await
        }));
    }
    for waiter in waiters {
        waiter.await.expect("task").expect("durable");
    }
    let flushes = storage.flushes();
    assert!(
        flushes >= 1 && flushes * 4 <= CALLERS,
        "{flushes} flushes for {CALLERS} callers"
    );
    storage.inner.lose_unflushed_writes();
    assert_eq!(storage.len().expect("len"), CALLERS as u64);
}

#[tokio::test(start_paused = true)]
async fn group_commit_gathers_only_under_load() {
    const DELAY: Duration = Duration::from_millis(50);
    let storage = Counting::new();
    let gate = CommitGate::new(
        storage.clone(),
        Durability::GroupCommit { max_delay_ms: 50 },
    );
    // Paused time moves only when every task waits on a timer (or is advanced): a
    // flush that does not gather takes no time at all.
    async fn timed(gate: &CommitGate) -> Duration {
        let started = tokio::time::Instant::now();
        gate.durable().await.expect("durable");
        started.elapsed()
    }
    assert_eq!(
        timed(&gate).await,
        Duration::ZERO,
        "a lone write waits for nobody"
    );
    tokio::time::advance(Duration::from_millis(20)).await;
    assert_eq!(
        timed(&gate).await,
        Duration::ZERO,
        "one write per 20 ms: no wait"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    let started = tokio::time::Instant::now();
    burst(&gate, 64).await;
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "a burst shares one flush"
    );
    assert_eq!(storage.flushes(), 3);
    let next = timed(&gate).await;
    assert!(
        next >= DELAY * 9 / 10 && next <= DELAY,
        "under load a write waits for company: {next:?}"
    );
    tokio::time::advance(DELAY * 2).await;
    assert_eq!(timed(&gate).await, Duration::ZERO, "the window has passed");
    assert_eq!(storage.flushes(), 5);
    gate.shutdown().await.expect("shutdown");
}

/// `callers` waits polled together: every caller takes its ticket before the flusher
/// looks, so one flush covers them all.
async fn burst(gate: &CommitGate, callers: usize) {
    for outcome in futures::future::join_all((0..callers).map(|_| gate.durable())).await {
        outcome.expect("durable");
    }
}

#[tokio::test]
async fn flush_failures_reach_the_waiting_callers() {
    for durability in MODES {
        let storage = Counting::new();
        let gate = CommitGate::new(storage.clone(), durability);
        storage.fail.store(true, Ordering::SeqCst);
        let error = gate.durable().await.expect_err("flush failed");
        match error {
            CommitError::Flush(cause) => assert!(
                matches!(*cause, StorageError::Corrupt { what: "test", .. }),
                "{cause:?}"
            ),
            other => panic!("unexpected error {other:?} ({durability})"),
        }
        // The gate keeps working once the disk recovers.
        storage.fail.store(false, Ordering::SeqCst);
        gate.durable().await.expect("durable after recovery");
    }
}

#[tokio::test]
async fn shutdown_covers_waiting_callers_then_refuses_new_ones() {
    let storage = Counting::new();
    // A long gathering delay that only shutdown can cut short.
    let gate = CommitGate::new(
        storage.clone(),
        Durability::GroupCommit {
            max_delay_ms: 10_000,
        },
    );
    // Two bursts right after each other make the store loaded: the next write waits.
    burst(&gate, 64).await;
    burst(&gate, 64).await;
    let started = Instant::now();
    // `join!` polls in order: `durable` takes its ticket before shutdown begins.
    let (waited, shut) = tokio::join!(gate.durable(), async {
        tokio::task::yield_now().await;
        gate.shutdown().await
    });
    shut.expect("shutdown");
    waited.expect("the waiting caller is covered");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown cut the delay short"
    );
    assert_eq!(storage.flushes(), 3);
    assert!(matches!(gate.durable().await, Err(CommitError::Closed)));
    gate.shutdown().await.expect("second shutdown is harmless");

    let each = CommitGate::new(storage.clone(), Durability::FlushEachWrite);
    each.shutdown().await.expect("shutdown");
    assert!(matches!(each.durable().await, Err(CommitError::Closed)));
}

#[tokio::test]
async fn dropping_the_gate_ends_the_flusher() {
    let storage = Counting::new();
    let gate = CommitGate::new(storage.clone(), Durability::default());
    gate.durable().await.expect("durable");
    // The flusher holds a clone of the storage until it ends.
    assert!(Arc::strong_count(&storage) > 2);
    drop(gate);
    let mut rounds = 0;
    while Arc::strong_count(&storage) > 1 && rounds < 10_000 {
        tokio::task::yield_now().await;
        rounds += 1;
    }
    assert_eq!(
        Arc::strong_count(&storage),
        1,
        "flusher still running after {rounds} rounds"
    );
}

#[test]
fn a_window_counts_as_filling_from_the_arrival_rate() {
    use super::super::commit::Arrivals;
    const MIN: u64 = crate::limits::GROUP_COMMIT_GATHER_MIN_WRITES;
    let ms = Duration::from_millis;
    let steady = |writes: u64, interval: Duration| {
        let mut arrivals = Arrivals::default();
        for _ in 0..50 {
            arrivals.record(writes, interval);
        }
        arrivals
    };
    assert!(!Arrivals::default().would_fill(ms(2)), "nothing seen yet");
    // MIN writes every 2 ms fill a 2 ms window; the same writes every 4 ms do not.
    assert!(steady(MIN, ms(2)).would_fill(ms(2)));
    assert!(!steady(MIN, ms(4)).would_fill(ms(2)));
    assert!(steady(MIN, ms(4)).would_fill(ms(4)));
    // Back-to-back flushes of one write each 0.3 ms apart, then an idle 5 ms: the
    // rate is one write per (0.3 + 0.3 + 5) / 3 ms, under MIN per 2 ms.
    let mut bursty = Arrivals::default();
    for _ in 0..50 {
        bursty.record(1, Duration::from_micros(300));
        bursty.record(1, Duration::from_micros(300));
        bursty.record(1, ms(5));
    }
    assert!(!bursty.would_fill(ms(2)), "{bursty:?}");
    // A rate that rises is followed.
    let mut rising = steady(1, ms(10));
    assert!(!rising.would_fill(ms(2)));
    for _ in 0..50 {
        rising.record(MIN * 4, ms(2));
    }
    assert!(rising.would_fill(ms(2)));
    // Without a window (group:0) nothing ever waits.
    assert!(!steady(1_000, ms(1)).would_fill(Duration::ZERO));
}
