//! The sim's client driver: one per region, shared by that region's clients (as an
//! application server shares one driver between its threads). It picks the node each
//! request goes to and, when that node stops answering (connection refused or reset,
//! a timeout, a 503 or 504), sends the request to another node of the region, the way
//! Cassandra and Redis Cluster drivers do: a short connect timeout, at most
//! `SIM_ATTEMPTS_MAX` attempts on different nodes, a node that failed held down for
//! `SIM_NODE_DOWN_MS`, twice as long after each further failure in a row (up to
//! `SIM_NODE_DOWN_MAX_MS`, as Cassandra's exponential reconnection policy), and token-aware routing from the region's ring map (kv requests
//! go first to a replica of their key in the region, so the coordinator holds it).
//!
//! It owns the ring map it routes by (fetched and refreshed with `cluster::driver_map`,
//! the same code `cartwheel bench` routes by), the nodes it holds down and the retry and
//! failover counts the report shows. It must never send a request twice when the
//! second copy could apply again: the caller says, per request, whether a copy that may
//! have been sent can be sent again (`Retry`), and a request that may not is retried
//! only when the connection could not be made at all.

use super::routes::Routes;
use crate::cluster::{fetch_ring, spawn_refresher, SharedRing};
use crate::limits::{
    SIM_ATTEMPTS_MAX, SIM_CONNECT_TIMEOUT_MS, SIM_NODE_DOWN_MAX_MS, SIM_NODE_DOWN_MS,
    SIM_RING_REFRESH_MS, SIM_SPECULATE_MS,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Whether a request may be sent again after an attempt that may have reached a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Sending it twice is the same as sending it once: reads, and kv writes, which
    /// carry the causal context they replace (a second copy is at worst a sibling of
    /// the same value, which the next write with its context replaces).
    Always,
    /// Reads: as `Always`, and when the first node has not answered after
    /// `SIM_SPECULATE_MS` the same request also goes to the next node, the first answer
    /// winning (the speculative execution Cassandra's drivers offer for idempotent
    /// requests), so a node that stopped answering costs a read a few ms, not its
    /// attempt timeout.
    Speculate,
    /// Only when it certainly was not sent (the connection could not be made): logins,
    /// rotations and logouts (session document changes carry an operation id and are
    /// retried `Always`).
    IfNotSent,
}

/// How a request ended, after its retries.
pub enum Sent {
    /// A node answered (with any status but a 503 or 504 that could be retried).
    Answered {
        node: SocketAddr,
        response: reqwest::Response,
        /// An earlier attempt may have been applied (it timed out, was cut or got a
        /// 503 or 504): a write may have taken effect twice, as a sibling.
        earlier_maybe_applied: bool,
    },
    /// No node answered; the last one tried was `node`.
    Failed { node: SocketAddr, maybe_sent: bool },
    /// Every node of the region is held down: nothing was sent.
    NoNode,
}

/// Retries and failovers one region's clients made.
#[derive(Debug, Default)]
pub struct Counts {
    /// Attempts after a request's first.
    pub retries: AtomicU64,
    /// Times a node that stopped answering was held down and the driver moved off it.
    pub failovers: AtomicU64,
    /// Requests that failed on every attempt they were allowed.
    pub exhausted: AtomicU64,
    /// Reads also sent to a second node because the first was slow to answer.
    pub speculations: AtomicU64,
}

/// Nodes held down: until when, and how long the last hold was.
type Holds = Mutex<HashMap<SocketAddr, (Instant, Duration)>>;

/// Holds `node` down: `SIM_NODE_DOWN_MS` the first time, twice its last hold when it
/// failed again right after one (it was tried once the hold ended).
fn hold_down(holds: &Holds, counts: &Counts, node: SocketAddr) {
    let mut down = holds.lock().expect("down lock");
    let hold = match down.get(&node) {
        Some((_, last)) => (*last * 2).min(Duration::from_millis(SIM_NODE_DOWN_MAX_MS)),
        None => Duration::from_millis(SIM_NODE_DOWN_MS),
    };
    down.insert(node, (Instant::now() + hold, hold));
    counts.failovers.fetch_add(1, Ordering::Relaxed);
}

/// The driver of one region.
pub struct Driver {
    region: String,
    http: reqwest::Client,
    routes: Routes,
    ring: SharedRing,
    refresher: Option<JoinHandle<()>>,
    /// Nodes held down: until when, and how long the last hold was. At most one entry
    /// per node of the cluster; a node that answers again loses its entry.
    down_until: Arc<Holds>,
    pub counts: Arc<Counts>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("region", &self.region)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(refresher) = self.refresher.take() {
            refresher.abort();
        }
    }
}

/// The HTTP client every driver uses: a short connect timeout, kept-alive connections.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(SIM_CONNECT_TIMEOUT_MS))
        .pool_max_idle_per_host(64)
        .build()
}

impl Driver {
    /// A driver for `region`, with the ring map of one of its nodes when one serves it
    /// (without it requests are spread over the region's nodes).
    pub async fn start(region: &str, routes: &Routes, http: reqwest::Client) -> Driver {
        let ring = SharedRing::default();
        let contacts = routes.known(region);
        let ring_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(SIM_CONNECT_TIMEOUT_MS))
            .timeout(Duration::from_millis(SIM_RING_REFRESH_MS))
            .build()
            .unwrap_or_else(|_| http.clone());
        if let Ok(map) = fetch_ring(&ring_http, &contacts).await {
            *ring.write().expect("ring lock") = Some(Arc::new(map));
        }
        let refresher = spawn_refresher(
            ring.clone(),
            ring_http,
            contacts,
            Duration::from_millis(SIM_RING_REFRESH_MS),
        );
        Driver {
            region: region.to_string(),
            http,
            routes: routes.clone(),
            ring,
            refresher: Some(refresher),
            down_until: Arc::new(Mutex::new(HashMap::new())),
            counts: Arc::new(Counts::default()),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The nodes to try, best first: the region's live replicas of `key` (kv keys),
    /// then its other nodes, each list rotated by `turn` to spread load; nodes the ring
    /// map says are not alive go last, nodes held down are left out.
    fn candidates(&self, key: Option<&[u8]>, turn: usize) -> Vec<SocketAddr> {
        let ring = self.ring.read().expect("ring lock").clone();
        let parse = |text: &str| text.parse::<SocketAddr>().ok();
        let mut replicas: Vec<SocketAddr> = match (&ring, key) {
            (Some(ring), Some(key)) => ring
                .kv_replicas(key)
                .into_iter()
                .filter(|node| node.region == self.region)
                .filter_map(|node| parse(&node.http))
                .collect(),
            _ => Vec::new(),
        };
        let mut others: Vec<SocketAddr> = self
            .routes
            .known(&self.region)
            .into_iter()
            .filter(|node| !replicas.contains(node))
            .collect();
        rotate(&mut replicas, turn);
        rotate(&mut others, turn);
        let not_alive: Vec<SocketAddr> = ring
            .iter()
            .flat_map(|ring| ring.nodes.iter())
            .filter(|node| node.state != "alive")
            .filter_map(|node| parse(&node.http))
            .collect();
        let now = Instant::now();
        let down = self.down_until.lock().expect("down lock");
        let held = |node: &SocketAddr| down.get(node).is_some_and(|(until, _)| *until > now);
        let mut order: Vec<SocketAddr> = replicas.into_iter().chain(others).collect();
        order.retain(|node| !held(node));
        // A stable sort: the ring's view only demotes, it never drops a node (it may be
        // a second old).
        order.sort_by_key(|node| not_alive.contains(node));
        order
    }

    fn hold_down(&self, node: SocketAddr) {
        hold_down(&self.down_until, &self.counts, node);
    }

    /// One attempt at `first`; when `second` is given and `first` has not answered
    /// after `SIM_SPECULATE_MS`, the same request goes to `second` too and the first
    /// answer wins. A slower `first` left behind finishes on its own: its node is held
    /// down if it fails. Returns the node whose answer this is.
    async fn attempt<F>(
        &self,
        first: SocketAddr,
        second: Option<SocketAddr>,
        timeout: Duration,
        build: &F,
    ) -> (SocketAddr, reqwest::Result<reqwest::Response>)
    where
        F: Fn(&reqwest::Client, SocketAddr) -> reqwest::RequestBuilder,
    {
        let mut sent = Box::pin(build(&self.http, first).timeout(timeout).send());
        let Some(second) = second else {
            return (first, sent.await);
        };
        tokio::select! {
            result = &mut sent => return (first, result),
            _ = tokio::time::sleep(Duration::from_millis(SIM_SPECULATE_MS)) => {}
        }
        self.counts.speculations.fetch_add(1, Ordering::Relaxed);
        let speculative = build(&self.http, second).timeout(timeout).send();
        tokio::select! {
            result = &mut sent => (first, result),
            result = speculative => {
                let (holds, counts) = (self.down_until.clone(), self.counts.clone());
                tokio::spawn(async move {
                    if sent.await.is_err() {
                        hold_down(&holds, &counts, first);
                    }
                });
                (second, result)
            }
        }
    }

    /// `node` answered: it is no longer held down, and its next failure starts over.
    fn answered(&self, node: SocketAddr) {
        let mut down = self.down_until.lock().expect("down lock");
        if !down.is_empty() {
            down.remove(&node);
        }
    }

    /// Sends the request `build` makes for a node, on up to `SIM_ATTEMPTS_MAX` nodes of
    /// the region, each attempt given `timeout`. A connection that could not be made
    /// is always retried elsewhere; a timeout or a cut connection only when `retry` is
    /// `Always` (or `Speculate`), and a 503 or 504 then once.
    pub async fn send<F>(
        &self,
        key: Option<&[u8]>,
        retry: Retry,
        timeout: Duration,
        turn: usize,
        build: F,
    ) -> Sent
    where
        F: Fn(&reqwest::Client, SocketAddr) -> reqwest::RequestBuilder,
    {
        let mut candidates: VecDeque<SocketAddr> = self.candidates(key, turn).into();
        let attempts = candidates.len().min(SIM_ATTEMPTS_MAX);
        let mut maybe_applied = false;
        let mut unavailable_answers = 0;
        let mut last = Sent::NoNode;
        let mut attempt = 0;
        while let Some(first) = candidates.pop_front().filter(|_| attempt < attempts) {
            if attempt > 0 {
                self.counts.retries.fetch_add(1, Ordering::Relaxed);
            }
            let second = match (retry, attempt) {
                (Retry::Speculate, 0) => candidates.front().copied(),
                _ => None,
            };
            let (node, result) = self.attempt(first, second, timeout, &build).await;
            if node != first {
                // The speculative copy answered: it used the next attempt.
                candidates.pop_front();
                attempt += 1;
            }
            attempt += 1;
            let is_last = attempt >= attempts;
            match result {
                Ok(response) => {
                    self.answered(node);
                    // 503: the node could not reach enough replicas; 504: not in its
                    // time. Either way it answered, and another node may do better.
                    let unavailable = matches!(response.status().as_u16(), 503 | 504);
                    if unavailable {
                        unavailable_answers += 1;
                    }
                    // A 503 is tried on one more node, not more (Cassandra's default
                    // policy for "unavailable"): another coordinator of the region sees
                    // the same replicas, and each failed write may leave a copy behind.
                    let retry_unavailable = retry != Retry::IfNotSent && unavailable_answers == 1;
                    if !(unavailable && retry_unavailable) || is_last {
                        if unavailable {
                            self.counts.exhausted.fetch_add(1, Ordering::Relaxed);
                        }
                        return Sent::Answered {
                            node,
                            response,
                            earlier_maybe_applied: maybe_applied,
                        };
                    }
                    // A 503 is the node's answer that it could not reach enough
                    // replicas: it is alive, so it is not held down.
                    maybe_applied = true;
                }
                Err(error) => {
                    self.hold_down(node);
                    let sent = !error.is_connect();
                    last = Sent::Failed {
                        node,
                        maybe_sent: sent || maybe_applied,
                    };
                    maybe_applied |= sent;
                    if sent && retry == Retry::IfNotSent {
                        break;
                    }
                }
            }
        }
        if matches!(last, Sent::Failed { .. }) {
            self.counts.exhausted.fetch_add(1, Ordering::Relaxed);
        }
        last
    }
}

fn rotate(list: &mut [SocketAddr], turn: usize) {
    if !list.is_empty() {
        let by = turn % list.len();
        list.rotate_left(by);
    }
}

/// Every region's driver, by region name.
pub struct Drivers(BTreeMap<String, Arc<Driver>>);

impl Drivers {
    /// A driver for each of `regions`.
    pub async fn start(regions: &[String], routes: &Routes) -> reqwest::Result<Drivers> {
        let http = http_client()?;
        let mut drivers = BTreeMap::new();
        for region in regions {
            let driver = Driver::start(region, routes, http.clone()).await;
            drivers.insert(region.clone(), Arc::new(driver));
        }
        Ok(Drivers(drivers))
    }

    /// The driver of `region`. Every region of the topology has one.
    pub fn of(&self, region: &str) -> Option<&Arc<Driver>> {
        self.0.get(region)
    }

    /// Per region: retries, failovers and requests that failed on every attempt.
    pub fn summary(&self) -> serde_json::Value {
        let mut value = serde_json::json!({});
        for (region, driver) in &self.0 {
            let counts = &driver.counts;
            value[region] = serde_json::json!({
                "retries": counts.retries.load(Ordering::Relaxed),
                "failovers": counts.failovers.load(Ordering::Relaxed),
                "exhausted": counts.exhausted.load(Ordering::Relaxed),
                "speculations": counts.speculations.load(Ordering::Relaxed),
            });
        }
        value
    }
}

#[cfg(test)]
mod tests;
