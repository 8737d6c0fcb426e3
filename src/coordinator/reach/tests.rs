use super::*;
use crate::ring::{RingConfig, RingMember};

fn region(name: &str) -> Region {
    Region::new(name).unwrap()
}

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

/// Two regions, `nodes` nodes each, `replicas` replicas of every partition in each.
fn ring(nodes: u32, replicas: u32) -> Ring {
    let mut members = Vec::new();
    for name in ["east", "west"] {
        for index in 1..=nodes {
            members.push(RingMember {
                id: node(&format!("{name}-{index}")),
                region: region(name),
                weight: 1,
            });
        }
    }
    let mut config = RingConfig::uniform([region("east"), region("west")], replicas);
    config.partitions = 64;
    Ring::new(members, config, 1).unwrap()
}

fn check(op: Op, level: Level, sloppy: bool) -> LevelCheck {
    LevelCheck {
        class: Class::Kv,
        op,
        level,
        sloppy,
    }
}

fn dead(names: &[&str]) -> BTreeSet<NodeId> {
    names.iter().map(|name| node(name)).collect()
}

#[test]
fn nothing_is_unmet_while_every_node_lives() {
    let checks = [check(Op::Read, Level::All, false)];
    assert!(unmet(&ring(3, 3), &BTreeSet::new(), &checks).is_empty());
}

#[test]
fn one_dead_replica_of_three_leaves_local_quorum_met_and_all_unmet() {
    let ring = ring(3, 3);
    let checks = [
        check(Op::Read, Level::LocalQuorum, false),
        check(Op::Read, Level::All, false),
    ];
    let found = unmet(&ring, &dead(&["east-1"]), &checks);
    // Every partition has east-1 as a replica (3 of 3 east nodes), so `all` fails for
    // all 64 from either region; `local_quorum` never does.
    assert_eq!(
        found,
        vec![
            Unmet {
                region: region("east"),
                check: checks[1],
                partitions: 64
            },
            Unmet {
                region: region("west"),
                check: checks[1],
                partitions: 64
            },
        ]
    );
}

#[test]
fn a_region_down_fails_its_own_local_quorum_only() {
    let ring = ring(3, 3);
    let checks = [check(Op::Read, Level::LocalQuorum, false)];
    let found = unmet(&ring, &dead(&["east-1", "east-2", "east-3"]), &checks);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].region, region("east"));
    assert_eq!(found[0].partitions, 64);
}

#[test]
fn a_sloppy_write_counts_a_live_fallback_of_the_dead_replicas_region() {
    // Four nodes, three replicas: a dead replica has a fallback in its region.
    let ring = ring(4, 3);
    let strict = check(Op::Write, Level::All, false);
    let sloppy = check(Op::Write, Level::All, true);
    let found = unmet(&ring, &dead(&["east-1"]), &[strict, sloppy]);
    assert!(found.iter().all(|unmet| unmet.check == strict), "{found:?}");
    assert!(found
        .iter()
        .all(|unmet| unmet.partitions > 0 && unmet.partitions < 64));
    // Two dead of four: one fallback is left for two missing replicas.
    let found = unmet(&ring, &dead(&["east-1", "east-2"]), &[sloppy]);
    assert!(!found.is_empty(), "partitions with both as replicas fail");
    // A sloppy read gets no fallback.
    let read = check(Op::Read, Level::All, true);
    assert!(!unmet(&ring, &dead(&["east-1"]), &[read]).is_empty());
}
