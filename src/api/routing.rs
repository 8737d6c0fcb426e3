//! `GET /v1/ring`: which nodes replicate each partition, and where they answer HTTP, so
//! a token-aware client (as Cassandra's drivers are) sends each key straight to one of
//! its replicas. The node a client reaches then mints and reads locally instead of
//! forwarding every replica message: three remote round trips per write become two.

use super::status::StatusRoutes;
use crate::coordinator::ClusterView;
use crate::object::ObjectKey;
use crate::runtime::state::liveness_name;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

/// The placement of every partition as one node sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RingMap {
    pub epoch: u64,
    /// A ring change is pending: the replicas listed are the current ring's, and the
    /// placement will move; a client should fetch the map again.
    pub change_pending: bool,
    pub partitions: u32,
    /// The answering node's region; each partition lists its replicas there first.
    pub region: String,
    pub nodes: Vec<RingNode>,
    /// Per partition, its voting replicas as indexes into `nodes`.
    pub replicas: Vec<Vec<u16>>,
}

/// A member as the ring map lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RingNode {
    pub node: String,
    pub region: String,
    pub http: String,
    /// alive, suspect or dead, as the answering node sees it.
    pub state: String,
}

impl RingMap {
    /// The replicas of kv key `key` that are alive, local region first; empty when the
    /// map is not one a server made (a partition count that does not match its table).
    pub fn kv_replicas(&self, key: &[u8]) -> Vec<&RingNode> {
        if self.replicas.len() != self.partitions as usize || self.partitions == 0 {
            return Vec::new();
        }
        let partition = ObjectKey::kv(key).partition(self.partitions);
        self.replicas[partition.0 as usize]
            .iter()
            .filter_map(|index| self.nodes.get(usize::from(*index)))
            .filter(|node| node.state == "alive")
            .collect()
    }
}

pub(super) async fn ring(State(routes): State<StatusRoutes>) -> Json<RingMap> {
    let parts = routes.state.as_ref();
    let view = parts.cluster.view();
    let members = parts.cluster.members();
    let nodes: Vec<RingNode> = members
        .iter()
        .map(|member| RingNode {
            node: member.info.node.to_string(),
            region: member.info.region.to_string(),
            http: member.info.http.to_string(),
            state: liveness_name(member.liveness).to_string(),
        })
        .collect();
    let indexes: std::collections::HashMap<&crate::ids::NodeId, u16> = members
        .iter()
        .enumerate()
        .filter_map(|(index, member)| Some((&member.info.node, u16::try_from(index).ok()?)))
        .collect();
    let partitions = view.current.partition_count();
    let replicas = (0..partitions)
        .map(|partition| {
            view.current
                .preference_list(crate::ids::PartitionId(partition), &parts.me.region)
                .replicas
                .iter()
                .filter_map(|replica| indexes.get(&replica.node).copied())
                .collect()
        })
        .collect();
    Json(RingMap {
        epoch: view.epoch,
        change_pending: view.target.is_some(),
        partitions,
        region: parts.me.region.to_string(),
        nodes,
        replicas,
    })
}

#[cfg(test)]
mod tests;
