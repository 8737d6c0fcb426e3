//! Anti-entropy between two simulated replicas with the real pure protocol of
//! `crate::antientropy`: roots of the shared partitions (`roots_requests`,
//! `respond_roots`, `compare_roots`), then per differing partition an `Exchange`
//! answered by `respond`, ending in a `Diff` whose keys are pulled and pushed by merging
//! objects, as `node::repair` does.
//!
//! The session runs to its end at one virtual instant (the world only starts it when
//! both nodes are up and connected): the messages are the real ones, but they do not
//! travel the faulty network. Trees are rebuilt from the stores at each session (the
//! real node keeps them updated on every write; the content is the same).

use super::disk::{Disk, PartitionStore};
use super::{DST_EXCHANGE_STEPS_MAX, DST_TREE_DEPTH};
use crate::antientropy::{
    compare_roots, leaf_index, respond, respond_roots, roots_requests, Diff, Entry, Exchange,
    PartitionTree, Step,
};
use crate::ids::PartitionId;
use std::collections::BTreeMap;
use std::convert::Infallible;

/// The Merkle tree of one partition of a store.
fn tree_of(store: Option<&PartitionStore>) -> Result<PartitionTree, String> {
    let entries = store
        .into_iter()
        .flatten()
        .map(|(key, object)| (key.as_slice(), object.digest()));
    PartitionTree::from_entries(DST_TREE_DEPTH, entries).map_err(|error| error.to_string())
}

/// The (key, digest) entries of one leaf.
fn leaf_entries(store: Option<&PartitionStore>, leaf: u32) -> Result<Vec<Entry>, Infallible> {
    Ok(store
        .into_iter()
        .flatten()
        .filter(|(key, _)| leaf_index(key, DST_TREE_DEPTH) == leaf)
        .map(|(key, object)| (key.clone(), object.digest()))
        .collect())
}

/// Brings `a` and `b` to the same content on the `shared` partitions; returns how many
/// keys were repaired (on either side).
pub(super) fn sync_pair(a: &mut Disk, b: &mut Disk, shared: &[PartitionId]) -> Result<u64, String> {
    let mut trees_a = BTreeMap::new();
    let mut trees_b = BTreeMap::new();
    for partition in shared {
        trees_a.insert(*partition, tree_of(a.partitions.get(partition))?);
        trees_b.insert(*partition, tree_of(b.partitions.get(partition))?);
    }
    let mut repaired = 0;
    for request in roots_requests(trees_a.iter().map(|(p, tree)| (*p, tree.root()))) {
        let answer = respond_roots(&request, |p| trees_b.get(&p).map(PartitionTree::root))
            .map_err(|error| format!("anti-entropy roots: {error}"))?;
        let outcome = compare_roots(&request, answer)
            .map_err(|error| format!("anti-entropy roots answer: {error}"))?;
        for partition in outcome.differing {
            let diff = exchange(a, b, partition, &trees_a[&partition], &trees_b[&partition])?;
            repaired += repair(a, b, partition, &diff)?;
        }
    }
    Ok(repaired)
}

/// Walks one partition's trees with the real exchange; the keys that differ.
fn exchange(
    a: &Disk,
    b: &Disk,
    partition: PartitionId,
    tree_a: &PartitionTree,
    tree_b: &PartitionTree,
) -> Result<Diff, String> {
    let store_a = a.partitions.get(&partition);
    let store_b = b.partitions.get(&partition);
    let (mut walk, mut message) = Exchange::start(partition, tree_a);
    for _ in 0..DST_EXCHANGE_STEPS_MAX {
        let answer = respond(&message, tree_b, |leaf| leaf_entries(store_b, leaf))
            .map_err(|error| format!("anti-entropy responder: {error}"))?;
        let step = walk
            .on_message(answer, tree_a, |leaf| leaf_entries(store_a, leaf))
            .map_err(|error| format!("anti-entropy exchange: {error}"))?;
        match step {
            Step::Send(next) => message = next,
            Step::Done(diff) => return Ok(diff),
            Step::InSync => return Ok(Diff::default()),
        }
    }
    Err(format!(
        "anti-entropy exchange of {partition} took more than {DST_EXCHANGE_STEPS_MAX} requests"
    ))
}

/// Pulls then pushes the differing keys by merging objects.
fn repair(a: &mut Disk, b: &mut Disk, partition: PartitionId, diff: &Diff) -> Result<u64, String> {
    let refused = |error| format!("anti-entropy merge refused: {error}");
    for key in &diff.keys_to_pull {
        if let Some(object) = b.get_bytes(partition, key).cloned() {
            a.merge_bytes(partition, key, &object).map_err(refused)?;
        }
    }
    for key in &diff.keys_to_push {
        if let Some(object) = a.get_bytes(partition, key).cloned() {
            b.merge_bytes(partition, key, &object).map_err(refused)?;
        }
    }
    Ok(diff.len() as u64)
}
