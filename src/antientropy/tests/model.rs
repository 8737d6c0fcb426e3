//! Test support: a replica modelled as a `BTreeMap` of key → digest beside its tree, and
//! an in-memory driver that runs an exchange between two replicas, encoding and
//! decoding every message and counting its bytes.

use std::collections::BTreeMap;
use std::convert::Infallible;

use crate::antientropy::{
    respond, Diff, Entry, Exchange, ExchangeConfig, Hash, Message, PartitionTree, Step, StepError,
};
use crate::ids::PartitionId;

/// Where a replica's per-partition data comes from: its tree and a leaf's entries.
pub(crate) trait LeafSource {
    fn tree(&self) -> &PartitionTree;
    fn entries(&self, leaf: u32) -> Vec<Entry>;
}

/// One replica of one partition: the model (a sorted map) and the tree kept beside it.
#[derive(Clone, Debug)]
pub(crate) struct Replica {
    pub tree: PartitionTree,
    pub entries: BTreeMap<Vec<u8>, Hash>,
}

impl Replica {
    pub fn new(depth: u8) -> Replica {
        Replica {
            tree: PartitionTree::new(depth).expect("test depths are valid"),
            entries: BTreeMap::new(),
        }
    }

    pub fn put(&mut self, key: &[u8], digest: Hash) {
        let old = self.entries.insert(key.to_vec(), digest);
        self.tree.update(key, old, Some(digest));
    }

    pub fn remove(&mut self, key: &[u8]) {
        let old = self.entries.remove(key);
        self.tree.update(key, old, None);
    }
}

impl LeafSource for Replica {
    fn tree(&self) -> &PartitionTree {
        &self.tree
    }

    fn entries(&self, leaf: u32) -> Vec<Entry> {
        self.entries
            .iter()
            .filter(|(key, _)| self.tree.leaf_of(key) == leaf)
            .map(|(key, digest)| (key.clone(), *digest))
            .collect()
    }
}

/// What a run of one exchange produced and cost.
#[derive(Debug)]
pub(crate) struct Run {
    pub outcome: Outcome,
    /// Encoded bytes of every message, both directions.
    pub bytes: usize,
    /// Messages, both directions.
    pub messages: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    InSync,
    Done(Diff),
}

/// Carries one message through its encoding, as the transport would.
pub(crate) fn through_wire(message: &Message, bytes: &mut usize) -> Message {
    let encoded = message.encode();
    *bytes += encoded.len();
    Message::decode(&encoded).expect("our messages decode")
}

/// Runs an exchange of `initiator` against `responder` to its end.
pub(crate) fn run(
    partition: PartitionId,
    initiator: &impl LeafSource,
    responder: &impl LeafSource,
    config: ExchangeConfig,
) -> Run {
    let (mut exchange, mut request) = Exchange::start_with(partition, initiator.tree(), config);
    let (mut bytes, mut messages) = (0, 0);
    loop {
        let delivered = through_wire(&request, &mut bytes);
        let answer = respond(&delivered, responder.tree(), |leaf| {
            Ok::<_, Infallible>(responder.entries(leaf))
        })
        .expect("a well-formed request is answered");
        let delivered = through_wire(&answer, &mut bytes);
        messages += 2;
        let step: Result<Step, StepError<Infallible>> =
            exchange.on_message(delivered, initiator.tree(), |leaf| {
                Ok(initiator.entries(leaf))
            });
        match step.expect("a well-formed answer is accepted") {
            Step::Send(next) => request = next,
            Step::InSync => {
                return Run {
                    outcome: Outcome::InSync,
                    bytes,
                    messages,
                };
            }
            Step::Done(diff) => {
                return Run {
                    outcome: Outcome::Done(diff),
                    bytes,
                    messages,
                };
            }
        }
    }
}

/// The diff a perfect comparison of the two models gives, sorted.
pub(crate) fn model_diff(
    ours: &BTreeMap<Vec<u8>, Hash>,
    theirs: &BTreeMap<Vec<u8>, Hash>,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let pull = theirs
        .iter()
        .filter(|(key, digest)| ours.get(*key) != Some(digest))
        .map(|(key, _)| key.clone())
        .collect();
    let push = ours
        .iter()
        .filter(|(key, digest)| theirs.get(*key) != Some(digest))
        .map(|(key, _)| key.clone())
        .collect();
    (pull, push)
}

/// A diff's lists, sorted (the exchange reports them in leaf order).
pub(crate) fn sorted(diff: &Diff) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut pull = diff.keys_to_pull.clone();
    let mut push = diff.keys_to_push.clone();
    pull.sort();
    push.sort();
    (pull, push)
}

/// A deterministic digest for tests.
pub(crate) fn digest(seed: u64) -> Hash {
    *blake3::hash(&seed.to_le_bytes()).as_bytes()
}
