//! Where the sim's clients send requests: the HTTP addresses of the nodes they may use,
//! per region, as a load balancer in front of the cluster would keep them. The fault
//! schedule (`faults`, `inject`) takes nodes out and puts them back; the workloads and
//! verifiers (`workload`, `sessions`) read it. It only holds the table: it must never
//! reach a node or know about faults.

use crate::cluster::LocalCluster;
use crate::ids::{NodeId, Region};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// The nodes of each region clients may use, with their HTTP addresses.
type RouteTable = BTreeMap<String, Vec<(NodeId, SocketAddr)>>;

/// HTTP addresses of the nodes clients may use, per region.
#[derive(Clone, Debug, Default)]
pub struct Routes(Arc<RwLock<RouteTable>>);

impl Routes {
    pub fn of(cluster: &LocalCluster) -> Routes {
        let routes = Routes::default();
        for node in &cluster.nodes {
            routes.add(&node.region, node.id.clone(), node.http);
        }
        routes
    }

    pub fn add(&self, region: &Region, node: NodeId, http: SocketAddr) {
        let mut map = self.0.write().expect("routes lock");
        let list = map.entry(region.to_string()).or_default();
        list.retain(|(id, _)| *id != node);
        list.push((node, http));
    }

    pub fn remove(&self, node: &NodeId) {
        for list in self.0.write().expect("routes lock").values_mut() {
            list.retain(|(id, _)| id != node);
        }
    }

    /// The `choice`-th node (modulo) of a region, if it has any.
    pub fn pick(&self, region: &str, choice: usize) -> Option<SocketAddr> {
        let map = self.0.read().expect("routes lock");
        let list = map.get(region)?;
        (!list.is_empty()).then(|| list[choice % list.len()].1)
    }

    /// Every usable node of every region.
    pub fn everywhere(&self) -> Vec<SocketAddr> {
        let table = self.0.read().expect("routes lock");
        table.values().flatten().map(|(_, http)| *http).collect()
    }

    pub fn all(&self, region: &str) -> Vec<SocketAddr> {
        self.0
            .read()
            .expect("routes lock")
            .get(region)
            .map(|list| list.iter().map(|(_, http)| *http).collect())
            .unwrap_or_default()
    }
}
