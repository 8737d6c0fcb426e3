//! Raw sockets and memory readings for the attacks: TCP connections from a chosen
//! loopback address (so a per-address limit sees many attackers, or one), the open-file
//! limit raised for thousands of connections, and a sampler of the nodes' resident
//! memory that says how far each grew and trips when one passes the ceiling.

use super::RSS_CEILING_BYTES;
use crate::cluster::NodeEntry;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};

/// How often the sampler reads the nodes' memory.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// How long an attacker waits for a connection before counting it refused.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The loopback address attacker `index` connects from: 127.0.0.2 .. 127.0.0.9 (the
/// legitimate client uses 127.0.0.1).
pub fn attacker_address(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (index % 8) as u8)
}

/// A TCP connection to `to` from `from` (port chosen by the OS).
pub async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(to)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// A process's resident memory in bytes, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Samples every node's memory until dropped; remembers each node's largest growth
/// over its reading at the start, and sets `tripped` once one grows past the ceiling.
pub struct RssSampler {
    growth: Arc<Vec<AtomicU64>>,
    pub tripped: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(nodes: &[NodeEntry]) -> RssSampler {
        let pids: Vec<u32> = nodes.iter().map(|node| node.pid).collect();
        let start: Vec<u64> = pids
            .iter()
            .map(|pid| rss_bytes(*pid).unwrap_or(0))
            .collect();
        let growth: Arc<Vec<AtomicU64>> =
            Arc::new(pids.iter().map(|_| AtomicU64::new(0)).collect());
        let tripped = Arc::new(AtomicBool::new(false));
        let task = {
            let (growth, tripped) = (growth.clone(), tripped.clone());
            tokio::spawn(async move {
                loop {
                    for (index, pid) in pids.iter().enumerate() {
                        let now = rss_bytes(*pid).unwrap_or(0);
                        let grew = now.saturating_sub(start[index]);
                        growth[index].fetch_max(grew, Ordering::Relaxed);
                        if grew > RSS_CEILING_BYTES {
                            tripped.store(true, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(RSS_SAMPLE_INTERVAL).await;
                }
            })
        };
        RssSampler {
            growth,
            tripped,
            task,
        }
    }

    /// The largest growth of any node so far, in bytes.
    pub fn max_growth_bytes(&self) -> u64 {
        self.growth
            .iter()
            .map(|growth| growth.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The status code of an HTTP/1.1 response head, if `head` starts with one.
pub fn status_of(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}
