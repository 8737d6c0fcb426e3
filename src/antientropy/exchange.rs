//! The initiator's side of comparing two replicas of one partition: a pure state machine
//! that walks only the branches whose hashes differ and ends with the keys to pull from
//! the peer and to push to it. The async shell carries its messages to the peer's
//! `responder::respond` and feeds the answers back; it never sees objects here, only
//! keys and digests, and it never reads a clock or storage except through the
//! leaf-entries callback it passes in.
//!
//! The walk: both sides hash the same tree shape, so comparing node (level, index) is
//! meaningful. The levels visited are planned by [`plan_levels`]: 0 = a0 < a1 < … =
//! depth with steps of at most `step_bits` levels. The initiator sends its hashes at
//! a0, a2, …; the responder compares and answers with its hashes at a1, a3, … of every
//! descendant of a node that differed, so each message both compares and descends. The
//! plan has an even number of steps when it can, so the leaf hashes go to the responder,
//! which answers with its entries of the differing leaves directly; otherwise the
//! initiator asks for them with `LeafRequest`. The initiator merges those entries with
//! its own (sorted by key) into the `Diff`.
//!
//! Round trips: depth 10 with 5-bit steps (32 children per differing node) is root →
//! level 5 → level 10 → entries, two round trips. Bytes: per differing leaf, about
//! 2^step node hashes (32 bytes each plus a 1–3 byte index) per message plus the leaf's
//! entries; measured at 1,000,000 keys, about 2.4 KB per differing key with 5-bit steps.
//!
//! Writes go on while an exchange runs; a difference that appears or vanishes meanwhile
//! may be missed or reported spuriously. Both are harmless: the shell merges by version
//! vector (idempotent) and the next round sees what this one missed.

use std::collections::BTreeSet;

use super::error::ExchangeError;
use super::message::{Entry, LeafPage, Message, MessageKind};
use super::tree::{Hash, PartitionTree};
use super::validate;
use crate::ids::PartitionId;
use crate::limits::{
    DIFF_KEYS_MAX, EXCHANGE_REQUESTS_MAX, HASHES_PER_MESSAGE_MAX, LEAVES_PER_MESSAGE_MAX,
    STEP_BITS_DEFAULT, STEP_BITS_MAX,
};

/// An exchange step failed: the peer broke the protocol, or the shell could not read
/// the entries of a leaf (its own error, passed through).
#[derive(Debug, thiserror::Error)]
pub enum StepError<E> {
    #[error(transparent)]
    Protocol(#[from] ExchangeError),
    #[error("reading the entries of leaf {leaf} failed")]
    Source {
        leaf: u32,
        #[source]
        error: E,
    },
}

/// Tuning of the walk, validated on construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExchangeConfig {
    step_bits: u8,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            step_bits: STEP_BITS_DEFAULT,
        }
    }
}

impl ExchangeConfig {
    /// `step_bits` levels per message (1..=STEP_BITS_MAX): more means fewer round trips
    /// and more hashes per difference (2^step_bits per differing node and message).
    pub fn new(step_bits: u8) -> Result<Self, ExchangeError> {
        if !(1..=STEP_BITS_MAX).contains(&step_bits) {
            return Err(ExchangeError::StepOutOfRange { step_bits });
        }
        Ok(ExchangeConfig { step_bits })
    }

    pub fn step_bits(&self) -> u8 {
        self.step_bits
    }
}

/// The levels a walk of a `depth` tree visits, 0 first and `depth` last, each step at
/// most `step_bits` (clamped to 1..=STEP_BITS_MAX) levels. The number of steps is made
/// even when the depth allows, so the leaf hashes reach the responder (which then
/// answers with entries at once); steps are spread evenly.
pub fn plan_levels(depth: u8, step_bits: u8) -> Vec<u8> {
    let step = u32::from(step_bits.clamp(1, STEP_BITS_MAX));
    let depth = u32::from(depth);
    let mut steps = depth.div_ceil(step).max(1);
    if steps % 2 == 1 && steps < depth {
        steps += 1;
    }
    (0..=steps)
        .map(|step_number| (step_number * depth / steps) as u8)
        .collect()
}

/// The keys in which the two replicas differ, from the initiator's point of view. A key
/// whose digests differ is in both lists: neither side knows which version is newer, so
/// the shell pulls it, merges, and pushes the merge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Keys the peer has and we lack, or hold in another version.
    pub keys_to_pull: Vec<Vec<u8>>,
    /// Keys we have and the peer lacks, or holds in another version.
    pub keys_to_push: Vec<Vec<u8>>,
    /// False when the exchange stopped at `DIFF_KEYS_MAX` keys: repair these, then run
    /// another round for the rest.
    pub complete: bool,
}

impl Diff {
    pub fn len(&self) -> usize {
        self.keys_to_pull.len() + self.keys_to_push.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the shell does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this request to the peer and feed its answer to `on_message`.
    Send(Message),
    /// Finished with differences to repair.
    Done(Diff),
    /// Finished: the replicas hold the same entries.
    InSync,
}

/// Our entries of the leaf whose peer entries are being paged in, sorted by key.
#[derive(Debug)]
struct LocalLeaf {
    leaf: u32,
    entries: Vec<Entry>,
    next: usize,
}

/// The request the exchange waits an answer to.
#[derive(Debug)]
enum Outstanding {
    Level {
        stage: usize,
        indexes: Vec<u32>,
    },
    Leaves {
        leaves: Vec<u32>,
        after: Option<Vec<u8>>,
    },
    Nothing,
}

/// The initiator of one partition's comparison. Create with `start`, send its message,
/// feed each answer to `on_message` until it returns `Done` or `InSync`. Its memory is
/// bounded by the tree (node indexes to visit) plus one leaf of our entries plus the
/// `Diff` (at most `DIFF_KEYS_MAX` keys).
#[derive(Debug)]
pub struct Exchange {
    partition: PartitionId,
    depth: u8,
    plan: Vec<u8>,
    /// Per plan stage, the nodes at that stage's level we still have to send.
    to_send: Vec<BTreeSet<u32>>,
    /// Differing leaves whose peer entries we still need.
    to_fetch: BTreeSet<u32>,
    /// Where the peer's paging of a leaf stopped: the leaf and its last key sent.
    cursor: Option<(u32, Vec<u8>)>,
    local: Option<LocalLeaf>,
    outstanding: Outstanding,
    diff: Diff,
    requests: usize,
    finished: bool,
}

impl Exchange {
    /// Starts comparing `partition` with the default step: returns the exchange and the
    /// first request (our root).
    pub fn start(partition: PartitionId, tree: &PartitionTree) -> (Exchange, Message) {
        Exchange::start_with(partition, tree, ExchangeConfig::default())
    }

    /// Starts comparing `partition` with a given walk configuration.
    pub fn start_with(
        partition: PartitionId,
        tree: &PartitionTree,
        config: ExchangeConfig,
    ) -> (Exchange, Message) {
        let plan = plan_levels(tree.depth(), config.step_bits());
        let mut to_send = vec![BTreeSet::new(); plan.len()];
        to_send[0].insert(0);
        let mut exchange = Exchange {
            partition,
            depth: tree.depth(),
            plan,
            to_send,
            to_fetch: BTreeSet::new(),
            cursor: None,
            local: None,
            outstanding: Outstanding::Nothing,
            diff: Diff {
                complete: true,
                ..Diff::default()
            },
            requests: 0,
            finished: false,
        };
        let first = exchange
            .next_request(tree)
            .expect("a fresh exchange always has the root to send");
        (exchange, first)
    }

    pub fn partition(&self) -> PartitionId {
        self.partition
    }

    /// Requests sent so far.
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// Feeds the peer's answer to the last request. `tree` is our current tree of the
    /// partition; `entries_of_leaf` lists our (key, digest) entries of one leaf, in any
    /// order. After an error, or after `Done`/`InSync`, the exchange is finished.
    pub fn on_message<E>(
        &mut self,
        message: Message,
        tree: &PartitionTree,
        mut entries_of_leaf: impl FnMut(u32) -> Result<Vec<Entry>, E>,
    ) -> Result<Step, StepError<E>> {
        if self.finished {
            return Err(ExchangeError::Finished.into());
        }
        let result = self.advance(message, tree, &mut entries_of_leaf);
        if !matches!(result, Ok(Step::Send(_))) {
            self.finished = true;
        }
        result
    }

    fn advance<E>(
        &mut self,
        message: Message,
        tree: &PartitionTree,
        entries_of_leaf: &mut impl FnMut(u32) -> Result<Vec<Entry>, E>,
    ) -> Result<Step, StepError<E>> {
        validate::depth(self.depth, tree.depth())?;
        if let Some(got) = message.partition() {
            if got != self.partition {
                let expected = self.partition;
                return Err(ExchangeError::PartitionMismatch { expected, got }.into());
            }
        }
        let outstanding = std::mem::replace(&mut self.outstanding, Outstanding::Nothing);
        match (outstanding, message) {
            (Outstanding::Level { .. }, Message::InSync { .. }) => {}
            (
                Outstanding::Level { stage, indexes },
                Message::Descendants {
                    level,
                    indexes: nodes,
                    hashes,
                    ..
                },
            ) => {
                self.on_descendants(stage, &indexes, level, &nodes, &hashes, tree)?;
            }
            (Outstanding::Level { stage, indexes }, Message::LeafEntries { pages, unsent, .. })
                if self.plan[stage] == self.depth =>
            {
                let answered: Vec<u32> = pages
                    .iter()
                    .map(|page| page.leaf)
                    .chain(unsent.iter().copied())
                    .collect();
                check_subset(&indexes, &answered, self.depth)?;
                self.on_leaf_entries(pages, unsent, None, entries_of_leaf)?;
            }
            (Outstanding::Leaves { leaves, after }, Message::LeafEntries { pages, unsent, .. }) => {
                check_leaf_answer(&leaves, &pages, &unsent, self.depth)?;
                self.on_leaf_entries(pages, unsent, after, entries_of_leaf)?;
            }
            (_, message) => {
                return Err(ExchangeError::Unexpected {
                    got: message.kind(),
                }
                .into());
            }
        }
        if !self.diff.complete {
            return Ok(Step::Done(std::mem::take(&mut self.diff)));
        }
        match self.next_request(tree) {
            Some(request) => {
                if self.requests > EXCHANGE_REQUESTS_MAX {
                    return Err(ExchangeError::TooManyRequests.into());
                }
                Ok(Step::Send(request))
            }
            None if self.diff.is_empty() => Ok(Step::InSync),
            None => Ok(Step::Done(std::mem::take(&mut self.diff))),
        }
    }

    /// Compares the peer's hashes at the level after `stage` with ours and queues what
    /// differs: leaves to fetch, or the descendants to send at the level after that.
    fn on_descendants(
        &mut self,
        stage: usize,
        asked: &[u32],
        level: u8,
        indexes: &[u32],
        hashes: &[Hash],
        tree: &PartitionTree,
    ) -> Result<(), ExchangeError> {
        let Some(&expected_level) = self.plan.get(stage + 1) else {
            return Err(ExchangeError::Unexpected {
                got: MessageKind::Descendants,
            });
        };
        if level != expected_level {
            let (depth, reply_level) = (self.depth, expected_level);
            return Err(ExchangeError::LevelOutOfRange {
                level,
                reply_level,
                depth,
            });
        }
        validate::node_list(level, indexes, hashes, HASHES_PER_MESSAGE_MAX)?;
        let gap = level - self.plan[stage];
        if let Some(&index) = indexes
            .iter()
            .find(|&&index| asked.binary_search(&(index >> gap)).is_err())
        {
            return Err(ExchangeError::NotRequested { level, index });
        }
        for (&index, hash) in indexes.iter().zip(hashes) {
            let ours = tree
                .node(level, index)
                .ok_or(ExchangeError::IndexOutOfRange { level, index })?;
            if &ours == hash {
                continue;
            }
            if level == self.depth {
                self.to_fetch.insert(index);
            } else {
                let next_gap = self.plan[stage + 2] - level;
                let first = index << next_gap;
                self.to_send[stage + 2].extend(first..first + (1 << next_gap));
            }
        }
        Ok(())
    }

    fn on_leaf_entries<E>(
        &mut self,
        pages: Vec<LeafPage>,
        unsent: Vec<u32>,
        after: Option<Vec<u8>>,
        entries_of_leaf: &mut impl FnMut(u32) -> Result<Vec<Entry>, E>,
    ) -> Result<(), StepError<E>> {
        validate::pages(&pages, self.depth, after.as_deref())?;
        self.to_fetch.extend(unsent);
        for page in pages {
            let leaf = page.leaf;
            match (page.complete, page.entries.last()) {
                (false, Some((last, _))) => {
                    self.cursor = Some((leaf, last.clone()));
                    self.to_fetch.insert(leaf);
                }
                _ => {
                    self.to_fetch.remove(&leaf);
                }
            }
            if !self.merge_page(page, entries_of_leaf)? {
                break;
            }
        }
        Ok(())
    }

    /// Merges one page of the peer's entries with ours; false once the diff is full.
    fn merge_page<E>(
        &mut self,
        page: LeafPage,
        entries_of_leaf: &mut impl FnMut(u32) -> Result<Vec<Entry>, E>,
    ) -> Result<bool, StepError<E>> {
        let mut local = match self.local.take() {
            Some(local) if local.leaf == page.leaf => local,
            _ => {
                let leaf = page.leaf;
                let mut entries =
                    entries_of_leaf(leaf).map_err(|error| StepError::Source { leaf, error })?;
                entries.sort_unstable_by(|left, right| left.0.cmp(&right.0));
                LocalLeaf {
                    leaf,
                    entries,
                    next: 0,
                }
            }
        };
        let diff = &mut self.diff;
        for (key, digest) in page.entries {
            while let Some((ours, _)) = local
                .entries
                .get(local.next)
                .filter(|(ours, _)| *ours < key)
            {
                diff.keys_to_push.push(ours.clone());
                local.next += 1;
            }
            match local.entries.get(local.next) {
                Some((ours, our_digest)) if *ours == key => {
                    local.next += 1;
                    if *our_digest != digest {
                        diff.keys_to_push.push(key.clone());
                        diff.keys_to_pull.push(key);
                    }
                }
                _ => diff.keys_to_pull.push(key),
            }
            if diff.len() >= DIFF_KEYS_MAX {
                diff.complete = false;
                return Ok(false);
            }
        }
        if page.complete {
            for (ours, _) in local.entries.drain(local.next..) {
                diff.keys_to_push.push(ours);
                if diff.len() >= DIFF_KEYS_MAX {
                    diff.complete = false;
                    return Ok(false);
                }
            }
        } else {
            self.local = Some(local);
        }
        Ok(true)
    }

    /// The next request: pending leaves first (they finish work), then the deepest stage
    /// with nodes to send (depth first keeps the queues short). `None` when done.
    fn next_request(&mut self, tree: &PartitionTree) -> Option<Message> {
        let message = if !self.to_fetch.is_empty() {
            self.leaf_request()
        } else {
            let stage = (0..self.plan.len())
                .rev()
                .find(|&stage| !self.to_send[stage].is_empty())?;
            self.level_request(stage, tree)
        };
        self.requests += 1;
        Some(message)
    }

    fn leaf_request(&mut self) -> Message {
        // A leaf cut short goes first, resuming after its last key; the answer sets a
        // new cursor if it is cut short again.
        let cursor = self.cursor.take();
        let start = cursor.as_ref().map_or(0, |(leaf, _)| *leaf);
        let leaves: Vec<u32> = self
            .to_fetch
            .range(start..)
            .take(LEAVES_PER_MESSAGE_MAX)
            .copied()
            .collect();
        let after = cursor
            .filter(|(leaf, _)| leaves.first() == Some(leaf))
            .map(|(_, key)| key);
        self.outstanding = Outstanding::Leaves {
            leaves: leaves.clone(),
            after: after.clone(),
        };
        Message::LeafRequest {
            partition: self.partition,
            depth: self.depth,
            leaves,
            after,
        }
    }

    fn level_request(&mut self, stage: usize, tree: &PartitionTree) -> Message {
        let level = self.plan[stage];
        let reply_level = self.plan.get(stage + 1).copied().unwrap_or(level);
        let batch = HASHES_PER_MESSAGE_MAX >> (reply_level - level);
        let mut indexes = Vec::with_capacity(batch.min(self.to_send[stage].len()));
        while indexes.len() < batch {
            let Some(index) = self.to_send[stage].pop_first() else {
                break;
            };
            indexes.push(index);
        }
        let hashes = indexes
            .iter()
            .map(|&index| {
                tree.node(level, index)
                    .expect("queued nodes are inside the tree")
            })
            .collect();
        self.outstanding = Outstanding::Level {
            stage,
            indexes: indexes.clone(),
        };
        Message::TreeLevel {
            partition: self.partition,
            depth: self.depth,
            level,
            reply_level,
            indexes,
            hashes,
        }
    }
}

/// `subset` is strictly increasing (so names no leaf twice), inside the tree, and only
/// names members of `asked` (sorted).
fn check_subset(asked: &[u32], subset: &[u32], depth: u8) -> Result<(), ExchangeError> {
    validate::indexes(subset, depth)?;
    match subset
        .iter()
        .find(|leaf| asked.binary_search(leaf).is_err())
    {
        Some(&index) => Err(ExchangeError::NotRequested {
            level: depth,
            index,
        }),
        None => Ok(()),
    }
}

/// An answer to a `LeafRequest` covers the asked leaves in order: pages for a non-empty
/// prefix, `unsent` exactly the rest, so no asked leaf is silently skipped.
fn check_leaf_answer(
    asked: &[u32],
    pages: &[LeafPage],
    unsent: &[u32],
    depth: u8,
) -> Result<(), ExchangeError> {
    if pages.is_empty() {
        return Err(ExchangeError::NoProgress);
    }
    let answered = pages
        .iter()
        .map(|page| page.leaf)
        .chain(unsent.iter().copied());
    if answered.clone().count() != asked.len() {
        return Err(ExchangeError::NoProgress);
    }
    match answered
        .zip(asked)
        .find(|(answered, asked)| answered != *asked)
    {
        Some((index, _)) => Err(ExchangeError::NotRequested {
            level: depth,
            index,
        }),
        None => Ok(()),
    }
}
