use super::*;
use crate::storage::{Durability, SledStorage, StorageOptions};
use std::time::{Duration, Instant};

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

/// Starts on the store at `path` and arms early sends, as a node serving writes
/// does; returns with the store closed.
async fn start_sending_early(path: &std::path::Path) -> Incarnation {
    let store: Arc<dyn Storage> = Arc::new(open(path));
    let incarnation = begin(store.as_ref()).unwrap();
    let early = EarlySend::new(store, incarnation);
    assert!(!early.ready(), "not before the record is durable");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !early.ready() {
        assert!(Instant::now() < deadline, "early sends never armed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    incarnation
}

#[tokio::test]
async fn a_crash_after_sending_early_changes_the_incarnation_one_before_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeId::new("a-1").unwrap();
    let first = start_sending_early(dir.path()).await;
    assert!(first.fresh, "a new store takes a new incarnation");

    // Stopped without `end_cleanly` (a crash) after early sends: another one.
    let after_crash = begin(&open(dir.path())).unwrap();
    assert!(after_crash.fresh);
    assert_ne!(after_crash.number, first.number);
    assert_ne!(after_crash.actor(&node), first.actor(&node));

    // A crash before any early send keeps it: every version sent was durable.
    let before_any = begin(&open(dir.path())).unwrap();
    let kept = Incarnation {
        number: after_crash.number,
        fresh: false,
    };
    assert_eq!(before_any, kept);
}

#[tokio::test]
async fn a_clean_stop_keeps_the_incarnation() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_sending_early(dir.path()).await;
    end_cleanly(&open(dir.path()), running).unwrap();
    let after_clean_stop = start_sending_early(dir.path()).await;
    let kept = Incarnation {
        number: running.number,
        fresh: false,
    };
    assert_eq!(after_clean_stop, kept);

    // The clean mark is used up by the start that read it: a crash now counts.
    let after_crash = begin(&open(dir.path())).unwrap();
    assert!(after_crash.fresh);
    assert_ne!(after_crash.number, running.number);
}

#[test]
fn a_damaged_record_or_another_format_counts_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let kept = begin(&store).unwrap();
    end_cleanly(&store, kept).unwrap();
    let mut other_format = vec![RECORD_FORMAT + 1];
    other_format.extend_from_slice(&kept.number.to_le_bytes());
    other_format.push(STOPPED_CLEANLY);
    for record in [vec![RUNNING; 3], other_format] {
        store.aux_put(AuxSpace::Node, RECORD_KEY, &record).unwrap();
        let started = begin(&store).unwrap();
        assert!(started.fresh, "{record:?}");
        assert_ne!(started.number, kept.number);
        end_cleanly(&store, started).unwrap();
    }
}
