//! The responder's side of the exchange, and the bulk comparison of partition roots.
//!
//! The responder is stateless: each request is answered from the current tree and the
//! leaf-entries callback alone, so a peer cannot make us hold per-exchange state, and a
//! lost or abandoned exchange costs nothing here. Every request is validated (ranges,
//! order, counts, the size of the answer it asks for) before any work.

use super::error::{Bound, ExchangeError};
use super::exchange::StepError;
use super::message::{Entry, LeafPage, Message};
use super::tree::{Hash, PartitionTree};
use super::validate;
use crate::ids::PartitionId;
use crate::limits::{
    HASHES_PER_MESSAGE_MAX, LEAF_ENTRIES_PER_MESSAGE_MAX, LEAF_ENTRY_BYTES_PER_MESSAGE_MAX,
    LEAVES_PER_MESSAGE_MAX, ROOTS_PER_MESSAGE_MAX, STEP_BITS_MAX,
};

/// Answers one per-partition request (`TreeLevel` or `LeafRequest`) from our `tree` of
/// that partition and our entries of its leaves (`entries_of_leaf`, any order).
pub fn respond<E>(
    request: &Message,
    tree: &PartitionTree,
    mut entries_of_leaf: impl FnMut(u32) -> Result<Vec<Entry>, E>,
) -> Result<Message, StepError<E>> {
    match request {
        Message::TreeLevel {
            partition,
            depth,
            level,
            reply_level,
            indexes,
            hashes,
        } => {
            validate::depth(tree.depth(), *depth)?;
            check_levels(*level, *reply_level, *depth)?;
            let gap = reply_level - level;
            validate::node_list(*level, indexes, hashes, HASHES_PER_MESSAGE_MAX)?;
            validate::count(Bound::Hashes, indexes.len() << gap, HASHES_PER_MESSAGE_MAX)?;
            let differing = differing_nodes(tree, *level, indexes, hashes)?;
            if differing.is_empty() {
                Ok(Message::InSync {
                    partition: *partition,
                })
            } else if level == depth {
                leaf_entries(*partition, &differing, None, &mut entries_of_leaf)
            } else {
                Ok(descendants(*partition, tree, &differing, *reply_level, gap))
            }
        }
        Message::LeafRequest {
            partition,
            depth,
            leaves,
            after,
        } => {
            validate::depth(tree.depth(), *depth)?;
            if leaves.is_empty() {
                return Err(ExchangeError::Empty.into());
            }
            validate::count(Bound::Leaves, leaves.len(), LEAVES_PER_MESSAGE_MAX)?;
            validate::indexes(leaves, *depth)?;
            if let Some(after) = after {
                validate::key(after)?;
            }
            let after = after.as_deref();
            leaf_entries(*partition, leaves, after, &mut entries_of_leaf)
        }
        other => Err(ExchangeError::Unexpected { got: other.kind() }.into()),
    }
}

/// The nodes among `indexes` (already validated for `level`) whose hash is not ours.
fn differing_nodes(
    tree: &PartitionTree,
    level: u8,
    indexes: &[u32],
    hashes: &[Hash],
) -> Result<Vec<u32>, ExchangeError> {
    let mut differing = Vec::new();
    for (&index, hash) in indexes.iter().zip(hashes) {
        let ours = tree
            .node(level, index)
            .ok_or(ExchangeError::IndexOutOfRange { level, index })?;
        if &ours != hash {
            differing.push(index);
        }
    }
    Ok(differing)
}

/// A request at `level` asks for hashes at `reply_level`: deeper by 1..=STEP_BITS_MAX,
/// or, at the leaf level, the leaf level again (an answer in entries).
fn check_levels(level: u8, reply_level: u8, depth: u8) -> Result<(), ExchangeError> {
    let fits = if level == depth {
        reply_level == depth
    } else {
        level < reply_level && reply_level <= depth && reply_level - level <= STEP_BITS_MAX
    };
    if fits {
        Ok(())
    } else {
        Err(ExchangeError::LevelOutOfRange {
            level,
            reply_level,
            depth,
        })
    }
}

fn descendants(
    partition: PartitionId,
    tree: &PartitionTree,
    differing: &[u32],
    reply_level: u8,
    gap: u8,
) -> Message {
    let indexes: Vec<u32> = differing
        .iter()
        .flat_map(|&index| (index << gap)..((index + 1) << gap))
        .collect();
    let hashes = indexes
        .iter()
        .map(|&index| {
            tree.node(reply_level, index)
                .expect("descendants of a node inside the tree are inside it")
        })
        .collect();
    Message::Descendants {
        partition,
        level: reply_level,
        indexes,
        hashes,
    }
}

/// Our entries of `leaves` in leaf order then key order, the first leaf resuming after
/// `after`, until the message's entry or byte budget is spent (a leaf cut short ends the
/// message incomplete; the leaves not reached are listed as unsent). At least one entry
/// or one complete leaf always fits, so every answer makes progress.
fn leaf_entries<E>(
    partition: PartitionId,
    leaves: &[u32],
    after: Option<&[u8]>,
    entries_of_leaf: &mut impl FnMut(u32) -> Result<Vec<Entry>, E>,
) -> Result<Message, StepError<E>> {
    let (mut entries_left, mut bytes_left) = (
        LEAF_ENTRIES_PER_MESSAGE_MAX,
        LEAF_ENTRY_BYTES_PER_MESSAGE_MAX,
    );
    let mut pages = Vec::new();
    let mut unsent = Vec::new();
    for (position, &leaf) in leaves.iter().enumerate() {
        if entries_left == 0 || pages.len() == LEAVES_PER_MESSAGE_MAX {
            unsent.extend_from_slice(&leaves[position..]);
            break;
        }
        let mut entries =
            entries_of_leaf(leaf).map_err(|error| StepError::Source { leaf, error })?;
        entries.sort_unstable_by(|left, right| left.0.cmp(&right.0));
        if let (0, Some(after)) = (position, after) {
            entries.retain(|(key, _)| key.as_slice() > after);
        }
        let mut taken = 0;
        for (key, _) in &entries {
            validate::key(key)?;
            let cost = validate::entry_cost(key);
            if entries_left == 0 || cost > bytes_left {
                break;
            }
            entries_left -= 1;
            bytes_left -= cost;
            taken += 1;
        }
        let complete = taken == entries.len();
        entries.truncate(taken);
        if !complete && entries.is_empty() {
            // Nothing of this leaf fit: leave it for the next request.
            unsent.extend_from_slice(&leaves[position..]);
            break;
        }
        pages.push(LeafPage {
            leaf,
            entries,
            complete,
        });
        if !complete {
            unsent.extend_from_slice(&leaves[position + 1..]);
            break;
        }
    }
    debug_assert!(!pages.is_empty(), "the first leaf always makes progress");
    Ok(Message::LeafEntries {
        partition,
        pages,
        unsent,
    })
}

/// The `Roots` requests for our roots of the partitions both sides replicate, sorted by
/// partition and split at `ROOTS_PER_MESSAGE_MAX`. Later duplicates of a partition are
/// dropped.
pub fn roots_requests(roots: impl IntoIterator<Item = (PartitionId, Hash)>) -> Vec<Message> {
    let mut roots: Vec<(PartitionId, Hash)> = roots.into_iter().collect();
    roots.sort_by_key(|(partition, _)| *partition);
    roots.dedup_by_key(|(partition, _)| *partition);
    roots
        .chunks(ROOTS_PER_MESSAGE_MAX)
        .map(|chunk| Message::Roots {
            partitions: chunk.to_vec(),
        })
        .collect()
}

/// Answers a `Roots` request: which partitions' roots differ from ours (`root_of` gives
/// our root, `None` when we do not hold the partition).
pub fn respond_roots(
    request: &Message,
    mut root_of: impl FnMut(PartitionId) -> Option<Hash>,
) -> Result<Message, ExchangeError> {
    let Message::Roots { partitions } = request else {
        return Err(ExchangeError::Unexpected {
            got: request.kind(),
        });
    };
    if partitions.is_empty() {
        return Err(ExchangeError::Empty);
    }
    validate::count(Bound::Roots, partitions.len(), ROOTS_PER_MESSAGE_MAX)?;
    let ids: Vec<PartitionId> = partitions.iter().map(|(partition, _)| *partition).collect();
    validate::increasing(&ids)?;
    let (mut differing, mut not_held) = (Vec::new(), Vec::new());
    for (partition, theirs) in partitions {
        match root_of(*partition) {
            None => not_held.push(*partition),
            Some(ours) if &ours != theirs => differing.push(*partition),
            Some(_) => {}
        }
    }
    Ok(Message::RootsDiffer {
        differing,
        not_held,
    })
}

/// What a roots comparison found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootsOutcome {
    /// Partitions to run an `Exchange` for.
    pub differing: Vec<PartitionId>,
    /// Partitions the peer does not hold (its ring view differs from ours).
    pub not_held: Vec<PartitionId>,
}

/// Checks the answer to one `Roots` request against that request.
pub fn compare_roots(request: &Message, answer: Message) -> Result<RootsOutcome, ExchangeError> {
    let Message::Roots { partitions } = request else {
        return Err(ExchangeError::Unexpected {
            got: request.kind(),
        });
    };
    let Message::RootsDiffer {
        differing,
        not_held,
    } = answer
    else {
        return Err(ExchangeError::Unexpected { got: answer.kind() });
    };
    for list in [&differing, &not_held] {
        validate::increasing(list)?;
        let stray = list.iter().find(|partition| {
            partitions
                .binary_search_by_key(partition, |(id, _)| id)
                .is_err()
        });
        if let Some(stray) = stray {
            return Err(ExchangeError::NotRequested {
                level: 0,
                index: stray.0,
            });
        }
    }
    if let Some(&partition) = differing
        .iter()
        .find(|partition| not_held.binary_search(partition).is_ok())
    {
        return Err(ExchangeError::Contradictory { partition });
    }
    Ok(RootsOutcome {
        differing,
        not_held,
    })
}
