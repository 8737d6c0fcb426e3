//! The ring map a client routes by (`GET /v1/ring`): fetched from the first of a list
//! of nodes that serves it, and kept fresh by a task that fetches it again every period.
//! `cartwheel bench`'s token-aware target and the sim's client drivers both route by
//! it, so there is one fetcher. It only reads over HTTP; it never decides placement
//! (the map does) and never retries a failed fetch beyond the next period.

use crate::api::RingMap;
use anyhow::Result;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The ring map in use; replaced whole, so a request reads one consistent map.
pub type SharedRing = Arc<RwLock<Option<Arc<RingMap>>>>;

/// Fetches the ring map every `period` and puts it in `ring`; a failed fetch keeps the
/// map in use (the nodes it lists as dead get no kv requests meanwhile).
pub fn spawn_refresher(
    ring: SharedRing,
    http: reqwest::Client,
    nodes: Vec<SocketAddr>,
    period: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Ok(map) = fetch_ring(&http, &nodes).await {
                *ring.write().expect("ring lock") = Some(Arc::new(map));
            }
        }
    })
}

/// The ring map of the first node (in the cluster file's order) that serves one.
pub async fn fetch_ring(http: &reqwest::Client, nodes: &[SocketAddr]) -> Result<RingMap> {
    let mut last_error = None;
    for node in nodes {
        match crate::cluster::fetch_json::<RingMap>(http, *node, "/v1/ring").await {
            Ok(ring) => return Ok(ring),
            Err(error) => last_error = Some(error.context(format!("GET /v1/ring at {node}"))),
        }
    }
    Err(last_error
        .unwrap_or_else(|| anyhow::anyhow!("no node"))
        .context("token-aware routing needs the ring map (--routing spread does not)"))
}
