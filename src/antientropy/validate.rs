//! Shape checks shared by both sides of the exchange: every list a peer sends is checked
//! against its limit, its order and the tree's ranges before anything indexes with it.

use super::error::{Bound, ExchangeError};
use super::message::LeafPage;
use super::tree::{leaf_index, Hash};
use crate::limits::{
    ENTRY_KEY_BYTES_MAX, LEAF_ENTRIES_PER_MESSAGE_MAX, LEAF_ENTRY_BYTES_PER_MESSAGE_MAX,
    LEAVES_PER_MESSAGE_MAX, TREE_DEPTH_MAX,
};

/// Bytes an entry counts against `LEAF_ENTRY_BYTES_PER_MESSAGE_MAX`.
pub(crate) fn entry_cost(key: &[u8]) -> usize {
    key.len() + 32
}

pub(crate) fn depth(ours: u8, theirs: u8) -> Result<(), ExchangeError> {
    if ours == theirs {
        Ok(())
    } else {
        Err(ExchangeError::DepthMismatch { ours, theirs })
    }
}

pub(crate) fn count(what: Bound, count: usize, max: usize) -> Result<(), ExchangeError> {
    if count > max {
        return Err(ExchangeError::TooLarge { what, count, max });
    }
    Ok(())
}

/// Indexes are strictly increasing and exist at `level`.
pub(crate) fn indexes(indexes: &[u32], level: u8) -> Result<(), ExchangeError> {
    if level > TREE_DEPTH_MAX {
        return Err(ExchangeError::LevelOutOfRange {
            level,
            reply_level: level,
            depth: TREE_DEPTH_MAX,
        });
    }
    let width = 1u64 << level;
    if let Some(&index) = indexes.iter().find(|&&index| u64::from(index) >= width) {
        return Err(ExchangeError::IndexOutOfRange { level, index });
    }
    increasing(indexes)
}

pub(crate) fn increasing<T: Ord>(items: &[T]) -> Result<(), ExchangeError> {
    if items.windows(2).all(|pair| pair[0] < pair[1]) {
        Ok(())
    } else {
        Err(ExchangeError::NotIncreasing)
    }
}

/// A non-empty list of node hashes within `max`, indexes and hashes paired.
pub(crate) fn node_list(
    level: u8,
    node_indexes: &[u32],
    hashes: &[Hash],
    max: usize,
) -> Result<(), ExchangeError> {
    if node_indexes.len() != hashes.len() {
        return Err(ExchangeError::LengthMismatch {
            indexes: node_indexes.len(),
            hashes: hashes.len(),
        });
    }
    if node_indexes.is_empty() {
        return Err(ExchangeError::Empty);
    }
    count(Bound::Hashes, node_indexes.len(), max)?;
    indexes(node_indexes, level)
}

pub(crate) fn key(key: &[u8]) -> Result<(), ExchangeError> {
    if key.len() > ENTRY_KEY_BYTES_MAX {
        return Err(ExchangeError::KeyTooLarge { len: key.len() });
    }
    Ok(())
}

/// The pages of a `LeafEntries` message: within the limits, leaves increasing and in the
/// tree, only the last page incomplete and then not empty, keys increasing within a page
/// (the first one after `after`) and belonging to the page's leaf.
pub(crate) fn pages(
    pages: &[LeafPage],
    depth: u8,
    after: Option<&[u8]>,
) -> Result<(), ExchangeError> {
    count(Bound::Leaves, pages.len(), LEAVES_PER_MESSAGE_MAX)?;
    let leaves: Vec<u32> = pages.iter().map(|page| page.leaf).collect();
    indexes(&leaves, depth)?;
    let (mut entries, mut bytes) = (0usize, 0usize);
    for (position, page) in pages.iter().enumerate() {
        let last = position + 1 == pages.len();
        if !page.complete && (!last || page.entries.is_empty()) {
            return Err(ExchangeError::NoProgress);
        }
        let mut previous = if position == 0 { after } else { None };
        for (key, _) in &page.entries {
            self::key(key)?;
            if previous.is_some_and(|previous| previous >= key.as_slice()) {
                return Err(ExchangeError::NotIncreasing);
            }
            if leaf_index(key, depth) != page.leaf {
                return Err(ExchangeError::WrongLeaf { leaf: page.leaf });
            }
            previous = Some(key);
            bytes += entry_cost(key);
        }
        entries += page.entries.len();
    }
    count(Bound::Entries, entries, LEAF_ENTRIES_PER_MESSAGE_MAX)?;
    count(Bound::EntryBytes, bytes, LEAF_ENTRY_BYTES_PER_MESSAGE_MAX)
}
