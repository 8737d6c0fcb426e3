//! The HTTP/JSON API of a node: `/v1/kv/{key}` for applications and `/v1/status` for
//! operators.
//!
//! It turns HTTP into coordinator calls and coordinator results into HTTP: it checks
//! every input (sizes, levels, contexts) before anything is written, and every error
//! leaves as JSON `{code, message}` with a stable code. It decides nothing about
//! replication.

use crate::clock::VersionVector;
use crate::config::Settings;
use crate::coordinator::quorum::Level;
use crate::coordinator::{Coordinator, CoordinatorError};
use crate::limits;
use crate::membership::AddressBook;
use crate::object::{decode_context, encode_context, live_values, Blob, Object, ObjectKey};
use crate::storage::Storage;
use crate::transport::Transport;
use crate::wire::{MemberAddress, PeerRequest, PeerResponse};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The header carrying the causal context between reads and writes.
pub const CONTEXT_HEADER: &str = "x-cartwheel-context";

/// Everything a request handler reaches.
#[derive(Clone)]
pub struct ApiState(Arc<Inner>);

struct Inner {
    me: MemberAddress,
    settings: Settings,
    coordinator: Arc<Coordinator>,
    book: Arc<Mutex<AddressBook>>,
    storage: Arc<dyn Storage>,
    transport: Transport<PeerRequest, PeerResponse>,
    in_flight: Semaphore,
}

impl ApiState {
    pub fn new(
        me: MemberAddress,
        settings: Settings,
        coordinator: Arc<Coordinator>,
        book: Arc<Mutex<AddressBook>>,
        storage: Arc<dyn Storage>,
        transport: Transport<PeerRequest, PeerResponse>,
    ) -> Self {
        ApiState(Arc::new(Inner {
            me,
            settings,
            coordinator,
            book,
            storage,
            transport,
            in_flight: Semaphore::new(limits::CLIENT_REQUESTS_IN_FLIGHT_MAX),
        }))
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
        };
        ApiError::new(status, code, error.to_string())
    }
}

/// Query parameters of `/v1/kv/{key}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvParams {
    consistency: Option<String>,
    r: Option<String>,
    w: Option<String>,
}

fn level_of(
    params: &KvParams,
    count: &Option<String>,
    default: Level,
    name: &str,
) -> Result<Level, ApiError> {
    let level = match (&params.consistency, count) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "bad_request",
                format!("give either consistency or {name}, not both"),
            ))
        }
        (Some(text), None) => text
            .parse::<Level>()
            .map_err(|error| ApiError::bad_request("unknown_consistency", error.to_string()))?,
        (None, Some(text)) => match text.parse::<u32>() {
            Ok(count) if count >= 1 => Level::Count(count),
            _ => {
                return Err(ApiError::bad_request(
                    "bad_request",
                    format!("{name} must be a positive number of replicas, got {text:?}"),
                ))
            }
        },
        (None, None) => default,
    };
    Ok(level)
}

fn key_of(key: &str) -> Result<ObjectKey, ApiError> {
    if key.is_empty() {
        return Err(ApiError::bad_request("bad_request", "the key is empty"));
    }
    if key.len() > limits::KEY_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "key_too_large",
            format!(
                "key is {} bytes, the limit is {}",
                key.len(),
                limits::KEY_BYTES_MAX
            ),
        ));
    }
    Ok(ObjectKey::kv(key.as_bytes()))
}

fn context_of(headers: &HeaderMap) -> Result<VersionVector, ApiError> {
    match headers.get(CONTEXT_HEADER) {
        None => Ok(VersionVector::new()),
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::bad_request("bad_context", "the causal context header is not ASCII")
            })?;
            decode_context(text).map_err(|error| {
                ApiError::bad_request(
                    "bad_context",
                    format!("the causal context header is invalid: {error}"),
                )
            })
        }
    }
}

fn params_of(
    params: Result<Query<KvParams>, axum::extract::rejection::QueryRejection>,
) -> Result<KvParams, ApiError> {
    params
        .map(|Query(params)| params)
        .map_err(|rejection| ApiError::bad_request("bad_request", rejection.body_text()))
}

async fn admit(state: &ApiState) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    let wait = state.0.settings.request_timeout;
    match tokio::time::timeout(wait, state.0.in_flight.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight on this node; retry later",
        )),
    }
}

fn with_context(mut response: Response, object: &Object) -> Response {
    if let Ok(value) = HeaderValue::from_str(&encode_context(object.context())) {
        response.headers_mut().insert(CONTEXT_HEADER, value);
    }
    response
}

#[derive(Serialize, Deserialize)]
pub struct SiblingsBody {
    /// Each live value, base64 (standard alphabet).
    pub siblings: Vec<String>,
    pub context: String,
}

async fn kv_get(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    params: Result<Query<KvParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let params = params_of(params)?;
    if params.w.is_some() {
        return Err(ApiError::bad_request(
            "bad_request",
            "w applies to writes; use r on reads",
        ));
    }
    let level = level_of(&params, &params.r, state.0.settings.read, "r")?;
    if level == Level::RegionSafe {
        return Err(ApiError::bad_request(
            "unknown_consistency",
            "region_safe is a write level",
        ));
    }
    let key = key_of(&key)?;
    let _permit = admit(&state).await?;
    let object = state.0.coordinator.get(&key, level).await?;
    let Some(object) = object else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such key",
        ));
    };
    let values = live_values(&object);
    let response = match values.as_slice() {
        [] => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "the key was deleted").into_response()
        }
        [value] => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Body::from(value.0.clone()),
        )
            .into_response(),
        many => {
            let siblings = many
                .iter()
                .map(|value| base64::engine::general_purpose::STANDARD.encode(&value.0))
                .collect();
            let body = SiblingsBody {
                siblings,
                context: encode_context(object.context()),
            };
            (StatusCode::MULTIPLE_CHOICES, Json(body)).into_response()
        }
    };
    Ok(with_context(response, &object))
}

async fn kv_write(
    state: ApiState,
    key: String,
    params: KvParams,
    headers: HeaderMap,
    value: Option<Blob>,
) -> Result<Response, ApiError> {
    if params.r.is_some() {
        return Err(ApiError::bad_request(
            "bad_request",
            "r applies to reads; use w on writes",
        ));
    }
    let level = level_of(&params, &params.w, state.0.settings.write, "w")?;
    let key = key_of(&key)?;
    let context = context_of(&headers)?;
    let _permit = admit(&state).await?;
    let object = state.0.coordinator.put(&key, value, context, level).await?;
    Ok(with_context(
        StatusCode::NO_CONTENT.into_response(),
        &object,
    ))
}

async fn kv_put(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    params: Result<Query<KvParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = params_of(params)?;
    let value: Bytes = axum::body::to_bytes(body, limits::VALUE_BYTES_MAX)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "value_too_large",
                format!(
                    "the value is over the limit of {} bytes (or the body could not be read)",
                    limits::VALUE_BYTES_MAX
                ),
            )
        })?;
    kv_write(state, key, params, headers, Some(Blob(value.to_vec()))).await
}

async fn kv_delete(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    params: Result<Query<KvParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = params_of(params)?;
    kv_write(state, key, params, headers, None).await
}

/// `GET /v1/status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub node: String,
    pub region: String,
    pub version: String,
    pub http: String,
    pub quic: String,
    pub pid: u32,
    pub members: Vec<MemberStatus>,
    pub members_known: usize,
    pub members_expected: usize,
    pub ring_epoch: u64,
    pub partitions: u32,
    pub partitions_held: usize,
    pub replicas_per_region: u32,
    pub replicas_total: u32,
    pub read: String,
    pub write: String,
    pub durability: String,
    pub keys: u64,
    pub disk_bytes: u64,
    pub reads: u64,
    pub writes: u64,
    pub failures: u64,
    pub read_repairs: u64,
    pub frames_rejected: u64,
    pub connections_refused: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MemberStatus {
    pub node: String,
    pub region: String,
    pub quic: Option<String>,
    pub http: Option<String>,
}

async fn status(State(state): State<ApiState>) -> Json<Status> {
    let inner = &state.0;
    let ring = inner.coordinator.ring();
    let (members, known, expected) = {
        let book = inner.book.lock().expect("address book lock");
        let members = book
            .expected()
            .iter()
            .map(|(node, region)| {
                let address = book.get(node);
                MemberStatus {
                    node: node.to_string(),
                    region: region.to_string(),
                    quic: address.map(|a| a.quic.to_string()),
                    http: address.map(|a| a.http.to_string()),
                }
            })
            .collect();
        (members, book.known().len(), book.expected().len())
    };
    let stats = &inner.coordinator.stats;
    let transport = inner.transport.stats();
    Json(Status {
        node: inner.me.node.to_string(),
        region: inner.me.region.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        http: inner.me.http.to_string(),
        quic: inner.me.quic.to_string(),
        pid: std::process::id(),
        members,
        members_known: known,
        members_expected: expected,
        ring_epoch: ring.epoch(),
        partitions: ring.partition_count(),
        partitions_held: ring.partitions_of(&inner.me.node).len(),
        replicas_per_region: ring.replicas_per_region(&inner.me.region),
        replicas_total: ring.n() as u32,
        read: inner.settings.read.to_string(),
        write: inner.settings.write.to_string(),
        durability: inner.settings.durability.to_string(),
        keys: inner.storage.len().unwrap_or(0),
        disk_bytes: inner.storage.size_on_disk().unwrap_or(0),
        reads: stats.reads.load(Ordering::Relaxed),
        writes: stats.writes.load(Ordering::Relaxed),
        failures: stats.failures.load(Ordering::Relaxed),
        read_repairs: stats.read_repairs.load(Ordering::Relaxed),
        frames_rejected: transport.frames_rejected,
        connections_refused: transport.connections_refused,
    })
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
        .route("/v1/kv/{key}", get(kv_get).put(kv_put).delete(kv_delete))
        .route("/v1/status", get(status))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// How long clients may wait for a node to answer its status (used by tools).
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
