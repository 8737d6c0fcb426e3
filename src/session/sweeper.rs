//! The expiry sweeper: finds session documents past their replicated deadline in the
//! partitions this node sweeps (those whose first live owner it is) and deletes them
//! through tombstones, at most `sweep_rate` per second. Before deleting it reads the
//! document from every replica and skips it if any replica holds a later deadline (a
//! refresh this replica has not seen yet). Expired documents are never served whether
//! or not the sweeper has reached them; it only reclaims space.

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
        loop {
            tokio::select! {
                _ = tokio::time::sleep(this.settings.sweep_interval) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            // The scan reads and decodes every document of the swept partitions: on an
            // async worker it would stall every request that worker serves.
            let finder = this.clone();
            let expired = tokio::task::spawn_blocking(move || finder.expired())
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

    /// Up to `SWEEP_BATCH_MAX` expired, not yet deleted documents in this node's store.
    pub fn expired(&self) -> Vec<(ObjectKey, u64)> {
        let now = self.clock.now_ms();
        let mut found = Vec::new();
        for partition in self.partitions() {
            let mut after: Option<Vec<u8>> = None;
            loop {
                let Ok(page) = self.storage.scan_partition(
                    partition,
                    after.as_deref(),
                    limits::SCAN_ENTRIES_MAX,
                ) else {
                    break;
                };
                let full = page.len() >= limits::SCAN_ENTRIES_MAX;
                for entry in &page {
                    let Some(key) = ObjectKey::from_storage_bytes(&entry.0) else {
                        continue;
                    };
                    if key.class == Class::Kv {
                        continue;
                    }
                    let Ok(Object::Doc(doc)) = decode_object(&entry.1) else {
                        continue;
                    };
                    let deadline = doc.deadline_ms();
                    if !doc.is_tombstone() && deadline <= now {
                        found.push((key, deadline));
                        if found.len() >= limits::SWEEP_BATCH_MAX {
                            return found;
                        }
                    }
                }
                after = page.last().map(|entry| entry.0.clone());
                if !full {
                    break;
                }
            }
        }
        found
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
        if doc.is_tombstone() || deadline > self.clock.now_ms() {
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
