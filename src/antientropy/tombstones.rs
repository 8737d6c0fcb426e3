//! When a tombstone may be collected: only once anti-entropy has seen every other
//! replica of its partition in sync with this one after the delete, and a grace period
//! has passed since. Never by timer alone, so a replica that was away cannot bring the
//! deleted value back. Pure: times come in as arguments.

/// `deleted_ms`: newest timestamp of the tombstone; `synced_ms`: for each other replica
/// of the partition, when this node last found it in sync (None: never).
pub fn collectable(deleted_ms: u64, synced_ms: &[Option<u64>], now_ms: u64, grace_ms: u64) -> bool {
    let all_synced_after = synced_ms
        .iter()
        .all(|synced| synced.is_some_and(|at| at > deleted_ms.saturating_add(grace_ms)));
    all_synced_after && now_ms.saturating_sub(deleted_ms) > grace_ms
}

#[cfg(test)]
mod tests;
