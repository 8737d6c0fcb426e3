//! Where the sim's clients send requests: the HTTP (and RESP) addresses of the nodes
//! they may use, per region, as a load balancer in front of the cluster would keep them. The fault
//! schedule (`faults`, `inject`) marks nodes down and up (clients keep knowing a down
//! node and find out themselves, as a real driver does); the workloads and verifiers
//! (`workload`, `sessions`) read it. It only holds the table: it must never
//! reach a node or know about faults.

use crate::cluster::{LocalCluster, NodeEntry};
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
    /// Each node's RESP address, as its last start reported it (bounded by the nodes).
    resp: Arc<RwLock<BTreeMap<NodeId, SocketAddr>>>,
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
            routes.add_entry(node);
        }
        routes
    }

    /// A node started (or restarted, maybe at new addresses), with its RESP address.
    pub fn add_entry(&self, entry: &NodeEntry) {
        let mut resp = self.resp.write().expect("routes lock");
        match entry.resp {
            Some(address) => resp.insert(entry.id.clone(), address),
            None => resp.remove(&entry.id),
        };
        drop(resp);
        self.add(&entry.region, entry.id.clone(), entry.http);
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

    /// The RESP addresses of the nodes of `region` that are up.
    pub fn resp_up(&self, region: &str) -> Vec<SocketAddr> {
        self.resp_of(&self.up, region)
    }

    /// The RESP addresses of the nodes of `region` a client knows of, up or not.
    pub fn resp_known(&self, region: &str) -> Vec<SocketAddr> {
        self.resp_of(&self.known, region)
    }

    fn resp_of(&self, table: &RwLock<RouteTable>, region: &str) -> Vec<SocketAddr> {
        let resp = self.resp.read().expect("routes lock");
        let table = table.read().expect("routes lock");
        let nodes = table.get(region).into_iter().flatten();
        nodes.filter_map(|(id, _)| resp.get(id).copied()).collect()
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
