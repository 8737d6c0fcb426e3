//! Claims a peer with a valid certificate may still forge: counters near the maximum,
//! members moved to another region, proofs dropped or kept by the merge.

use super::super::*;
use super::{gossip, id, state, swim, swim_with};
use crate::limits::COUNTER_MARGIN;

fn proof(tag: u8) -> Box<StatusProof> {
    Box::new(StatusProof {
        certificate: vec![tag; 4],
        signature: vec![tag; 8],
    })
}

#[test]
fn an_incarnation_near_the_maximum_about_us_is_refused_not_refuted() {
    let mut node = swim_with(2);
    let before = node.me().clone();
    let version = node.version();
    for incarnation in [u64::MAX, u64::MAX - 1, u64::MAX - COUNTER_MARGIN + 1] {
        for liveness in [Liveness::Alive, Liveness::Suspect, Liveness::Dead] {
            let out = node.receive(&id(1), gossip(vec![state(0, incarnation, liveness)]), 10);
            assert!(
                out.iter().all(|Output::Send { message, .. }| !matches!(
                    message,
                    SwimMessage::Gossip { updates } if updates.iter().any(|s| s.info.node == id(0))
                )),
                "no refutation for {incarnation} {liveness:?}"
            );
        }
    }
    assert_eq!(*node.me(), before, "our incarnation did not move");
    assert_eq!(node.version(), version);
    assert_eq!(node.stats().counters_near_maximum_ignored, 9);
    assert_eq!(node.stats().refutations, 0);
    // A suspicion at the limit is refused too: its refutation would be over it.
    let limit = u64::MAX - COUNTER_MARGIN;
    node.receive(&id(1), gossip(vec![state(0, limit, Liveness::Suspect)]), 20);
    assert_eq!(node.me().incarnation, 0);
    assert_eq!(node.stats().counters_near_maximum_ignored, 10);
    // One below, it is refuted one above, at the limit, and the others accept that.
    node.receive(
        &id(1),
        gossip(vec![state(0, limit - 1, Liveness::Suspect)]),
        30,
    );
    assert_eq!(node.me().incarnation, limit);
    assert_eq!(node.stats().refutations, 1);
    let mut peer = swim(1);
    peer.receive(
        &id(2),
        gossip(vec![state(0, limit - 1, Liveness::Suspect)]),
        30,
    );
    peer.receive(&id(0), gossip(vec![node.me().clone()]), 40);
    let seen = peer.member(&id(0)).unwrap();
    assert_eq!((seen.incarnation, seen.liveness), (limit, Liveness::Alive));
}

#[test]
fn a_forged_alive_at_the_limit_is_not_answered_over_it() {
    let mut node = swim_with(2);
    let limit = u64::MAX - COUNTER_MARGIN;
    node.receive(&id(1), gossip(vec![state(0, limit, Liveness::Alive)]), 10);
    assert_eq!(node.me().incarnation, 0, "no refutation past the limit");
    node.receive(
        &id(1),
        gossip(vec![state(0, limit - 1, Liveness::Alive)]),
        20,
    );
    assert_eq!(node.me().incarnation, limit, "below it, answered as before");
}

#[test]
fn counters_near_the_maximum_about_others_and_in_joins_change_nothing() {
    let mut node = swim_with(2);
    let version = node.version();
    let at_max = state(1, u64::MAX - 1, Liveness::Dead);
    let mut status_at_max = state(2, 0, Liveness::Alive);
    status_at_max.status = Status::Leaving;
    status_at_max.status_version = u64::MAX - 1;
    node.receive(&id(2), gossip(vec![at_max, status_at_max]), 10);
    node.receive(
        &id(5),
        SwimMessage::Join {
            member: state(5, u64::MAX - 1, Liveness::Alive),
        },
        10,
    );
    assert_eq!(node.version(), version);
    assert_eq!(node.stats().counters_near_maximum_ignored, 3);
    assert_eq!(
        node.member(&id(1)).map(|s| s.liveness),
        Some(Liveness::Alive)
    );
    assert_eq!(node.member(&id(2)).map(|s| s.status), Some(Status::Member));
    assert!(node.member(&id(5)).is_none(), "the join was refused");
}

#[test]
fn a_member_never_moves_to_another_region() {
    let mut node = swim_with(2);
    let mut moved = state(1, 5, Liveness::Alive);
    moved.info.region = Region("zz-forged".into());
    node.receive(&id(2), gossip(vec![moved]), 10);
    let known = node.member(&id(1)).unwrap();
    assert_eq!(
        (known.info.region.as_str(), known.incarnation),
        ("us-east", 0)
    );
    assert_eq!(node.stats().region_changes_ignored, 1);
    // About ourselves too.
    let mut me = state(0, 3, Liveness::Alive);
    me.info.region = Region("zz-forged".into());
    node.receive(&id(2), gossip(vec![me]), 10);
    assert_eq!(node.me().incarnation, 0);
    assert_eq!(node.stats().region_changes_ignored, 2);
}

#[test]
fn a_pinned_region_refuses_a_first_claim_elsewhere() {
    let mut node = swim(0);
    node.pin_regions([(id(3), Region("us-east".into()))].into());
    let mut elsewhere = state(3, 0, Liveness::Alive);
    elsewhere.info.region = Region("eu-west".into());
    node.receive(&id(1), gossip(vec![elsewhere]), 10);
    assert!(node.member(&id(3)).is_none());
    assert_eq!(node.stats().region_changes_ignored, 1);
    node.receive(&id(1), gossip(vec![state(3, 0, Liveness::Alive)]), 10);
    assert!(node.member(&id(3)).is_some(), "its own region is accepted");
}

#[test]
fn a_final_status_keeps_its_proof_and_a_live_one_carries_none() {
    let mut node = swim_with(2);
    let mut removed = state(1, 0, Liveness::Alive);
    removed.status = Status::Removed;
    removed.proof = Some(proof(1));
    node.receive(&id(2), gossip(vec![removed.clone()]), 10);
    assert_eq!(node.member(&id(1)).unwrap().proof, Some(proof(1)));
    // A proof on a non-final status is dropped by the merge.
    let mut leaving = state(2, 0, Liveness::Alive);
    leaving.status = Status::Leaving;
    leaving.status_version = 1;
    leaving.proof = Some(proof(2));
    node.receive(&id(2), gossip(vec![leaving]), 10);
    let known = node.member(&id(2)).unwrap();
    assert_eq!((known.status, known.proof.clone()), (Status::Leaving, None));
    // About ourselves: a final status is taken with its proof.
    let mut me_removed = state(0, 0, Liveness::Alive);
    me_removed.status = Status::Removed;
    me_removed.proof = Some(proof(3));
    node.receive(&id(2), gossip(vec![me_removed]), 10);
    assert_eq!(node.me().status, Status::Removed);
    assert_eq!(node.me().proof, Some(proof(3)));
}

#[test]
fn leaving_attaches_the_proof_made_for_the_disseminated_state() {
    let mut node = swim_with(2);
    node.set_status(Status::Leaving, 10).unwrap();
    let mut signed = None;
    let out = node
        .set_status_proved(Status::Left, 20, |next| {
            signed = Some(next.clone());
            Some(proof(9))
        })
        .unwrap();
    let signed = signed.expect("the prover was asked");
    assert_eq!((signed.status, signed.status_version), (Status::Left, 2));
    let mut expected = signed.clone();
    expected.proof = Some(proof(9));
    assert_eq!(*node.me(), expected, "the proved state is the one kept");
    assert!(out.iter().any(|Output::Send { message, .. }| matches!(
        message,
        SwimMessage::Gossip { updates } if updates.contains(&expected)
    )));
}

#[test]
fn a_proved_removal_signs_version_zero_and_leaves_final_members_alone() {
    let mut node = swim_with(2);
    node.remove_proved(&id(1), proof(4), 10).unwrap();
    let removed = node.member(&id(1)).unwrap().clone();
    assert_eq!(
        (removed.status, removed.status_version, removed.ready_for),
        (Status::Removed, 0, 0)
    );
    assert_eq!(
        removed,
        Swim::removed_state(&state(1, 0, Liveness::Alive), proof(4))
    );
    // Already final: nothing changes, not even the proof.
    assert!(node.remove_proved(&id(1), proof(5), 20).unwrap().is_empty());
    assert_eq!(node.member(&id(1)).unwrap().proof, Some(proof(4)));
    assert_eq!(
        node.remove_proved(&id(0), proof(4), 20),
        Err(StatusError::RemoveSelf)
    );
}
