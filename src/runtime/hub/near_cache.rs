//! The session service's near-cache fed by the hub: a listener in tracking mode whose
//! keys are those the cache read, and the task that turns its events into
//! invalidations (`Event::Lost` clears the cache).

use super::{Event, Hub, Interest, ListenError, Listener};
use crate::session::near_cache::{NearCache, NearCacheStats, Watch};
use std::sync::Arc;
use tokio::sync::watch;

impl Watch for Listener {
    fn watch(&self, key: &[u8]) {
        self.track(key);
    }

    fn confirm(&self, key: &[u8], digest: [u8; 32]) {
        Listener::confirm(self, key, digest);
    }
}

/// A near-cache of `bytes_max` bytes counting into `stats`, and the task that keeps it
/// invalidated until `stop`.
pub fn near_cache(
    hub: &Hub,
    (bytes_max, stats): (usize, Arc<NearCacheStats>),
    mut stop: watch::Receiver<bool>,
) -> Result<(Arc<NearCache>, impl std::future::Future<Output = ()>), ListenError> {
    let listener = Arc::new(hub.listen(Interest {
        tracked: true,
        ..Interest::default()
    })?);
    let cache = Arc::new(NearCache::new(bytes_max, listener.clone(), stats));
    let invalidated = cache.clone();
    let task = async move {
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                _ = listener.ready() => {}
            }
            for event in listener.take() {
                match event {
                    Event::Changed { key, .. } => invalidated.invalidate(&key),
                    Event::Lost => invalidated.clear(),
                }
            }
        }
    };
    Ok((cache, task))
}
