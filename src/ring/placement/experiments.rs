//! Measurements behind issue 25 (balanced placement): plain weighted rendezvous against
//! three capped roads (bounded loads walking partitions in order, a global greedy over
//! all (partition, node) pairs by descending score, and rendezvous followed by a
//! least-score-loss repair), reporting max/mean load and the replicas a join or a leave
//! moves over the ideal share; `shipped` is the ring's own placement (`Ring::new`, the
//! greedy under caps of floor(1.05 x share)), the others are this file's models. Run it
//! with `cargo test --release --lib compare_placements -- --ignored --nocapture`
//! (`PLACEMENTS=shipped,greedy` in the environment runs only those).
use super::*;
use crate::ids::Region;
use crate::ring::{Ring, RingConfig};

struct Region0 {
    weights: Vec<u32>,
    ids: Vec<NodeId>,
}

fn scores(r: &Region0, q: u32) -> Vec<Vec<f64>> {
    let seeds: Vec<u64> = r.ids.iter().map(node_seed).collect();
    (0..q)
        .map(|p| {
            seeds
                .iter()
                .zip(&r.weights)
                .map(|(&seed, &w)| score(w, unit_interval(p, seed)))
                .collect()
        })
        .collect()
}

fn caps(r: &Region0, q: u32, k: usize, c: f64) -> Vec<usize> {
    let total: u32 = r.weights.iter().sum();
    r.weights
        .iter()
        .map(|&w| {
            ((c * f64::from(w) / f64::from(total) * f64::from(q) * k as f64).ceil() as usize)
                .min(q as usize)
        })
        .collect()
}

fn sorted_row(row: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx
}

/// Plain rendezvous.
fn plain(s: &[Vec<f64>], _caps: &[usize], k: usize) -> Vec<Vec<usize>> {
    s.iter().map(|row| sorted_row(row)[..k].to_vec()).collect()
}

/// Bounded loads, partitions walked in index order.
fn bounded(s: &[Vec<f64>], caps: &[usize], k: usize) -> Vec<Vec<usize>> {
    let mut load = vec![0usize; caps.len()];
    s.iter()
        .map(|row| {
            let order = sorted_row(row);
            let mut chosen: Vec<usize> = order
                .iter()
                .copied()
                .filter(|&n| load[n] < caps[n])
                .take(k)
                .collect();
            for &n in &order {
                if chosen.len() == k {
                    break;
                }
                if !chosen.contains(&n) {
                    chosen.push(n);
                }
            }
            for &n in &chosen {
                load[n] += 1;
            }
            chosen
        })
        .collect()
}

/// Global greedy: all (p, n) pairs by descending score, accepted while p needs replicas and n has room.
fn greedy(s: &[Vec<f64>], caps: &[usize], k: usize) -> Vec<Vec<usize>> {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (p, row) in s.iter().enumerate() {
        for (n, &v) in row.iter().enumerate() {
            pairs.push((v, p, n));
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut load = vec![0usize; caps.len()];
    let mut out = vec![Vec::new(); s.len()];
    for &(_, p, n) in &pairs {
        if out[p].len() < k && load[n] < caps[n] {
            out[p].push(n);
            load[n] += 1;
        }
    }
    for (p, row) in s.iter().enumerate() {
        for n in sorted_row(row) {
            if out[p].len() == k {
                break;
            }
            if !out[p].contains(&n) {
                out[p].push(n);
            }
        }
    }
    out
}

/// Rendezvous, then repair: repeatedly move the replica whose move loses the least
/// score (ratio) from an over-cap node to an under-cap node not already a replica.
fn repair(s: &[Vec<f64>], caps: &[usize], k: usize) -> Vec<Vec<usize>> {
    let mut out = plain(s, caps, k);
    let mut load = vec![0usize; caps.len()];
    for reps in &out {
        for &n in reps {
            load[n] += 1;
        }
    }
    loop {
        // best move: over-cap holder h in partition p -> under-cap r not in p, minimising s[p][h]/s[p][r]
        let mut best: Option<(f64, usize, usize, usize)> = None;
        for (p, reps) in out.iter().enumerate() {
            for (slot, &h) in reps.iter().enumerate() {
                if load[h] <= caps[h] {
                    continue;
                }
                for r in 0..caps.len() {
                    if load[r] >= caps[r] || reps.contains(&r) {
                        continue;
                    }
                    let loss = s[p][h] / s[p][r];
                    if best.is_none_or(|b| loss < b.0) {
                        best = Some((loss, p, slot, r));
                    }
                }
            }
        }
        let Some((_, p, slot, r)) = best else { break };
        let h = out[p][slot];
        load[h] -= 1;
        load[r] += 1;
        out[p][slot] = r;
    }
    out
}

fn members(prefix: &str, n: usize, heavy: usize) -> Region0 {
    Region0 {
        ids: (0..n).map(|i| NodeId(format!("{prefix}-{i}"))).collect(),
        weights: (0..n).map(|i| if i < heavy { 2 } else { 1 }).collect(),
    }
}

type Algo = fn(&[Vec<f64>], &[usize], usize) -> Vec<Vec<usize>>;

/// The ring's own placement of one region, as replica indices into `r`.
fn shipped(r: &Region0, q: u32, k: usize) -> Vec<Vec<usize>> {
    let region = Region("x".to_string());
    let members = r
        .ids
        .iter()
        .zip(&r.weights)
        .map(|(id, &weight)| RingMember {
            id: id.clone(),
            region: region.clone(),
            weight,
        })
        .collect();
    let config = RingConfig {
        partitions: q,
        replicas_per_region: [(region.clone(), k as u32)].into(),
    };
    let ring = Ring::new(members, config, 0).expect("a valid region");
    let index: std::collections::BTreeMap<&NodeId, usize> =
        r.ids.iter().enumerate().map(|(i, id)| (id, i)).collect();
    (0..q)
        .map(|p| {
            ring.replicas_in_region(PartitionId(p), &region)
                .iter()
                .map(|id| index[id])
                .collect()
        })
        .collect()
}

/// Runs `algo`, or the ring itself when `algo` is `None`.
fn run(r: &Region0, q: u32, k: usize, c: f64, algo: Option<Algo>) -> (Vec<Vec<usize>>, f64) {
    let out = match algo {
        Some(algo) => algo(&scores(r, q), &caps(r, q, k, c), k),
        None => shipped(r, q, k),
    };
    let mut load = vec![0usize; r.ids.len()];
    for reps in &out {
        for &n in reps {
            load[n] += 1;
        }
    }
    let total: u32 = r.weights.iter().sum();
    let worst = load
        .iter()
        .zip(&r.weights)
        .map(|(&l, &w)| l as f64 / (f64::from(w) / f64::from(total) * f64::from(q) * k as f64))
        .fold(0.0, f64::max);
    (out, worst)
}

/// Moved replicas between placements keyed by node id.
fn moved(a: &Region0, pa: &[Vec<usize>], b: &Region0, pb: &[Vec<usize>]) -> usize {
    pa.iter()
        .zip(pb)
        .map(|(ra, rb)| {
            let old: Vec<&NodeId> = ra.iter().map(|&n| &a.ids[n]).collect();
            rb.iter().filter(|&&n| !old.contains(&&b.ids[n])).count()
        })
        .sum()
}

#[allow(clippy::too_many_arguments)] // a measurement's whole setting, printed as one line
fn measure(
    name: &str,
    n: usize,
    heavy: usize,
    q: u32,
    k: usize,
    c: f64,
    algo: Option<Algo>,
    trials: usize,
) {
    let base = members(&format!("m{n}"), n, heavy);
    let (pb, worst) = run(&base, q, k, c, algo);
    let (mut joins, mut leaves) = (Vec::new(), Vec::new());
    for t in 0..trials {
        let mut grown = Region0 {
            ids: base.ids.clone(),
            weights: base.weights.clone(),
        };
        grown.ids.push(NodeId(format!("joiner-{t}")));
        grown.weights.push(1);
        let (pg, _) = run(&grown, q, k, c, algo);
        let total: u32 = grown.weights.iter().sum();
        let ideal = f64::from(q) * k as f64 / f64::from(total);
        joins.push(moved(&base, &pb, &grown, &pg) as f64 / ideal);
        // leave: node t*7 % n of base leaves
        if n <= k {
            leaves.push(0.0);
            continue;
        }
        let gone = (t * 7 + 3) % n;
        let shrunk = Region0 {
            ids: base
                .ids
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != gone)
                .map(|(_, x)| x.clone())
                .collect(),
            weights: base
                .weights
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != gone)
                .map(|(_, &x)| x)
                .collect(),
        };
        let (ps, _) = run(&shrunk, q, k, c, algo);
        let btotal: u32 = base.weights.iter().sum();
        let ideal = f64::from(q) * k as f64 * f64::from(base.weights[gone]) / f64::from(btotal);
        leaves.push(moved(&base, &pb, &shrunk, &ps) as f64 / ideal);
    }
    let stats = |v: &[f64]| {
        (
            v.iter().sum::<f64>() / v.len() as f64,
            v.iter().cloned().fold(0.0, f64::max),
        )
    };
    let (jm, jx) = stats(&joins);
    let (lm, lx) = stats(&leaves);
    println!("{name:8} n={n:3} heavy={heavy} q={q:5} k={k} c={c:.2}: max/mean {worst:.3}; join mean {jm:.3} max {jx:.3}; leave mean {lm:.3} max {lx:.3}");
}

#[test]
#[ignore]
fn compare_placements() {
    let algos: [(&str, Option<Algo>); 5] = [
        ("shipped", None),
        ("plain", Some(plain)),
        ("bounded", Some(bounded)),
        ("greedy", Some(greedy)),
        ("repair", Some(repair)),
    ];
    // (nodes in the region, of which weight 2, Q); the repair road is quadratic, so it
    // only runs on small regions.
    let shapes: &[(usize, usize, u32)] = &[
        (100, 0, 1024),
        (100, 5, 1024),
        (4, 0, 1024),
        (4, 1, 1024),
        (3, 0, 1024),
        (100, 0, 4096),
        (100, 0, 16384),
    ];
    // `PLACEMENTS=shipped,greedy` runs only those roads.
    let only = std::env::var("PLACEMENTS").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|w| w == name);
    for &(n, heavy, q) in shapes {
        let k = 3;
        for (name, algo) in algos.into_iter().filter(|(name, _)| wanted(name)) {
            for c in [1.0, 1.02, 1.04, 1.05] {
                if (name == "plain" || name == "shipped") && c > 1.0 {
                    continue;
                }
                if name == "repair" && n == 100 {
                    continue;
                }
                let trials = if q > 1024 { 4 } else { 10 };
                measure(name, n, heavy, q, k, c, algo, trials);
            }
        }
    }
}

/// The shipped placement's join and leave movement over many joiners and leavers, at
/// 100 nodes and k = 3; `TRIALS` (default 20) and `QS` (default 16384,32768) steer it:
/// `cargo test --release --lib shipped_movement -- --ignored --nocapture`.
#[test]
#[ignore]
fn shipped_movement() {
    let trials: usize = std::env::var("TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(20);
    let qs: Vec<u32> = std::env::var("QS")
        .unwrap_or_else(|_| "16384,32768".to_string())
        .split(',')
        .filter_map(|q| q.parse().ok())
        .collect();
    let (n, k) = (100usize, 3usize);
    for q in qs {
        let base = members("m100", n, 0);
        let (pb, worst) = run(&base, q, k, 1.0, None);
        let (mut joins, mut leaves) = (Vec::new(), Vec::new());
        for t in 0..trials {
            let mut grown = Region0 {
                ids: base.ids.clone(),
                weights: base.weights.clone(),
            };
            grown.ids.push(NodeId(format!("joiner-{t}")));
            grown.weights.push(1);
            let (pg, _) = run(&grown, q, k, 1.0, None);
            let ideal = f64::from(q) * k as f64 / (n + 1) as f64;
            joins.push(moved(&base, &pb, &grown, &pg) as f64 / ideal);
            let gone = (t * 37 + 3) % n;
            let mut shrunk = Region0 {
                ids: base.ids.clone(),
                weights: base.weights.clone(),
            };
            shrunk.ids.remove(gone);
            shrunk.weights.remove(gone);
            let (ps, _) = run(&shrunk, q, k, 1.0, None);
            let ideal = f64::from(q) * k as f64 / n as f64;
            leaves.push(moved(&base, &pb, &shrunk, &ps) as f64 / ideal);
        }
        let describe = |values: &mut Vec<f64>| {
            values.sort_by(f64::total_cmp);
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let over = values.iter().filter(|&&v| v > 1.1).count();
            format!(
                "mean {mean:.3}, median {:.3}, max {:.3}, over 1.1: {over} of {}",
                values[values.len() / 2],
                values[values.len() - 1],
                values.len()
            )
        };
        println!(
            "shipped n={n} q={q} k={k}: max/share {worst:.4}; join {}; leave {}",
            describe(&mut joins),
            describe(&mut leaves)
        );
    }
}
