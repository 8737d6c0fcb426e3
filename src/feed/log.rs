//! The change log itself (pure: no clock, no I/O, no waiting): the changes a replica
//! applied, in order, each with a node-wide sequence number (`global`) and one within
//! its partition (`seq`), bounded in bytes. The oldest changes go first when a new one
//! would pass the bound; a reader whose position went with them is told it fell
//! behind (`Page::behind`) and must treat everything the log covers as changed.

use crate::ids::PartitionId;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// What a change did to a key, as a reader of the feed sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeKind {
    /// A value was written (created or changed).
    Written,
    /// The key was deleted before its deadline (or had none).
    Deleted,
    /// The key was deleted at or after its deadline: the sweeper's expiry.
    Expired,
}

/// One applied change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Position in the node's log: one more than the change before it.
    pub global: u64,
    pub partition: PartitionId,
    /// Position among the changes of `partition`, from 1.
    pub seq: u64,
    /// The key as stored: its class tag, then the key (`ObjectKey::storage_bytes`).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    pub kind: ChangeKind,
    /// The digest of the object after the change: the same change applied at several
    /// replicas carries the same digest, so a reader of several feeds can tell a
    /// repeat.
    pub digest: [u8; 32],
}

impl Change {
    /// What the change costs the log's byte bound: its key and a fixed part.
    pub fn cost_bytes(&self) -> usize {
        self.key.len() + CHANGE_FIXED_BYTES
    }
}

/// The bytes a change costs beyond its key (the fields and the queue's slot).
pub const CHANGE_FIXED_BYTES: usize = 96;

/// A reader's place in a node's log: the log's epoch (new at every start) and the next
/// `global` it wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor {
    pub epoch: u64,
    pub next: u64,
}

/// What one read of the log returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The changes from the reader's position, in order (none if it fell behind).
    pub changes: Vec<Change>,
    /// Changes after the reader's position are gone (the log dropped them, or it is
    /// another log: the node restarted). The reader must treat every key the log
    /// covers as changed, and goes on from `next`, the tail.
    pub behind: bool,
    /// Where to read next.
    pub next: Cursor,
}

/// One partition's positions.
#[derive(Clone, Copy, Debug, Default)]
struct Positions {
    /// The `seq` the next change of the partition gets.
    next: u64,
    /// The highest `seq` of the partition the log dropped (0: none).
    dropped: u64,
}

/// The log of one node's replica.
#[derive(Debug)]
pub struct Log {
    epoch: u64,
    entries: VecDeque<Change>,
    bytes: usize,
    bytes_max: usize,
    /// The `global` of `entries[0]` (or of the next change when there is none).
    first: u64,
    partitions: Vec<Positions>,
}

impl Log {
    /// An empty log of `partitions` partitions under `epoch` (drawn at random by the
    /// caller at every start), holding at most `bytes_max` bytes of changes.
    pub fn new(epoch: u64, partitions: u32, bytes_max: usize) -> Log {
        Log {
            epoch,
            entries: VecDeque::new(),
            bytes: 0,
            bytes_max,
            first: 1,
            partitions: vec![
                Positions {
                    next: 1,
                    dropped: 0
                };
                partitions as usize
            ],
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Where a reader that wants only changes from now on starts.
    pub fn tail(&self) -> Cursor {
        Cursor {
            epoch: self.epoch,
            next: self.first + self.entries.len() as u64,
        }
    }

    /// Bytes of changes held (`Change::cost_bytes` summed).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends a change of `key` in `partition`, dropping the oldest changes while the
    /// log would pass its bound; returns its `global`. A partition out of range is
    /// our bug.
    pub fn record(
        &mut self,
        partition: PartitionId,
        key: Vec<u8>,
        kind: ChangeKind,
        digest: [u8; 32],
    ) -> u64 {
        let positions = &mut self.partitions[partition.0 as usize];
        let change = Change {
            global: self.first + self.entries.len() as u64,
            partition,
            seq: positions.next,
            key,
            kind,
            digest,
        };
        positions.next += 1;
        let cost = change.cost_bytes();
        while !self.entries.is_empty() && self.bytes + cost > self.bytes_max {
            self.drop_oldest();
        }
        let global = change.global;
        self.bytes += cost;
        self.entries.push_back(change);
        // A change larger than the whole bound is not kept: its readers fall behind.
        if self.bytes > self.bytes_max {
            self.drop_oldest();
        }
        global
    }

    fn drop_oldest(&mut self) {
        if let Some(change) = self.entries.pop_front() {
            self.bytes -= change.cost_bytes();
            self.first += 1;
            self.partitions[change.partition.0 as usize].dropped = change.seq;
        }
    }

    /// The changes from `from` on: at most `entries_max` and about `bytes_max` bytes
    /// (at least one if any is due). A reader that fell behind (its position dropped,
    /// another epoch's, or one never given) gets no changes, since it must treat
    /// everything as changed anyway, and the tail as its next position.
    pub fn read(&self, from: Cursor, entries_max: usize, bytes_max: usize) -> Page {
        let tail = self.tail();
        if from.epoch != self.epoch || from.next > tail.next || from.next < self.first {
            return Page {
                changes: Vec::new(),
                behind: true,
                next: tail,
            };
        }
        let mut changes = Vec::new();
        let mut bytes = 0;
        let skip = (from.next - self.first) as usize;
        for change in self.entries.iter().skip(skip) {
            if changes.len() >= entries_max
                || (!changes.is_empty() && bytes + change.cost_bytes() > bytes_max)
            {
                break;
            }
            bytes += change.cost_bytes();
            changes.push(change.clone());
        }
        let next = Cursor {
            epoch: self.epoch,
            next: from.next + changes.len() as u64,
        };
        Page {
            changes,
            behind: false,
            next,
        }
    }

    /// The changes of `partition` after its `seq` `after`, at most `entries_max`;
    /// `None` if the log dropped changes of the partition after `after` (the reader
    /// fell behind) or `after` was never given.
    pub fn read_partition(
        &self,
        partition: PartitionId,
        after: u64,
        entries_max: usize,
    ) -> Option<Vec<Change>> {
        let positions = self.partitions.get(partition.0 as usize)?;
        if after < positions.dropped || after >= positions.next {
            return None;
        }
        Some(
            self.entries
                .iter()
                .filter(|change| change.partition == partition && change.seq > after)
                .take(entries_max)
                .cloned()
                .collect(),
        )
    }
}
