//! One closed-loop session client: drives its users over the session HTTP API of its
//! own region's nodes, through its region's driver (which fails over to another node of
//! the region when one stops answering; session writes only when they were certainly
//! not sent), and records every request (kind, region, node, start, end,
//! outcome, token presented), every token it received and every cart add. It decides
//! nothing about correctness; `history` and `verify` do.

use super::history::{
    CartAdd, Code, OpKind, OpRecord, Outcome, Removal, Retire, RetireKind, TokenEntry,
};
use super::{Choice, SessionMix};
use crate::sim::driver::{Drivers, Retry, Sent};
use crate::sim::report::Table;
use crate::sim::routes::Routes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Numbers the idempotency keys of this process's session changes.
static OPERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Requests one client records; when full the client stops early and says so (a check
/// over part of a history would not be complete).
pub const OPS_PER_CLIENT_MAX: usize = 200_000;
/// Tokens one client records; when full rotations and logouts become reads, and a
/// client that needs a new login stops early.
pub const TOKENS_PER_CLIENT_MAX: usize = 20_000;
/// Cart adds one client records; when full cart adds become reads.
pub const CART_ADDS_PER_CLIENT_MAX: usize = 100_000;
/// Recently retired tokens a client keeps to present again; the oldest is dropped.
pub const RETIRED_POOL_MAX: usize = 64;
/// Distinct pref names a client sets.
pub const PREF_NAMES: u32 = 8;
/// How long a user whose login failed without an answer (a 5xx, a timeout) waits
/// before logging in again, as a person shown an error page would: without it a
/// closed-loop client retries logins as fast as they fail, and during an outage every
/// failed attempt leaves a partly written token behind for anti-entropy.
pub const LOGIN_RETRY_PAUSE_MS: u64 = 1_000;
/// Pause when a step sent nothing: the driver holds every node of the region down, or
/// the user picked waits to log in again.
pub const NO_ROUTE_PAUSE_MS: u64 = 50;

/// What every client of a run shares (the kv clients take their parts of it too).
#[derive(Clone)]
pub struct Shared {
    pub http: reqwest::Client,
    pub routes: Routes,
    /// Every region's driver: the clients send through them, never to a node directly.
    pub drivers: Arc<Drivers>,
    /// Whether a fault is on (its operations are also counted apart).
    pub faulted: Arc<crate::sim::report::FaultsOn>,
    pub stop: watch::Receiver<bool>,
    /// Operations finished by every client, per region, for the progress lines.
    pub live: Arc<crate::sim::live::LiveCounts>,
    /// Times are microseconds since this instant.
    pub epoch: Instant,
    /// Region names in the topology's order; records keep an index.
    pub regions: Arc<Vec<String>>,
}

/// One client.
#[derive(Clone, Debug)]
pub struct SessionClientSpec {
    /// Index of its region in `Shared::regions`.
    pub region: u8,
    /// Its index within the region; client i of every region drives the same users.
    pub index: u32,
    pub mix: SessionMix,
    pub seed: u64,
}

/// A finished client.
pub struct SessionClientResult {
    pub region: u8,
    pub index: u32,
    /// User ids, in the order `TokenEntry::user` and `CartAdd::user` index.
    pub users: Vec<String>,
    pub table: Table,
    pub ops: Vec<OpRecord>,
    pub tokens: Vec<TokenEntry>,
    pub adds: Vec<CartAdd>,
    /// The client stopped early because a record list was full.
    pub truncated: bool,
}

/// One user as the client sees it.
#[derive(Default)]
struct Slot {
    token: Option<u32>,
    /// Acknowledged adds (indices into `adds`) not asked to be removed.
    live_adds: Vec<u32>,
    devices: u32,
    /// No login before this time (µs since the epoch) after one failed unanswered.
    login_after_us: u64,
}

/// A finished request.
/// How a request of the session API may be retried (README, "Retrying safely"), and
/// whether it carries an `Idempotency-Key`: reads speculate; cart, prefs and history
/// changes and rotations carry a key and are retried anywhere (a rotation retried with
/// its key makes the same successor, and is not taken for a reuse); logins (a repeat
/// makes a second token, never handed out) and logouts (revoking twice is revoking
/// once) are retried anywhere too.
pub(super) fn retry_rule(method: &Method, path: &str) -> (Retry, bool) {
    match (method, path) {
        (&Method::GET, _) => (Retry::Speculate, false),
        (&Method::POST, "/v1/sessions") | (&Method::DELETE, "/v1/session") => {
            (Retry::Always, false)
        }
        (_, path) if path.starts_with("/v1/session/") => (Retry::Always, true),
        _ => (Retry::IfNotSent, false),
    }
}

/// How long one attempt waits for its answer: a read `SIM_READ_ATTEMPT_TIMEOUT_MS`, a
/// write `SIM_WRITE_ATTEMPT_TIMEOUT_MS`, and a revocation (logout, rotation) as long
/// again as a node may hold it while a region is going down (`AUTH_REVOCATION_WAIT_MS`,
/// README "Region outages and partitions"): a client that gave up sooner would count
/// a logout the node was about to confirm as failed.
pub(super) fn attempt_timeout_ms(method: &Method, path: &str) -> u64 {
    use crate::limits::{
        AUTH_REVOCATION_WAIT_MS, SIM_READ_ATTEMPT_TIMEOUT_MS, SIM_WRITE_ATTEMPT_TIMEOUT_MS,
    };
    match (method, path) {
        (&Method::GET, _) => SIM_READ_ATTEMPT_TIMEOUT_MS,
        (&Method::DELETE, "/v1/session") | (_, "/v1/session/rotate") => {
            AUTH_REVOCATION_WAIT_MS + SIM_WRITE_ATTEMPT_TIMEOUT_MS
        }
        _ => SIM_WRITE_ATTEMPT_TIMEOUT_MS,
    }
}

struct Done {
    /// The node that answered, or was tried last.
    node: SocketAddr,
    /// An earlier attempt of this request, on another node, may have been applied.
    earlier_maybe_applied: bool,
    outcome: Outcome,
    body: Option<Value>,
    start_us: u64,
    end_us: u64,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    code: String,
}

struct Client {
    spec: SessionClientSpec,
    shared: Shared,
    rng: StdRng,
    slots: Vec<Slot>,
    /// Tokens whose rotation or logout was acknowledged, newest last.
    retired: VecDeque<u32>,
    result: SessionClientResult,
    skus: u64,
}

/// Runs one client until the run stops.
pub async fn run_client(spec: SessionClientSpec, shared: Shared) -> SessionClientResult {
    let mut client = Client::new(spec, shared);
    while !*client.shared.stop.borrow() && !client.result.truncated {
        let user = client.rng.gen_range(0..client.slots.len());
        if !client.step(user).await {
            tokio::time::sleep(Duration::from_millis(NO_ROUTE_PAUSE_MS)).await;
        }
    }
    client.result
}

impl Client {
    fn new(spec: SessionClientSpec, shared: Shared) -> Client {
        let users_per_client = spec.mix.users_per_client;
        let users = (0..users_per_client)
            .map(|user| format!("u{}", spec.index * users_per_client + user))
            .collect::<Vec<_>>();
        Client {
            rng: StdRng::seed_from_u64(spec.seed),
            slots: users.iter().map(|_| Slot::default()).collect(),
            retired: VecDeque::new(),
            result: SessionClientResult {
                region: spec.region,
                index: spec.index,
                users,
                table: Table::new(),
                ops: Vec::new(),
                tokens: Vec::new(),
                adds: Vec::new(),
                truncated: false,
            },
            skus: 0,
            spec,
            shared,
        }
    }

    fn region_name(&self, region: u8) -> &str {
        &self.shared.regions[region as usize]
    }

    fn now_us(&self) -> u64 {
        self.shared.epoch.elapsed().as_micros() as u64
    }

    /// One step of `user`; false when nothing was sent (every node of the region is
    /// held down by the driver).
    async fn step(&mut self, user: usize) -> bool {
        let Some(token) = self.slots[user].token else {
            if self.now_us() < self.slots[user].login_after_us {
                return false;
            }
            return self.login(user).await;
        };
        let weights = self.spec.mix.weights;
        let choice = weights.pick(self.rng.gen_range(0..weights.total()));
        let tokens_full = self.result.tokens.len() >= TOKENS_PER_CLIENT_MAX;
        match choice {
            Choice::CartAdd | Choice::CartRemove => {
                // Keep every cart between empty and the client's line limit.
                let live = self.slots[user].live_adds.len();
                let add = live == 0
                    || (live < self.spec.mix.cart_lines_per_user && choice == Choice::CartAdd);
                if add {
                    self.cart_add(user, token).await
                } else {
                    self.cart_remove(user, token).await
                }
            }
            Choice::PrefSet => {
                let name = format!("pref{}", self.rng.gen_range(0..PREF_NAMES));
                let value = json!({ "value": format!("v{}", self.rng.gen::<u32>()) });
                let path = format!("/v1/session/prefs/{name}");
                self.user_write(user, token, OpKind::PrefSet, Method::PUT, &path, value)
                    .await
                    .is_some()
            }
            Choice::HistoryAdd => {
                let item = json!({ "item": format!("item-{}", self.rng.gen::<u32>()) });
                let path = "/v1/session/history";
                self.user_write(user, token, OpKind::HistoryAdd, Method::POST, path, item)
                    .await
                    .is_some()
            }
            Choice::Rotate if !tokens_full => self.retire(user, token, RetireKind::Rotate).await,
            Choice::Logout if !tokens_full => self.retire(user, token, RetireKind::Logout).await,
            Choice::Replay if !self.retired.is_empty() => {
                self.replay().await;
                true
            }
            _ => self.read(user, token).await,
        }
    }

    /// Sends one request to a node of `region` through its driver, presenting token
    /// `token` (and its CSRF token if `csrf`), retried as `retry_rule` says; `None`
    /// when the driver holds every node of the region down.
    async fn send(
        &self,
        region: u8,
        method: Method,
        path: &str,
        token: Option<u32>,
        csrf: bool,
        body: Option<Value>,
    ) -> Option<Done> {
        let driver = self.shared.drivers.of(self.region_name(region))?;
        let entry = token.map(|t| &self.result.tokens[t as usize]);
        let (retry, change) = retry_rule(&method, path);
        // A change of the session document or a rotation carries an idempotency key,
        // so a retry on another node is applied once.
        let key = change.then(|| {
            let operation = OPERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("sim-{}-{operation}", std::process::id())
        });
        let timeout_ms = attempt_timeout_ms(&method, path);
        let build = |http: &reqwest::Client, node: SocketAddr| {
            let mut request = http.request(method.clone(), format!("http://{node}{path}"));
            if let Some(key) = &key {
                request = request.header("idempotency-key", key);
            }
            if let Some(entry) = entry {
                request = request.bearer_auth(&entry.token);
                if csrf {
                    request = request.header("x-csrf-token", &entry.csrf);
                }
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            request
        };
        let start_us = self.now_us();
        let turn = start_us as usize;
        let sent = driver
            .send(None, retry, Duration::from_millis(timeout_ms), turn, build)
            .await;
        let mut earlier_maybe_applied = false;
        let (node, outcome, body) = match sent {
            Sent::NoNode => return None,
            Sent::Failed { node, .. } => (node, Outcome::Uncertain(None), None),
            Sent::Answered {
                node,
                response,
                earlier_maybe_applied: earlier,
            } => {
                earlier_maybe_applied = earlier;
                let status = response.status().as_u16();
                let bytes = response.bytes().await.ok();
                let json = bytes.and_then(|b| serde_json::from_slice::<Value>(&b).ok());
                let outcome = match status {
                    200..=299 => Outcome::Ok(status),
                    400..=499 => Outcome::Refused {
                        status,
                        code: json
                            .clone()
                            .and_then(|v| serde_json::from_value::<ErrorBody>(v).ok())
                            .map(|e| Code::parse(&e.code))
                            .unwrap_or(Code::Other),
                    },
                    _ => Outcome::Uncertain(Some(status)),
                };
                (node, outcome, json)
            }
        };
        Some(Done {
            node,
            earlier_maybe_applied,
            outcome,
            body,
            start_us,
            end_us: self.now_us(),
        })
    }

    /// Records a finished request in the history and the latency table.
    fn record(&mut self, kind: OpKind, region: u8, token: Option<u32>, done: &Done) {
        let op = OpRecord {
            kind,
            region,
            node: done.node,
            start_us: done.start_us,
            end_us: done.end_us,
            outcome: done.outcome,
            token,
        };
        let expected = op.met();
        let faulted = self.shared.faulted.any();
        let region_name = self.region_name(region).to_string();
        for row in [Some(kind.name()), kind.class_row()].into_iter().flatten() {
            let mut names = vec![row.to_string()];
            if faulted {
                names.push(format!("{row}_during_fault"));
            }
            for name in names {
                let stats = self
                    .result
                    .table
                    .entry((region_name.clone(), name))
                    .or_default();
                if expected {
                    stats.record_ok(done.end_us.saturating_sub(done.start_us));
                } else {
                    stats.errors += 1;
                }
            }
        }
        if self.result.ops.len() >= OPS_PER_CLIENT_MAX {
            self.result.truncated = true;
        } else {
            self.result.ops.push(op);
        }
        let micros = done.end_us.saturating_sub(done.start_us);
        self.shared.live.record(&region_name, micros, expected);
    }

    /// Keeps the token of a login or rotation answer; `None` if there is none.
    fn accept_token(&mut self, user: usize, done: &Done) -> Option<u32> {
        let body = done.body.as_ref().filter(|_| done.outcome.is_ok())?;
        let (token, csrf) = (body["token"].as_str()?, body["csrf_token"].as_str()?);
        if self.result.tokens.len() >= TOKENS_PER_CLIENT_MAX {
            self.result.truncated = true;
            return None;
        }
        self.result.tokens.push(TokenEntry {
            user: user as u16,
            token: token.to_string(),
            csrf: csrf.to_string(),
            created_ack_us: done.end_us,
            retire: None,
        });
        Some(self.result.tokens.len() as u32 - 1)
    }

    /// A refusal of the current token ends its use: the next step logs in again.
    fn after_use(&mut self, user: usize, done: &Done) {
        if done.outcome.is_unauthorized() {
            self.slots[user].token = None;
        }
    }

    async fn login(&mut self, user: usize) -> bool {
        self.slots[user].devices += 1;
        let device = format!(
            "{}-c{}-d{}",
            self.region_name(self.spec.region),
            self.spec.index,
            self.slots[user].devices
        );
        let body = json!({ "user_id": self.result.users[user], "device": device });
        let region = self.spec.region;
        let sent = self.send(
            region,
            Method::POST,
            "/v1/sessions",
            None,
            false,
            Some(body),
        );
        let Some(done) = sent.await else {
            return false;
        };
        self.record(OpKind::Login, region, None, &done);
        if let Outcome::Uncertain(_) = done.outcome {
            self.slots[user].login_after_us = done.end_us + LOGIN_RETRY_PAUSE_MS * 1000;
        }
        let token = self.accept_token(user, &done);
        self.slots[user].token = token;
        if let Some(token) = token {
            if self.rng.gen_bool(self.spec.mix.cross_region_sample) {
                self.probe_regions(token, OpKind::RemoteRead).await;
            }
        }
        true
    }

    async fn read(&mut self, user: usize, token: u32) -> bool {
        let region = self.spec.region;
        let sent = self.send(region, Method::GET, "/v1/session", Some(token), false, None);
        let Some(done) = sent.await else {
            return false;
        };
        self.record(OpKind::Read, region, Some(token), &done);
        self.after_use(user, &done);
        true
    }

    /// A write of the user's own data; its outcome, `None` when nothing was sent.
    async fn user_write(
        &mut self,
        user: usize,
        token: u32,
        kind: OpKind,
        method: Method,
        path: &str,
        body: Value,
    ) -> Option<Outcome> {
        let region = self.spec.region;
        let done = self
            .send(region, method, path, Some(token), true, Some(body))
            .await?;
        self.record(kind, region, Some(token), &done);
        self.after_use(user, &done);
        Some(done.outcome)
    }

    async fn cart_add(&mut self, user: usize, token: u32) -> bool {
        if self.result.adds.len() >= CART_ADDS_PER_CLIENT_MAX {
            return self.read(user, token).await;
        }
        self.skus += 1;
        let sku = format!(
            "{}-c{}-s{}",
            self.region_name(self.spec.region),
            self.spec.index,
            self.skus
        );
        let body = json!({ "op": "add", "sku": sku, "qty": 1 });
        let (kind, path) = (OpKind::CartAdd, "/v1/session/cart");
        let sent = self.user_write(user, token, kind, Method::POST, path, body);
        let Some(outcome) = sent.await else {
            return false;
        };
        self.result.adds.push(CartAdd {
            user: user as u16,
            sku,
            acked: outcome.is_ok(),
            removal: Removal::None,
        });
        if outcome.is_ok() {
            let index = self.result.adds.len() as u32 - 1;
            self.slots[user].live_adds.push(index);
        }
        true
    }

    async fn cart_remove(&mut self, user: usize, token: u32) -> bool {
        let live = &mut self.slots[user].live_adds;
        if live.is_empty() {
            return true;
        }
        let pick = self.rng.gen_range(0..live.len());
        let add = live[pick];
        let sku = self.result.adds[add as usize].sku.clone();
        let body = json!({ "op": "remove", "sku": sku });
        let (kind, path) = (OpKind::CartRemove, "/v1/session/cart");
        let sent = self.user_write(user, token, kind, Method::POST, path, body);
        let Some(outcome) = sent.await else {
            return false;
        };
        self.slots[user].live_adds.swap_remove(pick);
        let removal = match outcome {
            Outcome::Refused { .. } => {
                self.slots[user].live_adds.push(add);
                Removal::Refused
            }
            Outcome::Ok(_) | Outcome::Uncertain(_) => Removal::Attempted,
        };
        self.result.adds[add as usize].removal = removal;
        true
    }

    /// Rotates or logs out the current token; on success the old one joins the pool of
    /// tokens presented again, and (sampled) is tried at once in every region.
    async fn retire(&mut self, user: usize, token: u32, kind: RetireKind) -> bool {
        let (method, path, op) = match kind {
            RetireKind::Rotate => (Method::POST, "/v1/session/rotate", OpKind::Rotate),
            RetireKind::Logout => (Method::DELETE, "/v1/session", OpKind::Logout),
            // Not a request: what the nodes do to a chain after a reuse.
            RetireKind::ChainRevoked => return true,
        };
        let region = self.spec.region;
        let sent = self.send(region, method, path, Some(token), true, None);
        let Some(done) = sent.await else {
            return false;
        };
        let mut done = done;
        let revoked = Outcome::Refused {
            status: 401,
            code: Code::TokenRevoked,
        };
        if kind == RetireKind::Logout && done.earlier_maybe_applied && done.outcome == revoked {
            // The first attempt revoked the token and the retry found it revoked: the
            // logout is done, as an application would take it.
            done.outcome = Outcome::Ok(204);
        }
        self.record(op, region, Some(token), &done);
        self.slots[user].token = None;
        if let Outcome::Refused { .. } = done.outcome {
            // Definitely not applied; a 401 here is a live token refused.
            return true;
        }
        let acked = done.outcome.is_ok();
        self.result.tokens[token as usize].retire = Some(Retire {
            kind,
            started_us: done.start_us,
            acked_us: acked.then_some(done.end_us),
        });
        if !acked {
            return true;
        }
        if kind == RetireKind::Rotate {
            self.slots[user].token = self.accept_token(user, &done);
        }
        if self.retired.len() == RETIRED_POOL_MAX {
            self.retired.pop_front();
        }
        self.retired.push_back(token);
        if self.rng.gen_bool(self.spec.mix.cross_region_sample) {
            self.probe_regions(token, OpKind::RetiredRead).await;
        }
        true
    }

    /// Presents a retired token in a random region.
    async fn replay(&mut self) {
        let token = self.retired[self.rng.gen_range(0..self.retired.len())];
        let region = self.rng.gen_range(0..self.shared.regions.len()) as u8;
        let sent = self.send(region, Method::GET, "/v1/session", Some(token), false, None);
        let Some(done) = sent.await else {
            return;
        };
        self.record(OpKind::RetiredRead, region, Some(token), &done);
        self.after_reuse(token, done.start_us);
    }

    /// A rotated token presented again is taken by the nodes as a theft: they revoke
    /// its whole rotation chain, the user's current token included when it descends
    /// from it. The client stops using that token (the next step logs in again) and its
    /// refusals from then on are expected.
    fn after_reuse(&mut self, token: u32, start_us: u64) {
        let Some(entry) = self.result.tokens.get(token as usize) else {
            return;
        };
        if !matches!(
            entry.retire,
            Some(Retire {
                kind: RetireKind::Rotate,
                ..
            })
        ) {
            return;
        }
        let user = entry.user as usize;
        let Some(live) = self.slots.get(user).and_then(|slot| slot.token) else {
            return;
        };
        if let Some(live_entry) = self.result.tokens.get_mut(live as usize) {
            live_entry.retire.get_or_insert(Retire {
                kind: RetireKind::ChainRevoked,
                started_us: start_us,
                acked_us: None,
            });
        }
        self.slots[user].token = None;
    }

    /// Validates `token` at once in other regions: every other region for a fresh
    /// token (`RemoteRead`), every region for a retired one (`RetiredRead`).
    async fn probe_regions(&mut self, token: u32, kind: OpKind) {
        let targets: Vec<u8> = (0..self.shared.regions.len() as u8)
            .filter(|region| kind != OpKind::RemoteRead || *region != self.spec.region)
            .collect();
        let probes = targets.iter().map(|region| {
            self.send(
                *region,
                Method::GET,
                "/v1/session",
                Some(token),
                false,
                None,
            )
        });
        let dones = futures::future::join_all(probes).await;
        let first_start_us = dones.iter().flatten().map(|done| done.start_us).min();
        for (region, done) in targets.into_iter().zip(dones) {
            if let Some(done) = done {
                self.record(kind, region, Some(token), &done);
            }
        }
        if let (OpKind::RetiredRead, Some(start_us)) = (kind, first_start_us) {
            self.after_reuse(token, start_us);
        }
    }
}
