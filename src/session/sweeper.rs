//! The expiry sweeper: finds session documents (and RESP keys: `Doc::Redis`, whose
//! expire op ends only the epoch found expired) past their replicated deadline in the
//! partitions this node sweeps (those whose first live owner it is) and deletes them
//! through tombstones, at most `sweep_rate` per second. Before deleting it reads the
//! document from every replica and skips it if any replica holds a later deadline (a
//! refresh this replica has not seen yet). Expired documents are never served whether
//! or not the sweeper has reached them; it only reclaims space.
//!
//! It reads only what is due: the store's expiry index (`storage::Expiry`), which every
//! write keeps beside its record, lists each partition's records by deadline. An entry
//! may be stale (a crash between the writes, a record changed since): each is checked
//! against the stored record, and a stale one dropped. A store written before the
//! index is indexed once, in the background (`backfill`).
//!
//! It never erases a record whose deadline is within `SWEEP_CLOCK_MARGIN_MS` of its own
//! clock (`horizon_ms`): a node whose clock runs fast by less than that does not erase
//! sessions still valid by the other nodes' clocks.

mod backfill;

pub use backfill::{backfill_step, BackfillProgress};

use crate::coordinator::quorum::Level;
use crate::coordinator::{ClusterView, Coordinator, WallClock};
use crate::crdt::{Doc, DocOp, TokenDoc, UserChange, UserOp};
use crate::ids::{NodeId, PartitionId};
use crate::limits;
use crate::object::{holds_deadline, Class, Object, ObjectKey};
use crate::session::tokens::hex;
use crate::session::SessionStats;
use crate::storage::{ExpiryEntry, Storage, StoreKey};
use futures::StreamExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub struct Sweeper {
    pub me: NodeId,
    pub cluster: Arc<dyn ClusterView>,
    pub storage: Arc<dyn Storage>,
    pub coordinator: Arc<Coordinator>,
    pub clock: Arc<dyn WallClock>,
    pub settings: crate::config::SessionSettings,
    pub stats: Arc<SessionStats>,
}

/// Spaces starts `pause` apart on average: a start that is due goes at once, so the
/// rate holds above what the timer's millisecond resolves (a sleep per record capped a
/// sweep near 1,000 a second whatever the rate).
struct Pace {
    pause: Duration,
    next: tokio::time::Instant,
}

impl Pace {
    fn new(pause: Duration) -> Pace {
        Pace {
            pause,
            next: tokio::time::Instant::now(),
        }
    }

    /// Waits until the next start is due.
    async fn next(&mut self) {
        let now = tokio::time::Instant::now();
        // Late by the timer's rounding: kept, the next starts go at once and make it up.
        // Behind after a slow stretch: no burst to catch up, start counting from now.
        if now > self.next + Duration::from_millis(100) {
            self.next = now;
        }
        if self.next > now + Duration::from_millis(1) {
            tokio::time::sleep_until(self.next).await;
        }
        self.next += self.pause;
    }
}

impl Sweeper {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        if self.settings.sweep_rate == 0 {
            return;
        }
        let pause = Duration::from_secs_f64(1.0 / self.settings.sweep_rate as f64);
        let this = Arc::new(self);
        let backfill = tokio::spawn(this.clone().backfill(stop.clone()));
        let mut cursor = SweepCursor::default();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(this.settings.sweep_interval) => {}
                _ = stop.wait_for(|stop| *stop) => break,
            }
            // The index read checks each due entry against its record (a read and a
            // decode): on an async worker it would stall every request that worker serves.
            let finder = this.clone();
            let expired;
            (expired, cursor) = tokio::task::spawn_blocking(move || {
                let expired = finder.expired(&mut cursor);
                (expired, cursor)
            })
            .await
            .unwrap_or_default();
            // At most `sweep_rate` a second, a few at once: each waits on round trips.
            let mut sweeping = futures::stream::FuturesUnordered::new();
            let mut pace = Pace::new(pause);
            for (key, deadline_ms) in expired {
                if *stop.borrow() {
                    break;
                }
                pace.next().await;
                let sweeper = this.clone();
                sweeping.push(async move { sweeper.sweep(&key, deadline_ms).await });
                if sweeping.len() >= limits::SWEEP_IN_FLIGHT_MAX {
                    sweeping.next().await;
                }
            }
            while sweeping.next().await.is_some() {}
        }
        let _ = backfill.await;
    }

    /// Indexes a store written before the expiry index, a bounded step at a time, once
    /// (`backfill_step` records when it is done).
    async fn backfill(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let partitions = self.cluster.view().current.partition_count();
        let pause = Duration::from_millis(limits::EXPIRY_BACKFILL_STEP_PAUSE_MS);
        loop {
            let storage = self.storage.clone();
            let stats = self.stats.clone();
            let step = tokio::task::spawn_blocking(move || {
                backfill_step(storage.as_ref(), partitions, &stats)
            })
            .await;
            match step {
                Ok(Ok(BackfillProgress::Done)) => return,
                Ok(Ok(BackfillProgress::Going)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "expiry index backfill step failed"),
                Err(error) => tracing::warn!(%error, "expiry index backfill step panicked"),
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// The partitions this node sweeps: held here, and this node is the first of their
    /// owners the failure detector holds alive.
    fn partitions(&self) -> Vec<PartitionId> {
        let view = self.cluster.view();
        let ring = &view.current;
        (0..ring.partition_count())
            .map(PartitionId)
            .filter(|partition| {
                ring.replicas(*partition)
                    .into_iter()
                    .map(|(node, _)| node)
                    .find(|node| !self.cluster.is_dead(node))
                    .is_some_and(|first| first == self.me)
            })
            .collect()
    }

    /// Up to `SWEEP_BATCH_MAX` expired, not yet deleted documents in this node's store,
    /// reading at most `SWEEP_INDEX_ENTRIES_MAX` due index entries from `cursor` on.
    pub fn expired(&self, cursor: &mut SweepCursor) -> Vec<(ObjectKey, u64)> {
        let pass = due_expired(
            self.storage.as_ref(),
            &self.partitions(),
            cursor,
            limits::SWEEP_INDEX_ENTRIES_MAX,
            horizon_ms(self.clock.now_ms()),
        );
        let stats = &self.stats;
        stats
            .sweep_entries_read
            .fetch_add(pass.read, Ordering::Relaxed);
        stats
            .sweep_entries_stale
            .fetch_add(pass.stale, Ordering::Relaxed);
        pass.expired
    }

    /// Deletes one expired document if every replica agrees it expired.
    pub async fn sweep(&self, key: &ObjectKey, deadline_ms: u64) {
        let class = match key.class {
            Class::Auth => &self.settings.auth,
            _ => &self.settings.user,
        };
        let Ok(Some(Object::Doc(doc))) = self
            .coordinator
            .get_with(key, Level::All, class.policy)
            .await
        else {
            return;
        };
        let deadline = doc.deadline_ms().max(deadline_ms);
        if doc.is_tombstone() || deadline > horizon_ms(self.clock.now_ms()) {
            return;
        }
        let expire = DocOp::Expire {
            deadline_ms: deadline,
        };
        if self
            .coordinator
            .apply(key, expire, class.write, class.policy)
            .await
            .is_err()
        {
            return;
        }
        self.stats.swept.fetch_add(1, Ordering::Relaxed);
        // An erased token leaves its user's device list.
        if let Doc::Token(TokenDoc::Live(record)) = &doc {
            if let (Some(identity), Ok(hash)) =
                (&record.identity, <[u8; 32]>::try_from(key.key.as_slice()))
            {
                let op = DocOp::User(UserOp {
                    deadline_ms: 0,
                    change: UserChange::DeviceRemove { token: hex(&hash) },
                    limits: self.settings.limits,
                    op_id: None,
                });
                let user = ObjectKey::new(Class::User, identity.user.as_bytes());
                let policy = &self.settings.user;
                let _ = self
                    .coordinator
                    .apply(&user, op, policy.write, policy.policy)
                    .await;
            }
        }
    }
}

/// The latest deadline a sweeper whose clock reads `now_ms` may erase: the margin
/// before it covers a clock running fast.
pub fn horizon_ms(now_ms: u64) -> u64 {
    now_ms.saturating_sub(limits::SWEEP_CLOCK_MARGIN_MS)
}

/// Where the next sweep pass starts reading the expiry index: a partition and the last
/// entry read in it. Passes go round the swept partitions, so entries that stay (their
/// sweep was refused: a replica holds a later deadline, or is down) do not hold up the
/// others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepCursor {
    partition: u32,
    after: Option<ExpiryEntry>,
}

/// What one pass over the expiry index found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepPass {
    /// The expired, not yet deleted documents, with the deadline they expired at.
    pub expired: Vec<(ObjectKey, u64)>,
    /// Index entries read (every one due).
    pub read: u64,
    /// Stale entries dropped: their record is gone or has another deadline now.
    pub stale: u64,
}

/// The expired, not yet deleted documents of `partitions` (ascending) from `cursor` on,
/// read off the expiry index up to `now_ms`: at most `SWEEP_BATCH_MAX` of them, reading
/// at most `budget` entries. Each entry is checked against its record; a stale one is
/// dropped. Leaves `cursor` after the last entry read, or at the start once the last
/// partition is done.
pub fn due_expired(
    storage: &dyn Storage,
    partitions: &[PartitionId],
    cursor: &mut SweepCursor,
    budget: usize,
    now_ms: u64,
) -> SweepPass {
    let mut pass = SweepPass::default();
    let mut left = budget;
    for &partition in partitions.iter().filter(|p| p.0 >= cursor.partition) {
        let mut after = if partition.0 == cursor.partition {
            cursor.after.take()
        } else {
            None
        };
        loop {
            let limit = left.min(limits::SCAN_ENTRIES_MAX);
            let full = left == 0 || pass.expired.len() >= limits::SWEEP_BATCH_MAX;
            if full {
                *cursor = SweepCursor {
                    partition: partition.0,
                    after,
                };
                return pass;
            }
            let page = storage.expiry_due(
                partition,
                after.as_ref(),
                now_ms,
                limit,
                limits::SWEEP_INDEX_PAGE_BYTES_MAX,
            );
            let Ok(page) = page else {
                break;
            };
            if page.is_empty() {
                break;
            }
            for entry in page {
                left = left.saturating_sub(1);
                pass.read += 1;
                let store_key = StoreKey::new(partition, entry.key.clone());
                match checked(storage, &store_key, entry.deadline_ms) {
                    Some(key) => pass.expired.push((key, entry.deadline_ms)),
                    None => pass.stale += u64::from(drop_stale(storage, &store_key, &entry)),
                }
                after = Some(entry);
                if left == 0 || pass.expired.len() >= limits::SWEEP_BATCH_MAX {
                    break;
                }
            }
        }
    }
    *cursor = SweepCursor::default();
    pass
}

/// The key of the record an index entry for `deadline_ms` points at, if the record is
/// still there, a session document or RESP key, and holds that deadline.
fn checked(storage: &dyn Storage, store_key: &StoreKey, deadline_ms: u64) -> Option<ObjectKey> {
    let key = ObjectKey::from_storage_bytes(&store_key.key)?;
    if key.class == Class::Kv {
        return None;
    }
    let bytes = storage.get(store_key).ok()??;
    holds_deadline(Some(&bytes), deadline_ms).then_some(key)
}

/// Drops a stale entry, checking again while the record's writers wait (a write in
/// between may have made it stand for its record again). Says whether it dropped it.
fn drop_stale(storage: &dyn Storage, store_key: &StoreKey, entry: &ExpiryEntry) -> bool {
    let deadline_ms = entry.deadline_ms;
    // A kv record never has an entry: any is stale whatever its bytes.
    let kv = ObjectKey::from_storage_bytes(&store_key.key).is_none_or(|k| k.class == Class::Kv);
    storage
        .expiry_drop(store_key, deadline_ms, &mut |current| {
            kv || !holds_deadline(current, deadline_ms)
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;
