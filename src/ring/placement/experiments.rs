//! Measurements behind issue 25 (balanced placement): plain weighted rendezvous against
//! three capped roads (bounded loads walking partitions in order, a global greedy over
//! all (partition, node) pairs by descending score, and rendezvous followed by a
//! least-score-loss repair), reporting max/mean load and the replicas a join or a leave
//! moves over the ideal share. Nothing here is used by the ring; run it with
//! `cargo test --release --lib compare_placements -- --ignored --nocapture`.
use super::*;

struct Region0 {
    weights: Vec<u32>,
    ids: Vec<NodeId>,
}

fn scores(r: &Region0, q: u32) -> Vec<Vec<f64>> {
    let mut buffer = Vec::new();
    (0..q)
        .map(|p| {
            r.ids
                .iter()
                .zip(&r.weights)
                .map(|(id, &w)| score(w, unit_interval(p, id, &mut buffer)))
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

fn run(r: &Region0, q: u32, k: usize, c: f64, algo: Algo) -> (Vec<Vec<usize>>, f64) {
    let s = scores(r, q);
    let cp = caps(r, q, k, c);
    let out = algo(&s, &cp, k);
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
    algo: Algo,
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
    let algos: [(&str, Algo); 4] = [
        ("plain", plain),
        ("bounded", bounded),
        ("greedy", greedy),
        ("repair", repair),
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
    for &(n, heavy, q) in shapes {
        let k = 3;
        for (name, algo) in algos {
            for c in [1.0, 1.02, 1.04, 1.05] {
                if name == "plain" && c > 1.0 {
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
