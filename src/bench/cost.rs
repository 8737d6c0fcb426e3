//! What the measured part of a run cost a cartwheel cluster's nodes: CPU time (user +
//! sys of every node process, from `/proc`) and the datagrams and send calls of their
//! peer sockets (from each node's `/metrics`), sampled when the measured part starts
//! and when it ends, so the keys loaded before it are not counted.

use crate::cluster::ClusterFile;
use std::path::Path;

/// The cluster's totals at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeCost {
    /// CPU seconds of every node process (a process that cannot be read adds nothing).
    pub cpu_s: f64,
    pub datagrams_sent: f64,
    pub send_calls: f64,
}

impl NodeCost {
    /// Per operation between `before` and `self`, as a JSON object.
    pub fn per_op(&self, before: &NodeCost, operations: u64) -> serde_json::Value {
        let operations = operations.max(1) as f64;
        serde_json::json!({
            "cpu_s": self.cpu_s - before.cpu_s,
            "cpu_us_per_op": (self.cpu_s - before.cpu_s) * 1e6 / operations,
            "datagrams_per_op": (self.datagrams_sent - before.datagrams_sent) / operations,
            "send_calls_per_op": (self.send_calls - before.send_calls) / operations,
        })
    }
}

/// Samples the cluster in `dir`; `None` if its nodes cannot be read.
pub async fn sample(dir: &Path, http: &reqwest::Client) -> Option<NodeCost> {
    let cluster = ClusterFile::load(dir).ok()?;
    let ticks_per_s = clock_ticks_per_second();
    let mut cost = NodeCost::default();
    for node in &cluster.nodes {
        if let Some(ticks) = cpu_ticks(node.pid) {
            cost.cpu_s += ticks as f64 / ticks_per_s;
        }
        let metrics = http
            .get(format!("http://{}/metrics", node.http))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        cost.datagrams_sent += counter(&metrics, "cartwheel_transport_datagrams_sent_total");
        cost.send_calls += counter(&metrics, "cartwheel_transport_send_calls_total");
    }
    Some(cost)
}

/// The value of an unlabelled counter in an OpenMetrics text (0 when absent).
pub(crate) fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// User + sys clock ticks of process `pid` (fields 14 and 15 of `/proc/PID/stat`,
/// counted after the command name, which may hold spaces).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// The kernel's clock ticks per second for `/proc` times (100 on Linux).
fn clock_ticks_per_second() -> f64 {
    procfs::ticks_per_second() as f64
}

#[cfg(test)]
mod tests;
