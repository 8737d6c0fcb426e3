//! Forged, tampered and foreign proofs are refused; genuine ones are accepted.

use super::*;
use crate::membership::swim::{Liveness, MemberInfo};
use crate::transport::{create_cluster_ca, issue_node_certificate};
use std::path::Path;

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn region(name: &str) -> Region {
    Region::new(name).unwrap()
}

fn state(name: &str, region_name: &str, status: Status) -> MemberState {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    MemberState {
        info: MemberInfo {
            node: node(name),
            region: region(region_name),
            quic: address,
            http: address,
            weight: 1,
        },
        incarnation: 3,
        liveness: Liveness::Alive,
        status,
        status_version: 7,
        ready_for: 2,
        proof: None,
    }
}

fn cluster() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    create_cluster_ca(dir.path()).unwrap();
    dir
}

fn ca_key(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(crate::transport::tls::CA_KEY_FILE)).unwrap()
}

fn verifier(dir: &Path) -> ProofVerifier {
    let tls = issue_node_certificate(dir, &node("checker"), &region("us-east")).unwrap();
    ProofVerifier::new(tls.ca_cert_der)
}

fn left_signed_by(dir: &Path, signer: &str, signer_region: &str) -> MemberState {
    let tls = issue_node_certificate(dir, &node(signer), &region(signer_region)).unwrap();
    let mut left = state("alpha", "us-east", Status::Left);
    left.proof = Some(sign_left(&tls, &left).unwrap());
    left
}

#[test]
fn a_left_signed_by_the_node_itself_is_accepted() {
    let dir = cluster();
    let left = left_signed_by(dir.path(), "alpha", "us-east");
    verifier(dir.path()).verify(&left).unwrap();
    // Liveness and incarnation are not part of the statement: they merge apart.
    let mut later = left.clone();
    later.incarnation = 9;
    later.liveness = Liveness::Dead;
    verifier(dir.path()).verify(&later).unwrap();
}

#[test]
fn a_left_signed_by_another_node_is_refused() {
    let dir = cluster();
    let forged = left_signed_by(dir.path(), "mallory", "us-east");
    let error = verifier(dir.path()).verify(&forged).unwrap_err();
    assert!(matches!(error, ProofError::Certificate { .. }), "{error}");
    // Another node's key under alpha's certificate: the signature fails.
    let alpha = issue_node_certificate(dir.path(), &node("alpha"), &region("us-east")).unwrap();
    let mallory = issue_node_certificate(dir.path(), &node("mallory"), &region("us-east")).unwrap();
    let mut mixed = forged.clone();
    let mut proof = sign_left(&mallory, &mixed).unwrap();
    proof.certificate = alpha.cert_der.to_vec();
    mixed.proof = Some(proof);
    assert_eq!(
        verifier(dir.path()).verify(&mixed),
        Err(ProofError::Signature)
    );
}

#[test]
fn a_left_whose_certificate_names_another_region_is_refused() {
    let dir = cluster();
    let moved = left_signed_by(dir.path(), "alpha", "eu-west");
    let error = verifier(dir.path()).verify(&moved).unwrap_err();
    assert!(matches!(error, ProofError::Certificate { .. }), "{error}");
}

#[test]
fn a_tampered_statement_is_refused() {
    let dir = cluster();
    let left = left_signed_by(dir.path(), "alpha", "us-east");
    let check = verifier(dir.path());
    let mut higher = left.clone();
    higher.status_version += 1;
    let mut ready = left.clone();
    ready.ready_for += 1;
    let mut removed = left.clone();
    removed.status = Status::Removed;
    let mut flipped = left.clone();
    if let Some(proof) = flipped.proof.as_mut() {
        let last = proof.signature.len() - 1;
        proof.signature[last] ^= 1;
    }
    for tampered in [higher, ready, removed, flipped] {
        assert_eq!(check.verify(&tampered), Err(ProofError::Signature));
    }
}

#[test]
fn a_removal_signed_by_the_cluster_ca_is_accepted_and_by_nobody_else_refused() {
    let dir = cluster();
    let other = cluster();
    let check = verifier(dir.path());
    let member = state("alpha", "us-east", Status::Member);
    let proof = sign_removal(&ca_key(dir.path()), &node("alpha"), &region("us-east")).unwrap();
    let removed = crate::membership::swim::Swim::removed_state(&member, proof);
    check.verify(&removed).unwrap();

    let foreign = sign_removal(&ca_key(other.path()), &node("alpha"), &region("us-east")).unwrap();
    let foreign = crate::membership::swim::Swim::removed_state(&member, foreign);
    assert_eq!(check.verify(&foreign), Err(ProofError::Signature));

    // A node's key is not the CA's, even with the node's certificate attached.
    let mallory = issue_node_certificate(dir.path(), &node("mallory"), &region("us-east")).unwrap();
    let statement = statement_bytes(&node("alpha"), &region("us-east"), Status::Removed, 0, 0);
    let by_node = Box::new(StatusProof {
        certificate: mallory.cert_der.to_vec(),
        signature: sign(&mallory.key_der, &statement).unwrap(),
    });
    let by_node = crate::membership::swim::Swim::removed_state(&member, by_node);
    assert_eq!(check.verify(&by_node), Err(ProofError::Signature));

    // Signed for another region, or another node: refused.
    let elsewhere = sign_removal(&ca_key(dir.path()), &node("alpha"), &region("eu-west")).unwrap();
    let elsewhere = crate::membership::swim::Swim::removed_state(&member, elsewhere);
    assert_eq!(check.verify(&elsewhere), Err(ProofError::Signature));
}

#[test]
fn a_left_from_another_clusters_node_is_refused() {
    let dir = cluster();
    let other = cluster();
    let foreign = left_signed_by(other.path(), "alpha", "us-east");
    let error = verifier(dir.path()).verify(&foreign).unwrap_err();
    assert!(matches!(error, ProofError::Certificate { .. }), "{error}");
}

#[test]
fn a_final_status_without_proof_is_refused_and_others_need_none() {
    let dir = cluster();
    let check = verifier(dir.path());
    for status in [Status::Left, Status::Removed] {
        assert_eq!(
            check.verify(&state("alpha", "us-east", status)),
            Err(ProofError::Missing(status))
        );
    }
    for status in [Status::Joining, Status::Member, Status::Leaving] {
        check.verify(&state("alpha", "us-east", status)).unwrap();
    }
    let mut garbage = state("alpha", "us-east", Status::Left);
    garbage.proof = Some(Box::new(StatusProof {
        certificate: vec![0x30, 0x03, 0x01, 0x02, 0x03],
        signature: vec![1, 2, 3],
    }));
    assert!(matches!(
        check.verify(&garbage),
        Err(ProofError::Certificate { .. })
    ));
}

/// Prints what one check costs (run with `--ignored --nocapture`; debug builds are
/// several times slower than release).
#[test]
#[ignore]
fn check_cost() {
    let dir = cluster();
    let check = verifier(dir.path());
    let left = left_signed_by(dir.path(), "alpha", "us-east");
    let member = state("alpha", "us-east", Status::Member);
    let proof = sign_removal(&ca_key(dir.path()), &node("alpha"), &region("us-east")).unwrap();
    let removed = crate::membership::swim::Swim::removed_state(&member, proof);
    for (name, state) in [("left", &left), ("removed", &removed)] {
        let rounds = 200;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            check.verify(state).unwrap();
        }
        println!("{name}: {:?} per check", started.elapsed() / rounds);
    }
}
