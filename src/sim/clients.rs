//! What the sim's client families beside the kv workload (sessions, RESP) share: one
//! task per client in every region, each with a seed of its own, and joining them.
//! It knows nothing of what a client does.

use anyhow::{Context, Result};
use std::future::Future;
use tokio::task::JoinHandle;

/// Starts `per_region` clients in each of `regions` regions: `start(region, index,
/// seed)` makes each one's future; seeds differ from client to client.
pub fn spawn_per_region<T, F, Run>(
    regions: usize,
    per_region: u32,
    seed: u64,
    mut start: F,
) -> Vec<JoinHandle<T>>
where
    F: FnMut(u8, u32, u64) -> Run,
    Run: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut clients = Vec::new();
    for region in 0..regions {
        let region = u8::try_from(region).expect("a topology has at most 255 regions");
        for index in 0..per_region {
            let seed = seed ^ (clients.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            clients.push(tokio::spawn(start(region, index, seed)));
        }
    }
    clients
}

/// Waits for every client to finish; `what` names them in the error of one that
/// panicked.
pub async fn join_all<T>(clients: Vec<JoinHandle<T>>, what: &str) -> Result<Vec<T>> {
    let mut results = Vec::with_capacity(clients.len());
    for client in clients {
        results.push(
            client
                .await
                .with_context(|| format!("a {what} client failed"))?,
        );
    }
    Ok(results)
}
