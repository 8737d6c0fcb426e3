//! Expiry in the change feed at the deadline: a record whose deadline passed is no
//! longer served, so its readers (client tracking, keyspace notifications, the HTTP
//! feed, the near-cache) are told `expired` then, read off the expiry index, not only
//! when the sweeper later ends it (`SWEEP_CLOCK_MARGIN_MS` after its deadline) or a
//! write ends it first. Both reports of one expiry carry the same digest
//! (`feed::expiry_digest`: the key and its deadline), so a reader that drops repeats
//! hears it once.
//!
//! A record is reported once per replica that holds it at its deadline, by this
//! node's clock; a node that was down at a deadline reports nothing for it, and its
//! feed's readers were told they fell behind when it came back (a new epoch).

use super::Replica;
use crate::feed::ChangeKind;
use crate::ids::PartitionId;
use crate::limits;
use crate::object::{holds_deadline, Class, ObjectKey};
use crate::storage::{ExpiryEntry, StoreKey};
use std::collections::HashMap;

/// Where the reports of each partition stand: the last index entry reported (or
/// passed), so each is read once.
#[derive(Debug, Default)]
pub struct Reported {
    after: HashMap<PartitionId, ExpiryEntry>,
    /// Deadlines up to this were passed before the reporter started: not reported.
    since_ms: u64,
    /// Whether `retain` ran: partitions held from then on start at their first sight.
    started: bool,
}

impl Reported {
    /// Reports from now on: deadlines up to `now_ms` are not reported.
    pub fn starting_at(now_ms: u64) -> Reported {
        Reported {
            after: HashMap::new(),
            since_ms: now_ms,
            started: false,
        }
    }

    /// The cursor of `partition`: where it stands, or just past every entry due by
    /// `since_ms` for a partition not seen yet.
    fn cursor(&self, partition: PartitionId) -> ExpiryEntry {
        self.after
            .get(&partition)
            .cloned()
            .unwrap_or_else(|| past(self.since_ms))
    }

    /// Follows `held`: forgets a partition no longer held, and starts one newly held
    /// at `now_ms` (at the start time on the first call), so what passed while another
    /// node held it is not reported here.
    pub fn retain(&mut self, held: &[PartitionId], now_ms: u64) {
        let held: std::collections::HashSet<&PartitionId> = held.iter().collect();
        self.after.retain(|partition, _| held.contains(partition));
        let from = if self.started { now_ms } else { self.since_ms };
        for partition in held {
            self.after.entry(*partition).or_insert_with(|| past(from));
        }
        self.started = true;
    }
}

/// An index position past every entry due by `deadline_ms` (keys are shorter than its).
fn past(deadline_ms: u64) -> ExpiryEntry {
    ExpiryEntry {
        deadline_ms,
        key: vec![u8::MAX; limits::KEY_BYTES_MAX + 8],
    }
}

impl Replica {
    /// Records `expired` in the feed for each record of `partitions` whose deadline
    /// passed by `now_ms` since the last call, reading at most `budget` index entries
    /// (the rest at the next call). Returns the records reported.
    pub fn report_expired(
        &self,
        partitions: &[PartitionId],
        reported: &mut Reported,
        now_ms: u64,
        budget: usize,
    ) -> u64 {
        let mut left = budget;
        let mut count = 0;
        for &partition in partitions {
            let mut after = reported.cursor(partition);
            while left > 0 {
                let page = self.storage.expiry_due(
                    partition,
                    Some(&after),
                    now_ms,
                    left.min(limits::SCAN_ENTRIES_MAX),
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
                    count += u64::from(self.report_one(partition, &entry));
                    after = entry;
                }
            }
            reported.after.insert(partition, after);
        }
        count
    }

    /// Records `expired` for the record an index entry names, if it still holds that
    /// deadline (a stale entry is the sweeper's to drop).
    fn report_one(&self, partition: PartitionId, entry: &ExpiryEntry) -> bool {
        let key = ObjectKey::from_storage_bytes(&entry.key);
        if key.is_none_or(|key| key.class == Class::Kv) {
            return false;
        }
        let store_key = StoreKey::new(partition, entry.key.clone());
        let Ok(bytes) = self.storage.get(&store_key) else {
            return false;
        };
        if !holds_deadline(bytes.as_deref(), entry.deadline_ms) {
            return false;
        }
        let digest = crate::feed::expiry_digest(&entry.key, entry.deadline_ms);
        self.feed
            .record(partition, entry.key.clone(), ChangeKind::Expired, digest);
        true
    }
}

#[cfg(test)]
mod tests;
