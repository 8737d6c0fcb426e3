//! Unit tests of probe rounds, intermediaries, stalls, the dissemination budget and
//! joining, driving one `Swim` by hand.

use super::super::sim::member_info;
use super::super::*;
use super::{id, messages_to, run, run_healthy, swim_with, updates_in};
use crate::limits::{LOCAL_HEALTH_MAX, SEEDS_MAX};

/// Answers every Ping of `node` that `answer` allows, as the target would.
fn answer_pings(
    node: &mut Swim,
    out: &[(u64, Output)],
    answer: impl Fn(&NodeId) -> bool,
) -> Vec<(u64, Output)> {
    let mut replies = Vec::new();
    for (at, Output::Send { to, message }) in out {
        if let SwimMessage::Ping { seq, .. } = message {
            if answer(to) {
                let reply = node.receive(
                    to,
                    SwimMessage::Ack {
                        seq: *seq,
                        updates: vec![],
                    },
                    *at + 5,
                );
                replies.extend(reply.into_iter().map(|output| (*at + 5, output)));
            }
        }
    }
    replies
}

#[test]
fn an_unanswered_probe_leads_to_ping_req_then_suspicion_then_death() {
    let mut node = swim_with(3);
    let mut now = 0;
    let mut suspected_at = None;
    let mut worst_health = 0;
    while now < 10_000 && !node.is_dead(&id(1)) {
        let out: Vec<(u64, Output)> = node
            .tick(now)
            .into_iter()
            .map(|output| (now, output))
            .collect();
        answer_pings(&mut node, &out, |to| *to != id(1));
        if suspected_at.is_none()
            && node
                .member(&id(1))
                .is_some_and(|s| s.liveness == Liveness::Suspect)
        {
            suspected_at = Some(now);
        }
        worst_health = worst_health.max(node.local_health());
        now += 10;
    }
    let stats = node.stats();
    assert!(
        stats.indirect_probes_sent >= 2,
        "asked the two others: {stats:?}"
    );
    assert_eq!(stats.suspicions_raised, 1);
    assert_eq!(stats.deaths_declared, 1);
    let suspected_at = suspected_at.expect("suspected first");
    // A lone accuser waits timeout(1) = 1.25 s (more once local health rose).
    assert!(
        now - suspected_at >= 1_250,
        "dead {} ms after suspicion",
        now - suspected_at
    );
    assert!(worst_health >= 1, "missing nacks raised local health");
}

#[test]
fn an_indirect_ack_saves_the_target_and_nacks_keep_local_health_down() {
    let mut node = swim_with(3);
    let mut now = 0;
    while now < 30_000 {
        let out = node.tick(now);
        for Output::Send { to, message } in out {
            match message {
                SwimMessage::Ping { seq, .. } if to != id(1) => {
                    node.receive(
                        &to,
                        SwimMessage::Ack {
                            seq,
                            updates: vec![],
                        },
                        now + 5,
                    );
                }
                SwimMessage::PingReq { seq, target, .. } => {
                    node.receive(
                        &to,
                        SwimMessage::IndirectAck {
                            seq,
                            target,
                            updates: vec![],
                        },
                        now + 5,
                    );
                }
                _ => {}
            }
        }
        now += 10;
    }
    let stats = node.stats();
    assert!(stats.indirect_acks_received >= 5, "{stats:?}");
    assert_eq!(stats.suspicions_raised, 0);
    assert_eq!(node.local_health(), 0);
}

#[test]
fn an_intermediary_relays_acks_and_nacks() {
    let mut node = swim_with(3);
    let out = node.receive(
        &id(2),
        SwimMessage::PingReq {
            seq: 77,
            target: id(1),
            updates: vec![],
        },
        100,
    );
    let ping = messages_to(&out, &id(1));
    let SwimMessage::Ping { seq, .. } = ping[0] else {
        panic!("expected a ping, got {ping:?}")
    };
    let out = node.receive(
        &id(1),
        SwimMessage::Ack {
            seq: *seq,
            updates: vec![],
        },
        110,
    );
    assert!(matches!(
        messages_to(&out, &id(2))[0],
        SwimMessage::IndirectAck { seq: 77, .. }
    ));
    // A second request whose target stays silent gets a Nack after the probe timeout.
    node.receive(
        &id(2),
        SwimMessage::PingReq {
            seq: 78,
            target: id(3),
            updates: vec![],
        },
        200,
    );
    let out = run(&mut node, 210, 600);
    let nacks: Vec<_> = out
        .iter()
        .filter(|(_, Output::Send { message, .. })| {
            matches!(message, SwimMessage::Nack { seq: 78, .. })
        })
        .collect();
    assert_eq!(nacks.len(), 1);
    assert!(nacks[0].0 >= 500);
}

#[test]
fn a_stall_freezes_deadlines_and_raises_local_health() {
    let mut node = swim_with(1);
    let out = run(&mut node, 0, 1_000);
    let probe = out
        .iter()
        .find_map(|(at, Output::Send { message, .. })| match message {
            SwimMessage::Ping { seq, .. } => Some((*at, *seq)),
            _ => None,
        });
    let (sent_at, seq) = probe.expect("a probe within one interval");
    // Stopped right after sending; the ack waits in the socket buffer.
    let resumed = sent_at + 5_000;
    node.receive(
        &id(1),
        SwimMessage::Ack {
            seq,
            updates: vec![],
        },
        resumed,
    );
    assert_eq!(node.stats().stalls_detected, 1);
    assert_eq!(node.local_health(), 1);
    run_healthy(&mut node, resumed, resumed + 3_000, &id(1));
    assert_eq!(
        node.stats().suspicions_raised,
        0,
        "the late ack still counted"
    );
    assert!(
        node.local_health() < 1.max(LOCAL_HEALTH_MAX),
        "successful probes heal"
    );
}

#[test]
fn each_update_is_sent_exactly_its_budget() {
    let mut node = swim_with(8);
    let out = node.set_ready_for(1, 0);
    let at_once: usize = out
        .iter()
        .map(|Output::Send { message, .. }| {
            updates_in(message)
                .iter()
                .filter(|s| s.info.node == id(0))
                .count()
        })
        .sum();
    assert_eq!(at_once, 3, "one gossip round to the fanout right away");
    let later = run_healthy(&mut node, 10, 30_000, &id(0));
    assert_eq!(at_once + later, node.config().retransmit_budget(9) as usize);
    assert_eq!(node.pending_broadcasts(), 0);
}

#[test]
fn join_contacts_seeds_until_a_sync_arrives_and_seeds_answer_with_everything() {
    let mut newcomer = Swim::new(
        member_info(5, "us-east"),
        Status::Joining,
        SwimConfig::default(),
        3,
        0,
    );
    let seeds: Vec<NodeId> = (0..SEEDS_MAX + 3).map(id).chain([id(5)]).collect();
    let out = newcomer.join(&seeds, 0);
    assert_eq!(out.len(), SEEDS_MAX, "self skipped, at most SEEDS_MAX");
    let retries = run(&mut newcomer, 10, 2_100);
    assert!(
        retries
            .iter()
            .filter(|(_, Output::Send { message, .. })| matches!(message, SwimMessage::Join { .. }))
            .count()
            >= SEEDS_MAX
    );

    let mut seed = swim_with(2);
    let Output::Send { message, .. } = &out[0];
    let reply = seed.receive(&id(5), message.clone(), 10);
    let SwimMessage::Sync {
        members,
        reply: false,
    } = messages_to(&reply, &id(5))[0].clone()
    else {
        panic!("expected a Sync reply")
    };
    assert_eq!(members.len(), 4);
    assert_eq!(
        seed.pending_broadcasts(),
        1,
        "the seed spreads the newcomer"
    );
    newcomer.receive(
        &id(0),
        SwimMessage::Sync {
            members,
            reply: false,
        },
        2_200,
    );
    assert_eq!(newcomer.members().count(), 4);
    let later = run(&mut newcomer, 2_200, 8_000);
    assert!(!later
        .iter()
        .any(|(_, Output::Send { message, .. })| matches!(message, SwimMessage::Join { .. })));
}
