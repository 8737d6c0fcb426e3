//! The HTTP/JSON API of a node: `/v1/kv/{key}` and `/v1/session*` for applications,
//! `/v1/status`, `/v1/ring` and `/v1/admin/*` for operators and token-aware clients, and
//! `/v1/pipeline`, the same API pipelined over one upgraded connection.
//!
//! It turns HTTP into coordinator and membership calls and their results into HTTP: it
//! checks every input (sizes, levels, contexts, secrets) before anything is written,
//! and every error leaves as JSON `{code, message}` with a stable code. It decides
//! nothing about replication.

mod admin;
mod bounds;
pub mod context;
mod kv;
mod pipeline;
mod pipeline_budget;
mod routing;
pub mod server;
mod session;
mod status;

pub use admin::AdminKey;
pub use context::{ContextError, ContextKeys};
pub use kv::SiblingsBody;
// Only the bench's tests serve a pipeline without a node.
#[cfg(all(test, feature = "tools"))]
pub(crate) use pipeline::serve as serve_pipeline;
pub use pipeline::{
    codec as pipeline_codec, decode_request as decode_pipeline_request,
    encode as encode_pipeline_frame, FrameError, PipelineAnswer, PipelineRequest, PIPELINE_PATH,
    PIPELINE_PROTOCOL,
};
#[cfg(all(test, feature = "tools"))]
pub(crate) use pipeline_budget::PipelineBounds;
pub use routing::{RingMap, RingNode};
pub use status::{MemberStatus, Status};

use crate::config::Settings;
use crate::coordinator::{Coordinator, CoordinatorError};
use crate::handoff::transfer::TransferStats;
use crate::limits;
use crate::membership::swim::MemberInfo;
use crate::node::gossip::Gossip;
use crate::node::state::ClusterState;
use crate::storage::Storage;
use crate::transport::Transport;
use crate::wire::{PeerRequest, PeerResponse, Refusal};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The header carrying the causal context between reads and writes.
pub const CONTEXT_HEADER: &str = "x-cartwheel-context";

/// What the API is built from.
pub struct ApiParts {
    pub me: MemberInfo,
    pub settings: Settings,
    pub coordinator: Arc<Coordinator>,
    pub state: Arc<ClusterState>,
    pub gossip: Arc<Gossip>,
    pub storage: Arc<dyn Storage>,
    pub transport: Transport<PeerRequest, PeerResponse>,
    pub transfers: Arc<TransferStats>,
    pub hints: Arc<crate::handoff::hints::Hints>,
    pub repair: Arc<crate::node::repair::RepairStats>,
    pub service: Arc<crate::node::service::PeerService>,
    /// Whether versions minted here travel before this node's flush ends.
    pub early: Arc<crate::node::incarnation::EarlySend>,
    /// Serve the fault-injection endpoint.
    pub chaos: bool,
    /// Signs and checks causal contexts; `None` (no session secret) hands out no context
    /// and refuses any a client sends with `400 bad_context`.
    pub contexts: Option<context::ContextKeys>,
    /// What admin requests' bearer token is checked against; `None` disables the
    /// admin endpoints.
    pub admin_key: Option<AdminKey>,
    /// The session service; `None` (no session secret) answers its routes with 503.
    pub sessions: Option<Arc<crate::session::SessionService>>,
    /// The node's data clock (chaos runs may move it).
    pub clock: Arc<crate::node::clock::NodeClock>,
    /// Turns true when the node stops; pipelined connections close then.
    pub stopped: tokio::sync::watch::Receiver<bool>,
}

/// Everything a request handler reaches.
#[derive(Clone)]
pub struct ApiState(Arc<Inner>);

struct Inner {
    parts: ApiParts,
    in_flight: Semaphore,
    /// Pipelined connections open (`PIPELINE_CONNECTIONS_MAX`).
    pipelines: Arc<Semaphore>,
    /// Byte budgets every pipelined connection of this node draws from.
    pipeline_bytes: pipeline_budget::NodeBudgets,
    /// What the HTTP edge counted.
    edge: Arc<server::EdgeStats>,
}

impl ApiState {
    pub fn new(parts: ApiParts) -> Self {
        ApiState(Arc::new(Inner {
            parts,
            in_flight: Semaphore::new(limits::CLIENT_REQUESTS_IN_FLIGHT_MAX),
            pipelines: Arc::new(Semaphore::new(limits::PIPELINE_CONNECTIONS_MAX)),
            pipeline_bytes: pipeline_budget::NodeBudgets::new(),
            edge: Arc::new(server::EdgeStats::default()),
        }))
    }

    fn parts(&self) -> &ApiParts {
        &self.0.parts
    }
}

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                code: self.code.to_string(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<CoordinatorError> for ApiError {
    fn from(error: CoordinatorError) -> Self {
        let (status, code) = match &error {
            CoordinatorError::QuorumNotReached { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "quorum_not_reached")
            }
            CoordinatorError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            CoordinatorError::Level(_) => (StatusCode::BAD_REQUEST, "unsatisfiable_level"),
            CoordinatorError::Refused { refusal, .. } => match refusal {
                Refusal::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "session_too_large"),
                Refusal::Limit => (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded"),
                Refusal::StillLive | Refusal::Mismatch | Refusal::AlreadyRotated => {
                    (StatusCode::CONFLICT, "conflict")
                }
                Refusal::ObjectTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "object_too_large"),
            },
        };
        ApiError::new(status, code, error.to_string())
    }
}

/// Waits for a slot among the requests in flight, up to the request timeout.
pub(super) async fn admit(state: &ApiState) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    let wait = state.parts().settings.request_timeout;
    match tokio::time::timeout(wait, state.0.in_flight.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight on this node; retry later",
        )),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such endpoint; see the README for the API",
    )
}

/// The node's HTTP routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/v1/kv/{key}",
            get(kv::kv_get).put(kv::kv_put).delete(kv::kv_delete),
        )
        .route(pipeline::PIPELINE_PATH, get(pipeline::upgrade))
        .route("/v1/status", get(status::status))
        .route("/v1/roots", get(status::roots))
        .route("/v1/ring", get(routing::ring))
        .route("/v1/admin/leave", post(admin::leave))
        .route("/v1/admin/remove/{node}", post(admin::remove))
        .route(
            "/v1/admin/faults",
            get(admin::faults).put(admin::set_faults),
        )
        .route("/v1/admin/clock", put(admin::set_clock))
        .route("/v1/admin/audit/{user}", get(session::audit))
        .route("/v1/sessions", post(session::login))
        .route("/v1/session", get(session::read).delete(session::logout))
        .route("/v1/session/all", delete(session::logout_all))
        .route("/v1/session/cart", post(session::cart))
        .route(
            "/v1/session/prefs/{name}",
            put(session::set_pref).delete(session::remove_pref),
        )
        .route("/v1/session/history", post(session::history))
        .route("/v1/session/rotate", post(session::rotate))
        .fallback(not_found)
        // Bodies are read (within their route's limit) by `bounds`, before any handler;
        // the extractors' own limit is the largest of those, a second line.
        .layer(axum::extract::DefaultBodyLimit::max(
            limits::VALUE_BYTES_MAX,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            bounds::bounded,
        ))
        .with_state(state)
}

/// How long clients may wait for a node to answer its status (used by tools).
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
