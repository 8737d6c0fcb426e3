//! `/v1/sessions` and `/v1/session/*`: the session service over HTTP (see
//! `openapi.yaml`). Every input is checked before anything is written: the token first
//! (401 with a code per kind of rejection), then the CSRF token of mutating calls (403),
//! then the body (400 malformed, 413 too large, 422 outside a limit).

use super::ErrorCode;
use super::{admit, AdminKey, Admission, ApiError};
use crate::crdt::{check_quantity, OpId, UserChange, UserDoc};
use crate::limits;
use crate::session::{Authenticated, Login, SessionError, SessionService};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::SemaphorePermit;

/// The header carrying a session's CSRF token on mutating calls.
pub const CSRF_HEADER: &str = "x-csrf-token";

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Token(rejection) | SessionError::Limited(rejection) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::from(rejection),
                "the session token was not accepted",
            ),
            SessionError::RotationConflict => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, error.to_string())
            }
            SessionError::CsrfMissing => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::CsrfMissing,
                error.to_string(),
            ),
            SessionError::CsrfInvalid => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::CsrfInvalid,
                error.to_string(),
            ),
            SessionError::Coordinator(error) => error.into(),
            SessionError::Fenced { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::AuthFenced,
                error.to_string(),
            ),
            SessionError::RevocationUnconfirmed { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::RevocationUnconfirmed,
                error.to_string(),
            ),
            SessionError::Corrupt => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                error.to_string(),
            ),
        }
    }
}

/// What the session routes use (and `/v1/admin/audit/{user}`, which reads the
/// session service for operators).
pub struct SessionState {
    pub admission: Arc<Admission>,
    /// The session service; `None` (no session secret) answers its routes with 503.
    pub sessions: Option<Arc<SessionService>>,
    /// What the audit route's bearer token is checked against; `None` disables it.
    pub admin_key: Option<AdminKey>,
}

fn sessions(state: &SessionState) -> Result<Arc<SessionService>, ApiError> {
    state.sessions.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::SessionsDisabled,
            "this node has no session secret (run `cartwheel init`)",
        )
    })
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?;
    // A header that is present but not `Bearer <token>` is a malformed token.
    Some(
        value
            .to_str()
            .ok()
            .and_then(|text| text.strip_prefix("Bearer "))
            .unwrap_or(""),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The client's address, when the server recorded it (failed validations are limited
/// per address; without it they are not).
pub(super) fn client(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Admits the request (an in-flight permit), then lets its token in and, for a mutating
/// call, checks its CSRF token.
async fn authenticated<'s>(
    state: &'s SessionState,
    service: &SessionService,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<(SemaphorePermit<'s>, Authenticated), ApiError> {
    let client = client(extensions);
    let (permit, auth) = admitted(
        &state.admission,
        service,
        service.authenticate(bearer(headers), client),
    )
    .await?;
    service.check_csrf(&auth, header(headers, CSRF_HEADER))?;
    Ok((permit, auth))
}

/// Admits the request, then runs `check` (a token's validation). A token refused for a
/// client address over its failed-validation limit (`SessionError::Limited`) is
/// answered only after `OVER_LIMIT_REJECTION_DELAY`, with the admission permit given
/// back first: a flood of made-up tokens then waits for each answer instead of taking
/// the node's CPU, and holds no permit a legitimate request needs. Valid tokens are
/// never delayed.
pub(super) async fn admitted<'s, T>(
    admission: &'s Admission,
    service: &SessionService,
    check: impl std::future::Future<Output = Result<T, SessionError>>,
) -> Result<(SemaphorePermit<'s>, T), ApiError> {
    let permit = admit(admission).await?;
    let error = match check.await {
        Ok(value) => return Ok((permit, value)),
        Err(error) => error,
    };
    drop(permit);
    if matches!(error, SessionError::Limited(_)) {
        service
            .stats
            .delayed_rejections
            .fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(limits::OVER_LIMIT_REJECTION_DELAY).await;
    }
    Err(error.into())
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > limits::SESSION_BODY_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTooLarge,
            format!(
                "the body is {} bytes, the limit is {}",
                body.len(),
                limits::SESSION_BODY_BYTES_MAX
            ),
        ));
    }
    serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(ErrorCode::BadJson, format!("malformed JSON body: {error}"))
    })
}

/// Checks a client-supplied name (user id, device, sku, pref name, history item).
fn name(field: &str, text: &str, max_chars: usize) -> Result<String, ApiError> {
    if text.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::BadName,
            format!("{field} must not be empty"),
        ));
    }
    if text.chars().count() > max_chars {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::NameTooLong,
            format!("{field} is longer than {max_chars} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            ErrorCode::BadName,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(text.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    user_id: String,
    device: String,
}

#[derive(Serialize, Deserialize)]
pub struct LoginAnswer {
    pub token: String,
    pub csrf_token: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at: u64,
    pub idle_expires_at: u64,
}

impl From<Login> for LoginAnswer {
    fn from(login: Login) -> Self {
        LoginAnswer {
            token: login.token,
            csrf_token: login.csrf_token,
            expires_at: login.expires_at_ms,
            idle_expires_at: login.idle_expires_at_ms,
        }
    }
}

/// `POST /v1/sessions`
pub(super) async fn login(
    State(state): State<Arc<SessionState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let service = sessions(&state)?;
    let body: LoginBody = parse(&body)?;
    let user = name("user_id", &body.user_id, limits::SESSION_NAME_CHARS_MAX)?;
    let device = name("device", &body.device, limits::SESSION_NAME_CHARS_MAX)?;
    let _permit = admit(&state.admission).await?;
    let login = service.login(&user, &device).await?;
    Ok((StatusCode::CREATED, Json(LoginAnswer::from(login))).into_response())
}

#[derive(Serialize, Deserialize)]
pub struct CartLine {
    pub sku: String,
    pub qty: u32,
}

#[derive(Serialize, Deserialize)]
pub struct HistoryItem {
    pub item: String,
    pub at_ms: u64,
}

#[derive(Serialize, Deserialize)]
pub struct TokenInfo {
    pub device: String,
    pub created_at: u64,
    pub last_seen_at: u64,
    pub expires_at: u64,
    pub idle_expires_at: u64,
}

/// A user's session as `GET /v1/session` returns it.
#[derive(Serialize, Deserialize)]
pub struct SessionBody {
    pub user_id: String,
    pub cart: Vec<CartLine>,
    pub prefs: BTreeMap<String, String>,
    /// Newest first.
    pub history: Vec<HistoryItem>,
    /// Hex hashes of the user's logged-in tokens (never the tokens).
    pub devices: Vec<String>,
    pub token: TokenInfo,
}

fn session_body(service: &SessionService, auth: &Authenticated, doc: &UserDoc) -> SessionBody {
    let session = &doc.session;
    SessionBody {
        user_id: auth.identity.user.clone(),
        cart: session
            .cart
            .lines()
            .into_iter()
            .map(|(sku, qty)| CartLine { sku, qty })
            .collect(),
        prefs: session
            .prefs
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        history: session
            .history
            .entries()
            .take(service.settings().history_max)
            .map(|entry| HistoryItem {
                item: entry.item.clone(),
                at_ms: entry.at.wall_ms,
            })
            .collect(),
        devices: session.devices.elements().cloned().collect(),
        token: TokenInfo {
            device: auth.identity.device.clone(),
            created_at: auth.identity.created_ms,
            last_seen_at: auth.record.last_seen_ms,
            expires_at: auth.identity.absolute_ms,
            idle_expires_at: auth.record.deadline_ms(),
        },
    }
}

/// `GET /v1/session`
pub(super) async fn read(
    State(state): State<Arc<SessionState>>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Result<Json<SessionBody>, ApiError> {
    let service = sessions(&state)?;
    let client = client(&extensions);
    // The user's document is read together with the token's last checks.
    let (_permit, (auth, doc)) = admitted(
        &state.admission,
        &service,
        service.authenticate_with_document(bearer(&headers), client),
    )
    .await?;
    Ok(Json(session_body(&service, &auth, &doc)))
}

/// Applies one change for an authenticated, CSRF-checked caller and answers with the
/// session as the replica that applied it stored it.
async fn change(
    state: &SessionState,
    headers: &HeaderMap,
    extensions: &Extensions,
    change: impl FnOnce() -> Result<UserChange, ApiError>,
) -> Result<Json<SessionBody>, ApiError> {
    let service = sessions(state)?;
    let op_id = idempotency_key(headers)?;
    let (_permit, auth) = authenticated(state, &service, headers, extensions).await?;
    let change = change()?;
    let doc = service.change(&auth, change, op_id).await?;
    Ok(Json(session_body(&service, &auth, &doc)))
}

/// The `Idempotency-Key` header of a change, as the id its document remembers: a
/// retry with the same key is applied once (`crdt::AppliedOps`). 1 to
/// `IDEMPOTENCY_KEY_CHARS_MAX` printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<OpId>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|key| {
        (1..=limits::IDEMPOTENCY_KEY_CHARS_MAX).contains(&key.len())
            && key.bytes().all(|byte| byte.is_ascii_graphic())
    });
    match key {
        Some(key) => Ok(Some(OpId::of_key(key))),
        None => Err(ApiError::bad_request(
            ErrorCode::BadIdempotencyKey,
            format!(
                "Idempotency-Key must be 1 to {} printable ASCII characters",
                limits::IDEMPOTENCY_KEY_CHARS_MAX
            ),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartBody {
    op: String,
    sku: String,
    qty: Option<i64>,
}

fn quantity(qty: Option<i64>, allow_zero: bool) -> Result<u32, ApiError> {
    let qty = qty.ok_or_else(|| ApiError::bad_request(ErrorCode::BadRequest, "qty is required"))?;
    check_quantity(qty, allow_zero).map_err(|error| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::BadQuantity,
            error.to_string(),
        )
    })
}

/// `POST /v1/session/cart`
pub(super) async fn cart(
    State(state): State<Arc<SessionState>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SessionBody>, ApiError> {
    change(&state, &headers, &extensions, || {
        let body: CartBody = parse(&body)?;
        let sku = name("sku", &body.sku, limits::SESSION_NAME_CHARS_MAX)?;
        match body.op.as_str() {
            "add" => Ok(UserChange::CartAdd {
                sku,
                quantity: quantity(body.qty, false)?,
            }),
            "set" => Ok(UserChange::CartSet {
                sku,
                quantity: quantity(body.qty, true)?,
            }),
            "remove" => Ok(UserChange::CartRemove { sku }),
            other => Err(ApiError::bad_request(
                ErrorCode::BadOp,
                format!("op {other:?}: use add, set or remove"),
            )),
        }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefBody {
    value: String,
}

/// `PUT /v1/session/prefs/{name}`
pub(super) async fn set_pref(
    State(state): State<Arc<SessionState>>,
    extensions: Extensions,
    Path(pref): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SessionBody>, ApiError> {
    change(&state, &headers, &extensions, || {
        let body: PrefBody = parse(&body)?;
        Ok(UserChange::PrefSet {
            name: name("pref name", &pref, limits::SESSION_NAME_CHARS_MAX)?,
            value: name("pref value", &body.value, limits::PREF_VALUE_CHARS_MAX)?,
        })
    })
    .await
}

/// `DELETE /v1/session/prefs/{name}`
pub(super) async fn remove_pref(
    State(state): State<Arc<SessionState>>,
    extensions: Extensions,
    Path(pref): Path<String>,
    headers: HeaderMap,
) -> Result<Json<SessionBody>, ApiError> {
    change(&state, &headers, &extensions, || {
        Ok(UserChange::PrefRemove {
            name: name("pref name", &pref, limits::SESSION_NAME_CHARS_MAX)?,
        })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryBody {
    item: String,
}

/// `POST /v1/session/history`
pub(super) async fn history(
    State(state): State<Arc<SessionState>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SessionBody>, ApiError> {
    change(&state, &headers, &extensions, || {
        let body: HistoryBody = parse(&body)?;
        Ok(UserChange::HistoryAdd {
            item: name("item", &body.item, limits::SESSION_NAME_CHARS_MAX)?,
        })
    })
    .await
}

/// `POST /v1/session/rotate`
pub(super) async fn rotate(
    State(state): State<Arc<SessionState>>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Result<Json<LoginAnswer>, ApiError> {
    let service = sessions(&state)?;
    let op_id = idempotency_key(&headers)?;
    let client = client(&extensions);
    let presented = bearer(&headers);
    let (_permit, auth) = admitted(
        &state.admission,
        &service,
        service.authenticate_rotation(presented, client, op_id),
    )
    .await?;
    service.check_csrf(&auth, header(&headers, CSRF_HEADER))?;
    Ok(Json(service.rotate(&auth, op_id).await?.into()))
}

/// `DELETE /v1/session`
pub(super) async fn logout(
    State(state): State<Arc<SessionState>>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let service = sessions(&state)?;
    let (_permit, auth) = authenticated(&state, &service, &headers, &extensions).await?;
    service.logout(&auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize)]
pub struct LogoutAllAnswer {
    pub revoked: usize,
}

/// `DELETE /v1/session/all`
pub(super) async fn logout_all(
    State(state): State<Arc<SessionState>>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Result<Json<LogoutAllAnswer>, ApiError> {
    let service = sessions(&state)?;
    let (_permit, auth) = authenticated(&state, &service, &headers, &extensions).await?;
    let revoked = service.logout_all(&auth).await?;
    Ok(Json(LogoutAllAnswer { revoked }))
}

#[derive(Serialize, Deserialize)]
pub struct RevokedFamilyBody {
    pub at_ms: u64,
    /// Hex hash of the first token of the revoked rotation chain.
    pub family: String,
}

#[derive(Serialize, Deserialize)]
pub struct AuditEntryBody {
    pub at_ms: u64,
    pub event: String,
    pub device: String,
    pub region: String,
}

/// A user's auth record as `GET /v1/admin/audit/{user}` returns it.
#[derive(Serialize, Deserialize)]
pub struct AuditBody {
    pub user_id: String,
    /// Tokens created at or before it are refused (0: never logged out everywhere).
    pub not_before_ms: u64,
    /// Newest first.
    pub revoked_families: Vec<RevokedFamilyBody>,
    /// Newest first.
    pub audit: Vec<AuditEntryBody>,
}

/// `GET /v1/admin/audit/{user}`: the user's security record, for operators.
pub(super) async fn audit(
    State(state): State<Arc<SessionState>>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<Json<AuditBody>, ApiError> {
    super::admin::authorize(state.admin_key.as_ref(), &headers)?;
    let service = sessions(&state)?;
    let user = name("user_id", &user, limits::SESSION_NAME_CHARS_MAX)?;
    let _permit = admit(&state.admission).await?;
    let record = service.user_auth(&user).await?;
    Ok(Json(AuditBody {
        user_id: user,
        not_before_ms: record.not_before_ms,
        revoked_families: record
            .revoked
            .iter()
            .map(|entry| RevokedFamilyBody {
                at_ms: entry.at_ms,
                family: crate::session::tokens::hex(&entry.family),
            })
            .collect(),
        audit: record
            .audit
            .into_iter()
            .map(|entry| AuditEntryBody {
                at_ms: entry.at_ms,
                event: entry.event,
                device: entry.device,
                region: entry.region,
            })
            .collect(),
    }))
}
