//! The node's incarnation: which actor it mints dots under.
//!
//! The coordinator sends a version minted here to the other replicas while this node's
//! own flush of it is still running (the two waits overlap). A crash in between leaves
//! the other replicas holding a dot this store lost, and minting the next version of
//! that key from the store would hand out the same dot again for another value. So a
//! node that may have done that (and a store that is new, e.g. a wiped disk under a
//! known node id) takes a new random incarnation, hence a new actor, before it serves.
//!
//! Every new actor stays in the version vectors of the keys it writes, so the rule is
//! kept narrow: an incarnation sends early only once its record durably says it may
//! (`EarlySend`; until then a version travels after its flush, as from a remote
//! minter), and only a crash after that point costs a new actor. A clean stop (after
//! its final flush) and a crash before the first early send keep the incarnation.
//!
//! One record in `AuxSpace::Node`: a format byte, the incarnation (8 bytes,
//! little-endian) and a state byte. A record of another format or shape counts as none,
//! which only costs a new incarnation.

use crate::clock::Actor;
use crate::ids::NodeId;
use crate::storage::{AuxSpace, Storage, StorageError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const RECORD_KEY: &[u8] = b"incarnation";
const RECORD_FORMAT: u8 = 1;
/// Every version this incarnation sent was durable here first.
const RUNNING: u8 = 0;
/// Stopped after a successful final flush.
const STOPPED_CLEANLY: u8 = 1;
/// This incarnation may have sent versions before they were durable here.
const SENDS_EARLY: u8 = 2;

/// The incarnation this start uses and whether it is new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incarnation {
    pub number: u64,
    /// A new incarnation: the last life may have sent a version its store lost, or
    /// the store is new.
    pub fresh: bool,
}

impl Incarnation {
    pub fn actor(&self, node: &NodeId) -> Actor {
        Actor::of_incarnation(node, self.number)
    }
}

/// Decides this start's incarnation (the stored one unless it may have sent a version
/// its store lost, else a new random one), records it as running and flushes, all
/// before the node mints anything.
pub fn begin(storage: &dyn Storage) -> Result<Incarnation, StorageError> {
    let incarnation = match read(storage)? {
        Some((number, STOPPED_CLEANLY | RUNNING)) => Incarnation {
            number,
            fresh: false,
        },
        _ => Incarnation {
            number: rand::random(),
            fresh: true,
        },
    };
    write(storage, incarnation.number, RUNNING)?;
    storage.flush()?;
    Ok(incarnation)
}

/// Marks `incarnation` reusable: call only after the final flush succeeded, when
/// every version this node ever sent is on its disk.
pub fn end_cleanly(storage: &dyn Storage, incarnation: Incarnation) -> Result<(), StorageError> {
    write(storage, incarnation.number, STOPPED_CLEANLY)?;
    storage.flush()
}

/// Whether versions minted here may travel before they are durable here. The first
/// time it is asked, it records durably (in the background) that this incarnation
/// sends early, and says no until that record is on disk.
pub struct EarlySend {
    storage: Arc<dyn Storage>,
    incarnation: Incarnation,
    /// The record says `SENDS_EARLY` and is durable.
    armed: AtomicBool,
    /// A task is writing that record.
    arming: AtomicBool,
}

impl EarlySend {
    pub fn new(storage: Arc<dyn Storage>, incarnation: Incarnation) -> Arc<EarlySend> {
        Arc::new(EarlySend {
            storage,
            incarnation,
            armed: AtomicBool::new(false),
            arming: AtomicBool::new(false),
        })
    }

    /// Early sends are armed (without starting to arm them).
    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// `true` once early sends are safe; otherwise starts making them so (one task at
    /// a time; after a failure a later call tries again). Call inside a tokio runtime.
    pub fn ready(self: &Arc<Self>) -> bool {
        if self.armed.load(Ordering::Acquire) {
            return true;
        }
        if !self.arming.swap(true, Ordering::AcqRel) {
            let early = self.clone();
            tokio::task::spawn_blocking(move || {
                let storage = early.storage.as_ref();
                let recorded = write(storage, early.incarnation.number, SENDS_EARLY)
                    .and_then(|()| storage.flush());
                match recorded {
                    Ok(()) => early.armed.store(true, Ordering::Release),
                    Err(error) => {
                        tracing::warn!(%error, "cannot record early sends: versions wait for their flush");
                        early.arming.store(false, Ordering::Release);
                    }
                }
            });
        }
        false
    }
}

/// The stored incarnation and its state byte; a record of another shape counts as none
/// (a new incarnation is always safe).
fn read(storage: &dyn Storage) -> Result<Option<(u64, u8)>, StorageError> {
    let found = storage.aux_scan(AuxSpace::Node, RECORD_KEY, None, 1)?;
    Ok(found
        .into_iter()
        .find(|(key, _)| key == RECORD_KEY)
        .and_then(|(_, value)| match value.as_slice() {
            [RECORD_FORMAT, number @ .., state] => {
                Some((u64::from_le_bytes(number.try_into().ok()?), *state))
            }
            _ => None,
        }))
}

fn write(storage: &dyn Storage, number: u64, state: u8) -> Result<(), StorageError> {
    let mut value = vec![RECORD_FORMAT];
    value.extend_from_slice(&number.to_le_bytes());
    value.push(state);
    storage.aux_put(AuxSpace::Node, RECORD_KEY, &value)
}

#[cfg(test)]
mod tests;
