//! The HTTP/JSON API of a node: `/v1/kv/{key}` and `/v1/session*` for applications,
//! `/v1/status`, `/v1/ring` and `/v1/admin/*` for operators and token-aware clients, and
//! `/v1/pipeline`, the same API pipelined over one upgraded connection, and `/v1/feed`,
//! the region's changes.
//!
//! It turns HTTP into coordinator and membership calls and their results into HTTP: it
//! checks every input (sizes, levels, contexts, secrets) before anything is written,
//! and every error leaves as JSON `{code, message}` with a stable code. It decides
//! nothing about replication.

mod admin;
mod bounds;
mod cluster;
pub mod context;
mod error_code;
mod feed;
mod kv;
mod metrics;
mod pipeline;
mod pipeline_budget;
mod pipeline_upgrade;
mod request_id;
mod routing;
pub mod server;
mod session;
mod status;
mod ui;

pub use admin::AdminKey;
pub use context::{ContextError, ContextKeys};
pub use error_code::ErrorCode;
pub use kv::SiblingsBody;
pub use request_id::REQUEST_ID_HEADER;
// Only the bench's tests serve a pipeline without a node.
pub use crate::replica::trees::Counts as PartitionCounts;
pub use cluster::{overview, ClusterOverview};
#[cfg(all(test, feature = "tools"))]
pub(crate) use pipeline::serve as serve_pipeline;
pub use pipeline::{
    codec as pipeline_codec, encode as encode_pipeline_frame, FrameError, PipelineAnswer,
    PipelineRequest, PIPELINE_PATH, PIPELINE_PROTOCOL,
};
#[cfg(all(test, feature = "tools"))]
pub(crate) use pipeline_budget::PipelineBounds;
pub use routing::{RingMap, RingNode};
pub use status::{MemberStatus, Status};

pub use admin::AdminState;
pub use feed::{FeedAnswer, FeedState, Position as FeedPosition, Sources as FeedSources};
pub use kv::KvState;
pub use session::SessionState;
pub use status::StatusState;

use crate::config::HttpSettings;
use crate::coordinator::CoordinatorError;
use crate::limits;
use crate::wire::Refusal;
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

/// Admission, shared by the routes that do work: at most
/// `CLIENT_REQUESTS_IN_FLIGHT_MAX` requests in flight, each waiting for its slot at
/// most the request timeout.
pub struct Admission {
    in_flight: Semaphore,
    wait: Duration,
    /// Requests answered 503 `overloaded` for want of a permit.
    refused: std::sync::atomic::AtomicU64,
}

impl Admission {
    /// Requests refused 503 `overloaded` so far (every permit taken for the wait).
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn new(request_timeout: Duration) -> Arc<Admission> {
        Arc::new(Admission {
            in_flight: Semaphore::new(limits::CLIENT_REQUESTS_IN_FLIGHT_MAX),
            wait: request_timeout,
            refused: Default::default(),
        })
    }
}

/// What the edge of the API uses: the HTTP settings (body limits and timeouts, the
/// connection caps), the edge's counters and the stop signal.
pub struct EdgeParts {
    pub http: HttpSettings,
    /// Turns true when the node stops; pipelined connections close then.
    pub stopped: tokio::sync::watch::Receiver<bool>,
    /// What the HTTP edge counted (shared with the status route).
    pub stats: Arc<server::EdgeStats>,
    /// TLS on the HTTP listener (`--http-tls-cert`), or plain HTTP.
    pub tls: Option<crate::config::EdgeTls>,
}

/// The API of one node: each group of routes with only the state its handlers use.
pub struct Api {
    pub kv: KvState,
    pub sessions: SessionState,
    pub admin: AdminState,
    pub status: Arc<StatusState>,
    /// `GET /v1/feed`.
    pub feed: FeedState,
    pub edge: EdgeParts,
}

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

#[derive(Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                code: self.code.as_str().to_string(),
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
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::QuorumNotReached)
            }
            CoordinatorError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, ErrorCode::Timeout),
            CoordinatorError::Level(_) => (StatusCode::BAD_REQUEST, ErrorCode::UnsatisfiableLevel),
            CoordinatorError::Refused { refusal, .. } => match refusal {
                Refusal::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::SessionTooLarge),
                Refusal::Limit => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::LimitExceeded),
                Refusal::StillLive | Refusal::Mismatch | Refusal::AlreadyRotated => {
                    (StatusCode::CONFLICT, ErrorCode::Conflict)
                }
                Refusal::ObjectTooLarge => {
                    (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::ObjectTooLarge)
                }
            },
        };
        ApiError::new(status, code, error.to_string())
    }
}

/// Waits for a slot among the requests in flight, up to the request timeout.
pub(super) async fn admit(
    admission: &Admission,
) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    match tokio::time::timeout(admission.wait, admission.in_flight.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err({
            let refused = &admission.refused;
            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Overloaded,
                "too many requests in flight on this node; retry later",
            )
        }),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NoRoute,
        "no such endpoint; see the README for the API",
    )
}

/// Each group's state, shared by the router and the pipelined router.
struct Shared {
    kv: Arc<KvState>,
    status: status::StatusRoutes,
    admin: Arc<AdminState>,
    sessions: Arc<SessionState>,
}

/// Every route but the pipeline upgrade, each group with its own state.
fn routes(shared: &Shared) -> Router {
    let kv = Router::new()
        .route(
            "/v1/kv/{key}",
            get(kv::kv_get).put(kv::kv_put).delete(kv::kv_delete),
        )
        .with_state(shared.kv.clone());
    let status = Router::new()
        .route("/v1/status", get(status::status))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/cluster", get(cluster::cluster))
        .route("/v1/roots", get(status::roots))
        .route("/v1/partitions", get(status::partitions))
        .route("/v1/ring", get(routing::ring))
        .with_state(shared.status.clone());
    let admin = Router::new()
        .route("/v1/admin/leave", post(admin::leave))
        .route("/v1/admin/remove/{node}", post(admin::remove))
        .route(
            "/v1/admin/faults",
            get(admin::faults).put(admin::set_faults),
        )
        .route("/v1/admin/clock", put(admin::set_clock))
        .with_state(shared.admin.clone());
    let sessions = Router::new()
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
        .with_state(shared.sessions.clone());
    let page = Router::new()
        .route("/ui", get(ui::index))
        .route("/ui/{name}", get(ui::asset));
    Router::new()
        .merge(kv)
        .merge(status)
        .merge(admin)
        .merge(page)
        .merge(sessions)
        .fallback(not_found)
}

/// Bodies are read (within their route's limit) by `bounds`, before any handler; the
/// extractors' own limit is the largest of those, a second line. Outside both, a
/// request's `x-request-id` is echoed and names the span its handler logs in.
fn bounded(routes: Router, http: &HttpSettings) -> Router {
    routes
        .layer(axum::extract::DefaultBodyLimit::max(
            limits::VALUE_BYTES_MAX,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(http.clone()),
            bounds::bounded,
        ))
        .layer(axum::middleware::from_fn(request_id::tagged))
}

/// The node's HTTP routes. A pipelined connection is served by the same routes, but
/// for its own upgrade, which it cannot repeat (`400 upgrade_required`).
pub fn router(api: Api) -> Router {
    let shared = Shared {
        kv: Arc::new(api.kv),
        status: status::StatusRoutes {
            state: api.status,
            edge: api.edge.stats.clone(),
        },
        admin: Arc::new(api.admin),
        sessions: Arc::new(api.sessions),
    };
    let pipelined = routes(&shared).route(
        pipeline::PIPELINE_PATH,
        get(pipeline_upgrade::refuse_upgrade),
    );
    let pipeline = pipeline_upgrade::PipelineState {
        router: bounded(pipelined, &api.edge.http),
        slots: Arc::new(Semaphore::new(limits::PIPELINE_CONNECTIONS_MAX)),
        budgets: pipeline_budget::NodeBudgets::new(),
        http: api.edge.http.clone(),
        stopped: api.edge.stopped.clone(),
        edge: api.edge.stats.clone(),
    };
    let upgrade = Router::new()
        .route(pipeline::PIPELINE_PATH, get(pipeline_upgrade::upgrade))
        .with_state(Arc::new(pipeline));
    // Not pipelined: a feed waits or streams, which would hold the pipeline's answers.
    let feed = Router::new()
        .route("/v1/feed", get(feed::feed))
        .with_state(Arc::new(api.feed));
    bounded(routes(&shared).merge(upgrade).merge(feed), &api.edge.http)
}

/// How long clients may wait for a node to answer its status (used by tools).
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
