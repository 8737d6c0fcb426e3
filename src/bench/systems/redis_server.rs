//! The Redis target: one multiplexed RESP connection, or several taken in turn
//! (`--redis-connections`: against a server that runs one connection's requests one
//! after another, as Redis and cartwheel's RESP edge do, more connections are more
//! requests at once, as redis-benchmark's clients are). Every write is followed by
//! `WAIT n 0` when `--redis-wait n` is given, and only counts as done once `n` replicas
//! acknowledged it. A session is a hash (`sess:TOKEN`: `data` and `cart:SKU` fields); a
//! login-storm token is a plain key (`tok:TOKEN`).

use super::{new_token, Session};
use anyhow::{bail, Context, Result};
use redis::aio::MultiplexedConnection;

/// Most connections `--redis-connections` opens (under a node's per-address cap).
pub const BENCH_REDIS_CONNECTIONS_MAX: usize = 512;

pub struct RedisTarget {
    connections: Vec<MultiplexedConnection>,
    next: std::sync::atomic::AtomicUsize,
    wait_replicas: Option<u32>,
}

fn session_key(session: &Session) -> String {
    format!("sess:{}", session.token)
}

fn token_key(session: &Session) -> String {
    format!("tok:{}", session.token)
}

impl RedisTarget {
    pub async fn connect(url: &str, redis: super::RedisClient) -> Result<RedisTarget> {
        let client = redis::Client::open(url)?;
        if redis.connections == 0 || redis.connections > BENCH_REDIS_CONNECTIONS_MAX {
            bail!("--redis-connections: must be between 1 and {BENCH_REDIS_CONNECTIONS_MAX}");
        }
        let mut connections = Vec::with_capacity(redis.connections);
        for _ in 0..redis.connections {
            let connection = client
                .get_multiplexed_async_connection()
                .await
                .with_context(|| format!("cannot connect to {url}"))?;
            connections.push(connection);
        }
        Ok(RedisTarget {
            connections,
            next: Default::default(),
            wait_replicas: redis.wait_replicas,
        })
    }

    /// The next connection in turn (a handle: the connection itself is shared).
    fn connection(&self) -> MultiplexedConnection {
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.connections[turn % self.connections.len()].clone()
    }

    /// Runs a write, then `WAIT` if asked.
    async fn write(&self, command: &redis::Cmd) -> Result<()> {
        let mut connection = self.connection();
        let _: redis::Value = command.query_async(&mut connection).await?;
        if let Some(replicas) = self.wait_replicas {
            let acked: u32 = redis::cmd("WAIT")
                .arg(replicas)
                .arg(0)
                .query_async(&mut connection)
                .await?;
            if acked < replicas {
                bail!("WAIT {replicas}: only {acked} replicas acknowledged");
            }
        }
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<()> {
        let mut connection = self.connection();
        let _: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write(redis::cmd("SET").arg(key).arg(value)).await
    }

    pub async fn create_session(&self, _user: &str, payload: &[u8]) -> Result<Session> {
        let session = Session {
            token: new_token(),
            csrf: String::new(),
        };
        self.write(
            redis::cmd("HSET")
                .arg(session_key(&session))
                .arg("data")
                .arg(payload),
        )
        .await?;
        Ok(session)
    }

    pub async fn session_read(&self, session: &Session) -> Result<()> {
        let mut connection = self.connection();
        let fields: Vec<Vec<u8>> = redis::cmd("HGETALL")
            .arg(session_key(session))
            .query_async(&mut connection)
            .await?;
        if fields.is_empty() {
            bail!("HGETALL: no session {}", session_key(session));
        }
        Ok(())
    }

    pub async fn cart_add(&self, session: &Session, sku: &str) -> Result<()> {
        self.write(
            redis::cmd("HSET")
                .arg(session_key(session))
                .arg(format!("cart:{sku}"))
                .arg(1),
        )
        .await
    }

    pub async fn login(&self, _user: &str, payload: &[u8]) -> Result<Session> {
        let session = Session {
            token: new_token(),
            csrf: String::new(),
        };
        self.write(redis::cmd("SET").arg(token_key(&session)).arg(payload))
            .await?;
        Ok(session)
    }

    pub async fn validate(&self, session: &Session) -> Result<()> {
        let mut connection = self.connection();
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(token_key(session))
            .query_async(&mut connection)
            .await?;
        if value.is_none() {
            bail!("GET: no token {}", token_key(session));
        }
        Ok(())
    }

    pub async fn logout(&self, session: &Session) -> Result<()> {
        self.write(redis::cmd("DEL").arg(token_key(session))).await
    }
}
