//! The worker that reports expiries into this node's feed at their deadlines
//! (`replica::deadlines`), every `EXPIRY_REPORT_INTERVAL_MS`, by the node's data clock.

use crate::coordinator::WallClock;
use crate::limits;
use crate::replica::deadlines::Reported;
use crate::replica::Replica;
use crate::runtime::clock::NodeClock;
use crate::runtime::state::ClusterState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Runs until `stop`.
pub async fn report_expired(
    replica: Arc<Replica>,
    state: Arc<ClusterState>,
    clock: Arc<NodeClock>,
    mut stop: watch::Receiver<bool>,
) {
    let mut reported = Reported::starting_at(clock.now_ms());
    let interval = Duration::from_millis(limits::EXPIRY_REPORT_INTERVAL_MS);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let held: Vec<_> = state.held().into_iter().collect();
        let now_ms = clock.now_ms();
        reported.retain(&held, now_ms);
        let replica = replica.clone();
        let pass = tokio::task::spawn_blocking(move || {
            let count = replica.report_expired(
                &held,
                &mut reported,
                now_ms,
                limits::EXPIRY_REPORT_ENTRIES_MAX,
            );
            (reported, count)
        })
        .await;
        match pass {
            Ok((back, _)) => reported = back,
            Err(error) => {
                tracing::warn!(%error, "the expiry report failed; starting again from now");
                reported = Reported::starting_at(clock.now_ms());
            }
        }
    }
}
