//! What `cartwheel bench` loads: a cartwheel cluster over its HTTP API (requests spread
//! over every node), a Redis server over RESP, or an etcd cluster over gRPC. Each target
//! answers one operation per call, kv or session, mapped to what that system offers:
//!
//! | operation | cartwheel | Redis | etcd |
//! | --- | --- | --- | --- |
//! | get / put | `GET` / `PUT /v1/kv/K` | `GET` / `SET` | Range / Put |
//! | session made before timing | login + prefs padding to `--value-bytes` | `HSET sess:T data V` | Put `sess/T/data` |
//! | session read | `GET /v1/session` | `HGETALL sess:T` | Range of prefix `sess/T/` |
//! | cart add | `POST /v1/session/cart` | `HSET sess:T cart:SKU 1` | Put `sess/T/cart/SKU` |
//! | login / validate / logout | `POST /v1/sessions` / `GET` / `DELETE /v1/session` | `SET tok:T V` / `GET` / `DEL` | Put `tok/T` / Range / DeleteRange |
//!
//! Redis writes are each followed by `WAIT n 0` when asked; Redis requests go over one
//! multiplexed connection, or `--redis-connections N` in turn. Only loopback addresses are
//! ever reached: a spec naming another address is refused.
//!
//! The etcd client is built only with the `etcd` feature (it compiles .proto files, which
//! needs `protoc`); without it an etcd spec still parses, and connecting says how to
//! build a binary that has it.

mod answer;
pub(crate) mod cartwheel;
#[cfg(feature = "etcd")]
mod etcd_cluster;
mod http;
mod pipeline;
mod redis_server;

use anyhow::Result;
use cartwheel::CartwheelTarget;
#[cfg(feature = "etcd")]
use etcd_cluster::EtcdTarget;
use redis_server::RedisTarget;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Most etcd endpoints one `--target etcd://...` may list.
pub const ETCD_ENDPOINTS_MAX: usize = 16;

/// What connecting to an etcd target says in a build without the `etcd` feature.
#[cfg(not(feature = "etcd"))]
pub const ETCD_NOT_BUILT: &str = "this cartwheel was built without the etcd bench target; \
     build it with `cargo build --release --features etcd` (the etcd client compiles \
     .proto files, which needs `protoc` installed)";

/// Where `--target` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// A running cartwheel cluster: its directory (`cluster up --dir`).
    Cartwheel { dir: PathBuf },
    /// `redis://127.0.0.1:PORT`.
    Redis { url: String },
    /// `etcd://127.0.0.1:PORT[,127.0.0.1:PORT...]`: the client endpoints of one cluster.
    Etcd { endpoints: Vec<SocketAddr> },
}

/// A loopback socket address, or why `text` is not one.
fn loopback(spec: &str, text: &str, expected: &str) -> Result<SocketAddr, String> {
    let address: SocketAddr = text
        .trim_end_matches('/')
        .parse()
        .map_err(|_| format!("{spec}: expected {expected}"))?;
    if !address.ip().is_loopback() {
        return Err(format!(
            "{spec}: benchmarks only talk to loopback addresses ({address} is not one)"
        ));
    }
    Ok(address)
}

impl std::str::FromStr for TargetSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "cartwheel" {
            return Ok(TargetSpec::Cartwheel {
                dir: PathBuf::from(".cartwheel"),
            });
        }
        if let Some(rest) = text.strip_prefix("redis://") {
            let address = loopback(text, rest, "redis://127.0.0.1:PORT")?;
            return Ok(TargetSpec::Redis {
                url: format!("redis://{address}/"),
            });
        }
        if let Some(rest) = text.strip_prefix("etcd://") {
            let expected = "etcd://127.0.0.1:PORT[,127.0.0.1:PORT...]";
            let endpoints = rest
                .split(',')
                .map(|part| loopback(text, part.trim(), expected))
                .collect::<Result<Vec<_>, _>>()?;
            if endpoints.len() > ETCD_ENDPOINTS_MAX {
                return Err(format!(
                    "{text}: at most {ETCD_ENDPOINTS_MAX} endpoints, got {}",
                    endpoints.len()
                ));
            }
            return Ok(TargetSpec::Etcd { endpoints });
        }
        Err(format!(
            "{text}: expected cartwheel (with --dir), redis://127.0.0.1:PORT or \
             etcd://127.0.0.1:PORT[,127.0.0.1:PORT...]"
        ))
    }
}

impl TargetSpec {
    /// How the JSON summary names the target.
    pub fn describe(&self, dir: &Path) -> String {
        match self {
            TargetSpec::Cartwheel { .. } => format!("cartwheel {}", dir.display()),
            TargetSpec::Redis { url } => url.clone(),
            TargetSpec::Etcd { endpoints } => {
                let list: Vec<String> = endpoints.iter().map(|a| a.to_string()).collect();
                format!("etcd://{}", list.join(","))
            }
        }
    }
}

/// A session as a bench client holds it: the token, and the CSRF token a cartwheel
/// mutation needs (empty for the other systems).
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub csrf: String,
}

/// How long opening a connection to a cartwheel node may take: a node that does not
/// accept within it is down as far as the bench is concerned (the request fails over to
/// another node).
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);

/// A connected target.
pub enum Target {
    /// Boxed, as is etcd's: both are several times larger than the Redis variant.
    Cartwheel(Box<CartwheelTarget>),
    Redis(RedisTarget),
    #[cfg(feature = "etcd")]
    Etcd(Box<EtcdTarget>),
}

/// Where a cartwheel bench sends kv requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Routing {
    /// To one of the key's replicas, from the ring map (`GET /v1/ring`), as a
    /// token-aware driver does: the node that takes the request is a replica.
    #[default]
    Token,
    /// To every node in turn, as a client that knows nothing of placement.
    Spread,
}

/// How a cartwheel bench carries its requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// HTTP/1.1, one request at a time per kept-alive connection (as many connections
    /// as clients).
    Http,
    /// One connection per node upgraded to `/v1/pipeline`, every client's requests on
    /// it at once, as the Redis client multiplexes its connection.
    #[default]
    Pipeline,
}

/// How a cartwheel bench reaches the nodes.
#[derive(Clone, Copy, Debug, Default)]
pub struct CartwheelClient {
    pub routing: Routing,
    pub protocol: Protocol,
}

/// How a Redis bench talks to its server.
#[derive(Clone, Copy, Debug)]
pub struct RedisClient {
    /// `WAIT n 0` after each write, counted done once `n` replicas have it.
    pub wait_replicas: Option<u32>,
    /// Connections, each request on the next (1: one multiplexed connection carries
    /// every client's requests, as a Redis client library does).
    pub connections: usize,
}

impl Default for RedisClient {
    fn default() -> Self {
        RedisClient {
            wait_replicas: None,
            connections: 1,
        }
    }
}

/// The levels a cartwheel bench asks for (`?r=` / `?w=`), if any.
#[derive(Clone, Copy, Debug, Default)]
pub struct Levels {
    pub read: Option<u32>,
    pub write: Option<u32>,
}

/// 128 random bits as hex: the token a Redis or etcd login makes.
fn new_token() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

macro_rules! each {
    ($target:expr, $inner:ident => $call:expr) => {
        match $target {
            Target::Cartwheel($inner) => $call,
            Target::Redis($inner) => $call,
            #[cfg(feature = "etcd")]
            Target::Etcd($inner) => $call,
        }
    };
}

impl Target {
    pub async fn connect(
        spec: &TargetSpec,
        dir: Option<&PathBuf>,
        redis: RedisClient,
        clients: usize,
        client: CartwheelClient,
    ) -> Result<Target> {
        Ok(match spec {
            TargetSpec::Cartwheel { dir: default } => Target::Cartwheel(Box::new(
                CartwheelTarget::connect(dir.unwrap_or(default), clients, client).await?,
            )),
            TargetSpec::Redis { url } => Target::Redis(RedisTarget::connect(url, redis).await?),
            #[cfg(feature = "etcd")]
            TargetSpec::Etcd { endpoints } => {
                Target::Etcd(Box::new(EtcdTarget::connect(endpoints).await?))
            }
            #[cfg(not(feature = "etcd"))]
            TargetSpec::Etcd { .. } => anyhow::bail!(ETCD_NOT_BUILT),
        })
    }

    /// Sets the read and write levels of a cartwheel target (kv requests only).
    pub fn with_levels(mut self, new: Levels) -> Target {
        if let Target::Cartwheel(target) = &mut self {
            target.levels = new;
        }
        self
    }

    /// How many requests another node answered after the first one tried failed (a
    /// cartwheel target fails over; the others count none).
    pub fn failovers(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        match self {
            Target::Cartwheel(target) => Some(target.failovers()),
            _ => None,
        }
    }

    pub async fn get(&self, key: &str) -> Result<()> {
        each!(self, target => target.get(key).await)
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        each!(self, target => target.put(key, value).await)
    }

    /// Logs `user` in before timing and gives the session a payload of `payload` bytes.
    pub async fn create_session(&self, user: &str, payload: &[u8]) -> Result<Session> {
        each!(self, target => target.create_session(user, payload).await)
    }

    pub async fn session_read(&self, session: &Session) -> Result<()> {
        each!(self, target => target.session_read(session).await)
    }

    pub async fn cart_add(&self, session: &Session, sku: &str) -> Result<()> {
        each!(self, target => target.cart_add(session, sku).await)
    }

    /// A new token for `user` (Redis and etcd store `payload` under it).
    pub async fn login(&self, user: &str, payload: &[u8]) -> Result<Session> {
        each!(self, target => target.login(user, payload).await)
    }

    /// Reads the token a login just made; an unknown token is an error.
    pub async fn validate(&self, session: &Session) -> Result<()> {
        each!(self, target => target.validate(session).await)
    }

    pub async fn logout(&self, session: &Session) -> Result<()> {
        each!(self, target => target.logout(session).await)
    }
}

#[cfg(test)]
mod tests;
