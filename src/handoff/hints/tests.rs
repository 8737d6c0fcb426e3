use super::*;
use crate::storage::MemoryStorage;

fn hints() -> Hints {
    Hints::open(Arc::new(MemoryStorage::new(4).unwrap())).unwrap()
}

#[test]
fn hints_are_counted_per_owner_and_survive_reopening() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new(4).unwrap());
    let hints = Hints::open(storage.clone()).unwrap();
    let a = NodeId("a-1".into());
    let b = NodeId("b-1".into());
    for i in 0..3 {
        hints
            .store(
                &a,
                ObjectKey::kv(format!("k{i}").as_bytes()),
                Object::empty_kv(),
            )
            .unwrap();
    }
    hints
        .store(&b, ObjectKey::kv(b"x"), Object::empty_kv())
        .unwrap();
    assert_eq!(hints.pending(), [(a.clone(), 3), (b.clone(), 1)].into());
    let reopened = Hints::open(storage).unwrap();
    assert_eq!(reopened.pending(), [(a.clone(), 3), (b, 1)].into());
    let batch = reopened.batch(&a, 10, u64::MAX, now_ms()).unwrap();
    let keys: Vec<Vec<u8>> = batch
        .iter()
        .map(|(_, entry)| entry.key.key.clone())
        .collect();
    assert_eq!(
        keys,
        vec![b"k0".to_vec(), b"k1".to_vec(), b"k2".to_vec()],
        "oldest first"
    );
}

#[test]
fn expired_hints_are_dropped_not_replayed() {
    let hints = hints();
    let a = NodeId("a-1".into());
    hints
        .store(&a, ObjectKey::kv(b"k"), Object::empty_kv())
        .unwrap();
    assert_eq!(
        hints.batch(&a, 10, 1000, now_ms()).unwrap().len(),
        1,
        "inside the window"
    );
    assert!(hints
        .batch(&a, 10, 1000, now_ms() + 1001)
        .unwrap()
        .is_empty());
    assert!(hints.pending().is_empty());
    assert_eq!(hints.stats.dropped.load(Ordering::Relaxed), 1);
}

#[test]
fn a_full_owner_drops_its_oldest_hint() {
    let hints = hints();
    let a = NodeId("a-1".into());
    hints
        .pending
        .lock()
        .unwrap()
        .insert(a.clone(), limits::HINTS_PER_NODE_MAX);
    hints
        .store(&a, ObjectKey::kv(b"old"), Object::empty_kv())
        .unwrap();
    hints
        .store(&a, ObjectKey::kv(b"new"), Object::empty_kv())
        .unwrap();
    let batch = hints.batch(&a, 10, u64::MAX, now_ms()).unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].1.key.key, b"new".to_vec());
    assert_eq!(hints.stats.dropped.load(Ordering::Relaxed), 1);
}
