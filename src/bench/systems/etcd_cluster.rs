//! The etcd target: the v3 KV API over gRPC (`etcd-client`), one client balanced over
//! the listed endpoints (a follower forwards writes to the leader, as for any etcd
//! client). A session is the keys under `sess/TOKEN/` (`data`, `cart/SKU`), read with one
//! prefix Range; a login-storm token is the key `tok/TOKEN`. Reads are etcd's default,
//! linearizable ones.

use super::{new_token, Session};
use anyhow::{bail, Context, Result};
use etcd_client::{Client, ConnectOptions, GetOptions, KvClient};
use std::net::SocketAddr;
use std::time::Duration;

/// How long one etcd request may take before it counts as an error.
pub const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to the endpoints may take.
pub const ETCD_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct EtcdTarget {
    kv: KvClient,
}

fn session_prefix(session: &Session) -> String {
    format!("sess/{}/", session.token)
}

fn token_key(session: &Session) -> String {
    format!("tok/{}", session.token)
}

impl EtcdTarget {
    pub async fn connect(endpoints: &[SocketAddr]) -> Result<EtcdTarget> {
        let urls: Vec<String> = endpoints
            .iter()
            .map(|address| format!("http://{address}"))
            .collect();
        let options = ConnectOptions::new()
            .with_connect_timeout(ETCD_CONNECT_TIMEOUT)
            .with_timeout(ETCD_REQUEST_TIMEOUT);
        let client = Client::connect(&urls, Some(options))
            .await
            .with_context(|| format!("cannot connect to etcd at {}", urls.join(",")))?;
        let mut kv = client.kv_client();
        // A first request, so a wrong port fails here rather than as bench errors.
        kv.get("bench-probe", None)
            .await
            .with_context(|| format!("etcd at {} does not answer", urls.join(",")))?;
        Ok(EtcdTarget { kv })
    }

    pub async fn get(&self, key: &str) -> Result<()> {
        self.kv.clone().get(key, None).await?;
        Ok(())
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.kv.clone().put(key, value, None).await?;
        Ok(())
    }

    pub async fn create_session(&self, _user: &str, payload: &[u8]) -> Result<Session> {
        let session = Session {
            token: new_token(),
            csrf: String::new(),
        };
        let key = format!("{}data", session_prefix(&session));
        self.kv.clone().put(key, payload, None).await?;
        Ok(session)
    }

    pub async fn session_read(&self, session: &Session) -> Result<()> {
        let prefix = session_prefix(session);
        let answer = self
            .kv
            .clone()
            .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await?;
        if answer.kvs().is_empty() {
            bail!("Range: no session under {prefix}");
        }
        Ok(())
    }

    pub async fn cart_add(&self, session: &Session, sku: &str) -> Result<()> {
        let key = format!("{}cart/{sku}", session_prefix(session));
        self.kv.clone().put(key, "1", None).await?;
        Ok(())
    }

    pub async fn login(&self, _user: &str, payload: &[u8]) -> Result<Session> {
        let session = Session {
            token: new_token(),
            csrf: String::new(),
        };
        self.kv
            .clone()
            .put(token_key(&session), payload, None)
            .await?;
        Ok(session)
    }

    pub async fn validate(&self, session: &Session) -> Result<()> {
        let answer = self.kv.clone().get(token_key(session), None).await?;
        if answer.kvs().is_empty() {
            bail!("Range: no token {}", token_key(session));
        }
        Ok(())
    }

    pub async fn logout(&self, session: &Session) -> Result<()> {
        self.kv.clone().delete(token_key(session), None).await?;
        Ok(())
    }
}
