//! The legitimate client of an abuse run: from 127.0.0.1 it reads one kv key and one
//! session over and over, round-robin over the nodes, and reports how many of its
//! requests failed and their latency. Attacks come from other loopback addresses, so a
//! limit per client address that stops an attacker does not stop this client. Also the
//! session calls the attacks share (login, validate, rotate).

use crate::cluster::NodeEntry;
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Requests the legitimate client keeps in flight.
const PROBE_CLIENTS: usize = 2;
/// How long one legitimate request may take before it counts as an error.
const PROBE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The legitimate client's key and user.
const PROBE_KEY: &str = "abuse-legit";
const PROBE_USER: &str = "abuse-legit";

/// The legitimate client's figures over one window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProbeResult {
    pub ops: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// What the first failed requests got (at most `PROBE_ERRORS_KEPT`): a status and
    /// the error code of its body, or the client's error.
    pub first_errors: Vec<String>,
}

/// Failed legitimate requests whose reason a row keeps.
const PROBE_ERRORS_KEPT: usize = 3;

/// A session as the shop's backend holds it.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub csrf: String,
}

pub struct Probe {
    http: reqwest::Client,
    nodes: Vec<SocketAddr>,
    session: Session,
}

/// A client whose connections leave from `source` (a loopback address).
pub fn client_from(source: Ipv4Addr) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(source))
        .timeout(PROBE_REQUEST_TIMEOUT)
        .pool_max_idle_per_host(64)
        .build()
        .context("cannot build an HTTP client")
}

/// Logs `user` in on `device` through the node at `http`.
pub async fn login(
    client: &reqwest::Client,
    http: SocketAddr,
    user: &str,
    device: &str,
) -> Result<Session> {
    let response = client
        .post(format!("http://{http}/v1/sessions"))
        .json(&json!({"user_id": user, "device": device}))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.as_u16() != 201 {
        bail!("login answered {status}: {body}");
    }
    let text = |name: &str| body[name].as_str().map(str::to_string);
    match (text("token"), text("csrf_token")) {
        (Some(token), Some(csrf)) => Ok(Session { token, csrf }),
        _ => bail!("login answer without token: {body}"),
    }
}

/// The status of `GET /v1/session` with `token` (0 when the request failed).
pub async fn validate(client: &reqwest::Client, http: SocketAddr, token: &str) -> u16 {
    match client
        .get(format!("http://{http}/v1/session"))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// `POST /v1/session/rotate`: the new session, or the status that refused it.
pub async fn rotate(
    client: &reqwest::Client,
    http: SocketAddr,
    session: &Session,
) -> Result<Session, u16> {
    let response = client
        .post(format!("http://{http}/v1/session/rotate"))
        .bearer_auth(&session.token)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .map_err(|_| 0u16)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(status);
    }
    let body: Value = response.json().await.map_err(|_| 0u16)?;
    match (body["token"].as_str(), body["csrf_token"].as_str()) {
        (Some(token), Some(csrf)) => Ok(Session {
            token: token.to_string(),
            csrf: csrf.to_string(),
        }),
        _ => Err(0),
    }
}

impl Probe {
    /// Writes the probe's key and logs its user in.
    pub async fn prepare(nodes: &[NodeEntry]) -> Result<Probe> {
        let http = client_from(Ipv4Addr::LOCALHOST)?;
        let addrs: Vec<SocketAddr> = nodes.iter().map(|node| node.http).collect();
        let first = addrs[0];
        let url = format!("http://{first}/v1/kv/{PROBE_KEY}");
        // With the context of what an earlier run left (a cluster directory used again),
        // so the write replaces it instead of adding a sibling (a 300 on every read).
        let earlier = http.get(&url).send().await?;
        let mut put = http.put(&url).body(vec![b'v'; 256]);
        if let Some(context) = earlier.headers().get(crate::api::CONTEXT_HEADER) {
            put = put.header(crate::api::CONTEXT_HEADER, context.clone());
        }
        let put = put.send().await?;
        if !put.status().is_success() {
            bail!("writing the probe key answered {}", put.status());
        }
        let session = login(&http, first, PROBE_USER, "probe").await?;
        Ok(Probe {
            http,
            nodes: addrs,
            session,
        })
    }

    /// Measures the legitimate client for `duration`.
    pub async fn run(&self, duration: Duration) -> ProbeResult {
        let deadline = Instant::now() + duration;
        let loops = (0..PROBE_CLIENTS).map(|index| self.client_loop(index, deadline));
        let mut histogram =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
        let mut errors = 0;
        let mut first_errors = Vec::new();
        for (part, part_errors, reasons) in futures::future::join_all(loops).await {
            histogram.add(part).expect("same bounds");
            errors += part_errors;
            first_errors.extend(reasons);
        }
        first_errors.truncate(PROBE_ERRORS_KEPT);
        ProbeResult {
            ops: histogram.len(),
            errors,
            first_errors,
            p50_ms: histogram.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        }
    }

    async fn client_loop(
        &self,
        index: usize,
        deadline: Instant,
    ) -> (Histogram<u64>, u64, Vec<String>) {
        let mut histogram =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
        let mut errors = 0;
        let mut reasons = Vec::new();
        let mut turn = index;
        while Instant::now() < deadline {
            let node = self.nodes[turn % self.nodes.len()];
            let request = if turn.is_multiple_of(2) {
                self.http.get(format!("http://{node}/v1/kv/{PROBE_KEY}"))
            } else {
                self.http
                    .get(format!("http://{node}/v1/session"))
                    .bearer_auth(&self.session.token)
            };
            turn += 1;
            let started = Instant::now();
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    match response.bytes().await {
                        Ok(_) if status.is_success() => None,
                        Ok(body) => Some(format!("{status} {}", error_code(&body))),
                        Err(error) => Some(format!("{status}, body: {error}")),
                    }
                }
                Err(error) => Some(error.to_string()),
            };
            let micros = started.elapsed().as_micros().clamp(1, 60_000_000) as u64;
            histogram.saturating_record(micros);
            if let Some(failure) = failure {
                errors += 1;
                if reasons.len() < PROBE_ERRORS_KEPT {
                    reasons.push(format!("{node}: {failure}"));
                }
            }
        }
        (histogram, errors, reasons)
    }
}

/// The `code` of an error body (`{"code": ..}`), else its first bytes.
fn error_code(body: &[u8]) -> String {
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.get("code")?.as_str().map(str::to_string));
    code.unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned())
}
