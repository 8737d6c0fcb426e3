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
mod tests;
