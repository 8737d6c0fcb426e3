//! The cartwheel target: its HTTP API. With token-aware routing (the default) each kv
//! request goes to one of its key's live replicas in turn, from the ring map a node
//! serves at `/v1/ring` (fetched again every `RING_REFRESH`, so requests follow joins,
//! leaves and failures); otherwise, and for session calls, to the next node. Kv writes
//! carry the key's last causal context like a real client; session calls carry the
//! bearer token and, when they change something, the CSRF token. Every answer's body is
//! read in full, so a read costs what a real client's read costs and the connection
//! is reused (`http`: kept-alive connections per node, or one pipelined connection per
//! node with `--protocol pipeline`, the default).

use super::answer::Answer;
use super::http::Connections;
use super::{CartwheelClient, Levels, Protocol, Routing, Session};
use crate::api::CONTEXT_HEADER;
use crate::cluster::{fetch_ring, spawn_refresher, ClusterFile, SharedRing};
use crate::limits::PREF_VALUE_CHARS_MAX;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hyper::header::{HeaderName, AUTHORIZATION, CONTENT_TYPE};
use hyper::Method;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Keys whose context a cartwheel target remembers; writes to others go without one.
pub const CONTEXTS_MAX: usize = 1_000_000;
/// How long one bench request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one attempt at one node may take before the request fails over to the next
/// node (a node that stopped answering costs this much, not the whole timeout).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Nodes one request tries, the first included, as a Cassandra or Redis Cluster driver
/// retries on another node; within `REQUEST_TIMEOUT` overall.
pub const ATTEMPTS_MAX: usize = 3;
/// How often a token-aware target fetches the ring map again.
pub const RING_REFRESH: Duration = Duration::from_secs(1);
/// The device name of every bench login.
const DEVICE: &str = "bench";
/// The header of a session's CSRF token (`api::session` keeps its constant private).
const CSRF_HEADER: &str = "x-csrf-token";
/// The header that makes a session change safe to retry.
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

pub struct CartwheelTarget {
    http: Connections,
    nodes: Vec<SocketAddr>,
    next: AtomicUsize,
    /// The ring map for token-aware kv requests (`None`: spread over all nodes), and
    /// the task that keeps it fresh.
    ring: SharedRing,
    refresher: Option<JoinHandle<()>>,
    pub(super) levels: Levels,
    /// The causal context last seen per key, sent with the next write like a real
    /// client does (a blind write would add a sibling). At most `CONTEXTS_MAX`.
    contexts: Mutex<HashMap<String, String>>,
    /// Requests answered by another node than the first one tried.
    failovers: Arc<AtomicU64>,
    /// Numbers the cart adds' idempotency keys (unique within this process).
    operations: AtomicU64,
}

#[derive(serde::Deserialize)]
struct LoginAnswer {
    token: String,
    csrf_token: String,
}

fn remember(contexts: &Mutex<HashMap<String, String>>, key: &str, answer: &Answer) {
    let Some(context) = answer.header(CONTEXT_HEADER) else {
        return;
    };
    let mut contexts = contexts.lock().expect("contexts lock");
    if contexts.len() < CONTEXTS_MAX || contexts.contains_key(key) {
        contexts.insert(key.to_string(), context.to_string());
    }
}

/// An error unless the answer's status is one of `expected`.
fn expect(answer: &Answer, what: &str, expected: &[u16]) -> Result<()> {
    if !expected.contains(&answer.status) {
        let body = &answer.body[..answer.body.len().min(200)];
        bail!(
            "{what} answered {}: {}",
            answer.status,
            String::from_utf8_lossy(body)
        );
    }
    Ok(())
}

impl CartwheelTarget {
    pub async fn connect(
        dir: &Path,
        clients: usize,
        client: CartwheelClient,
    ) -> Result<CartwheelTarget> {
        let file = ClusterFile::load(dir)
            .with_context(|| format!("no running cluster in {}", dir.display()))?;
        let nodes: Vec<SocketAddr> = file.nodes.iter().map(|node| node.http).collect();
        if nodes.is_empty() {
            bail!("the cluster in {} has no node", dir.display());
        }
        let ring = SharedRing::default();
        let refresher = match client.routing {
            Routing::Spread => None,
            Routing::Token => {
                let http = reqwest::Client::builder()
                    .timeout(REQUEST_TIMEOUT)
                    .build()?;
                let map = fetch_ring(&http, &nodes).await?;
                *ring.write().expect("ring lock") = Some(Arc::new(map));
                Some(spawn_refresher(
                    ring.clone(),
                    http,
                    nodes.clone(),
                    RING_REFRESH,
                ))
            }
        };
        let http = match client.protocol {
            Protocol::Http => Connections::new(clients, ATTEMPT_TIMEOUT),
            Protocol::Pipeline => Connections::pipelined(ATTEMPT_TIMEOUT),
        };
        Ok(CartwheelTarget {
            http,
            nodes,
            next: AtomicUsize::new(0),
            ring,
            refresher,
            levels: Levels::default(),
            contexts: Mutex::new(HashMap::new()),
            failovers: Arc::default(),
            operations: AtomicU64::new(0),
        })
    }

    /// The count of requests answered by another node than the first one tried.
    pub fn failovers(&self) -> Arc<AtomicU64> {
        self.failovers.clone()
    }

    /// The nodes a request that may go anywhere tries: the next one in turn, then the
    /// ones after it.
    fn node(&self) -> Vec<SocketAddr> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.after(turn, Vec::new())
    }

    /// `first`, then the nodes from `turn` on that are not in it, `ATTEMPTS_MAX` in all.
    fn after(&self, turn: usize, mut first: Vec<SocketAddr>) -> Vec<SocketAddr> {
        for step in 0..self.nodes.len() {
            let node = self.nodes[(turn + step) % self.nodes.len()];
            if !first.contains(&node) {
                first.push(node);
            }
        }
        first.truncate(ATTEMPTS_MAX);
        first
    }

    /// The nodes a kv request tries: `key`'s live replicas starting with the next in
    /// turn (token-aware), then other nodes; or the nodes in turn when the target
    /// spreads requests or knows no live replica of the key.
    fn kv_node(&self, key: &str) -> Vec<SocketAddr> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let ring = self.ring.read().expect("ring lock").clone();
        let mut replicas = Vec::new();
        if let Some(ring) = ring {
            let live = ring.kv_replicas(key.as_bytes());
            for step in 0..live.len() {
                if let Ok(node) = live[(turn + step) % live.len()].http.parse() {
                    replicas.push(node);
                }
            }
        }
        self.after(turn, replicas)
    }

    /// Sends one request to the first of `nodes` and, when it cannot be reached, does
    /// not answer within `ATTEMPT_TIMEOUT` or answers 503, to the next. Only for requests
    /// that are safe to send twice (reads, kv writes with their context, session
    /// changes with an idempotency key, logins, logouts).
    async fn send(
        &self,
        nodes: &[SocketAddr],
        method: Method,
        path: &str,
        headers: &[(HeaderName, &str)],
        body: Bytes,
    ) -> Result<Answer> {
        let mut last = None;
        for (attempt, node) in nodes.iter().enumerate() {
            let sent = self
                .http
                .send(*node, method.clone(), path, headers, body.clone())
                .await;
            match sent {
                Ok(answer) if answer.status != 503 || attempt + 1 == nodes.len() => {
                    if attempt > 0 {
                        self.failovers.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(answer);
                }
                Ok(answer) => last = Some(Ok(answer)),
                Err(error) => last = Some(Err(error)),
            }
        }
        last.unwrap_or_else(|| Err(anyhow::anyhow!("no node to send {method} {path} to")))
    }

    /// The path of `key`, with `param=count` when a level is set.
    fn kv_path(key: &str, param: &str, count: Option<u32>) -> String {
        match count {
            Some(count) => format!("/v1/kv/{key}?{param}={count}"),
            None => format!("/v1/kv/{key}"),
        }
    }

    pub async fn get(&self, key: &str) -> Result<()> {
        let path = Self::kv_path(key, "r", self.levels.read);
        let answer = self
            .send(&self.kv_node(key), Method::GET, &path, &[], Bytes::new())
            .await?;
        remember(&self.contexts, key, &answer);
        expect(&answer, "GET", &[200, 300, 404])
    }

    /// Writes `value`, superseding the key's last version like a client that read it
    /// first: a key whose context this process has not seen yet is read before its
    /// first write (a blind write would keep an earlier run's value as a sibling, and
    /// runs against one cluster would write ever larger objects).
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        let node = self.kv_node(key);
        let path = Self::kv_path(key, "w", self.levels.write);
        let known = || {
            self.contexts
                .lock()
                .expect("contexts lock")
                .get(key)
                .cloned()
        };
        let known = match known() {
            Some(context) => Some(context),
            None => {
                self.get(key).await?;
                known()
            }
        };
        let context = known.unwrap_or_default();
        let headers = [(HeaderName::from_static(CONTEXT_HEADER), context.as_str())];
        let headers = if context.is_empty() {
            &[][..]
        } else {
            &headers[..]
        };
        // Retried with the same context: a retry whose first attempt also landed leaves
        // the same value twice as siblings, which the next write supersedes.
        let body = Bytes::copy_from_slice(value);
        let answer = self.send(&node, Method::PUT, &path, headers, body).await?;
        remember(&self.contexts, key, &answer);
        expect(&answer, "PUT", &[204])
    }

    /// A login, then prefs `pad-0`, `pad-1`, ... holding `payload` between them, so the
    /// session document is about as large as the other systems' session values.
    pub async fn create_session(&self, user: &str, payload: &[u8]) -> Result<Session> {
        let session = self.login(user, payload).await?;
        for (index, chunk) in payload.chunks(PREF_VALUE_CHARS_MAX).enumerate() {
            let value = String::from_utf8_lossy(chunk);
            let path = format!("/v1/session/prefs/pad-{index}");
            let body = serde_json::json!({ "value": value });
            self.session_call(Method::PUT, &path, &session, Some(&body), 200)
                .await?;
        }
        Ok(session)
    }

    /// A session call at the next node with the bearer token and, unless it is a read,
    /// the CSRF token; an error unless it answers `expected`.
    async fn session_call(
        &self,
        method: Method,
        path: &str,
        session: &Session,
        body: Option<&serde_json::Value>,
        expected: u16,
    ) -> Result<()> {
        let bearer = format!("Bearer {}", session.token);
        let mut headers = vec![(AUTHORIZATION, bearer.as_str())];
        // Every change carries an idempotency key, so a retry on another node is
        // applied once.
        let key = format!(
            "bench-{}-{}",
            std::process::id(),
            self.operations.fetch_add(1, Ordering::Relaxed)
        );
        if method != Method::GET {
            headers.push((HeaderName::from_static(CSRF_HEADER), session.csrf.as_str()));
            headers.push((HeaderName::from_static(IDEMPOTENCY_HEADER), key.as_str()));
        }
        let body = match body {
            Some(body) => {
                headers.push((CONTENT_TYPE, "application/json"));
                Bytes::from(serde_json::to_vec(body)?)
            }
            None => Bytes::new(),
        };
        let answer = self
            .send(&self.node(), method.clone(), path, &headers, body)
            .await?;
        if answer.status == expected {
            return Ok(());
        }
        expect(&answer, &format!("{method} {path}"), &[expected])
    }

    pub async fn session_read(&self, session: &Session) -> Result<()> {
        self.session_call(Method::GET, "/v1/session", session, None, 200)
            .await
    }

    pub async fn cart_add(&self, session: &Session, sku: &str) -> Result<()> {
        let body = serde_json::json!({ "op": "add", "sku": sku, "qty": 1 });
        self.session_call(Method::POST, "/v1/session/cart", session, Some(&body), 200)
            .await
    }

    /// `POST /v1/sessions`; cartwheel's login carries no payload (the other systems
    /// store `--value-bytes` under the new token).
    pub async fn login(&self, user: &str, _payload: &[u8]) -> Result<Session> {
        let body = serde_json::to_vec(&serde_json::json!({ "user_id": user, "device": DEVICE }))?;
        let headers = [(CONTENT_TYPE, "application/json")];
        let answer = self
            .send(
                &self.node(),
                Method::POST,
                "/v1/sessions",
                &headers,
                body.into(),
            )
            .await?;
        expect(&answer, "POST /v1/sessions", &[201])?;
        let answer: LoginAnswer =
            serde_json::from_slice(&answer.body).context("POST /v1/sessions answer")?;
        Ok(Session {
            token: answer.token,
            csrf: answer.csrf_token,
        })
    }

    pub async fn validate(&self, session: &Session) -> Result<()> {
        self.session_read(session).await
    }

    pub async fn logout(&self, session: &Session) -> Result<()> {
        self.session_call(Method::DELETE, "/v1/session", session, None, 204)
            .await
    }
}

impl Drop for CartwheelTarget {
    fn drop(&mut self) {
        if let Some(refresher) = self.refresher.take() {
            refresher.abort();
        }
    }
}

#[cfg(test)]
mod tests;
