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

/// SplitMix64's increment, 2^64 / the golden ratio (odd).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A node's seed for its draws: the first 8 bytes (little-endian) of blake3(node id
/// bytes). One blake3 per member per build; the per-partition draws below are cheap.
fn node_seed(node: &NodeId) -> u64 {
    first_u64(blake3::hash(node.as_str().as_bytes()).as_bytes())
}

/// SplitMix64's output function (Steele, Lea and Flood, 2014): a bijection of u64 in
/// which every input bit flips each output bit with probability close to 1/2.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform draw in the open interval (0, 1) for (partition, node): output number
/// partition + 1 of the SplitMix64 generator seeded with the node's seed, its top 52
/// bits. (Before issue 25 this was blake3 per pair: 4.9 M hashes per build at 3 x 100
/// nodes and Q = 16384, most of a second.) Centring on the 52-bit grid keeps it away
/// from both 0 (ln would be -inf) and 1 (ln would be 0, an infinite score); 1 - 2^-53
/// is exact in f64.
fn unit_interval(partition: u32, seed: u64) -> f64 {
    let step = (u64::from(partition) + 1).wrapping_mul(GOLDEN_GAMMA);
    let bits = mix64(seed.wrapping_add(step)) >> 12;
    (bits as f64 + 0.5) * UNIT_GRID_STEP
}

/// Weighted rendezvous score -weight / ln(u): the highest score over a set of nodes falls
/// on each node with probability weight / total weight, so capacity steers placement.
/// `libm::log` rather than `f64::ln`: the platform's libm may round the last bit
/// differently, and every node must order scores identically.
fn score(weight: u32, unit: f64) -> f64 {
    f64::from(weight) / -libm::log(unit)
}

/// The cap over a node's weighted share, in percent: the busiest node of a region holds
/// at most 1.05 x its share of the region's Q x k replicas (issue 25).
const CAP_PERCENT_OF_SHARE: u128 = 105;

/// The order table: one row of member indices per partition. Each region's span of a
/// row holds that region's replicas of the partition first, then its other nodes; each
/// of the two groups by descending rendezvous score.
///
/// The replicas are the capped greedy assignment of [`assign_region`]; the other nodes
/// are the fallbacks a sloppy quorum and hinted handoff walk, in rendezvous order as
/// before. The table depends on nothing but the members' ids, weights and regions, Q
/// and the replica counts.
pub(super) fn build_order(
    members: &[RingMember],
    regions: &[RegionSpan],
    partitions: u32,
) -> Vec<u16> {
    let width = members.len();
    let mut order = vec![0u16; partitions as usize * width];
    for span in regions {
        let scores = sort_region(members, span, partitions, &mut order);
        let weights: Vec<u32> = members[span.range()].iter().map(|m| m.weight).collect();
        let caps = caps(&weights, partitions, span.replicas);
        let chosen = assign_region(span, partitions, width, &order, &scores, &caps);
        write_region(span, partitions, width, &chosen, &mut order);
    }
    order
}

/// Fills `span` of every row with the region's nodes by descending score (ties by
/// index, so the order is total and the same on every node) and returns the scores
/// in the same layout: `partitions` rows of `span.len`.
fn sort_region(
    members: &[RingMember],
    span: &RegionSpan,
    partitions: u32,
    order: &mut [u16],
) -> Vec<f64> {
    let width = members.len();
    let mut scores = Vec::with_capacity(partitions as usize * span.len);
    let seeds: Vec<u64> = members[span.range()]
        .iter()
        .map(|m| node_seed(&m.id))
        .collect();
    // Scores are positive and finite, so their bits order as they do; one integer key
    // per node (inverted score bits, then the index) sorts faster than a comparator.
    let mut keys: Vec<u128> = Vec::with_capacity(span.len);
    for (partition, row) in (0..partitions).zip(order.chunks_exact_mut(width)) {
        keys.clear();
        keys.extend(span.range().zip(&seeds).map(|(index, &seed)| {
            let value = score(members[index].weight, unit_interval(partition, seed));
            (u128::from(!value.to_bits()) << 64) | index as u128
        }));
        keys.sort_unstable();
        for (slot, &key) in row[span.range()].iter_mut().zip(&keys) {
            *slot = key as u16;
            scores.push(f64::from_bits(!((key >> 64) as u64)));
        }
    }
    scores
}

/// How many replicas of the region each node may hold: floor(1.05 x its weighted share
/// of the Q x k replicas), raised to the ceiling of that share where the floor is lower
/// (tiny shares), and never above Q (a node holds one replica of a partition). A node
/// whose share would pass Q is held at Q and the rest is shared out over the others by
/// weight, so the caps always sum to at least Q x k and an assignment within them exists.
fn caps(weights: &[u32], partitions: u32, replicas: usize) -> Vec<u32> {
    let q = u128::from(partitions);
    let mut clipped = vec![false; weights.len()];
    loop {
        let open_slots = (q * replicas as u128)
            .saturating_sub(q * clipped.iter().filter(|&&c| c).count() as u128);
        let open_weight: u128 = weights
            .iter()
            .zip(&clipped)
            .filter(|(_, &c)| !c)
            .map(|(&w, _)| u128::from(w))
            .sum();
        // share_i = w_i x open_slots / open_weight, kept as a fraction.
        let newly: Vec<usize> = (0..weights.len())
            .filter(|&i| !clipped[i] && u128::from(weights[i]) * open_slots >= q * open_weight)
            .collect();
        if newly.is_empty() || open_weight == 0 {
            return (0..weights.len())
                .map(|i| {
                    if clipped[i] {
                        return partitions;
                    }
                    let share = u128::from(weights[i]) * open_slots;
                    let capped = CAP_PERCENT_OF_SHARE * share / (100 * open_weight);
                    let ceiling = share.div_ceil(open_weight);
                    capped.max(ceiling).min(q) as u32
                })
                .collect();
        }
        for i in newly {
            clipped[i] = true;
        }
    }
}

/// One partition's candidate in the greedy: the node at `position` of its sorted span.
/// Ordered by score, then by lower partition, so the heap yields the (partition, node)
/// pairs of the region in one total order.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: f64,
    partition: u32,
    position: u32,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.partition.cmp(&self.partition))
            .then(other.position.cmp(&self.position))
    }
}

/// The capped greedy: every (partition, node) pair of the region by descending score,
/// accepted while the partition lacks replicas here and the node is under its cap. This
/// is the stable matching of the scores, so it does not depend on any walk order; a
/// heap holding each partition's best untried node yields the pairs in that order
/// without sorting all Q x n of them. Returns the chosen flags by (partition, position
/// in the sorted span).
fn assign_region(
    span: &RegionSpan,
    partitions: u32,
    width: usize,
    order: &[u16],
    scores: &[f64],
    caps: &[u32],
) -> Vec<bool> {
    let len = span.len;
    let local = |partition: u32, position: usize| {
        usize::from(order[partition as usize * width + span.start + position]) - span.start
    };
    let mut chosen = vec![false; partitions as usize * len];
    let mut taken = vec![0usize; partitions as usize];
    let mut load = vec![0u32; len];
    let mut heap: std::collections::BinaryHeap<Candidate> = (0..partitions)
        .map(|partition| Candidate {
            score: scores[partition as usize * len],
            partition,
            position: 0,
        })
        .collect();
    while let Some(candidate) = heap.pop() {
        let (partition, position) = (candidate.partition, candidate.position as usize);
        let node = local(partition, position);
        if load[node] < caps[node] {
            load[node] += 1;
            chosen[partition as usize * len + position] = true;
            taken[partition as usize] += 1;
        }
        let next = position + 1;
        if taken[partition as usize] < span.replicas && next < len {
            heap.push(Candidate {
                score: scores[partition as usize * len + next],
                partition,
                position: next as u32,
            });
        }
    }
    let short: Vec<u32> = (0..partitions)
        .filter(|&p| taken[p as usize] < span.replicas)
        .collect();
    if !short.is_empty() {
        let mut fill = Shortfall {
            len,
            chosen: &mut chosen,
            load: &mut load,
            caps,
            local: &local,
        };
        fill.complete(&short, &mut taken, span.replicas, partitions);
    }
    chosen
}

/// Completes the partitions the greedy left short. Every node of the region that does
/// not hold such a partition is at its cap (else the greedy would have taken it), so a
/// replica is found by a swap: a node m at its cap gives up one of its partitions p2 to
/// a node x under its cap that does not hold p2, and takes the short partition instead.
/// Only when no swap exists does the best-scoring missing node go over its cap. Rare in
/// large regions (the caps leave 5 % room); possible in tiny ones with tight caps.
struct Shortfall<'a, F: Fn(u32, usize) -> usize> {
    len: usize,
    chosen: &'a mut [bool],
    load: &'a mut [u32],
    caps: &'a [u32],
    local: &'a F,
}

impl<F: Fn(u32, usize) -> usize> Shortfall<'_, F> {
    fn complete(&mut self, short: &[u32], taken: &mut [usize], replicas: usize, partitions: u32) {
        // Which partitions each node holds, ascending.
        let mut held: Vec<Vec<u32>> = vec![Vec::new(); self.len];
        for partition in 0..partitions {
            for position in 0..self.len {
                if self.chosen[partition as usize * self.len + position] {
                    held[(self.local)(partition, position)].push(partition);
                }
            }
        }
        for &partition in short {
            while taken[partition as usize] < replicas {
                if !self.swap_into(partition, &mut held) {
                    self.over_cap(partition, &mut held);
                }
                taken[partition as usize] += 1;
            }
        }
    }

    fn position_of(&self, partition: u32, node: usize) -> usize {
        (0..self.len)
            .find(|&position| (self.local)(partition, position) == node)
            .expect("every node of the region is in every row")
    }

    /// Gives `partition` one more replica by a swap; false when none exists.
    fn swap_into(&mut self, partition: u32, held: &mut [Vec<u32>]) -> bool {
        let len = self.len;
        for position in 0..len {
            if self.chosen[partition as usize * len + position] {
                continue;
            }
            let giver = (self.local)(partition, position);
            if self.load[giver] < self.caps[giver] {
                // Room freed by nothing so far, but cheap to check before a swap.
                self.load[giver] += 1;
                held[giver].push(partition);
                self.chosen[partition as usize * len + position] = true;
                return true;
            }
            for slot in 0..held[giver].len() {
                let other = held[giver][slot];
                let taker = (0..len).find(|&p2| {
                    let x = (self.local)(other, p2);
                    !self.chosen[other as usize * len + p2] && self.load[x] < self.caps[x]
                });
                let Some(taker_position) = taker else {
                    continue;
                };
                let taker = (self.local)(other, taker_position);
                let giver_position = self.position_of(other, giver);
                self.chosen[other as usize * len + giver_position] = false;
                self.chosen[other as usize * len + taker_position] = true;
                self.load[taker] += 1;
                held[taker].push(other);
                held[giver][slot] = partition;
                self.chosen[partition as usize * len + position] = true;
                return true;
            }
        }
        false
    }

    fn over_cap(&mut self, partition: u32, held: &mut [Vec<u32>]) {
        let len = self.len;
        let position = (0..len)
            .find(|&position| !self.chosen[partition as usize * len + position])
            .expect("a region has at least as many nodes as replicas");
        let node = (self.local)(partition, position);
        self.chosen[partition as usize * len + position] = true;
        self.load[node] += 1;
        held[node].push(partition);
    }
}

/// Rewrites `span` of every row as the chosen replicas, then the other nodes, each
/// group keeping the descending score order `sort_region` left.
fn write_region(
    span: &RegionSpan,
    partitions: u32,
    width: usize,
    chosen: &[bool],
    order: &mut [u16],
) {
    let mut rest = Vec::with_capacity(span.len);
    for (partition, row) in (0..partitions as usize).zip(order.chunks_exact_mut(width)) {
        let slots = &mut row[span.range()];
        let flags = &chosen[partition * span.len..(partition + 1) * span.len];
        rest.clear();
        let mut front = 0;
        for position in 0..span.len {
            if flags[position] {
                slots[front] = slots[position];
                front += 1;
            } else {
                rest.push(slots[position]);
            }
        }
        assert_eq!(
            front, span.replicas,
            "partition {partition}: replicas placed"
        );
        slots[front..].copy_from_slice(&rest);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod experiments;
