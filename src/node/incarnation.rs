//! The node's incarnation: which actor it mints dots under.
//!
//! The coordinator sends a version minted here to the other replicas while this node's
//! own flush of it is still running (the two waits overlap). A crash in between leaves
//! the other replicas holding a dot this store lost, and minting the next version of
//! that key from the store would hand out the same dot again for another value. So a
//! node that did not stop cleanly (and a store that is new, e.g. a wiped disk under a
//! known node id) takes a new random incarnation, hence a new actor, before it serves;
//! a clean stop, after its final flush, marks the incarnation reusable.
//!
//! One record in `AuxSpace::Node`: the incarnation (8 bytes, little-endian) and a
//! clean-stop byte.

use crate::clock::Actor;
use crate::ids::NodeId;
use crate::storage::{AuxSpace, Storage, StorageError};

const RECORD_KEY: &[u8] = b"incarnation";
const RUNNING: u8 = 0;
const STOPPED_CLEANLY: u8 = 1;

/// The incarnation this start uses and whether it is new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incarnation {
    pub number: u64,
    /// A new incarnation: the last stop was not clean, or the store is new.
    pub fresh: bool,
}

impl Incarnation {
    pub fn actor(&self, node: &NodeId) -> Actor {
        Actor::of_incarnation(node, self.number)
    }
}

/// Decides this start's incarnation (the stored one after a clean stop, else a new
/// random one), records it as running and flushes, all before the node mints anything.
pub fn begin(storage: &dyn Storage) -> Result<Incarnation, StorageError> {
    let incarnation = match read(storage)? {
        Some((number, STOPPED_CLEANLY)) => Incarnation {
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

/// The stored incarnation and its state byte; a record of another shape counts as none
/// (a new incarnation is always safe).
fn read(storage: &dyn Storage) -> Result<Option<(u64, u8)>, StorageError> {
    let found = storage.aux_scan(AuxSpace::Node, RECORD_KEY, None, 1)?;
    Ok(found
        .into_iter()
        .find(|(key, _)| key == RECORD_KEY)
        .and_then(|(_, value)| {
            let (number, state) = value.split_first_chunk::<8>()?;
            match state {
                [state] => Some((u64::from_le_bytes(*number), *state)),
                _ => None,
            }
        }))
}

fn write(storage: &dyn Storage, number: u64, state: u8) -> Result<(), StorageError> {
    let mut value = number.to_le_bytes().to_vec();
    value.push(state);
    storage.aux_put(AuxSpace::Node, RECORD_KEY, &value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Durability, SledStorage, StorageOptions};

    fn open(path: &std::path::Path) -> SledStorage {
        SledStorage::open(
            path,
            StorageOptions {
                partitions: 8,
                cache_bytes: 1 << 20,
                durability: Durability::default(),
            },
        )
        .expect("open store")
    }

    #[test]
    fn a_clean_stop_keeps_the_incarnation_and_a_crash_changes_it() {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeId::new("a-1").unwrap();
        let first = begin(&open(dir.path())).unwrap();
        assert!(first.fresh, "a new store takes a new incarnation");

        // Stopped without `end_cleanly` (a crash): the next start takes another.
        let after_crash = begin(&open(dir.path())).unwrap();
        assert!(after_crash.fresh);
        assert_ne!(after_crash.number, first.number);
        assert_ne!(after_crash.actor(&node), first.actor(&node));

        let store = open(dir.path());
        let running = begin(&store).unwrap();
        end_cleanly(&store, running).unwrap();
        drop(store);
        let after_clean_stop = begin(&open(dir.path())).unwrap();
        assert_eq!(
            after_clean_stop,
            Incarnation {
                number: running.number,
                fresh: false
            }
        );

        // The clean mark is used up by the start that read it: a crash now counts.
        let after_second_crash = begin(&open(dir.path())).unwrap();
        assert!(after_second_crash.fresh);
        assert_ne!(after_second_crash.number, running.number);
    }

    #[test]
    fn a_damaged_record_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store
            .aux_put(AuxSpace::Node, RECORD_KEY, &[STOPPED_CLEANLY; 3])
            .unwrap();
        assert!(begin(&store).unwrap().fresh);
    }
}
