//! The body limit, body timeout and whole-request deadline every request passes
//! before any handler sees it.
//!
//! A request's body is read here, into memory, only up to its route's limit and within
//! the body timeout: a declared `Content-Length` over the limit is refused before a byte
//! of the body is read, and a streamed body is refused the moment it passes the limit.
//! Either way the answer is 413 with `Connection: close`, so the node reads no more of
//! that connection. All of this happens before authentication and before admission
//! (`api::admit`), so neither a secret nor a slot is spent on such a request. This
//! layer never looks inside a body: handlers parse what it hands them.

use super::ApiError;
use super::ErrorCode;
use crate::config::HttpSettings;
use crate::limits;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::Arc;

/// The byte limit of a request's body and the code a body over it is answered with.
pub(super) fn body_limit(method: &Method, path: &str) -> (usize, ErrorCode) {
    let writes = *method == Method::PUT || *method == Method::POST;
    if writes && path.starts_with("/v1/kv/") {
        return (limits::VALUE_BYTES_MAX, ErrorCode::ValueTooLarge);
    }
    if writes && path.starts_with("/v1/session") {
        return (limits::SESSION_BODY_BYTES_MAX, ErrorCode::BodyTooLarge);
    }
    if writes && path.starts_with("/v1/admin/") {
        return (limits::HTTP_ADMIN_BODY_BYTES_MAX, ErrorCode::BodyTooLarge);
    }
    (limits::HTTP_EMPTY_BODY_BYTES_MAX, ErrorCode::BodyTooLarge)
}

/// An error answer after which the node closes the connection: what is left of the
/// body is never read.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

fn too_large(code: ErrorCode, limit: usize) -> Response {
    closing(ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        code,
        format!("the request body is over this route's limit of {limit} bytes"),
    ))
}

/// Reads the body within its limit and timeout, then runs the handler within the
/// request deadline.
pub(super) async fn bounded(
    State(settings): State<Arc<HttpSettings>>,
    request: Request,
    next: Next,
) -> Response {
    let settings = settings.as_ref();
    let (limit, code) = body_limit(request.method(), request.uri().path());
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return too_large(code, limit);
    }
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(settings.body_timeout, Limited::new(body, limit).collect());
    let body = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<LengthLimitError>() => return too_large(code, limit),
        Ok(Err(error)) => {
            return closing(ApiError::bad_request(
                ErrorCode::BadBody,
                format!("the request body could not be read: {error}"),
            ))
        }
        Err(_) => {
            return closing(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::BodyTimeout,
                format!(
                    "the request body did not arrive within {} ms",
                    settings.body_timeout.as_millis()
                ),
            ))
        }
    };
    let request = Request::from_parts(parts, Body::from(body));
    match tokio::time::timeout(settings.request_deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Timeout,
            format!(
                "the request was not answered within {} ms",
                settings.request_deadline.as_millis()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests;
