//! Unit tests of one `Swim` driven by hand: config, merge rules, refutation, malformed
//! input, status changes, probe rounds, stalls, dissemination budget, joining, and the
//! order independence of merges (proptest).

use super::sim::member_info;
use super::state::merge_state;
use super::*;
use crate::limits::{MEMBERS_MAX, UPDATES_PER_MESSAGE_MAX};
use proptest::prelude::*;

pub(super) fn id(i: usize) -> NodeId {
    member_info(i, "us-east").node
}

pub(super) fn state(i: usize, incarnation: u64, liveness: Liveness) -> MemberState {
    MemberState {
        info: member_info(i, "us-east"),
        incarnation,
        liveness,
        status: Status::Member,
        status_version: 0,
        ready_for: 0,
        proof: None,
    }
}

pub(super) fn swim(i: usize) -> Swim {
    Swim::new(
        member_info(i, "us-east"),
        Status::Member,
        SwimConfig::default(),
        7,
        0,
    )
}

/// A node that knows members 1..=others as alive.
pub(super) fn swim_with(others: usize) -> Swim {
    let mut node = swim(0);
    let members = (1..=others).map(|i| state(i, 0, Liveness::Alive)).collect();
    node.receive(
        &id(1),
        SwimMessage::Sync {
            members,
            reply: false,
        },
        0,
    );
    node
}

pub(super) fn gossip(updates: Vec<MemberState>) -> SwimMessage {
    SwimMessage::Gossip { updates }
}

pub(super) fn messages_to<'a>(out: &'a [Output], to: &NodeId) -> Vec<&'a SwimMessage> {
    out.iter()
        .filter_map(
            |Output::Send {
                 to: target,
                 message,
             }| (target == to).then_some(message),
        )
        .collect()
}

pub(super) fn updates_in(message: &SwimMessage) -> &[MemberState] {
    match message {
        SwimMessage::Ping { updates, .. }
        | SwimMessage::Ack { updates, .. }
        | SwimMessage::PingReq { updates, .. }
        | SwimMessage::IndirectAck { updates, .. }
        | SwimMessage::Gossip { updates } => updates,
        SwimMessage::Sync { members, .. } => members,
        SwimMessage::Join { member } => std::slice::from_ref(member),
        SwimMessage::Nack { .. } => &[],
    }
}

/// Ticks every 10 ms from `from` to `to` (exclusive), collecting outputs.
pub(super) fn run(node: &mut Swim, from: u64, to: u64) -> Vec<(u64, Output)> {
    let mut all = Vec::new();
    let mut now = from;
    while now < to {
        all.extend(node.tick(now).into_iter().map(|output| (now, output)));
        now += 10;
    }
    all
}

/// Ticks every 10 ms, acknowledging every Ping at once (all members are healthy);
/// returns how many piggybacked updates (Sync excluded) were about `about`.
pub(super) fn run_healthy(node: &mut Swim, from: u64, to: u64, about: &NodeId) -> usize {
    let mut carried = 0;
    let mut now = from;
    while now < to {
        for Output::Send {
            to: target,
            message,
        } in node.tick(now)
        {
            if !matches!(message, SwimMessage::Sync { .. }) {
                carried += updates_in(&message)
                    .iter()
                    .filter(|s| s.info.node == *about)
                    .count();
            }
            if let SwimMessage::Ping { seq, .. } = message {
                node.receive(
                    &target,
                    SwimMessage::Ack {
                        seq,
                        updates: vec![],
                    },
                    now + 2,
                );
            }
        }
        now += 10;
    }
    carried
}

#[test]
fn default_config_is_valid_and_each_bad_field_is_named() {
    assert_eq!(SwimConfig::default().validate(), Ok(()));
    type Change = fn(&mut SwimConfig);
    let cases: [(Change, &str); 11] = [
        (|c| c.probe_interval_ms = 0, "probe_interval_ms"),
        (|c| c.probe_timeout_ms = 1000, "probe_timeout_ms"),
        (
            |c| c.remote_probe_timeout_ms = 200,
            "remote_probe_timeout_ms",
        ),
        (|c| c.indirect_probes = 0, "indirect_probes"),
        (|c| c.suspicion_multiplier = 0, "suspicion_multiplier"),
        (
            |c| c.remote_suspicion_multiplier = 65,
            "remote_suspicion_multiplier",
        ),
        (|c| c.retransmit_multiplier = 0, "retransmit_multiplier"),
        (|c| c.gossip_interval_ms = 0, "gossip_interval_ms"),
        (|c| c.gossip_fanout = 17, "gossip_fanout"),
        (|c| c.sync_interval_ms = 10, "sync_interval_ms"),
        (|c| c.updates_per_message_max = 0, "updates_per_message_max"),
    ];
    for (change, field) in cases {
        let mut config = SwimConfig::default();
        change(&mut config);
        let error = config.validate().expect_err(field);
        assert!(
            error.to_string().starts_with(field),
            "{error} should name {field}"
        );
    }
}

#[test]
fn an_absurd_config_never_panics() {
    let config = SwimConfig {
        probe_interval_ms: u64::MAX,
        probe_timeout_ms: u64::MAX,
        remote_probe_timeout_ms: 0,
        indirect_probes: 0,
        suspicion_multiplier: u32::MAX,
        remote_suspicion_multiplier: 0,
        retransmit_multiplier: u32::MAX,
        gossip_interval_ms: 0,
        gossip_fanout: usize::MAX,
        sync_interval_ms: 0,
        updates_per_message_max: 0,
    };
    assert!(config.validate().is_err());
    let mut node = Swim::new(
        member_info(0, "us-east"),
        Status::Member,
        config,
        1,
        u64::MAX - 10,
    );
    let members = (1..4).map(|i| state(i, 0, Liveness::Alive)).collect();
    node.receive(
        &id(1),
        SwimMessage::Sync {
            members,
            reply: true,
        },
        u64::MAX - 5,
    );
    node.receive(
        &id(2),
        gossip(vec![state(3, 0, Liveness::Suspect)]),
        u64::MAX - 4,
    );
    node.set_ready_for(3, u64::MAX - 3);
    node.tick(u64::MAX);
    assert_eq!(node.me().ready_for, 3);
}

#[test]
fn documented_formulas_at_defaults() {
    let config = SwimConfig::default();
    assert_eq!(config.suspicion_timeout_max_ms(9, false), 2000);
    assert_eq!(config.suspicion_timeout_min_ms(9, false), 500);
    assert_eq!(config.suspicion_timeout_max_ms(9, true), 3000);
    assert_eq!(config.suspicion_timeout_min_ms(9, true), 750);
    assert_eq!(config.suspicion_timeout_ms(9, false, 0), 2000);
    assert_eq!(config.suspicion_timeout_ms(9, false, 1), 1250);
    assert_eq!(config.suspicion_timeout_ms(9, false, 3), 500);
    assert_eq!(config.suspicion_timeout_ms(9, false, 8), 500);
    assert_eq!(config.suspicion_timeout_max_ms(1000, false), 6000);
    assert_eq!(config.retransmit_budget(9), 4);
    assert_eq!(config.retransmit_budget(1000), 13);
}

#[test]
fn liveness_precedence_follows_incarnations() {
    use Liveness::{Alive, Dead, Suspect};
    // (known, incoming, result)
    let cases = [
        ((1, Alive), (1, Suspect), (1, Suspect)),
        ((1, Suspect), (1, Alive), (1, Suspect)),
        ((1, Suspect), (2, Alive), (2, Alive)),
        ((2, Alive), (1, Suspect), (2, Alive)),
        ((1, Alive), (1, Dead), (1, Dead)),
        ((1, Suspect), (1, Dead), (1, Dead)),
        ((3, Dead), (3, Alive), (3, Dead)),
        ((3, Dead), (3, Suspect), (3, Dead)),
        ((3, Dead), (4, Alive), (4, Alive)),
        ((1, Alive), (2, Alive), (2, Alive)),
    ];
    for ((i, a), (j, b), (k, c)) in cases {
        let mut known = state(1, i, a);
        merge_state(&mut known, &state(1, j, b));
        assert_eq!(
            (known.incarnation, known.liveness),
            (k, c),
            "{a:?}({i}) + {b:?}({j})"
        );
    }
}

#[test]
fn terminal_statuses_are_never_undone() {
    let mut known = state(1, 0, Liveness::Alive);
    known.status = Status::Left;
    known.status_version = 2;
    let mut newer = state(1, 0, Liveness::Alive);
    newer.status = Status::Member;
    newer.status_version = 5;
    merge_state(&mut known, &newer);
    assert_eq!(known.status, Status::Left);
    let mut removed = state(1, 0, Liveness::Alive);
    removed.status = Status::Removed;
    removed.status_version = 3;
    merge_state(&mut known, &removed);
    assert_eq!(known.status, Status::Removed);
}

#[test]
fn stale_updates_are_counted_and_equal_ones_are_not() {
    let mut node = swim_with(2);
    node.receive(&id(2), gossip(vec![state(1, 5, Liveness::Alive)]), 10);
    let version = node.version();
    node.receive(&id(2), gossip(vec![state(1, 3, Liveness::Suspect)]), 20);
    assert_eq!(node.stats().stale_updates_ignored, 1);
    node.receive(&id(2), gossip(vec![state(1, 5, Liveness::Alive)]), 30);
    assert_eq!(node.stats().stale_updates_ignored, 1, "equal is a no-op");
    assert_eq!(
        node.member(&id(1)).map(|s| (s.incarnation, s.liveness)),
        Some((5, Liveness::Alive))
    );
    assert_eq!(
        node.version(),
        version,
        "incarnation-only news does not move the ring version"
    );
}

#[test]
fn a_suspicion_about_me_is_refuted_with_a_higher_incarnation() {
    let mut node = swim_with(2);
    let out = node.receive(
        &id(1),
        SwimMessage::Ping {
            seq: 9,
            updates: vec![state(0, 0, Liveness::Suspect)],
        },
        10,
    );
    assert_eq!(node.me().incarnation, 1);
    assert_eq!(node.me().liveness, Liveness::Alive);
    assert_eq!(node.stats().refutations, 1);
    assert_eq!(
        node.local_health(),
        1,
        "refuting is a sign of our own trouble"
    );
    let ack = messages_to(&out, &id(1));
    assert!(matches!(ack[0], SwimMessage::Ack { seq: 9, .. }));
    assert!(
        updates_in(ack[0])
            .iter()
            .any(|s| s.info.node == id(0) && s.incarnation == 1),
        "the ack carries the refutation"
    );
    node.receive(&id(2), gossip(vec![state(0, 4, Liveness::Dead)]), 20);
    assert_eq!(node.me().incarnation, 5);
    assert_eq!(node.stats().refutations, 2);
}

#[test]
fn a_forged_alive_incarnation_about_me_is_ignored_and_outbid() {
    let mut node = swim_with(2);
    node.receive(&id(1), gossip(vec![state(0, 7, Liveness::Alive)]), 10);
    assert_eq!(node.stats().forged_updates_ignored, 1);
    assert_eq!(node.me().incarnation, 8);
    assert_eq!(node.stats().refutations, 0);
}

#[test]
fn a_stale_suspicion_about_me_resends_my_refutation() {
    let mut node = swim_with(2);
    node.receive(&id(1), gossip(vec![state(0, 0, Liveness::Suspect)]), 10);
    assert!(
        run_healthy(&mut node, 20, 10_000, &id(0)) > 0,
        "the refutation went out"
    );
    assert_eq!(node.pending_broadcasts(), 0, "the budget ran out");
    let out = node.receive(
        &id(2),
        SwimMessage::Ping {
            seq: 1,
            updates: vec![state(0, 0, Liveness::Suspect)],
        },
        10_000,
    );
    assert_eq!(
        node.me().incarnation,
        1,
        "no new incarnation for an old claim"
    );
    let ack = messages_to(&out, &id(2));
    assert!(updates_in(ack[0])
        .iter()
        .any(|s| s.info.node == id(0) && s.incarnation == 1));
}

#[test]
fn malformed_messages_are_ignored_and_counted() {
    let mut node = swim_with(2);
    let too_many = (0..=UPDATES_PER_MESSAGE_MAX)
        .map(|_| state(1, 0, Liveness::Dead))
        .collect();
    let mut bad_name = state(3, 0, Liveness::Alive);
    bad_name.info.node = NodeId("Bad Name".into());
    let mut huge_proof = state(1, 0, Liveness::Alive);
    huge_proof.status = Status::Removed;
    huge_proof.proof = Some(Box::new(super::StatusProof {
        certificate: vec![0; crate::limits::PROOF_CERTIFICATE_BYTES_MAX + 1],
        signature: vec![0; 8],
    }));
    let huge_sync = (0..=MEMBERS_MAX)
        .map(|i| state(i + 10, 0, Liveness::Alive))
        .collect();
    let cases = vec![
        (id(1), gossip(too_many)),
        (
            id(1),
            SwimMessage::Sync {
                members: huge_sync,
                reply: true,
            },
        ),
        (id(1), gossip(vec![bad_name])),
        (id(1), gossip(vec![huge_proof])),
        (
            id(1),
            SwimMessage::Join {
                member: state(2, 0, Liveness::Alive),
            },
        ),
        (id(0), gossip(vec![])),
        (
            id(1),
            SwimMessage::PingReq {
                seq: 1,
                target: id(0),
                updates: vec![],
            },
        ),
    ];
    let count = cases.len() as u64;
    let version = node.version();
    for (from, message) in cases {
        assert!(node.receive(&from, message, 10).is_empty());
    }
    assert_eq!(node.stats().malformed_ignored, count);
    assert_eq!(node.version(), version);
    assert!(!node.is_dead(&id(1)));
}

#[test]
fn members_beyond_the_limit_and_unknown_regions_are_ignored_and_counted() {
    let mut node = swim(0);
    let members: Vec<MemberState> = (1..MEMBERS_MAX + 5)
        .map(|i| state(i, 0, Liveness::Alive))
        .collect();
    let (first, rest) = members.split_at(MEMBERS_MAX - 1);
    node.receive(
        &id(1),
        SwimMessage::Sync {
            members: first.to_vec(),
            reply: false,
        },
        0,
    );
    node.receive(
        &id(1),
        SwimMessage::Sync {
            members: rest.to_vec(),
            reply: false,
        },
        0,
    );
    assert_eq!(node.members().count(), MEMBERS_MAX);
    assert_eq!(node.stats().members_over_limit, 5);

    let mut node = swim(0);
    node.set_allowed_regions(Some([Region("us-east".into())].into_iter().collect()));
    let mut elsewhere = state(2, 0, Liveness::Alive);
    elsewhere.info.region = Region("mars-1".into());
    node.receive(
        &id(1),
        gossip(vec![state(1, 0, Liveness::Alive), elsewhere]),
        0,
    );
    assert!(node.member(&id(1)).is_some());
    assert!(node.member(&id(2)).is_none());
    assert_eq!(node.stats().unknown_region_ignored, 1);
}

#[test]
fn status_transitions_follow_the_allowed_path_and_disseminate() {
    let mut node = Swim::new(
        member_info(0, "us-east"),
        Status::Joining,
        SwimConfig::default(),
        1,
        0,
    );
    node.receive(
        &id(1),
        SwimMessage::Sync {
            members: vec![state(1, 0, Liveness::Alive)],
            reply: false,
        },
        0,
    );
    assert_eq!(
        node.set_status(Status::Leaving, 10),
        Err(StatusError::Transition {
            from: Status::Joining,
            to: Status::Leaving
        })
    );
    let version = node.version();
    let out = node
        .set_status(Status::Member, 10)
        .expect("joining -> member");
    assert_eq!(node.me().status_version, 1);
    assert!(node.version() > version);
    let sent = messages_to(&out, &id(1));
    assert!(updates_in(sent[0])
        .iter()
        .any(|s| s.info.node == id(0) && s.status == Status::Member));
    node.set_status(Status::Leaving, 20)
        .expect("member -> leaving");
    node.set_status(Status::Left, 30).expect("leaving -> left");
    assert_eq!(node.me().status_version, 3);
    assert!(node.set_status(Status::Member, 40).is_err());
}

#[test]
fn ready_for_is_disseminated_like_a_status() {
    let mut node = swim_with(1);
    let version = node.version();
    let out = node.set_ready_for(4, 10);
    assert_eq!((node.me().ready_for, node.me().status_version), (4, 1));
    assert!(node.version() > version);
    assert!(updates_in(messages_to(&out, &id(1))[0])
        .iter()
        .any(|s| s.ready_for == 4));
    assert!(node.set_ready_for(4, 20).is_empty(), "unchanged is a no-op");
    let mut peer = swim(1);
    peer.receive(
        &id(0),
        gossip(updates_in(messages_to(&out, &id(1))[0]).to_vec()),
        10,
    );
    assert_eq!(peer.member(&id(0)).map(|s| s.ready_for), Some(4));
}

#[test]
fn remove_marks_another_member_removed_and_refuses_self_or_unknown() {
    let mut node = swim_with(2);
    assert_eq!(node.remove(&id(0), 10), Err(StatusError::RemoveSelf));
    assert_eq!(
        node.remove(&id(9), 10),
        Err(StatusError::UnknownMember(id(9)))
    );
    let version = node.version();
    let out = node.remove(&id(1), 10).expect("removal");
    let removed = node.member(&id(1)).expect("still listed");
    assert_eq!(
        (removed.status, removed.status_version),
        (Status::Removed, 1)
    );
    assert!(node.version() > version);
    assert!(out
        .iter()
        .any(|Output::Send { message, .. }| updates_in(message)
            .iter()
            .any(|s| s.status == Status::Removed)));
    assert_eq!(node.remove(&id(1), 20), Ok(Vec::new()));
    // The removed member learns it and accepts the terminal status.
    let mut target = swim(1);
    let notice = node.member(&id(1)).cloned().expect("listed");
    target.receive(&id(0), gossip(vec![notice]), 30);
    assert_eq!(target.me().status, Status::Removed);
}

#[test]
fn a_status_about_me_that_i_never_set_is_outbid() {
    let mut node = swim_with(1);
    let mut claim = state(0, 0, Liveness::Alive);
    claim.status = Status::Leaving;
    claim.status_version = 4;
    node.receive(&id(1), gossip(vec![claim]), 10);
    assert_eq!(
        (node.me().status, node.me().status_version),
        (Status::Member, 5)
    );
    assert_eq!(node.stats().forged_updates_ignored, 1);
}

#[test]
fn a_dead_member_returns_only_with_a_higher_incarnation() {
    let mut node = swim_with(2);
    node.receive(&id(2), gossip(vec![state(1, 3, Liveness::Dead)]), 10);
    assert!(node.is_dead(&id(1)));
    node.receive(&id(2), gossip(vec![state(1, 3, Liveness::Alive)]), 20);
    assert!(node.is_dead(&id(1)));
    let version = node.version();
    node.receive(&id(2), gossip(vec![state(1, 4, Liveness::Alive)]), 30);
    assert_eq!(
        node.member(&id(1)).map(|s| s.liveness),
        Some(Liveness::Alive)
    );
    assert!(node.version() > version);
}

fn arbitrary_update() -> impl Strategy<Value = MemberState> {
    let liveness = prop_oneof![
        Just(Liveness::Alive),
        Just(Liveness::Suspect),
        Just(Liveness::Dead)
    ];
    let status = prop_oneof![
        Just(Status::Joining),
        Just(Status::Member),
        Just(Status::Leaving),
        Just(Status::Left),
        Just(Status::Removed)
    ];
    (
        1..4usize,
        0..4u64,
        liveness,
        status,
        0..4u64,
        0..3u64,
        1..3u32,
    )
        .prop_map(
            |(node, incarnation, liveness, status, status_version, ready_for, weight)| {
                let mut update = state(node, incarnation, liveness);
                update.status = status;
                update.status_version = status_version;
                update.ready_for = ready_for;
                update.info.weight = weight;
                update
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merging_the_same_updates_in_any_order_gives_the_same_table(
        (updates, shuffled) in proptest::collection::vec(arbitrary_update(), 1..24)
            .prop_flat_map(|updates| (Just(updates.clone()), Just(updates).prop_shuffle()))
    ) {
        let table = |updates: &[MemberState]| {
            let mut node = swim(0);
            for (i, update) in updates.iter().enumerate() {
                node.receive(&id(4 + i % 3), gossip(vec![update.clone()]), i as u64);
            }
            node.members().cloned().collect::<Vec<_>>()
        };
        prop_assert_eq!(table(&updates), table(&shuffled));
    }
}

mod cluster;
mod hostile;
mod probe;
