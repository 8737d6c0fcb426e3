use super::*;
use crate::membership::swim::sim::{member_info, LinkFaults, Sim, SimConfig};
use crate::membership::swim::{Liveness, MemberInfo, Status, Swim, SwimConfig};

fn region(
    name: &str,
    nodes: usize,
    alive: usize,
    all_dead_since_ms: Option<u64>,
) -> RegionLiveness {
    RegionLiveness {
        region: Region(name.to_string()),
        nodes,
        alive,
        all_dead_since_ms,
    }
}

/// Two other regions of three nodes; `west` and `eu` say how many are alive.
fn view(west: usize, eu: usize) -> RegionsView {
    RegionsView {
        others: vec![region("west", 3, west, None), region("eu", 3, eu, None)],
        version: 1,
        stalled_ms: 0,
    }
}

#[test]
fn the_guard_moves_as_the_table_says() {
    // (mode before, west alive, eu alive, caught up, mode after)
    use GuardMode::*;
    let table = [
        (Local, 3, 3, false, Local),
        (Local, 2, 3, false, Local),
        (Local, 0, 3, true, Fenced),
        // Half the nodes outside not alive: it may be this side that is cut off.
        (Local, 1, 2, true, Fenced),
        (Local, 2, 2, true, Local),
        (Fenced, 0, 3, true, Fenced),
        (Fenced, 0, 0, true, Fenced),
        (Fenced, 1, 3, true, CatchingUp),
        (CatchingUp, 3, 3, false, CatchingUp),
        (CatchingUp, 3, 3, true, Local),
        (CatchingUp, 3, 0, true, Fenced),
    ];
    for (before, west, eu, caught_up, after) in table {
        let mut guard = AuthGuard {
            mode: before,
            catch_up_since_ms: 5,
            stalled_seen_ms: Some(0),
        };
        let mode = guard.observe(&view(west, eu), 100, |_| caught_up);
        assert_eq!(
            mode, after,
            "{before:?} with west {west} eu {eu} caught up {caught_up}"
        );
    }
}

#[test]
fn catch_up_counts_from_the_moment_the_regions_came_back() {
    let mut guard = AuthGuard::new(10);
    assert_eq!(guard.mode(), GuardMode::CatchingUp);
    assert_eq!(guard.observe(&view(0, 3), 20, |_| true), GuardMode::Fenced);
    assert_eq!(
        guard.observe(&view(1, 3), 30, |_| true),
        GuardMode::CatchingUp
    );
    assert_eq!(guard.catch_up_since_ms(), 30);
    // A sync found before the regions came back does not end it.
    let mode = guard.observe(&view(3, 3), 40, |since| since <= 25);
    assert_eq!(mode, GuardMode::CatchingUp);
    let mode = guard.observe(&view(3, 3), 50, |since| since == 30);
    assert_eq!(mode, GuardMode::Local);
}

#[test]
fn a_stall_starts_a_catch_up_even_when_every_region_looks_alive() {
    let mut guard = AuthGuard::new(0);
    assert_eq!(guard.observe(&view(3, 3), 1, |_| true), GuardMode::Local);
    // A short stall (a busy machine) changes nothing.
    let mut stalled = view(3, 3);
    stalled.stalled_ms = crate::limits::AUTH_STALL_CATCH_UP_MS - 1;
    assert_eq!(guard.observe(&stalled, 2, |_| true), GuardMode::Local);
    stalled.stalled_ms += crate::limits::AUTH_STALL_CATCH_UP_MS;
    assert_eq!(guard.observe(&stalled, 3, |_| true), GuardMode::CatchingUp);
    assert_eq!(guard.catch_up_since_ms(), 3);
    assert_eq!(guard.observe(&stalled, 4, |_| true), GuardMode::Local);
}

#[test]
fn one_or_two_regions_are_never_fenced_and_have_nothing_to_catch_up() {
    let mut guard = AuthGuard::new(0);
    let mode = guard.observe(&RegionsView::single_region(), 1, |_| false);
    assert_eq!(mode, GuardMode::Local);
    // The other of two regions down: no revocation can have left this one out.
    let two = RegionsView {
        others: vec![region("west", 3, 0, Some(0))],
        version: 1,
        stalled_ms: 0,
    };
    let mut guard = AuthGuard::new(0);
    assert_eq!(guard.observe(&two, 1, |_| false), GuardMode::Local);
}

#[test]
fn revocations_excuse_only_regions_dead_for_the_margin() {
    let margin = 1_000;
    let healthy = view(3, 3);
    let dying = RegionsView {
        others: vec![region("west", 3, 0, Some(9_500)), region("eu", 3, 3, None)],
        version: 2,
        stalled_ms: 0,
    };
    let down = RegionsView {
        others: vec![region("west", 3, 0, Some(8_000)), region("eu", 3, 3, None)],
        version: 2,
        stalled_ms: 0,
    };
    let suspect = view(0, 3);
    let both_down = RegionsView {
        others: vec![
            region("west", 3, 0, Some(1_000)),
            region("eu", 3, 0, Some(1_000)),
        ],
        version: 3,
        stalled_ms: 0,
    };
    let majority = Level::MajorityQuorum;
    let table = [
        (
            majority,
            &healthy,
            RevokePlan::Write {
                level: Level::EachQuorum,
                excused: 0,
            },
        ),
        // Suspected but not dead: its replicas are still asked (the write may fail).
        (
            majority,
            &suspect,
            RevokePlan::Write {
                level: Level::EachQuorum,
                excused: 0,
            },
        ),
        (majority, &dying, RevokePlan::Wait),
        (
            majority,
            &down,
            RevokePlan::Write {
                level: Level::RegionQuorums(2),
                excused: 1,
            },
        ),
        (majority, &both_down, RevokePlan::Unavailable),
        // Any other level is the operator's choice, written as it is.
        (
            Level::EachQuorum,
            &down,
            RevokePlan::Write {
                level: Level::EachQuorum,
                excused: 0,
            },
        ),
    ];
    for (configured, view, plan) in table {
        assert_eq!(
            revocation_plan(configured, view, 10_000, margin),
            plan,
            "{configured} over {view:?}"
        );
    }
}

const REGIONS: [&str; 3] = ["us-east", "us-west", "eu-west"];

fn members() -> Vec<MemberInfo> {
    (0..9).map(|i| member_info(i, REGIONS[i / 3])).collect()
}

/// What the fence of node `swim` sees: the other regions' liveness in its view.
fn view_of(swim: &Swim, now_ms: u64) -> RegionsView {
    let me = &swim.me().info.region;
    let others = REGIONS
        .iter()
        .filter(|name| **name != me.0)
        .map(|name| {
            let states: Vec<Liveness> = swim
                .members()
                .filter(|member| member.info.region.0 == *name)
                .map(|member| member.liveness)
                .collect();
            let alive = states.iter().filter(|l| **l == Liveness::Alive).count();
            let all_dead = states.iter().all(|l| *l == Liveness::Dead);
            region(name, states.len(), alive, all_dead.then_some(now_ms))
        })
        .collect();
    RegionsView {
        others,
        version: swim.version(),
        stalled_ms: 0,
    }
}

/// The assumption the revocation rule rests on, measured on the SWIM simulation at the
/// default tuning (9 nodes, 3 regions, WAN delays): once a region is cut off, every one
/// of its nodes is fenced before `AUTH_FENCE_MARGIN_MS` has passed since the first
/// node outside held all of them dead. Prints the worst lead over the seeds.
#[test]
fn a_cut_off_region_fences_itself_within_the_margin_of_its_death_elsewhere() {
    let mut worst_lag_ms = 0;
    for seed in 1..=40u64 {
        let members = members();
        let config = SimConfig {
            seed,
            ..SimConfig::default()
        };
        let mut sim = Sim::converged(&members, Status::Member, &SwimConfig::default(), config);
        for a in &members {
            for b in &members {
                let (delay_min_ms, delay_max_ms) = if a.region == b.region {
                    (1, 5)
                } else {
                    (30, 60)
                };
                let link = LinkFaults {
                    delay_min_ms,
                    delay_max_ms,
                    drop_probability: 0.0,
                };
                sim.set_link(&a.node, &b.node, link);
            }
        }
        sim.run_until(5_000 + seed * 97);
        let cut = &REGIONS[(seed % 3) as usize];
        let (inside, outside): (Vec<_>, Vec<_>) = members.iter().partition(|m| m.region.0 == **cut);
        let blocked = LinkFaults {
            delay_min_ms: 1,
            delay_max_ms: 1,
            drop_probability: 1.0,
        };
        for a in &inside {
            for b in &outside {
                sim.set_link(&a.node, &b.node, blocked);
                sim.set_link(&b.node, &a.node, blocked);
            }
        }
        let started = sim.now_ms();
        let deadline = started + 60_000;
        let dead_somewhere = sim
            .run_until_true(deadline, |sim| {
                outside.iter().any(|watcher| {
                    let swim = sim.node(&watcher.node).expect("watcher");
                    inside.iter().all(|m| swim.is_dead(&m.node))
                })
            })
            .unwrap_or_else(|| panic!("seed {seed}: {cut} never held dead"));
        let fenced = sim
            .run_until_true(deadline, |sim| {
                inside.iter().all(|m| {
                    let swim = sim.node(&m.node).expect("cut-off node");
                    view_of(swim, sim.now_ms()).cut_off()
                })
            })
            .unwrap_or_else(|| panic!("seed {seed}: {cut} never fenced"));
        // 0 when every node had fenced before the first outside node held them dead.
        let lag_ms = fenced.saturating_sub(dead_somewhere);
        worst_lag_ms = worst_lag_ms.max(lag_ms);
        assert!(
            lag_ms <= crate::limits::AUTH_FENCE_MARGIN_MS,
            "seed {seed}: {cut} fenced {lag_ms} ms after it was held dead elsewhere"
        );
    }
    println!(
        "a cut-off region fences itself at worst {worst_lag_ms} ms after it is held dead elsewhere"
    );
}
