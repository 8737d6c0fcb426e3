//! `GET /v1/cluster`: the whole cluster as one node gathers it, for the dashboard
//! (`/ui`) and for tools: every member as this node sees it, each live member's own
//! figures (`PeerRequest::Overview` over the peer transport, at most
//! `OVERVIEW_TIMEOUT_MS` each, all at once), and the levels the dead members make
//! impossible somewhere (`coordinator::reach`).
//!
//! Every figure is a counter since its node started, so a reader that polls takes
//! differences for rates and recent latencies; a node that restarted shows smaller
//! counters. A member this node holds dead is not asked.

use super::status::{StatusRoutes, StatusState};
use crate::coordinator::reach;
use crate::coordinator::ClusterView;
use crate::ids::NodeId;
use crate::limits::OVERVIEW_TIMEOUT_MS;
use crate::membership::swim::Liveness;
use crate::membership::swim::MemberState;
use crate::runtime::state::{liveness_name, status_name};
use crate::stats::LATENCY_BOUNDS_US;
use crate::wire::{NodeOverview, OpLatency, PeerRequest, PeerResponse};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The answer of `/v1/cluster`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterOverview {
    pub served_by: String,
    pub generated_unix_ms: u64,
    /// Upper bounds of the latency buckets, milliseconds; each histogram has one more
    /// count, for what is over the last.
    pub latency_bounds_ms: Vec<f64>,
    pub nodes: Vec<NodeEntry>,
    pub unmet: Vec<UnmetLevel>,
}

/// One member, as the serving node sees it, with its own figures when it answered.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeEntry {
    pub node: String,
    pub region: String,
    /// alive, suspect or dead.
    pub state: String,
    /// joining, member, leaving, left or removed.
    pub status: String,
    pub http: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub overview: Option<NodeOverview>,
}

/// A level a coordinator in `region` cannot meet now for some partitions.
#[derive(Debug, Serialize, Deserialize)]
pub struct UnmetLevel {
    pub region: String,
    pub class: String,
    pub op: String,
    pub level: String,
    pub partitions: u32,
}

/// This node's figures.
pub fn overview(parts: &StatusState) -> NodeOverview {
    let view = parts.cluster.view();
    let stats = &parts.coordinator;
    let mut latency: BTreeMap<(&str, &str), OpLatency> = BTreeMap::new();
    for (labels, snapshot) in stats.latencies.observed() {
        let entry = latency
            .entry((labels.op, labels.class))
            .or_insert_with(|| OpLatency {
                op: labels.op.to_string(),
                class: labels.class.to_string(),
                counts: vec![0; snapshot.counts.len()],
                sum_ms: 0.0,
            });
        for (total, count) in entry.counts.iter_mut().zip(&snapshot.counts) {
            *total += count;
        }
        entry.sum_ms += snapshot.sum as f64 / 1000.0;
    }
    NodeOverview {
        partitions_owned: view.current.partitions_of(&parts.me.node).len() as u32,
        partitions_held: parts.cluster.held().len() as u32,
        keys: Some(parts.replica.trees().keys_total()),
        reads: stats.reads.load(Ordering::Relaxed),
        writes: stats.writes.load(Ordering::Relaxed),
        failures: stats.failures.load(Ordering::Relaxed),
        hints_pending: parts.hints.pending().values().sum(),
        partitions_out_of_sync: parts.repair.out_of_sync() as u32,
        oldest_divergence_s: parts.repair.oldest_divergence_ms() as f64 / 1000.0,
        transfers_in_flight: parts.cluster.transfers_in_flight.load(Ordering::Relaxed),
        ring_epoch: view.epoch,
        ring_change_pending: view.target.is_some(),
        latency: latency.into_values().collect(),
    }
}

/// `GET /v1/cluster`.
pub(super) async fn cluster(State(routes): State<StatusRoutes>) -> Json<ClusterOverview> {
    let parts = routes.state.as_ref();
    let mut members = parts.cluster.members();
    members.sort_by(|a, b| (&a.info.region, &a.info.node).cmp(&(&b.info.region, &b.info.node)));
    let nodes = futures::future::join_all(members.iter().map(|member| entry(parts, member))).await;
    let dead: BTreeSet<NodeId> = members
        .iter()
        .filter(|member| member.liveness == Liveness::Dead)
        .map(|member| member.info.node.clone())
        .collect();
    let view = parts.cluster.view();
    let unmet = reach::unmet(&view.current, &dead, &parts.checks)
        .into_iter()
        .map(|unmet| UnmetLevel {
            region: unmet.region.to_string(),
            class: unmet.check.class.name().to_string(),
            op: unmet.check.op.name().to_string(),
            level: unmet.check.level.to_string(),
            partitions: unmet.partitions,
        })
        .collect();
    Json(ClusterOverview {
        served_by: parts.me.node.to_string(),
        generated_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64),
        latency_bounds_ms: LATENCY_BOUNDS_US
            .iter()
            .map(|&bound| bound as f64 / 1000.0)
            .collect(),
        nodes,
        unmet,
    })
}

/// One member's entry: its own overview, asked unless it is this node or dead.
async fn entry(parts: &StatusState, member: &MemberState) -> NodeEntry {
    let asked = if member.info.node == parts.me.node {
        Ok(overview(parts))
    } else if member.liveness == Liveness::Dead {
        Err("held dead by the failure detector".to_string())
    } else {
        ask(parts, &member.info.node).await
    };
    let (overview, error) = match asked {
        Ok(overview) => (Some(overview), None),
        Err(error) => (None, Some(error)),
    };
    NodeEntry {
        node: member.info.node.to_string(),
        region: member.info.region.to_string(),
        state: liveness_name(member.liveness).to_string(),
        status: status_name(member.status).to_string(),
        http: member.info.http.to_string(),
        reachable: overview.is_some(),
        error,
        overview,
    }
}

async fn ask(parts: &StatusState, node: &NodeId) -> Result<NodeOverview, String> {
    let request = parts.transport.request(node, &PeerRequest::Overview);
    match tokio::time::timeout(Duration::from_millis(OVERVIEW_TIMEOUT_MS), request).await {
        Ok(Ok(PeerResponse::Overview(overview))) => Ok(*overview),
        Ok(Ok(other)) => Err(format!("unexpected answer: {other:?}")
            .chars()
            .take(200)
            .collect()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {OVERVIEW_TIMEOUT_MS} ms")),
    }
}
