//! The HTTP side of `/v1/pipeline`: checks an upgrade request, takes one of the
//! node's pipelined-connection slots and hands the upgraded connection to
//! `pipeline::serve` with the routes a pipeline is served by. A request for the upgrade
//! that came over a pipeline is refused (`upgrade_required`): a pipeline cannot nest.
//!
//! It owns no frame handling (that is `pipeline`'s) and never blocks the request that
//! asked for the upgrade: the connection is served on its own task.

use super::pipeline::{serve, PIPELINE_PROTOCOL};
use super::pipeline_budget::{NodeBudgets, PipelineBounds};
use super::server::EdgeStats;
use super::{ApiError, ErrorCode};
use crate::config::HttpSettings;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CONNECTION, UPGRADE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};

/// What the pipeline upgrade uses: the routes a pipelined connection is served by,
/// the node's cap on pipelined connections and byte budgets, and the timeouts.
pub(super) struct PipelineState {
    /// The API's routes as served over a pipeline (the upgrade refused).
    pub(super) router: Router,
    /// Pipelined connections open (`PIPELINE_CONNECTIONS_MAX`).
    pub(super) slots: Arc<Semaphore>,
    /// Byte budgets every pipelined connection of this node draws from.
    pub(super) budgets: NodeBudgets,
    pub(super) http: HttpSettings,
    /// Turns true when the node stops; pipelined connections close then.
    pub(super) stopped: watch::Receiver<bool>,
    pub(super) edge: Arc<EdgeStats>,
}

/// Why `request` cannot become a pipeline, if it cannot.
fn upgrade_refusal(request: &Request) -> Option<ApiError> {
    let names_protocol = request
        .headers()
        .get(UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case(PIPELINE_PROTOCOL));
    if !names_protocol {
        return Some(ApiError::bad_request(
            ErrorCode::UpgradeRequired,
            format!("send `Connection: upgrade` and `Upgrade: {PIPELINE_PROTOCOL}`"),
        ));
    }
    // Absent on a request that came over a pipeline (or HTTP/2): nothing to upgrade.
    if request
        .extensions()
        .get::<hyper::upgrade::OnUpgrade>()
        .is_none()
    {
        return Some(ApiError::bad_request(
            ErrorCode::UpgradeRequired,
            "only an HTTP/1.1 connection can become a pipeline",
        ));
    }
    None
}

/// `GET /v1/pipeline` sent over a pipeline: a pipelined connection cannot upgrade.
pub(super) async fn refuse_upgrade(request: Request) -> ApiError {
    upgrade_refusal(&request).unwrap_or_else(|| {
        ApiError::bad_request(
            ErrorCode::UpgradeRequired,
            "only an HTTP/1.1 connection can become a pipeline",
        )
    })
}

/// `GET /v1/pipeline` with the upgrade headers: 101, then the connection is served as
/// a pipeline until the client closes it or the node stops.
pub(super) async fn upgrade(
    State(state): State<Arc<PipelineState>>,
    mut request: Request,
) -> Response {
    if let Some(refusal) = upgrade_refusal(&request) {
        return refusal.into_response();
    }
    let Ok(permit) = state.slots.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            "too many pipelined connections on this node; use HTTP or retry later",
        )
        .into_response();
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let bounds = PipelineBounds {
        node: state.budgets.clone(),
        write_timeout: state.http.write_timeout,
        idle_timeout: state.http.idle_timeout,
        peer,
        stats: state.edge.clone(),
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let router = state.router.clone();
    let stopped = state.stopped.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(router, TokioIo::new(upgraded), stopped, bounds).await,
            Err(error) => tracing::debug!(%error, "pipeline upgrade failed"),
        }
        drop(permit);
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (CONNECTION, HeaderValue::from_static("upgrade")),
            (UPGRADE, HeaderValue::from_static(PIPELINE_PROTOCOL)),
        ],
    )
        .into_response()
}
