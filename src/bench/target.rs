//! What `cartwheel bench` loads: a cartwheel cluster over its HTTP API (requests spread
//! over every node), or a Redis server over RESP (GET / SET, optionally each write
//! followed by `WAIT n`). Each target answers one get or put at a time per call.

use crate::api::CONTEXT_HEADER;
use crate::cluster::ClusterFile;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Keys whose context a cartwheel target remembers; writes to others go without one.
pub const CONTEXTS_MAX: usize = 1_000_000;

fn remember(contexts: &Mutex<HashMap<String, String>>, key: &str, response: &reqwest::Response) {
    let Some(context) = response
        .headers()
        .get(CONTEXT_HEADER)
        .and_then(|value| value.to_str().ok())
    else {
        return;
    };
    let mut contexts = contexts.lock().expect("contexts lock");
    if contexts.len() < CONTEXTS_MAX || contexts.contains_key(key) {
        contexts.insert(key.to_string(), context.to_string());
    }
}
use std::time::Duration;

/// Where `--target` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// A running cartwheel cluster: its directory (`cluster up --dir`).
    Cartwheel { dir: PathBuf },
    /// `redis://127.0.0.1:PORT`.
    Redis { url: String },
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
            let address: SocketAddr = rest
                .trim_end_matches('/')
                .parse()
                .map_err(|_| format!("{text}: expected redis://127.0.0.1:PORT"))?;
            if !address.ip().is_loopback() {
                return Err(format!(
                    "{text}: benchmarks only talk to loopback addresses"
                ));
            }
            return Ok(TargetSpec::Redis {
                url: format!("redis://{address}/"),
            });
        }
        Err(format!(
            "{text}: expected cartwheel (with --dir) or redis://127.0.0.1:PORT"
        ))
    }
}

/// A connected target.
pub enum Target {
    Cartwheel {
        http: reqwest::Client,
        nodes: Vec<SocketAddr>,
        next: AtomicUsize,
        levels: Levels,
        /// The causal context last seen per key, sent with the next write like a real
        /// client does (a blind write would add a sibling). At most `CONTEXTS_MAX`.
        contexts: Mutex<HashMap<String, String>>,
    },
    Redis {
        connection: redis::aio::MultiplexedConnection,
        wait_replicas: Option<u32>,
    },
}

/// The levels a cartwheel bench asks for (`?r=` / `?w=`), if any.
#[derive(Clone, Copy, Debug, Default)]
pub struct Levels {
    pub read: Option<u32>,
    pub write: Option<u32>,
}

impl Target {
    pub async fn connect(
        spec: &TargetSpec,
        dir: Option<&PathBuf>,
        wait_replicas: Option<u32>,
        clients: usize,
    ) -> Result<Target> {
        match spec {
            TargetSpec::Cartwheel { dir: default } => {
                let dir = dir.unwrap_or(default);
                let file = ClusterFile::load(dir)
                    .with_context(|| format!("no running cluster in {}", dir.display()))?;
                let nodes: Vec<SocketAddr> = file.nodes.iter().map(|node| node.http).collect();
                if nodes.is_empty() {
                    bail!("the cluster in {} has no node", dir.display());
                }
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .pool_max_idle_per_host(clients.max(1))
                    .build()?;
                Ok(Target::Cartwheel {
                    http,
                    nodes,
                    next: AtomicUsize::new(0),
                    levels: Levels::default(),
                    contexts: Mutex::new(HashMap::new()),
                })
            }
            TargetSpec::Redis { url } => {
                let client = redis::Client::open(url.as_str())?;
                let connection = client
                    .get_multiplexed_async_connection()
                    .await
                    .with_context(|| format!("cannot connect to {url}"))?;
                Ok(Target::Redis {
                    connection,
                    wait_replicas,
                })
            }
        }
    }

    /// Sets the read and write levels of a cartwheel target.
    pub fn with_levels(mut self, new: Levels) -> Target {
        if let Target::Cartwheel { levels, .. } = &mut self {
            *levels = new;
        }
        self
    }

    /// The URL of `key` on the next node in turn, with `param=count` when a level is set.
    fn url(
        nodes: &[SocketAddr],
        next: &AtomicUsize,
        key: &str,
        param: &str,
        count: Option<u32>,
    ) -> String {
        let node = nodes[next.fetch_add(1, Ordering::Relaxed) % nodes.len()];
        match count {
            Some(count) => format!("http://{node}/v1/kv/{key}?{param}={count}"),
            None => format!("http://{node}/v1/kv/{key}"),
        }
    }

    pub async fn get(&self, key: &str) -> Result<()> {
        match self {
            Target::Cartwheel {
                http,
                nodes,
                next,
                levels,
                contexts,
            } => {
                let url = Self::url(nodes, next, key, "r", levels.read);
                let response = http.get(url).send().await?;
                remember(contexts, key, &response);
                match response.status().as_u16() {
                    200 | 300 | 404 => Ok(()),
                    other => bail!("GET answered {other}"),
                }
            }
            Target::Redis { connection, .. } => {
                let mut connection = connection.clone();
                let _: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut connection)
                    .await?;
                Ok(())
            }
        }
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        match self {
            Target::Cartwheel {
                http,
                nodes,
                next,
                levels,
                contexts,
            } => {
                let url = Self::url(nodes, next, key, "w", levels.write);
                let known = contexts.lock().expect("contexts lock").get(key).cloned();
                let mut request = http.put(url).body(value.to_vec());
                if let Some(context) = known {
                    request = request.header(CONTEXT_HEADER, context);
                }
                let response = request.send().await?;
                remember(contexts, key, &response);
                let status = response.status().as_u16();
                if status != 204 {
                    bail!("PUT answered {status}");
                }
                Ok(())
            }
            Target::Redis {
                connection,
                wait_replicas,
            } => {
                let mut connection = connection.clone();
                let () = redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .query_async(&mut connection)
                    .await?;
                if let Some(replicas) = wait_replicas {
                    let acked: u32 = redis::cmd("WAIT")
                        .arg(*replicas)
                        .arg(0)
                        .query_async(&mut connection)
                        .await?;
                    if acked < *replicas {
                        bail!("WAIT {replicas}: only {acked} replicas acknowledged");
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_refuse_what_is_not_loopback() {
        assert_eq!(
            "redis://127.0.0.1:6379".parse::<TargetSpec>(),
            Ok(TargetSpec::Redis {
                url: "redis://127.0.0.1:6379/".into()
            })
        );
        assert!("redis://10.0.0.1:6379".parse::<TargetSpec>().is_err());
        assert!("redis://localhost".parse::<TargetSpec>().is_err());
        assert!("postgres://x".parse::<TargetSpec>().is_err());
        assert!(matches!(
            "cartwheel".parse::<TargetSpec>(),
            Ok(TargetSpec::Cartwheel { .. })
        ));
    }

    #[test]
    fn cartwheel_urls_rotate_over_nodes_and_carry_only_their_level() {
        let nodes: Vec<SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ];
        let next = AtomicUsize::new(0);
        let first = Target::url(&nodes, &next, "k", "r", Some(2));
        let second = Target::url(&nodes, &next, "k", "w", Some(2));
        assert_eq!(first, "http://127.0.0.1:1/v1/kv/k?r=2");
        assert_eq!(second, "http://127.0.0.1:2/v1/kv/k?w=2");
        assert_eq!(
            Target::url(&nodes, &next, "k", "r", None),
            "http://127.0.0.1:1/v1/kv/k"
        );
    }
}
