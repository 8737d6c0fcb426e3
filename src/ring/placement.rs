//! The hash formats and the weighted rendezvous scoring behind the ring. Every node in a
//! cluster must compute bit-identical results here, so nothing may depend on platform,
//! member order or anything but the bytes named below.

use super::{RegionSpan, RingMember};
use crate::ids::{NodeId, PartitionId};

/// 2^-52: the spacing of the 52-bit grid `unit_interval` draws from.
const UNIT_GRID_STEP: f64 = 1.0 / (1u64 << 52) as f64;

/// The key's position in the hash space: the first 8 bytes (little-endian) of
/// blake3(class byte ‖ key bytes).
pub fn key_hash(class: u8, key: &[u8]) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[class]);
    hasher.update(key);
    first_u64(hasher.finalize().as_bytes())
}

/// The partition holding `hash` when the space is cut into `partitions` equal ranges:
/// `(hash × partitions) >> 64`, so partition i holds hashes from i·2^64/Q up.
/// Panics if `partitions` is 0 (configs are validated before they get here).
pub fn partition_for_hash(hash: u64, partitions: u32) -> PartitionId {
    assert!(partitions > 0, "a ring has at least one partition");
    PartitionId(((u128::from(hash) * u128::from(partitions)) >> 64) as u32)
}

/// Where `hash` lies within its partition, as a 32-bit fraction of the partition's
/// range: the 32 bits of `hash × partitions` below the partition's own. Within one
/// partition it grows with `hash`, so ordering a partition's keys by it orders them by
/// hash (what a cluster-wide SCAN cursor names: partition, then this position).
pub fn position_in_partition(hash: u64, partitions: u32) -> u32 {
    let scaled = u128::from(hash) * u128::from(partitions);
    ((scaled as u64) >> 32) as u32
}

fn first_u64(bytes: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(first)
}

/// A uniform draw in the open interval (0, 1) from blake3(partition as 4 bytes
/// little-endian ‖ node id bytes). Centring on a 52-bit grid keeps it away from both 0
/// (ln would be -inf) and 1 (ln would be 0, an infinite score); 1 - 2^-53 is exact in f64.
fn unit_interval(partition: u32, node: &NodeId, buffer: &mut Vec<u8>) -> f64 {
    buffer.clear();
    buffer.extend_from_slice(&partition.to_le_bytes());
    buffer.extend_from_slice(node.as_str().as_bytes());
    let bits = first_u64(blake3::hash(buffer).as_bytes()) >> 12;
    (bits as f64 + 0.5) * UNIT_GRID_STEP
}

/// Weighted rendezvous score -weight / ln(u): the highest score over a set of nodes falls
/// on each node with probability weight / total weight, so capacity steers placement and
/// a node joining or leaving only moves the partitions it wins or held.
fn score(weight: u32, unit: f64) -> f64 {
    f64::from(weight) / -unit.ln()
}

/// The order table: one row of member indices per partition, each region's span of the
/// row holding its nodes by descending score for that partition.
pub(super) fn build_order(
    members: &[RingMember],
    regions: &[RegionSpan],
    partitions: u32,
) -> Vec<u16> {
    let width = members.len();
    let mut order = vec![0u16; partitions as usize * width];
    let widest = regions.iter().map(|span| span.len).max().unwrap_or(0);
    let mut scored: Vec<(f64, u16)> = Vec::with_capacity(widest);
    let mut buffer = Vec::new();
    for (partition, row) in (0..partitions).zip(order.chunks_exact_mut(width)) {
        for span in regions {
            scored.clear();
            scored.extend(span.range().map(|index| {
                let member = &members[index];
                let unit = unit_interval(partition, &member.id, &mut buffer);
                (score(member.weight, unit), index as u16)
            }));
            // Equal scores are all but impossible; breaking ties by index (node id order
            // within a region) keeps the order total and the same on every node.
            scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for (slot, &(_, index)) in row[span.range()].iter_mut().zip(&scored) {
                *slot = index;
            }
        }
    }
    order
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod experiments;
