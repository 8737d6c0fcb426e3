//! What the near-cache keeps and serves, and that a change racing a read is never
//! hidden.

use super::*;
use crate::crdt::UserDoc;

#[derive(Default)]
struct Watched(Mutex<Vec<Vec<u8>>>, Mutex<Vec<(Vec<u8>, [u8; 32])>>);

impl Watch for Watched {
    fn watch(&self, key: &[u8]) {
        self.0.lock().unwrap().push(key.to_vec());
    }

    fn confirm(&self, key: &[u8], digest: [u8; 32]) {
        self.1.lock().unwrap().push((key.to_vec(), digest));
    }
}

fn doc(deadline_ms: u64) -> UserDoc {
    UserDoc {
        deadline_ms,
        ..UserDoc::default()
    }
}

fn cache(bytes_max: usize) -> (NearCache, Arc<Watched>) {
    let watched = Arc::new(Watched::default());
    (
        NearCache::new(bytes_max, watched.clone(), Arc::default()),
        watched,
    )
}

#[test]
fn a_read_kept_is_served_until_its_key_changes() {
    let (cache, watched) = cache(1 << 20);
    assert_eq!(cache.get(b"u"), None);
    let ticket = cache.begin(b"u");
    assert_eq!(
        watched.0.lock().unwrap().as_slice(),
        &[b"u".to_vec()],
        "watched before the read"
    );
    cache.keep(b"u", ticket, (doc(5), [0; 32]), 100);
    assert_eq!(cache.get(b"u").map(|doc| doc.deadline_ms), Some(5));
    cache.invalidate(b"u");
    assert_eq!(cache.get(b"u"), None);
    assert_eq!(cache.held(), (0, 0));
    let stats = cache.stats();
    assert_eq!(stats.hits.load(Ordering::Relaxed), 1);
    assert_eq!(stats.misses.load(Ordering::Relaxed), 2);
}

#[test]
fn a_change_while_a_read_is_in_flight_keeps_the_read_out() {
    let (cache, _) = cache(1 << 20);
    let ticket = cache.begin(b"u");
    cache.invalidate(b"u");
    cache.keep(b"u", ticket, (doc(1), [0; 32]), 100);
    assert_eq!(cache.get(b"u"), None, "it may be older than the change");
    let other = cache.begin(b"v");
    cache.invalidate(b"u");
    cache.keep(b"v", other, (doc(2), [0; 32]), 100);
    assert!(
        cache.get(b"v").is_some(),
        "another key's change does not matter"
    );
    assert_eq!(cache.stats().raced.load(Ordering::Relaxed), 1);
}

#[test]
fn a_read_older_than_the_invalidations_remembered_is_not_kept() {
    let (cache, _) = cache(1 << 20);
    let ticket = cache.begin(b"u");
    for n in 0..=INVALIDATIONS_REMEMBERED_MAX {
        cache.invalidate(format!("other{n}").as_bytes());
    }
    cache.keep(b"u", ticket, (doc(1), [0; 32]), 100);
    assert_eq!(cache.get(b"u"), None, "the floor passed it: it cannot tell");
}

#[test]
fn a_lost_feed_clears_everything_and_every_read_in_flight() {
    let (cache, _) = cache(1 << 20);
    let kept = cache.begin(b"a");
    cache.keep(b"a", kept, (doc(1), [0; 32]), 10);
    let in_flight = cache.begin(b"b");
    cache.clear();
    cache.keep(b"b", in_flight, (doc(2), [0; 32]), 10);
    assert_eq!((cache.get(b"a"), cache.get(b"b")), (None, None));
    let after = cache.begin(b"b");
    cache.keep(b"b", after, (doc(3), [0; 32]), 10);
    assert!(cache.get(b"b").is_some());
}

#[test]
fn the_bound_drops_the_oldest_entries() {
    let entry = ENTRY_FIXED_BYTES + 1 + 100;
    let (cache, _) = cache(3 * entry);
    for key in [b"a", b"b", b"c", b"d"] {
        let ticket = cache.begin(key);
        cache.keep(key, ticket, (doc(1), [0; 32]), 100);
    }
    assert_eq!(cache.held(), (3, 3 * entry));
    assert_eq!(cache.get(b"a"), None);
    assert!(cache.get(b"d").is_some());
    // Kept again, a key's older place in the order does not evict its newer entry.
    let ticket = cache.begin(b"b");
    cache.keep(b"b", ticket, (doc(2), [0; 32]), 100);
    let ticket = cache.begin(b"e");
    cache.keep(b"e", ticket, (doc(1), [0; 32]), 100);
    assert_eq!(cache.get(b"b").map(|doc| doc.deadline_ms), Some(2));
    assert_eq!(cache.get(b"c"), None);
    let ticket = cache.begin(b"huge");
    cache.keep(b"huge", ticket, (doc(1), [0; 32]), 10 * entry);
    assert_eq!(cache.get(b"huge"), None, "larger than the whole cache");
}

#[test]
fn a_kept_read_tells_the_feed_what_it_found_and_a_raced_one_does_not() {
    let (cache, watched) = cache(1 << 20);
    let ticket = cache.begin(b"u");
    cache.keep(b"u", ticket, (doc(1), [5; 32]), 10);
    let raced = cache.begin(b"v");
    cache.invalidate(b"v");
    cache.keep(b"v", raced, (doc(1), [6; 32]), 10);
    assert_eq!(
        watched.1.lock().unwrap().as_slice(),
        &[(b"u".to_vec(), [5; 32])]
    );
}
