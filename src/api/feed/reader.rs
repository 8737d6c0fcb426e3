//! Reads the change feeds of every node of this node's region from a reader's
//! position: its own feed directly, the others' with `PeerRequest::FeedRead` over the
//! transport. Every replica of a key in this region is one of those nodes, so a change
//! made anywhere (another region included) reaches this reader once it is applied to
//! one of them.
//!
//! It never leaves a gap unsaid: a node whose log dropped the reader's position, that
//! restarted since (another epoch), that joined since the position was made or that
//! does not answer makes the reader behind. A node that does not answer is asked
//! again every `FEED_RETRY_MS`, its cursor unknown; when it answers again the reader is
//! behind once more (it missed what that node applied meanwhile).

use super::position::{Position, UNKNOWN};
use crate::feed::{Cursor, Page};
use crate::ids::NodeId;
use crate::limits;
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

pub use crate::runtime::hub::Sources;

/// One node's place.
#[derive(Clone, Debug)]
struct NodeState {
    cursor: Cursor,
    /// Starting at the tail with no position: its first answer is behind by design.
    fresh: bool,
    /// Did not answer (and the reader was told); asked again at `retry_at`.
    failing: bool,
    retry_at: Option<Instant>,
}

/// A reader's cursors over its region's feeds.
pub struct Reader {
    nodes: BTreeMap<NodeId, NodeState>,
    /// Made behind since `take_behind` was last called.
    behind: bool,
}

/// What one round of reads brought: the pages of the nodes that answered with
/// something, in no particular order.
pub type Round = Vec<(NodeId, Page)>;

impl Reader {
    /// A reader of the feeds of `region` from `position`, or from their tails now
    /// without one. A node of the region the position does not name makes it behind
    /// (its first read is); nodes not of the region are dropped.
    pub fn new(position: Option<&Position>, region: &BTreeSet<NodeId>) -> Reader {
        let mut reader = Reader {
            nodes: BTreeMap::new(),
            behind: false,
        };
        for node in region {
            let cursor = position.and_then(|position| position.cursors.get(node).copied());
            reader
                .nodes
                .insert(node.clone(), state_of(position.is_none(), cursor));
        }
        reader
    }

    /// Follows the region's members: a node new to it is read from an unknown cursor
    /// (behind at its first answer); a node gone from it is dropped.
    pub fn set_region(&mut self, region: &BTreeSet<NodeId>) {
        self.nodes.retain(|node, _| region.contains(node));
        for node in region {
            self.nodes
                .entry(node.clone())
                .or_insert_with(|| state_of(false, None));
        }
    }

    /// The position after everything read so far.
    pub fn position(&self) -> Position {
        Position {
            cursors: self
                .nodes
                .iter()
                .map(|(node, state)| (node.clone(), state.cursor))
                .collect(),
        }
    }

    /// Moves `node`'s cursor (after the caller used a page's changes up to there).
    pub fn advance(&mut self, node: &NodeId, cursor: Cursor) {
        if let Some(state) = self.nodes.get_mut(node) {
            state.cursor = cursor;
        }
    }

    /// Whether the reader became behind since the last call (and forgets it).
    pub fn take_behind(&mut self) -> bool {
        std::mem::take(&mut self.behind)
    }

    /// Whether a node's cursor is unknown (it does not answer, or has not yet): the
    /// reader stays behind while one is.
    pub fn unknown(&self) -> bool {
        self.nodes.values().any(|state| state.cursor == UNKNOWN)
    }

    /// Reads every node's feed once, each read waiting up to `wait` for a change; ends
    /// as soon as one brings changes or news (with what the others bring within
    /// `FEED_GATHER_MS`: the rest are dropped, their cursors unmoved) or when all are
    /// done. A node that does not answer by `wait` and `FEED_ROUND_GRACE_MS` counts as
    /// not answering and makes the reader behind. A page's `behind` is taken into
    /// account here; its changes and `next` are the caller's to use (`advance`).
    pub async fn round(&mut self, sources: &Sources, wait: Duration) -> Round {
        let now = Instant::now();
        let deadline = now + wait + Duration::from_millis(limits::FEED_ROUND_GRACE_MS);
        let mut reads = FuturesUnordered::new();
        let mut asked = BTreeSet::new();
        for (node, state) in &self.nodes {
            if state.retry_at.is_some_and(|at| now < at) {
                continue;
            }
            let (node, from) = (node.clone(), state.cursor);
            asked.insert(node.clone());
            reads.push(async move {
                let page = sources.read(&node, from, wait).await;
                (node, page)
            });
        }
        if reads.is_empty() {
            // Every node waits for its retry: wait for the first of them, or `wait`.
            let retry = self.nodes.values().filter_map(|state| state.retry_at).min();
            let until = retry.map_or(now + wait, |at| at.min(now + wait));
            tokio::time::sleep_until(until).await;
            return Vec::new();
        }
        let mut done = Vec::new();
        loop {
            let Ok(next) = tokio::time::timeout_at(deadline, reads.next()).await else {
                for node in &asked {
                    self.note(node, None);
                }
                break;
            };
            let Some((node, page)) = next else {
                break;
            };
            asked.remove(&node);
            let news = self.note(&node, page.as_ref());
            if let Some(page) = page {
                done.push((node, page));
            }
            if news {
                self.gather(&mut reads, &mut done).await;
                break;
            }
        }
        done
    }

    /// After the first news of a round, takes what the other nodes bring within
    /// `FEED_GATHER_MS` (the other replicas' reports of the same change, mostly), so
    /// the position handed out covers them too.
    async fn gather(
        &mut self,
        reads: &mut FuturesUnordered<impl std::future::Future<Output = (NodeId, Option<Page>)>>,
        done: &mut Round,
    ) {
        let until = Instant::now() + Duration::from_millis(limits::FEED_GATHER_MS);
        while let Ok(Some((node, page))) = tokio::time::timeout_at(until, reads.next()).await {
            self.note(&node, page.as_ref());
            if let Some(page) = page {
                done.push((node, page));
            }
        }
    }

    /// Takes in one node's answer (`None`: it did not answer); says whether it is
    /// news the caller should not wait past (changes, or the reader fell behind).
    fn note(&mut self, node: &NodeId, page: Option<&Page>) -> bool {
        let Some(state) = self.nodes.get_mut(node) else {
            return false;
        };
        let Some(page) = page else {
            let news = !state.failing;
            state.failing = true;
            state.fresh = false;
            state.cursor = UNKNOWN;
            state.retry_at = Some(Instant::now() + Duration::from_millis(limits::FEED_RETRY_MS));
            self.behind |= news;
            return news;
        };
        let behind = page.behind && !state.fresh;
        state.failing = false;
        state.fresh = false;
        state.retry_at = None;
        if page.behind {
            state.cursor = page.next;
        }
        self.behind |= behind;
        behind || !page.changes.is_empty()
    }
}

/// A node's first state: from `cursor`, or unknown; `fresh` when the reader starts at
/// the tails. An unknown cursor of a position counts as failing (the reader was told
/// it is behind): it stays behind until the node answers, and then is behind again.
fn state_of(fresh: bool, cursor: Option<Cursor>) -> NodeState {
    let cursor = cursor.unwrap_or(UNKNOWN);
    NodeState {
        cursor,
        fresh,
        failing: !fresh && cursor == UNKNOWN,
        retry_at: None,
    }
}
