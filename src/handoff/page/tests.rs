use super::*;
use crate::object::{encode_object, sample_kv};

fn stored(name: &str, value_bytes: usize) -> (Vec<u8>, Vec<u8>) {
    let key = name.as_bytes().to_vec();
    (key, encode_object(&sample_kv(&vec![1; value_bytes])))
}

fn keys(entries: &[PartitionEntry]) -> Vec<&[u8]> {
    entries.iter().map(|entry| entry.key.as_slice()).collect()
}

#[test]
fn a_page_ends_before_its_byte_budget() {
    let scanned = vec![stored("a", 400), stored("b", 400), stored("c", 400)];
    let sizes: Vec<usize> = scanned.iter().map(|(k, v)| k.len() + v.len()).collect();
    // Room for two and a half objects: two go, the third waits for the next page.
    let budget = sizes[0] + sizes[1] + sizes[2] / 2;
    let (entries, more) = page(scanned.clone(), false, budget);
    assert_eq!(keys(&entries), vec![b"a".as_slice(), b"b"]);
    assert!(more, "the third object is still to come");
    // Exactly at the budget, all go; the scan's own end decides `more`.
    let exact = sizes.iter().sum();
    let (entries, more) = page(scanned.clone(), false, exact);
    assert_eq!(entries.len(), 3);
    assert!(!more);
    let (_, more) = page(scanned, true, exact);
    assert!(more, "a full scan has more after it");
}

#[test]
fn a_page_carries_at_least_one_object_even_past_its_budget() {
    let scanned = vec![stored("big", 4000), stored("next", 10)];
    let (entries, more) = page(scanned, false, 100);
    assert_eq!(keys(&entries), vec![b"big".as_slice()]);
    assert!(more);
}

#[test]
fn unreadable_objects_are_skipped_and_count_nothing() {
    let mut broken = stored("broken", 10);
    broken.1 = vec![99, 1, 2, 3];
    let scanned = vec![broken, stored("a", 10)];
    let (entries, more) = page(scanned, false, 1);
    assert_eq!(keys(&entries), vec![b"a".as_slice()]);
    assert!(!more);
}
