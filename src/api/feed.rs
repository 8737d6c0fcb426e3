//! `GET /v1/feed`: the changes of this node's region, for applications that do not
//! speak RESP (a user's session followed by the backends of their other devices, a
//! cache invalidated), as a long poll (JSON) or server-sent events.
//!
//! A reader names where it is with an opaque position (`position=`, or an event's id
//! as `Last-Event-ID`) holding its cursor in each node's feed, so it resumes at any
//! node of the region; without one it starts at the tails now. It is told `behind`
//! whenever it may have missed a change (a node's log dropped its position, a node
//! restarted, joined or does not answer): it must then treat everything as changed.
//! Filters (`class`, `key`, `prefix`, `user`) are bounded; so are the streams a node
//! serves (`FEED_STREAMS_MAX`, past it 503 `overloaded`) and an answer's bytes.
//!
//! Access: the `kv` class is open, as `/v1/kv` is; `user=<id>` needs that user's
//! session token (or the admin secret); anything else the admin secret. It reads the
//! feeds (`reader`); it never writes.

mod filter;
mod position;
mod reader;
mod stream;

pub use filter::{ChangeBody, Filter};
pub use position::Position;
pub use reader::Sources;

use super::admin::authorize as authorize_admin;
use super::session::{admitted, bearer, client};
use super::{AdminKey, Admission, ApiError, ErrorCode};
use crate::config::HttpSettings;
use crate::limits;
use crate::session::SessionService;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use filter::{change_body, identity, parse_query, Access, QueryError};
use reader::Reader;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// What the feed route uses.
pub struct FeedState {
    pub sources: Sources,
    /// Admission for a session token's validation (a feed holds no in-flight slot
    /// while it waits: it holds one of `streams`).
    pub admission: Arc<Admission>,
    pub sessions: Option<Arc<SessionService>>,
    pub admin_key: Option<AdminKey>,
    /// The request deadline bounds a long poll; the idle timeout a stream's silence.
    pub http: HttpSettings,
    /// Turns true when the node stops: streams end then.
    pub stopped: watch::Receiver<bool>,
    streams: Arc<Semaphore>,
}

impl FeedState {
    pub fn new(
        sources: Sources,
        admission: Arc<Admission>,
        sessions: Option<Arc<SessionService>>,
        admin_key: Option<AdminKey>,
        http: HttpSettings,
        stopped: watch::Receiver<bool>,
    ) -> FeedState {
        FeedState {
            sources,
            admission,
            sessions,
            admin_key,
            http,
            stopped,
            streams: Arc::new(Semaphore::new(limits::FEED_STREAMS_MAX)),
        }
    }
}

/// A long poll's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct FeedAnswer {
    /// The changes that passed the filter, each once (repeats from several replicas
    /// dropped), in the order their nodes applied them.
    pub changes: Vec<ChangeBody>,
    /// Changes may have been missed: treat everything the filter covers as changed.
    pub behind: bool,
    /// Where to read on from (at any node of this region).
    pub position: String,
}

fn query_error(error: QueryError) -> ApiError {
    match error {
        QueryError::Filter(message) => ApiError::bad_request(ErrorCode::BadFilter, message),
        QueryError::Position(error) => {
            ApiError::bad_request(ErrorCode::BadPosition, error.to_string())
        }
        QueryError::Other(message) => ApiError::bad_request(ErrorCode::BadRequest, message),
    }
}

/// The position a request resumes from: `Last-Event-ID` (an event stream's
/// reconnection) over `position=`.
fn resume(headers: &HeaderMap, query: Option<Position>) -> Result<Option<Position>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(query);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::bad_request(ErrorCode::BadPosition, "Last-Event-ID is not a position")
    })?;
    if text.is_empty() {
        return Ok(query);
    }
    Position::decode(text)
        .map(Some)
        .map_err(|error| ApiError::bad_request(ErrorCode::BadPosition, error.to_string()))
}

/// Lets the request in by what its filter reads (`Access`).
async fn authorize(
    state: &FeedState,
    access: Access,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<Option<Credential>, ApiError> {
    let user = match access {
        Access::Open => return Ok(None),
        Access::Admin => return authorize_admin(state.admin_key.as_ref(), headers).map(|_| None),
        Access::User(user) => user,
    };
    let presented = bearer(headers);
    let admin = state.admin_key.as_ref();
    if admin
        .zip(presented)
        .is_some_and(|(key, given)| key.verify(given))
    {
        return Ok(None);
    }
    let service = state.sessions.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::SessionsDisabled,
            "this node has no session secret (run `cartwheel init`)",
        )
    })?;
    let check = service.authenticate(presented, client(extensions));
    let (permit, auth) = admitted(&state.admission, &service, check).await?;
    drop(permit);
    if auth.identity.user != user {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "a session token reads the feed of its own user only",
        ));
    }
    Ok(Some(Credential {
        service,
        token: presented.unwrap_or_default().to_string(),
        user,
        client: client(extensions),
    }))
}

/// The session token a stream was let in with, checked again at every heartbeat: a
/// stream ends once its token is no longer valid (logged out, expired, revoked).
pub(super) struct Credential {
    service: Arc<SessionService>,
    token: String,
    user: String,
    client: Option<std::net::IpAddr>,
}

impl Credential {
    /// Whether the token still lets its user in.
    pub(super) async fn valid(&self) -> bool {
        let auth = self
            .service
            .authenticate(Some(&self.token), self.client)
            .await;
        auth.is_ok_and(|auth| auth.identity.user == self.user)
    }
}

fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|text| text.contains("text/event-stream"))
}

/// `GET /v1/feed`
pub(super) async fn feed(
    State(state): State<Arc<FeedState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(pairs) = query
        .map_err(|rejection| ApiError::bad_request(ErrorCode::BadRequest, rejection.body_text()))?;
    let query = parse_query(&pairs).map_err(query_error)?;
    let position = resume(&headers, query.position)?;
    let credential = authorize(&state, query.filter.access(), &headers, &extensions).await?;
    let permit = state.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            format!(
                "this node serves {} feeds already; retry later",
                limits::FEED_STREAMS_MAX
            ),
        )
    })?;
    let reader = Reader::new(position.as_ref(), &state.sources.region_nodes());
    if wants_events(&headers) {
        // A stream resumed while a node's cursor is unknown starts behind: the client
        // may not know it missed that node's changes (a long poll says so every time).
        let behind = position.is_some() && reader.unknown();
        let start = stream::Start {
            reader,
            filter: query.filter,
            behind,
            credential,
        };
        let events = stream::events(state, start, permit);
        return Ok(events.into_response());
    }
    let wait = poll_wait(&state.http, query.wait_ms);
    let answer = poll(&state, reader, &query.filter, wait, permit).await;
    Ok(Json(answer).into_response())
}

/// How long a long poll waits: `wait_ms`, at most `FEED_POLL_WAIT_MS_MAX` (also the
/// default) and `FEED_POLL_DEADLINE_MARGIN_MS` below the request deadline.
pub(crate) fn poll_wait(http: &HttpSettings, wait_ms: Option<u64>) -> Duration {
    let deadline = http
        .request_deadline
        .saturating_sub(Duration::from_millis(limits::FEED_POLL_DEADLINE_MARGIN_MS));
    Duration::from_millis(
        wait_ms
            .unwrap_or(u64::MAX)
            .min(limits::FEED_POLL_WAIT_MS_MAX),
    )
    .min(deadline)
}

/// What a change costs an answer's byte bound: its JSON, about.
fn answer_bytes(body: &ChangeBody) -> usize {
    body.key.len() + body.digest.len() + 96
}

/// Reads until a change passes the filter, the reader falls behind or `wait` is over,
/// at most `FEED_RESPONSE_BYTES_MAX` of changes.
async fn poll(
    state: &FeedState,
    mut reader: Reader,
    filter: &Filter,
    wait: Duration,
    _permit: OwnedSemaphorePermit,
) -> FeedAnswer {
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = Vec::new();
    let mut seen = HashSet::new();
    let mut bytes = 0;
    let mut behind = false;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let round_wait = left.min(state.sources.wait);
        let round = reader.round(&state.sources, round_wait).await;
        behind |= reader.take_behind();
        let mut full = false;
        for (node, page) in round {
            let mut next = page.next;
            for change in &page.changes {
                let Some(body) = change_body(change).filter(|_| filter.matches(change)) else {
                    continue;
                };
                if !seen.insert(identity(change)) {
                    continue;
                }
                if !changes.is_empty()
                    && bytes + answer_bytes(&body) > limits::FEED_RESPONSE_BYTES_MAX
                {
                    next.next = change.global;
                    full = true;
                    break;
                }
                bytes += answer_bytes(&body);
                changes.push(body);
            }
            reader.advance(&node, next);
        }
        if full || behind || !changes.is_empty() || left.is_zero() {
            break;
        }
    }
    FeedAnswer {
        changes,
        behind: behind || reader.unknown(),
        position: reader.position().encode(),
    }
}

#[cfg(test)]
mod tests;
