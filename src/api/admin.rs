//! `/v1/admin/*`: operator actions that change the cluster (leave, remove) and, on a
//! node started with `--chaos`, fault injection. Every call needs the cluster's admin
//! secret as `Authorization: Bearer <secret>`.

use super::ApiError;
use super::ErrorCode;
use crate::ids::NodeId;
use crate::membership::ownership::{Owner, RingView};
use crate::membership::swim::{MemberState, Status, StatusProof, Swim};
use crate::ring::RingConfig;
use crate::runtime::clock::NodeClock;
use crate::runtime::gossip::Gossip;
use crate::runtime::state::now_ms;
use crate::runtime::state::ClusterState;
use crate::transport::FaultPlan;
use crate::transport::Transport;
use crate::wire::{PeerRequest, PeerResponse};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// What the admin routes use.
pub struct AdminState {
    /// What admin requests' bearer token is checked against; `None` disables the
    /// admin endpoints.
    pub key: Option<AdminKey>,
    /// Serve the fault-injection endpoints.
    pub chaos: bool,
    pub me: NodeId,
    /// The ring's shape, to refuse a change that would leave a region short.
    pub ring: RingConfig,
    pub cluster: Arc<ClusterState>,
    pub gossip: Arc<Gossip>,
    /// Where injected faults take effect.
    pub transport: Transport<PeerRequest, PeerResponse>,
    /// The node's data clock (chaos runs may move it).
    pub clock: Arc<NodeClock>,
}

/// What a node checks the operator's bearer token against: a keyed hash of the admin
/// secret, not the secret. A node bundle carries only this, so a stolen bundle cannot
/// make admin requests to other nodes. `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminKey(blake3::Hash);

impl AdminKey {
    const CONTEXT: &'static str = "cartwheel 2026 admin secret v1";

    /// The key of the admin secret `secret` (its text, as the operator sends it).
    pub fn from_secret(secret: &str) -> AdminKey {
        AdminKey(blake3::Hash::from(blake3::derive_key(
            Self::CONTEXT,
            secret.as_bytes(),
        )))
    }

    /// A key stored as hex (`admin.hash`), `None` if it is not 64 hex digits.
    pub fn from_hex(text: &str) -> Option<AdminKey> {
        blake3::Hash::from_hex(text).ok().map(AdminKey)
    }

    /// The key as hex, for `admin.hash`.
    pub fn to_hex(&self) -> String {
        self.0.to_hex().to_string()
    }

    /// Whether `given` is the admin secret; the comparison takes the same time
    /// wherever the hashes differ (`blake3::Hash` compares in constant time).
    pub fn verify(&self, given: &str) -> bool {
        AdminKey::from_secret(given).0 == self.0
    }
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AdminKey(..)")
    }
}

pub(super) fn authorize(key: Option<&AdminKey>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = key else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AdminDisabled,
            "this node has no admin secret; admin endpoints are off",
        ));
    };
    let given = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if !key.verify(given) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::BadAdminSecret,
            "missing or wrong admin secret",
        ));
    }
    Ok(())
}

/// Refuses taking `node` out of the ring when that would leave a region with fewer
/// nodes than its replicas (other nodes already leaving count as gone).
fn check_change(state: &AdminState, node: &NodeId) -> Result<(), ApiError> {
    let mut owners: Vec<Owner> = state.cluster.owners();
    owners.retain(|owner| owner.node != *node && owner.status != Status::Leaving);
    RingView::check(&owners, &state.ring).map_err(|error| {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Refused,
            format!("refused: without {node} the ring cannot place every replica: {error}"),
        )
    })
}

/// `POST /v1/admin/leave`: this node hands its partitions to their new owners, then
/// exits.
pub(super) async fn leave(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(state.key.as_ref(), &headers)?;
    check_change(&state, &state.me)?;
    let outputs = state
        .cluster
        .with_swim(|swim| swim.set_status(Status::Leaving, now_ms()))
        .map_err(|error| {
            ApiError::new(StatusCode::CONFLICT, ErrorCode::Refused, error.to_string())
        })?;
    state.gossip.send_all(outputs);
    Ok(Json(
        json!({ "node": state.me.to_string(), "status": "leaving" }),
    ))
}

/// The body of a removal: the signature of the removal statement (`runtime::proof`) made
/// with the cluster CA's private key, base64.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RemovalBody {
    signature: String,
}

fn unproven(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::RemovalUnproven,
        format!("a removal must be signed with the cluster CA key (`cartwheel cluster remove` does it): {reason}"),
    )
}

/// The removal proof in `body`, checked against the cluster CA for `current`.
fn removal_proof(
    state: &AdminState,
    current: &MemberState,
    body: &[u8],
) -> Result<Box<StatusProof>, ApiError> {
    use base64::Engine as _;
    let body: RemovalBody = serde_json::from_slice(body).map_err(unproven)?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(body.signature.as_bytes())
        .map_err(unproven)?;
    let proof = Box::new(StatusProof {
        certificate: Vec::new(),
        signature,
    });
    let removed = Swim::removed_state(current, proof.clone());
    state.gossip.proofs().verify(&removed).map_err(unproven)?;
    Ok(proof)
}

/// `POST /v1/admin/remove/{node}`: the node is gone for good; its partitions' new
/// owners rebuild them from the other replicas. The body carries the operator's
/// signature (cluster CA key) of the removal, which every member checks again.
pub(super) async fn remove(
    State(state): State<Arc<AdminState>>,
    Path(node): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(state.key.as_ref(), &headers)?;
    let node = NodeId::new(&node)
        .map_err(|error| ApiError::bad_request(ErrorCode::BadRequest, error.to_string()))?;
    let Some(current) = state.cluster.member(&node) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownNode,
            format!("{node} is not a member"),
        ));
    };
    let proof = removal_proof(&state, &current, &body)?;
    check_change(&state, &node)?;
    let outputs = state
        .cluster
        .with_swim(|swim| swim.remove_proved(&node, proof, now_ms()))
        .map_err(|error| {
            ApiError::new(StatusCode::CONFLICT, ErrorCode::Refused, error.to_string())
        })?;
    state.gossip.send_all(outputs);
    Ok(Json(
        json!({ "node": node.to_string(), "status": "removed" }),
    ))
}

/// Fault injection exists only on a node started with `--chaos`, and needs the secret.
fn authorize_chaos(state: &AdminState, headers: &HeaderMap) -> Result<(), ApiError> {
    authorize(state.key.as_ref(), headers)?;
    if !state.chaos {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NoRoute,
            "fault injection needs a node started with --chaos",
        ));
    }
    Ok(())
}

/// `PUT /v1/admin/faults` (`--chaos` only): replaces this node's injected faults.
pub(super) async fn set_faults(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<FaultPlan>, ApiError> {
    authorize_chaos(&state, &headers)?;
    let plan: FaultPlan = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(ErrorCode::BadRequest, format!("not a fault plan: {error}"))
    })?;
    state.transport.set_faults(plan.clone()).map_err(|error| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::BadFaultPlan,
            error.to_string(),
        )
    })?;
    Ok(Json(plan))
}

/// `GET /v1/admin/faults` (`--chaos` only).
pub(super) async fn faults(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
) -> Result<Json<FaultPlan>, ApiError> {
    authorize_chaos(&state, &headers)?;
    Ok(Json(state.transport.faults()))
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClockOffset {
    /// Milliseconds added to this node's data clock (negative: behind).
    offset_ms: i64,
}

/// `PUT /v1/admin/clock` (`--chaos` only): skews this node's data clock (HLC, expiry,
/// tombstone grace) by `offset_ms`; the failure detector keeps the real clock.
pub(super) async fn set_clock(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ClockOffset>, ApiError> {
    authorize_chaos(&state, &headers)?;
    let offset: ClockOffset = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(
            ErrorCode::BadRequest,
            format!("expected {{\"offset_ms\": N}}: {error}"),
        )
    })?;
    state.clock.set_offset_ms(offset.offset_ms);
    Ok(Json(offset))
}
