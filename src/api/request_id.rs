//! `x-request-id`: the name a client or a load balancer gives one request. A node echoes
//! it in the answer, and every event logged while the request's handler runs is inside
//! a `request` span carrying it (work the handler hands to other tasks, such as the
//! replica rounds' late replies, is not). A request without one costs a header lookup:
//! the node makes up no id and opens no span, and logs no line per request. An id over
//! `REQUEST_ID_BYTES_MAX` bytes, or with a byte that is not visible ASCII, is ignored
//! (neither echoed nor logged), so a log line cannot be split or stretched by one.

use crate::limits;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The request id header, in requests and their answers.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Runs the request inside a span naming its id, when it has an acceptable one.
pub(super) async fn tagged(request: Request, next: Next) -> Response {
    let Some(id) = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .filter(|value| acceptable(value))
        .cloned()
    else {
        return next.run(request).await;
    };
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().expect("checked to be visible ASCII")
    );
    let mut response = next.run(request).instrument(span).await;
    response
        .headers_mut()
        .insert(HeaderName::from_static(REQUEST_ID_HEADER), id);
    response
}

/// Whether a request id may be echoed and logged: 1 to `REQUEST_ID_BYTES_MAX` bytes,
/// each visible ASCII (no space, no control byte).
pub(super) fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= limits::REQUEST_ID_BYTES_MAX
        && bytes.iter().all(u8::is_ascii_graphic)
}

#[cfg(test)]
mod tests;
