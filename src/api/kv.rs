//! `/v1/kv/{key}`: opaque values with siblings and causal contexts.

use super::ErrorCode;
use super::{admit, Admission, ApiError, ContextError, ContextKeys, CONTEXT_HEADER};
use crate::clock::VersionVector;
use crate::coordinator::quorum::Level;
use crate::coordinator::Coordinator;
use crate::limits;
use crate::object::{live_values, Blob, KvObject, Object, ObjectKey};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What the kv routes use.
pub struct KvState {
    pub admission: Arc<Admission>,
    pub coordinator: Arc<Coordinator>,
    /// Signs and checks causal contexts; `None` (no session secret) hands out no context
    /// and refuses any a client sends with `400 bad_context`.
    pub contexts: Option<ContextKeys>,
    /// The levels of a read and of a write that name none.
    pub read: Level,
    pub write: Level,
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
                ErrorCode::BadRequest,
                format!("give either consistency or {name}, not both"),
            ))
        }
        (Some(text), None) => text.parse::<Level>().map_err(|error| {
            ApiError::bad_request(ErrorCode::UnknownConsistency, error.to_string())
        })?,
        (None, Some(text)) => match text.parse::<u32>() {
            Ok(count) if count >= 1 => Level::Count(count),
            _ => {
                return Err(ApiError::bad_request(
                    ErrorCode::BadRequest,
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
        return Err(ApiError::bad_request(
            ErrorCode::BadRequest,
            "the key is empty",
        ));
    }
    if key.len() > limits::KEY_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::KeyTooLarge,
            format!(
                "key is {} bytes, the limit is {}",
                key.len(),
                limits::KEY_BYTES_MAX
            ),
        ));
    }
    Ok(ObjectKey::kv(key.as_bytes()))
}

/// The causal context a write carries: empty without the header; refused (nothing is
/// written) unless this cluster handed it out for this key.
fn context_of(
    state: &KvState,
    key: &ObjectKey,
    headers: &HeaderMap,
) -> Result<VersionVector, ApiError> {
    let Some(value) = headers.get(CONTEXT_HEADER) else {
        return Ok(VersionVector::new());
    };
    let refused = |message: String| ApiError::bad_request(ErrorCode::BadContext, message);
    let text = value
        .to_str()
        .map_err(|_| refused("the causal context header is not ASCII".to_string()))?;
    let keys = state.contexts.as_ref();
    let keys = keys.ok_or_else(|| refused(ContextError::Disabled.to_string()))?;
    keys.decode(key, text)
        .map_err(|error| refused(error.to_string()))
}

/// The context of `object` as this cluster hands it out for `key` (`None` on a node
/// without session secret, which hands out none).
fn context_text(state: &KvState, key: &ObjectKey, object: &KvObject) -> Option<String> {
    let keys = state.contexts.as_ref()?;
    Some(keys.encode(key, object.context()))
}

fn params_of(
    params: Result<Query<KvParams>, axum::extract::rejection::QueryRejection>,
) -> Result<KvParams, ApiError> {
    params
        .map(|Query(params)| params)
        .map_err(|rejection| ApiError::bad_request(ErrorCode::BadRequest, rejection.body_text()))
}

/// The kv object a kv key holds (a document there would be a bug of ours).
fn kv_object(object: Object) -> Result<KvObject, ApiError> {
    match object {
        Object::Kv(object) => Ok(object),
        Object::Doc(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "a kv key holds a session document",
        )),
    }
}

/// On a write that left concurrent siblings: how many (and no context header).
pub const SIBLINGS_HEADER: &str = "x-cartwheel-siblings";

fn with_context(
    state: &KvState,
    key: &ObjectKey,
    mut response: Response,
    object: &KvObject,
) -> Response {
    let context = context_text(state, key, object);
    if let Some(value) = context.and_then(|text| HeaderValue::from_str(&text).ok()) {
        response.headers_mut().insert(CONTEXT_HEADER, value);
    }
    response
}

#[derive(Serialize, Deserialize)]
pub struct SiblingsBody {
    /// Each live value, base64 (standard alphabet).
    pub siblings: Vec<String>,
    /// Empty on a node without session secret (it hands out no context).
    pub context: String,
}

pub(super) async fn kv_get(
    State(state): State<Arc<KvState>>,
    Path(key): Path<String>,
    params: Result<Query<KvParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let params = params_of(params)?;
    if params.w.is_some() {
        return Err(ApiError::bad_request(
            ErrorCode::BadRequest,
            "w applies to writes; use r on reads",
        ));
    }
    let level = level_of(&params, &params.r, state.read, "r")?;
    if level == Level::RegionSafe {
        return Err(ApiError::bad_request(
            ErrorCode::UnknownConsistency,
            "region_safe is a write level",
        ));
    }
    let key = key_of(&key)?;
    let _permit = admit(&state.admission).await?;
    let object = state.coordinator.get(&key, level).await?;
    let Some(object) = object else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such key",
        ));
    };
    let object = kv_object(object)?;
    let values = live_values(&object);
    let response = match values.as_slice() {
        [] => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "the key was deleted",
        )
        .into_response(),
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
                context: context_text(&state, &key, &object).unwrap_or_default(),
            };
            (StatusCode::MULTIPLE_CHOICES, Json(body)).into_response()
        }
    };
    Ok(with_context(&state, &key, response, &object))
}

async fn kv_write(
    state: Arc<KvState>,
    key: String,
    params: KvParams,
    headers: HeaderMap,
    value: Option<Blob>,
) -> Result<Response, ApiError> {
    if params.r.is_some() {
        return Err(ApiError::bad_request(
            ErrorCode::BadRequest,
            "r applies to reads; use w on writes",
        ));
    }
    let level = level_of(&params, &params.w, state.write, "w")?;
    let key = key_of(&key)?;
    let context = context_of(&state, &key, &headers)?;
    let _permit = admit(&state.admission).await?;
    let object = state.coordinator.put(&key, value, context, level).await?;
    let object = kv_object(object)?;
    // The stored object's context covers every sibling in it. Handing it back when the
    // write left concurrent siblings would let this client's next write supersede
    // values it never saw; it reads them (GET) to get a context that covers them.
    if object.siblings().len() > 1 {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if let Ok(count) = HeaderValue::from_str(&object.siblings().len().to_string()) {
            response.headers_mut().insert(SIBLINGS_HEADER, count);
        }
        return Ok(response);
    }
    Ok(with_context(
        &state,
        &key,
        StatusCode::NO_CONTENT.into_response(),
        &object,
    ))
}

pub(super) async fn kv_put(
    State(state): State<Arc<KvState>>,
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
                ErrorCode::ValueTooLarge,
                format!(
                    "the value is over the limit of {} bytes (or the body could not be read)",
                    limits::VALUE_BYTES_MAX
                ),
            )
        })?;
    kv_write(state, key, params, headers, Some(Blob(value.to_vec()))).await
}

pub(super) async fn kv_delete(
    State(state): State<Arc<KvState>>,
    Path(key): Path<String>,
    params: Result<Query<KvParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = params_of(params)?;
    kv_write(state, key, params, headers, None).await
}
