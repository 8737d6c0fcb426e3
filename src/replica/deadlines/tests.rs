//! Expiries reported into the feed at their deadlines, once, and not again when swept.

use super::*;
use crate::clock::Hlc;
use crate::crdt::redis::{RedisOp, SetExpiry};
use crate::crdt::DocOp;
use crate::feed::{Change, Cursor};
use crate::replica::tests::memory_replica;

fn at(wall_ms: u64) -> Hlc {
    Hlc {
        wall_ms,
        logical: 0,
    }
}

fn set(replica: &Replica, key: &[u8], deadline_ms: Option<u64>, now_ms: u64) {
    let expiry = match deadline_ms {
        Some(deadline) => SetExpiry::AtMs(deadline),
        None => SetExpiry::Clear,
    };
    let op = DocOp::Redis(RedisOp::Set {
        value: b"v".to_vec(),
        expiry,
        condition: None,
        get: false,
    });
    let key = ObjectKey::new(Class::Resp, key);
    replica.apply_op_stored(&key, &op, at(now_ms)).expect("set");
}

fn changes(replica: &Replica, from: Cursor) -> Vec<Change> {
    replica.feed().read(from, 1000, usize::MAX).changes
}

fn expired_keys(changes: &[Change]) -> Vec<Vec<u8>> {
    changes
        .iter()
        .filter(|change| change.kind == ChangeKind::Expired)
        .map(|change| {
            ObjectKey::from_storage_bytes(&change.key)
                .expect("a key")
                .key
        })
        .collect()
}

#[test]
fn a_record_is_reported_expired_once_when_its_deadline_passes() {
    let replica = memory_replica();
    let held = [PartitionId(0)];
    let mut reported = Reported::starting_at(1_000);
    reported.retain(&held, 1_000);
    set(&replica, b"soon", Some(2_000), 1_000);
    set(&replica, b"later", Some(5_000), 1_000);
    set(&replica, b"never", None, 1_000);
    let from = replica.feed().tail();
    assert_eq!(replica.report_expired(&held, &mut reported, 1_999, 100), 0);
    assert_eq!(replica.report_expired(&held, &mut reported, 2_000, 100), 1);
    assert_eq!(
        replica.report_expired(&held, &mut reported, 3_000, 100),
        0,
        "once"
    );
    assert_eq!(
        expired_keys(&changes(&replica, from)),
        vec![b"soon".to_vec()]
    );
    assert_eq!(replica.report_expired(&held, &mut reported, 9_000, 100), 1);
    assert_eq!(
        expired_keys(&changes(&replica, from)),
        vec![b"soon".to_vec(), b"later".to_vec()]
    );
}

#[test]
fn a_refreshed_deadline_is_reported_at_the_new_one_and_the_sweep_under_the_same_digest() {
    let replica = memory_replica();
    let held = [PartitionId(0)];
    let mut reported = Reported::starting_at(0);
    reported.retain(&held, 0);
    set(&replica, b"k", Some(2_000), 1_000);
    set(&replica, b"k", Some(4_000), 1_500);
    let from = replica.feed().tail();
    assert_eq!(
        replica.report_expired(&held, &mut reported, 3_000, 100),
        0,
        "refreshed"
    );
    assert_eq!(replica.report_expired(&held, &mut reported, 4_000, 100), 1);
    let key = ObjectKey::new(Class::Resp, b"k");
    let expire = DocOp::Expire { deadline_ms: 4_000 };
    replica
        .apply_op_stored(&key, &expire, at(4_500))
        .expect("swept");
    let seen = changes(&replica, from);
    assert_eq!(expired_keys(&seen), vec![b"k".to_vec(), b"k".to_vec()]);
    assert_eq!(
        seen[0].digest, seen[1].digest,
        "the report at the deadline and the sweep's are one change to a reader"
    );
}

#[test]
fn deadlines_before_the_start_or_before_a_partition_was_held_are_not_reported() {
    let replica = memory_replica();
    set(&replica, b"old", Some(500), 100);
    let held = [PartitionId(0)];
    let mut reported = Reported::starting_at(1_000);
    reported.retain(&held, 1_000);
    assert_eq!(replica.report_expired(&held, &mut reported, 2_000, 100), 0);
    // Dropped, then held again: what passed meanwhile is not reported here.
    reported.retain(&[], 2_000);
    set(&replica, b"between", Some(2_500), 2_000);
    reported.retain(&held, 3_000);
    assert_eq!(replica.report_expired(&held, &mut reported, 3_500, 100), 0);
}

#[test]
fn a_pass_reads_at_most_its_budget_and_the_next_goes_on() {
    let replica = memory_replica();
    let held = [PartitionId(0)];
    let mut reported = Reported::starting_at(0);
    reported.retain(&held, 0);
    for n in 0..5u8 {
        set(&replica, &[b'k', n], Some(1_000 + u64::from(n)), 10);
    }
    assert_eq!(replica.report_expired(&held, &mut reported, 2_000, 2), 2);
    assert_eq!(replica.report_expired(&held, &mut reported, 2_000, 2), 2);
    assert_eq!(replica.report_expired(&held, &mut reported, 2_000, 2), 1);
    assert_eq!(replica.report_expired(&held, &mut reported, 2_000, 2), 0);
}

#[test]
fn a_sled_store_reports_as_the_memory_store_does() {
    use crate::clock::Actor;
    use crate::replica::trees::Trees;
    use crate::storage::{CommitGate, Durability, SledStorage, Storage, StorageOptions};
    use std::sync::Arc;
    let directory = tempfile::tempdir().expect("temporary directory");
    let mut options = StorageOptions::new(64);
    options.durability = Durability::Memory;
    let storage: Arc<dyn Storage> =
        Arc::new(SledStorage::open(directory.path(), options).expect("sled opens"));
    let gate = CommitGate::new(storage.clone(), Durability::Memory);
    let replica = Replica::new(Actor(1), 64, storage, gate, Arc::new(Trees::new(2, 64)));
    let key = ObjectKey::new(Class::Resp, b"brief");
    let partition = key.partition(64);
    let held: Vec<PartitionId> = (0..64).map(PartitionId).collect();
    let mut reported = Reported::starting_at(1_000);
    reported.retain(&held, 1_000);
    set(&replica, b"brief", Some(2_000), 1_500);
    assert_eq!(
        replica.report_expired(&held, &mut reported, 2_500, 100),
        1,
        "{partition:?}"
    );
}
