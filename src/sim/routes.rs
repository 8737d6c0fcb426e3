//! Where the sim's clients send requests: the HTTP addresses of the nodes they may use,
//! per region, as a load balancer in front of the cluster would keep them. The fault
//! schedule (`faults`, `inject`) marks nodes down and up (clients keep knowing a down
//! node and find out themselves, as a real driver does); the workloads and verifiers
//! (`workload`, `sessions`) read it. It only holds the table: it must never
//! reach a node or know about faults.

use crate::cluster::LocalCluster;
use crate::ids::{NodeId, Region};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// The nodes of each region clients may use, with their HTTP addresses.
type RouteTable = BTreeMap<String, Vec<(NodeId, SocketAddr)>>;

/// HTTP addresses of the nodes, per region: those up, and those clients know of.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    up: Arc<RwLock<RouteTable>>,
    known: Arc<RwLock<RouteTable>>,
}

fn put(table: &RwLock<RouteTable>, region: &Region, node: NodeId, http: SocketAddr) {
    let mut map = table.write().expect("routes lock");
    let list = map.entry(region.to_string()).or_default();
    list.retain(|(id, _)| *id != node);
    list.push((node, http));
}

fn take(table: &RwLock<RouteTable>, node: &NodeId) {
    for list in table.write().expect("routes lock").values_mut() {
        list.retain(|(id, _)| id != node);
    }
}

impl Routes {
    pub fn of(cluster: &LocalCluster) -> Routes {
        let routes = Routes::default();
        for node in &cluster.nodes {
            routes.add(&node.region, node.id.clone(), node.http);
        }
        routes
    }

    /// A node started (or restarted, maybe at a new address): up, and known to clients.
    pub fn add(&self, region: &Region, node: NodeId, http: SocketAddr) {
        put(&self.up, region, node.clone(), http);
        put(&self.known, region, node, http);
    }

    /// A node is down (killed, paused, stopped): the checks skip it; clients still know
    /// it and find out themselves.
    pub fn remove(&self, node: &NodeId) {
        take(&self.up, node);
    }

    /// A node is gone for good (it left the ring): clients forget it too.
    pub fn forget(&self, node: &NodeId) {
        take(&self.up, node);
        take(&self.known, node);
    }

    /// Every node of every region that is up.
    pub fn everywhere(&self) -> Vec<SocketAddr> {
        let table = self.up.read().expect("routes lock");
        table.values().flatten().map(|(_, http)| *http).collect()
    }

    /// The nodes of `region` that are up.
    pub fn all(&self, region: &str) -> Vec<SocketAddr> {
        addresses(&self.up, region)
    }

    /// The nodes of `region` a client knows of, up or not (its contact points).
    pub fn known(&self, region: &str) -> Vec<SocketAddr> {
        addresses(&self.known, region)
    }
}

fn addresses(table: &RwLock<RouteTable>, region: &str) -> Vec<SocketAddr> {
    table
        .read()
        .expect("routes lock")
        .get(region)
        .map(|list| list.iter().map(|(_, http)| *http).collect())
        .unwrap_or_default()
}
