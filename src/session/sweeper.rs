//! The expiry sweeper: finds session documents (and RESP keys: `Doc::Redis`, whose
//! expire op ends only the epoch found expired) past their replicated deadline in the
//! partitions this node sweeps (those whose first live owner it is) and deletes them
//! through tombstones, at most `sweep_rate` per second. Before deleting it reads the
//! document from every replica and skips it if any replica holds a later deadline (a
//! refresh this replica has not seen yet). Expired documents are never served whether
//! or not the sweeper has reached them; it only reclaims space.
//!
//! It never erases a record whose deadline is within `SWEEP_CLOCK_MARGIN_MS` of its own
//! clock (`horizon_ms`): a node whose clock runs fast by less than that does not erase
//! sessions still valid by the other nodes' clocks.

use crate::coordinator::quorum::Level;
use crate::coordinator::{ClusterView, Coordinator, WallClock};
use crate::crdt::{Doc, DocOp, TokenDoc, UserChange, UserOp};
use crate::ids::{NodeId, PartitionId};
use crate::limits;
use crate::object::{decode_object, Class, Object, ObjectKey};
use crate::session::tokens::hex;
use crate::session::SessionStats;
use crate::storage::Storage;
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

impl Sweeper {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        if self.settings.sweep_rate == 0 {
            return;
        }
        let pause = Duration::from_secs_f64(1.0 / self.settings.sweep_rate as f64);
        let this = Arc::new(self);
        let mut cursor = SweepCursor::default();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(this.settings.sweep_interval) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            // The scan reads and decodes up to SWEEP_SCAN_KEYS_MAX documents: on an
            // async worker it would stall every request that worker serves.
            let finder = this.clone();
            let expired;
            (expired, cursor) = tokio::task::spawn_blocking(move || {
                let expired = finder.expired(&mut cursor);
                (expired, cursor)
            })
            .await
            .unwrap_or_default();
            for (key, deadline_ms) in expired {
                if *stop.borrow() {
                    return;
                }
                this.sweep(&key, deadline_ms).await;
                tokio::time::sleep(pause).await;
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
    /// reading at most `SWEEP_SCAN_KEYS_MAX` keys from `cursor` on.
    pub fn expired(&self, cursor: &mut SweepCursor) -> Vec<(ObjectKey, u64)> {
        scan_expired(
            self.storage.as_ref(),
            &self.partitions(),
            cursor,
            limits::SWEEP_SCAN_KEYS_MAX,
            horizon_ms(self.clock.now_ms()),
        )
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

/// Where the next sweep pass starts reading: a partition and the last key read in it.
/// Passes go round the swept partitions, so a large store is covered over several.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepCursor {
    partition: u32,
    after: Option<Vec<u8>>,
}

/// The expired, not yet deleted documents of `partitions` (ascending) from `cursor` on:
/// at most `SWEEP_BATCH_MAX` of them, reading at most `budget` keys. Leaves `cursor`
/// after the last key read, or at the start once the last partition is done.
pub fn scan_expired(
    storage: &dyn Storage,
    partitions: &[PartitionId],
    cursor: &mut SweepCursor,
    budget: usize,
    now_ms: u64,
) -> Vec<(ObjectKey, u64)> {
    let mut found = Vec::new();
    let mut left = budget;
    for &partition in partitions.iter().filter(|p| p.0 >= cursor.partition) {
        let mut after = if partition.0 == cursor.partition {
            cursor.after.take()
        } else {
            None
        };
        loop {
            let limit = left.min(limits::SCAN_ENTRIES_MAX);
            if limit == 0 {
                *cursor = SweepCursor {
                    partition: partition.0,
                    after,
                };
                return found;
            }
            let Ok(page) = storage.scan_partition(partition, after.as_deref(), limit) else {
                break;
            };
            left -= page.len().min(left);
            let full = page.len() >= limit;
            for (stored_key, bytes) in page {
                let expired = expired_deadline(&stored_key, &bytes, now_ms);
                after = Some(stored_key);
                let Some((key, deadline)) = expired else {
                    continue;
                };
                found.push((key, deadline));
                if found.len() >= limits::SWEEP_BATCH_MAX {
                    *cursor = SweepCursor {
                        partition: partition.0,
                        after,
                    };
                    return found;
                }
            }
            if !full {
                break;
            }
        }
    }
    *cursor = SweepCursor::default();
    found
}

/// The key and deadline of a stored session document that expired by `now_ms` and is
/// not deleted yet.
fn expired_deadline(stored_key: &[u8], bytes: &[u8], now_ms: u64) -> Option<(ObjectKey, u64)> {
    let key = ObjectKey::from_storage_bytes(stored_key)?;
    if key.class == Class::Kv {
        return None;
    }
    let Ok(Object::Doc(doc)) = decode_object(bytes) else {
        return None;
    };
    let deadline = doc.deadline_ms();
    (!doc.is_tombstone() && deadline <= now_ms).then_some((key, deadline))
}

#[cfg(test)]
mod tests;
