//! Model-based test (after sled's tests/tree): random operations run against each store
//! and against a `BTreeMap`, including restarts and, for the memory twin, power losses.

use super::super::*;
use super::sled_options;
use crate::ids::PartitionId;
use proptest::prelude::*;
use std::collections::BTreeMap;

const PARTITIONS: u32 = 4;

#[derive(Clone, Debug)]
enum Op {
    Put {
        partition: u32,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Keep {
        partition: u32,
        key: Vec<u8>,
    },
    Abort {
        partition: u32,
        key: Vec<u8>,
    },
    Get {
        partition: u32,
        key: Vec<u8>,
    },
    Delete {
        partition: u32,
        key: Vec<u8>,
    },
    Scan {
        partition: u32,
        after: Option<Vec<u8>>,
        limit: usize,
    },
    Len,
    Flush,
    /// Clean close and reopen: nothing is lost.
    Restart,
    /// Power loss: the memory twin forgets unflushed writes; sled (which cannot crash
    /// in-process) treats it as a restart.
    Crash,
}

/// Few distinct keys so operations collide, including bytes at both ends of the range
/// to probe partition boundaries.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0u8, 1, 0x7f, 0xff]), 0..3)
}

fn op() -> impl Strategy<Value = Op> {
    let partition = 0..PARTITIONS;
    prop_oneof![
        6 => (partition.clone(), key(), prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(partition, key, value)| Op::Put { partition, key, value }),
        1 => (partition.clone(), key()).prop_map(|(partition, key)| Op::Keep { partition, key }),
        1 => (partition.clone(), key()).prop_map(|(partition, key)| Op::Abort { partition, key }),
        3 => (partition.clone(), key()).prop_map(|(partition, key)| Op::Get { partition, key }),
        2 => (partition.clone(), key()).prop_map(|(partition, key)| Op::Delete { partition, key }),
        3 => (partition, prop::option::of(key()), 0usize..6)
            .prop_map(|(partition, after, limit)| Op::Scan { partition, after, limit }),
        1 => Just(Op::Len),
        1 => Just(Op::Flush),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

/// A store under test that can be restarted or crashed.
trait Subject {
    fn storage(&self) -> &dyn Storage;
    fn restart(&mut self);
    /// Returns whether unflushed writes were lost.
    fn crash(&mut self) -> bool;
}

struct Memory(MemoryStorage);

impl Subject for Memory {
    fn storage(&self) -> &dyn Storage {
        &self.0
    }
    /// A clean shutdown flushes, as closing sled does.
    fn restart(&mut self) {
        self.0.flush().expect("flush");
    }
    fn crash(&mut self) -> bool {
        self.0.lose_unflushed_writes();
        true
    }
}

/// The store comes first so it is closed before its directory is removed.
struct Sled {
    store: Option<SledStorage>,
    directory: tempfile::TempDir,
}

impl Subject for Sled {
    fn storage(&self) -> &dyn Storage {
        self.store.as_ref().expect("store is open")
    }
    fn restart(&mut self) {
        self.store
            .take()
            .expect("store is open")
            .close()
            .expect("close");
        let reopened = SledStorage::open(self.directory.path(), sled_options(PARTITIONS));
        self.store = Some(reopened.expect("reopen"));
    }
    fn crash(&mut self) -> bool {
        self.restart();
        false
    }
}

type Model = BTreeMap<(u32, Vec<u8>), Vec<u8>>;

fn model_scan(model: &Model, partition: u32, after: Option<&[u8]>, limit: usize) -> Vec<Entry> {
    model
        .iter()
        .filter(|((entry_partition, key), _)| {
            *entry_partition == partition && after.is_none_or(|after| key.as_slice() > after)
        })
        .take(limit)
        .map(|((_, key), value)| (key.clone(), value.clone()))
        .collect()
}

fn run(subject: &mut dyn Subject, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::new();
    let mut durable = Model::new();
    for (step, op) in ops.iter().enumerate() {
        let storage = subject.storage();
        match op {
            Op::Put {
                partition,
                key,
                value,
            } => {
                let stored = storage
                    .update(
                        &StoreKey::new(PartitionId(*partition), key.clone()),
                        &mut |_| Ok(Some(value.clone().into())),
                    )
                    .expect("put");
                prop_assert_eq!(stored.as_ref(), Some(value), "step {}", step);
                model.insert((*partition, key.clone()), value.clone());
            }
            Op::Keep { partition, key } => {
                let mut seen = None;
                let stored = storage
                    .update(
                        &StoreKey::new(PartitionId(*partition), key.clone()),
                        &mut |current| {
                            seen = Some(current.map(<[u8]>::to_vec));
                            Ok(None)
                        },
                    )
                    .expect("keep");
                let expected = model.get(&(*partition, key.clone())).cloned();
                prop_assert_eq!(seen, Some(expected.clone()), "step {}", step);
                prop_assert_eq!(stored, expected, "step {}", step);
            }
            Op::Abort { partition, key } => {
                let outcome = storage.update(
                    &StoreKey::new(PartitionId(*partition), key.clone()),
                    &mut |_| Err(UpdateAbort::new(AbortReason::Caller, "model")),
                );
                prop_assert!(
                    matches!(outcome, Err(StorageError::Aborted(_))),
                    "step {}",
                    step
                );
            }
            Op::Get { partition, key } => {
                let value = storage
                    .get(&StoreKey::new(PartitionId(*partition), key.clone()))
                    .expect("get");
                prop_assert_eq!(
                    value,
                    model.get(&(*partition, key.clone())).cloned(),
                    "step {}",
                    step
                );
            }
            Op::Delete { partition, key } => {
                storage
                    .delete(&StoreKey::new(PartitionId(*partition), key.clone()))
                    .expect("delete");
                model.remove(&(*partition, key.clone()));
            }
            Op::Scan {
                partition,
                after,
                limit,
            } => {
                let page = storage
                    .scan_partition(PartitionId(*partition), after.as_deref(), *limit)
                    .expect("scan");
                prop_assert_eq!(
                    page,
                    model_scan(&model, *partition, after.as_deref(), *limit),
                    "step {}",
                    step
                );
            }
            Op::Len => prop_assert_eq!(
                storage.len().expect("len"),
                model.len() as u64,
                "step {}",
                step
            ),
            Op::Flush => {
                storage.flush().expect("flush");
                durable = model.clone();
            }
            Op::Restart => {
                subject.restart();
                durable = model.clone();
            }
            Op::Crash => {
                if subject.crash() {
                    model = durable.clone();
                } else {
                    durable = model.clone();
                }
            }
        }
    }
    let storage = subject.storage();
    for partition in 0..PARTITIONS {
        let everything = storage
            .scan_partition(PartitionId(partition), None, usize::MAX)
            .expect("scan");
        prop_assert_eq!(everything, model_scan(&model, partition, None, usize::MAX));
    }
    prop_assert_eq!(storage.len().expect("len"), model.len() as u64);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn memory_store_matches_the_model(ops in prop::collection::vec(op(), 0..60)) {
        let mut subject = Memory(MemoryStorage::new(PARTITIONS).expect("memory store"));
        run(&mut subject, &ops)?;
    }

    #[test]
    fn sled_store_matches_the_model(ops in prop::collection::vec(op(), 0..60)) {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store = SledStorage::open(directory.path(), sled_options(PARTITIONS)).expect("open");
        let mut subject = Sled { store: Some(store), directory };
        run(&mut subject, &ops)?;
    }
}
