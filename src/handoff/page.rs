//! What one page of a partition transfer carries: the stored objects a scan found, in
//! key order, until the next one would pass the page's byte budget. It decides only
//! which entries go; it never reads the store or sends anything.

use crate::object::decode_object;
use crate::wire::PartitionEntry;

/// The entries of one page from `scanned` (storage key, stored bytes), in order: they
/// end BEFORE the first entry that would take the page past `bytes_max`, except that a
/// page always carries at least one object (an object fits in a frame on its own,
/// `OBJECT_BYTES_MAX`). `more` is true when entries were left out or the scan was
/// `full` (stopped at its entry limit). Undecodable objects are skipped and logged.
pub fn page(
    scanned: Vec<(Vec<u8>, Vec<u8>)>,
    full: bool,
    bytes_max: usize,
) -> (Vec<PartitionEntry>, bool) {
    let mut entries = Vec::with_capacity(scanned.len());
    let mut bytes = 0usize;
    for (key, value) in scanned {
        let size = key.len() + value.len();
        if !entries.is_empty() && bytes + size > bytes_max {
            // The next page starts after the last key sent, so this one comes first there.
            return (entries, true);
        }
        match decode_object(&value) {
            Ok(object) => {
                bytes += size;
                entries.push(PartitionEntry { key, object });
            }
            Err(error) => tracing::warn!(%error, "skipping an unreadable object in a transfer"),
        }
    }
    (entries, full)
}

#[cfg(test)]
mod tests {
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
}
