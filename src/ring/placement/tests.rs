use super::*;
use crate::ids::Region;
use crate::ring::{moved_replicas, Ring, RingConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

#[test]
fn unit_interval_extremes_stay_inside_open_interval() {
    let lowest = 0.5 * UNIT_GRID_STEP;
    let highest = (((1u64 << 52) - 1) as f64 + 0.5) * UNIT_GRID_STEP;
    assert!(lowest > 0.0);
    assert!(highest < 1.0);
    assert!(score(1, lowest).is_finite() && score(1, lowest) > 0.0);
    assert!(score(1, highest).is_finite() && score(1, highest) > 0.0);
    assert!(score(1, highest) > score(1, lowest));
}

#[test]
fn unit_interval_depends_on_partition_and_node() {
    let node = node_seed(&NodeId("a".to_string()));
    let other = node_seed(&NodeId("b".to_string()));
    let first = unit_interval(0, node);
    assert!(first > 0.0 && first < 1.0);
    assert_ne!(first, unit_interval(1, node));
    assert_ne!(first, unit_interval(0, other));
    assert_eq!(first, unit_interval(0, node));
}

#[test]
fn draws_are_uniform_and_pinned() {
    // SplitMix64 seeded with 0: its first output is pinned by its authors' reference.
    assert_eq!(mix64(GOLDEN_GAMMA), 0xe220_a839_7b1d_cdaf);
    // 100 nodes x 1024 partitions: each tenth of (0, 1) holds 10 % +- 0.3 % (3 sd is
    // 0.28 %) of the draws.
    let seeds: Vec<u64> = (0..100)
        .map(|i| node_seed(&NodeId(format!("node-{i}"))))
        .collect();
    let mut tenths = [0usize; 10];
    for p in 0..1024 {
        for &seed in &seeds {
            tenths[(unit_interval(p, seed) * 10.0) as usize] += 1;
        }
    }
    for count in tenths {
        let fraction = count as f64 / 102_400.0;
        assert!((fraction - 0.1).abs() < 0.003, "{tenths:?}");
    }
}

#[test]
fn heavier_weight_scores_higher_for_the_same_draw() {
    assert!(score(2, 0.3) > score(1, 0.3));
    assert!((score(2, 0.3) - 2.0 * score(1, 0.3)).abs() < 1e-12);
}

/// 3 regions of `per_region` nodes, the first `heavy` of each of weight 2, `k`
/// replicas each, at Q = `partitions`.
fn three_regions_weighted(
    per_region: usize,
    heavy: usize,
    partitions: u32,
    k: u32,
) -> (Vec<RingMember>, RingConfig) {
    let mut members = Vec::new();
    let mut replicas_per_region = BTreeMap::new();
    for name in ["ap-south", "eu-west", "us-east"] {
        members.extend((0..per_region).map(|i| RingMember {
            id: NodeId(format!("{name}-{i}")),
            region: Region(name.to_string()),
            weight: if i < heavy { 2 } else { 1 },
        }));
        replicas_per_region.insert(Region(name.to_string()), k);
    }
    let config = RingConfig {
        partitions,
        replicas_per_region,
    };
    (members, config)
}

fn three_regions(per_region: usize, partitions: u32, k: u32) -> (Vec<RingMember>, RingConfig) {
    three_regions_weighted(per_region, 0, partitions, k)
}

/// The issue's shape: 3 regions x 100 nodes, Q = 16384, 3 replicas per region.
const ISSUE_Q: u32 = 16_384;

/// The issue-shaped ring, built once for the tests that only read it.
fn issue_ring() -> &'static (Vec<RingMember>, RingConfig, Ring) {
    static RING: OnceLock<(Vec<RingMember>, RingConfig, Ring)> = OnceLock::new();
    RING.get_or_init(|| {
        let (members, config) = three_regions(100, ISSUE_Q, 3);
        let ring = Ring::new(members.clone(), config.clone(), 1).expect("valid ring");
        (members, config, ring)
    })
}

/// Replicas held per node.
fn load_of(ring: &Ring) -> BTreeMap<NodeId, usize> {
    let mut load: BTreeMap<NodeId, usize> =
        ring.members().iter().map(|m| (m.id.clone(), 0)).collect();
    for p in (0..ring.partition_count()).map(PartitionId) {
        for (node, _) in ring.replicas(p) {
            *load.get_mut(&node).expect("replica is a member") += 1;
        }
    }
    load
}

/// Per region, the largest load over weighted share: load / (w / W x Q x k).
fn worst_over_share(ring: &Ring) -> BTreeMap<Region, f64> {
    let load = load_of(ring);
    let mut worst = BTreeMap::new();
    for region in ring.regions() {
        let local: Vec<&RingMember> = ring
            .members()
            .iter()
            .filter(|m| m.region == region)
            .collect();
        let total: u32 = local.iter().map(|m| m.weight).sum();
        let slots =
            f64::from(ring.partition_count()) * f64::from(ring.replicas_per_region(&region));
        let ratio = local
            .iter()
            .map(|m| load[&m.id] as f64 / (f64::from(m.weight) / f64::from(total) * slots))
            .fold(0.0, f64::max);
        worst.insert(region, ratio);
    }
    worst
}

/// Replicas a change moved over the changed node's ideal share of its region's Q x k.
fn moved_over_ideal(before: &Ring, after: &Ring, changed: &RingMember, region_weight: u32) -> f64 {
    let slots = f64::from(before.partition_count())
        * f64::from(before.replicas_per_region(&changed.region));
    let ideal = slots * f64::from(changed.weight) / f64::from(region_weight);
    moved_replicas(before, after) as f64 / ideal
}

#[test]
fn busiest_node_holds_at_most_1_05_of_its_share_in_every_region() {
    let (_, config, ring) = issue_ring();
    for (region, worst) in worst_over_share(ring) {
        println!("{region}: busiest node {worst:.4} x its share");
        assert!(worst <= 1.05, "{region}: {worst}");
    }
    for p in (0..config.partitions).map(PartitionId) {
        for region in config.replicas_per_region.keys() {
            let local = ring.replicas_in_region(p, region);
            let distinct: BTreeSet<_> = local.iter().collect();
            assert_eq!(distinct.len(), 3, "{p} in {region}");
        }
    }
}

#[test]
fn weights_are_honoured_within_the_bound() {
    let (members, config) = three_regions_weighted(100, 5, ISSUE_Q, 3);
    let ring = Ring::new(members, config, 1).expect("valid ring");
    let load = load_of(&ring);
    for (region, worst) in worst_over_share(&ring) {
        assert!(worst <= 1.05, "{region}: {worst}");
    }
    // Heavy nodes carry about twice a light node's load: each at least 0.9 x its share.
    let heavy = ring.members().iter().filter(|m| m.weight == 2);
    for member in heavy {
        let share = 2.0 / 105.0 * f64::from(ISSUE_Q) * 3.0;
        assert!(load[&member.id] as f64 >= 0.9 * share, "{}", member.id);
    }
}

/// The Q that meets the movement bound at 100 nodes per region: at Q = 16384 the cap
/// (516 against a share of 491.5, 1.1 sd of rendezvous noise) leaves enough nodes capped
/// that 6 of 20 joins and 3 of 20 leaves moved over 1.1 x (worst 1.124); at 32768 (1.6
/// sd) none of 20 did, worst 1.06 (`shipped_movement` in the experiments).
const MOVEMENT_Q: u32 = 32_768;

#[test]
fn a_join_or_a_leave_moves_at_most_1_1_of_the_ideal_share() {
    let (members, config) = three_regions(100, MOVEMENT_Q, 3);
    let ring = Ring::new(members.clone(), config.clone(), 1).expect("valid ring");
    let joiner = RingMember {
        id: NodeId("eu-west-joiner".to_string()),
        region: Region("eu-west".to_string()),
        weight: 1,
    };
    let mut grown = members.clone();
    grown.push(joiner.clone());
    let joined = Ring::new(grown, config.clone(), 2).expect("valid ring");
    let join = moved_over_ideal(&ring, &joined, &joiner, 101);
    let leaver = members[150].clone();
    let shrunk: Vec<RingMember> = members
        .iter()
        .filter(|m| m.id != leaver.id)
        .cloned()
        .collect();
    let left = Ring::new(shrunk, config.clone(), 2).expect("valid ring");
    let leave = moved_over_ideal(&ring, &left, &leaver, 100);
    println!("Q = {MOVEMENT_Q}: join moved {join:.3} x the ideal share, leave {leave:.3} x");
    assert!(join <= 1.1, "join {join}");
    assert!(leave <= 1.1, "leave {leave}");
    for changed in [&joined, &left] {
        for (region, worst) in worst_over_share(changed) {
            assert!(worst <= 1.05, "{region}: {worst}");
        }
    }
    // Only the changed region moves.
    for p in (0..config.partitions).map(PartitionId) {
        for region in ["ap-south", "us-east"].map(|r| Region(r.to_string())) {
            assert_eq!(
                ring.replicas_in_region(p, &region),
                joined.replicas_in_region(p, &region)
            );
        }
    }
}

#[test]
fn member_order_does_not_change_the_balanced_placement() {
    let (members, config, ring) = issue_ring();
    let mut reversed = members.clone();
    reversed.reverse();
    // A rotation as well, so the order is neither sorted nor its mirror.
    reversed.rotate_left(37);
    let again = Ring::new(reversed, config.clone(), 1).expect("valid ring");
    assert!(*ring == again);
}

#[test]
fn caps_sum_to_the_replicas_and_stay_within_q() {
    // The issue's shape: floor(1.05 x 491.52) = 516.
    assert_eq!(caps(&[1; 100], ISSUE_Q, 3), vec![516; 100]);
    // Small regions where every node holds every partition.
    assert_eq!(caps(&[1, 1, 1], 1024, 3), vec![1024; 3]);
    assert_eq!(caps(&[1, 5, 1], 64, 3), vec![64; 3]);
    // A weight-2 node of four cannot hold 1.2 replicas per partition: it is held at Q
    // and the other three share the rest (682.7 each, capped at 716).
    assert_eq!(caps(&[2, 1, 1, 1], 1024, 3), vec![1024, 716, 716, 716]);
    // Tiny shares: the ceiling of the share, never 0.
    assert_eq!(caps(&[1; 12], 1, 3), vec![1; 12]);
    for (weights, q, k) in [(vec![3, 1, 1, 1, 1], 7u32, 4usize), (vec![1, 2, 3], 5, 2)] {
        let caps = caps(&weights, q, k);
        assert!(caps.iter().map(|&c| u64::from(c)).sum::<u64>() >= u64::from(q) * k as u64);
        assert!(caps.iter().all(|&c| c <= q), "{caps:?}");
    }
}

#[test]
fn tight_caps_still_give_every_partition_its_replicas() {
    // Shares of under 20 replicas leave no room above them (floor(1.05 x 6) = 6), so the
    // caps sum to exactly Q x k, the greedy leaves partitions short and the swaps must
    // complete them without passing any cap.
    let shapes: [(&[u32], u32, u32); 5] = [
        (&[1, 1, 1, 1], 8, 3),
        (&[1, 1, 1, 1], 16, 3),
        (&[1, 1, 1, 1, 1], 10, 4),
        (&[3, 1, 1, 1, 1], 7, 4),
        (&[2, 1, 1, 1, 2, 1], 9, 4),
    ];
    for (weights, q, k) in shapes {
        let members: Vec<RingMember> = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| RingMember {
                id: NodeId(format!("t-{i}")),
                region: Region("x".to_string()),
                weight,
            })
            .collect();
        let config = RingConfig {
            partitions: q,
            replicas_per_region: [(Region("x".to_string()), k)].into(),
        };
        let ring = Ring::new(members, config, 0).expect("valid ring");
        for p in (0..q).map(PartitionId) {
            let local: BTreeSet<_> = ring.replicas(p).into_iter().collect();
            assert_eq!(local.len(), k as usize);
        }
        // Ids t-0.. sort in weight order, so loads and caps line up.
        let caps = caps(weights, q, k as usize);
        let load: Vec<usize> = load_of(&ring).into_values().collect();
        for (held, cap) in load.iter().zip(&caps) {
            assert!(
                *held <= *cap as usize,
                "{weights:?} q={q}: {load:?} over {caps:?}"
            );
        }
    }
}

/// What a ring build costs at 3 x 100 nodes, next to its rendezvous part alone (the
/// whole of the placement before issue 25); run with
/// `cargo test --release --lib ring_build_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn ring_build_cost() {
    for partitions in [1024, 4096, 16_384, 32_768] {
        let (members, config) = three_regions(100, partitions, 3);
        let (mut builds, mut sorts) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let start = std::time::Instant::now();
            let ring = Ring::new(members.clone(), config.clone(), 1);
            builds.push(start.elapsed());
            assert!(ring.is_ok());
            let mut sorted = members.clone();
            sorted.sort_by(|a, b| (&a.region, &a.id).cmp(&(&b.region, &b.id)));
            let spans = crate::ring::region_spans(&sorted, &config);
            let mut order = vec![0u16; partitions as usize * sorted.len()];
            let start = std::time::Instant::now();
            for span in &spans {
                sort_region(&sorted, span, partitions, &mut order);
            }
            sorts.push(start.elapsed());
        }
        builds.sort();
        sorts.sort();
        println!(
            "3 x 100 nodes, Q = {partitions}: build {:?} (median of 3, {:?}..{:?}); \
             rendezvous scores and sort alone {:?}",
            builds[1], builds[0], builds[2], sorts[1]
        );
    }
}
