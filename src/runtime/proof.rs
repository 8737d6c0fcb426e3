//! Proofs of final member statuses: who may say a node has left or was removed, and how
//! every member checks it, however many relays a claim went through.
//!
//! Gossip relays updates, so "heard from the node itself" proves nothing about a
//! relayed claim; a signature does. A final status travels with a signed statement of
//! the fields that decide its merge: node, region, status, status version and
//! ready_for (the incarnation is left out on purpose: liveness merges independently of
//! the status, so a merged state keeps its final status while its incarnation moves on,
//! and a statement bound to the incarnation would stop matching; a final status is
//! final, so replaying its statement can only say again what is already true).
//! - **Left** is signed by the node itself with its TLS key, and carries its
//!   certificate: it must chain to the cluster CA and name the node and its region.
//! - **Removed** is signed by the cluster CA's key, which only the operator holds
//!   (`cartwheel cluster remove` reads it from the cluster directory); every member
//!   checks it with the CA certificate it already has. The statement says status
//!   version 0 and ready_for 0, so the operator needs to know only the node and its
//!   region ([`crate::membership::swim::Swim::removed_state`]).
//!
//! A stolen node bundle (certificate and key) can thus announce only its own node's
//! departure, never another's. Verification runs in the shell, before an update
//! reaches the pure state machine (`runtime::gossip`); an update whose proof is missing or
//! wrong is dropped there and counted. This module signs and checks and never touches
//! the network or the member table.

use crate::ids::{NodeId, Region};
use crate::membership::swim::{MemberState, Status, StatusProof};
use crate::transport::tls::check_region;
use crate::transport::NodeTls;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// Domain separation: these bytes start every signed statement, so a statement can
/// never be mistaken for a TLS handshake signature or anything else the keys sign.
const STATEMENT_DOMAIN: &[u8] = b"cartwheel final member status v1\0";

/// Why a final status was not accepted, or could not be signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("a final status ({0:?}) without a proof")]
    Missing(Status),
    #[error("{0:?} is not a final status; it needs no proof")]
    NotFinal(Status),
    #[error("the proof's certificate is not a certificate of this cluster for {node} in {region}: {reason}")]
    Certificate {
        node: NodeId,
        region: Region,
        reason: String,
    },
    #[error("the signature does not match the statement under the expected key")]
    Signature,
    #[error("cannot sign the statement: {0}")]
    Sign(String),
}

/// The bytes signed for a final status of `node` in `region`.
pub fn statement_bytes(
    node: &NodeId,
    region: &Region,
    status: Status,
    status_version: u64,
    ready_for: u64,
) -> Vec<u8> {
    let mut bytes = STATEMENT_DOMAIN.to_vec();
    // Names are DNS labels (at most 63 bytes), so one length byte each is exact.
    for name in [node.as_str(), region.as_str()] {
        bytes.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        bytes.extend_from_slice(name.as_bytes());
    }
    let status_code: u8 = match status {
        Status::Joining => 0,
        Status::Member => 1,
        Status::Leaving => 2,
        Status::Left => 3,
        Status::Removed => 4,
    };
    bytes.push(status_code);
    bytes.extend_from_slice(&status_version.to_be_bytes());
    bytes.extend_from_slice(&ready_for.to_be_bytes());
    bytes
}

fn statement_of(state: &MemberState) -> Vec<u8> {
    statement_bytes(
        &state.info.node,
        &state.info.region,
        state.status,
        state.status_version,
        state.ready_for,
    )
}

/// Signs `message` with a PKCS#8 ECDSA P-256 key (what cartwheel's CA and node keys are).
fn sign(key: &PrivateKeyDer<'_>, message: &[u8]) -> Result<Vec<u8>, ProofError> {
    let PrivateKeyDer::Pkcs8(pkcs8) = key else {
        return Err(ProofError::Sign("the key is not in PKCS#8 form".into()));
    };
    let random = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.secret_pkcs8_der(),
        &random,
    )
    .map_err(|error| ProofError::Sign(error.to_string()))?;
    pair.sign(&random, message)
        .map(|signature| signature.as_ref().to_vec())
        .map_err(|error| ProofError::Sign(error.to_string()))
}

/// This node's proof that it left: `state` is its own state as it will be disseminated.
pub fn sign_left(tls: &NodeTls, state: &MemberState) -> Result<Box<StatusProof>, ProofError> {
    if state.status != Status::Left {
        return Err(ProofError::NotFinal(state.status));
    }
    Ok(Box::new(StatusProof {
        certificate: tls.cert_der.to_vec(),
        signature: sign(&tls.key_der, &statement_of(state))?,
    }))
}

/// An operator's proof that `node` (in `region`) is removed, signed with the cluster
/// CA's private key (PEM, as `cartwheel init` writes it).
pub fn sign_removal(
    ca_key_pem: &str,
    node: &NodeId,
    region: &Region,
) -> Result<Box<StatusProof>, ProofError> {
    use rustls::pki_types::pem::PemObject as _;
    let key = PrivateKeyDer::from_pem_slice(ca_key_pem.as_bytes())
        .map_err(|error| ProofError::Sign(format!("the CA key: {error}")))?;
    let statement = statement_bytes(node, region, Status::Removed, 0, 0);
    Ok(Box::new(StatusProof {
        certificate: Vec::new(),
        signature: sign(&key, &statement)?,
    }))
}

/// Checks final-status proofs against the cluster CA.
#[derive(Clone, Debug)]
pub struct ProofVerifier {
    ca_cert_der: CertificateDer<'static>,
}

impl ProofVerifier {
    pub fn new(ca_cert_der: CertificateDer<'static>) -> ProofVerifier {
        ProofVerifier { ca_cert_der }
    }

    /// Whether `state`'s final status is proved (at the current time: a node
    /// certificate must be valid now). A state whose status is not final needs none.
    pub fn verify(&self, state: &MemberState) -> Result<(), ProofError> {
        self.verify_at(state, UnixTime::now())
    }

    fn verify_at(&self, state: &MemberState, now: UnixTime) -> Result<(), ProofError> {
        let Some(proof) = &state.proof else {
            return match state.status {
                Status::Left | Status::Removed => Err(ProofError::Missing(state.status)),
                _ => Ok(()),
            };
        };
        let statement = statement_of(state);
        match state.status {
            Status::Left => self.verify_left(state, proof, &statement, now),
            Status::Removed => {
                let ca = webpki::EndEntityCert::try_from(&self.ca_cert_der)
                    .map_err(|_| ProofError::Signature)?;
                ca.verify_signature(
                    webpki::ring::ECDSA_P256_SHA256,
                    &statement,
                    &proof.signature,
                )
                .map_err(|_| ProofError::Signature)
            }
            status => Err(ProofError::NotFinal(status)),
        }
    }

    fn verify_left(
        &self,
        state: &MemberState,
        proof: &StatusProof,
        statement: &[u8],
        now: UnixTime,
    ) -> Result<(), ProofError> {
        let (node, region) = (&state.info.node, &state.info.region);
        let bad_certificate = |reason: String| ProofError::Certificate {
            node: node.clone(),
            region: region.clone(),
            reason,
        };
        let certificate = CertificateDer::from(proof.certificate.as_slice());
        let signer = webpki::EndEntityCert::try_from(&certificate)
            .map_err(|error| bad_certificate(error.to_string()))?;
        let anchor = webpki::anchor_from_trusted_cert(&self.ca_cert_der)
            .map_err(|error| bad_certificate(format!("the cluster CA: {error}")))?;
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        signer
            .verify_for_usage(
                algorithms.all,
                &[anchor],
                &[],
                now,
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .map_err(|error| bad_certificate(error.to_string()))?;
        let name = ServerName::try_from(node.as_str())
            .map_err(|error| bad_certificate(error.to_string()))?;
        signer
            .verify_is_valid_for_subject_name(&name)
            .map_err(|error| bad_certificate(error.to_string()))?;
        check_region(&certificate, node, region)
            .map_err(|error| bad_certificate(error.to_string()))?;
        signer
            .verify_signature(webpki::ring::ECDSA_P256_SHA256, statement, &proof.signature)
            .map_err(|_| ProofError::Signature)
    }
}

#[cfg(test)]
mod tests;
