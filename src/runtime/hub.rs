//! The node's change hub: it reads the change feeds (`crate::feed`) of every node of its
//! region, itself included, while anyone listens, and hands each change to the
//! listeners it concerns: a RESP connection tracking the keys it read (`Interest::
//! tracked`, told once per read), one tracking key prefixes (`CLIENT TRACKING BCAST`)
//! or one that wants every change (keyspace notifications, the HTTP feed). Every
//! replica of a key in this region is one of those nodes, so a change made anywhere
//! reaches this hub once it is applied to one of them (through replication, hints or
//! anti-entropy).
//!
//! It never misses a change silently: a feed that fell behind, a peer that did not
//! answer and a listener whose undelivered events passed `LISTENER_PENDING_BYTES_MAX`
//! each give the listeners concerned `Event::Lost` ("everything may have changed"), and
//! a read that starts on a feed starts with one. Listeners see changes after a read
//! was registered (`Listener::track` before the read), so a change racing the read is
//! told after the read's answer.

use crate::feed::tracking::{Table, TrackedKey};
use crate::feed::{Change, ChangeKind, Cursor, Feed, Page};
use crate::ids::NodeId;
use crate::limits;
use crate::runtime::state::ClusterState;
use crate::transport::Transport;
use crate::wire::{PeerRequest, PeerResponse};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// What a listener is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `key` (its storage bytes: class tag, then key) changed.
    Changed { key: TrackedKey, kind: ChangeKind },
    /// Anything may have changed: a feed was lost or fell behind, or this listener's
    /// undelivered events passed their bound.
    Lost,
}

impl Event {
    fn cost_bytes(&self) -> usize {
        match self {
            Event::Changed { key, .. } => key.len() + 32,
            Event::Lost => 32,
        }
    }
}

/// Which changes a listener is told of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    /// Every change (keyspace notifications), each once though several replicas report
    /// it.
    pub all: bool,
    /// Changes of keys starting with one of these storage-byte prefixes (class tag
    /// first): `CLIENT TRACKING ON BCAST PREFIX ...`.
    pub prefixes: Vec<Vec<u8>>,
    /// Changes of keys registered with `Listener::track`, each told once per
    /// registration (Redis's default tracking mode).
    pub tracked: bool,
}

/// Why a listener was not registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListenError {
    #[error("this node serves {0} listeners already (tracking or subscribed connections)")]
    TooMany(usize),
}

/// The events waiting for one listener.
#[derive(Default)]
struct Mailbox {
    events: VecDeque<Event>,
    bytes: usize,
}

struct Entry {
    interest: Interest,
    mailbox: Arc<(Mutex<Mailbox>, Notify)>,
}

impl Entry {
    /// Adds `event`, or replaces everything waiting by one `Lost` past the bound.
    fn post(&self, event: Event) {
        let (mailbox, notify) = &*self.mailbox;
        {
            let mut mailbox = lock(mailbox);
            if mailbox.events.back() == Some(&Event::Lost) && event == Event::Lost {
                return;
            }
            if mailbox.bytes + event.cost_bytes() > limits::LISTENER_PENDING_BYTES_MAX {
                mailbox.events.clear();
                mailbox.events.push_back(Event::Lost);
                mailbox.bytes = Event::Lost.cost_bytes();
            } else {
                mailbox.bytes += event.cost_bytes();
                mailbox.events.push_back(event);
            }
        }
        notify.notify_one();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the hub counted since the node started.
#[derive(Debug, Default)]
pub struct HubStats {
    pub changes_read: AtomicU64,
    pub events_posted: AtomicU64,
    pub lost_posted: AtomicU64,
    pub feed_reads_failed: AtomicU64,
    pub feeds_behind: AtomicU64,
}

#[derive(Default)]
struct Registry {
    listeners: HashMap<u64, Entry>,
    /// The listeners told of changes beyond the keys they track (`all` or prefixes):
    /// only these are looked at for every change.
    broad: HashSet<u64>,
    table: Option<Table>,
    /// Changes already handed to `all` listeners, by (key, digest, kind), oldest first.
    seen: HashSet<(TrackedKey, [u8; 32], ChangeKind)>,
    seen_order: VecDeque<(TrackedKey, [u8; 32], ChangeKind)>,
}

struct Inner {
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    /// Wakes the supervisor when the first listener comes or the last goes.
    listeners_changed: Notify,
    stats: HubStats,
}

/// The node's hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// One registered listener; dropping it unregisters it.
pub struct Listener {
    id: u64,
    hub: Weak<Inner>,
    mailbox: Arc<(Mutex<Mailbox>, Notify)>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub {
            inner: Arc::new(Inner {
                registry: Mutex::new(Registry {
                    table: Some(Table::new(limits::TRACKING_TABLE_BYTES_MAX)),
                    ..Registry::default()
                }),
                next_id: AtomicU64::new(1),
                listeners_changed: Notify::new(),
                stats: HubStats::default(),
            }),
        }
    }

    pub fn stats(&self) -> &HubStats {
        &self.inner.stats
    }

    /// Listeners registered, and keys in the tracking table.
    pub fn counts(&self) -> (usize, usize) {
        let registry = lock(&self.inner.registry);
        let tracked = registry.table.as_ref().map_or(0, Table::len);
        (registry.listeners.len(), tracked)
    }

    /// Registers a listener with `interest`.
    pub fn listen(&self, interest: Interest) -> Result<Listener, ListenError> {
        let mailbox = Arc::new((Mutex::new(Mailbox::default()), Notify::new()));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut registry = lock(&self.inner.registry);
            if registry.listeners.len() >= limits::LISTENERS_MAX {
                return Err(ListenError::TooMany(limits::LISTENERS_MAX));
            }
            if interest.all || !interest.prefixes.is_empty() {
                registry.broad.insert(id);
            }
            let entry = Entry {
                interest,
                mailbox: mailbox.clone(),
            };
            registry.listeners.insert(id, entry);
            registry.listeners.len() == 1
        };
        if first {
            self.inner.listeners_changed.notify_one();
        }
        Ok(Listener {
            id,
            hub: Arc::downgrade(&self.inner),
            mailbox,
        })
    }

    /// Hands the changes of one feed read to the listeners they concern.
    pub fn deliver(&self, changes: &[Change]) {
        let stats = &self.inner.stats;
        stats
            .changes_read
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        let mut registry = lock(&self.inner.registry);
        let registry = &mut *registry;
        // Repeats matter only to listeners of every change: none, nothing to remember.
        let wants_all = registry.broad.iter().any(|id| {
            registry
                .listeners
                .get(id)
                .is_some_and(|entry| entry.interest.all)
        });
        for change in changes {
            let key = &change.key[..];
            // Built once, and only when someone is told.
            let mut event = None;
            let mut event_of = || {
                event
                    .get_or_insert_with(|| Event::Changed {
                        key: Arc::from(key),
                        kind: change.kind,
                    })
                    .clone()
            };
            let told = registry
                .table
                .as_mut()
                .map(|table| table.take(key, Some(change.digest)))
                .unwrap_or_default();
            let mut posted = 0u64;
            for id in told {
                if let Some(entry) = registry.listeners.get(&id) {
                    entry.post(event_of());
                    posted += 1;
                }
            }
            let first_time = wants_all && remember(registry, change);
            let broad = registry.broad.iter();
            for entry in broad.filter_map(|id| registry.listeners.get(id)) {
                let by_prefix = entry
                    .interest
                    .prefixes
                    .iter()
                    .any(|prefix| key.starts_with(prefix));
                if by_prefix || (entry.interest.all && first_time) {
                    entry.post(event_of());
                    posted += 1;
                }
            }
            stats.events_posted.fetch_add(posted, Ordering::Relaxed);
        }
    }

    /// Tells every listener that anything may have changed.
    pub fn lost(&self) {
        let registry = lock(&self.inner.registry);
        for entry in registry.listeners.values() {
            entry.post(Event::Lost);
        }
        self.inner
            .stats
            .lost_posted
            .fetch_add(registry.listeners.len() as u64, Ordering::Relaxed);
    }

    fn has_listeners(&self) -> bool {
        !lock(&self.inner.registry).listeners.is_empty()
    }
}

/// Remembers a change handed to the `all` listeners; false if it was already.
fn remember(registry: &mut Registry, change: &Change) -> bool {
    let name = (
        TrackedKey::from(&change.key[..]),
        change.digest,
        change.kind,
    );
    if !registry.seen.insert(name.clone()) {
        return false;
    }
    registry.seen_order.push_back(name);
    while registry.seen_order.len() > limits::FEED_SEEN_MAX {
        if let Some(oldest) = registry.seen_order.pop_front() {
            registry.seen.remove(&oldest);
        }
    }
    true
}

impl Listener {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// This listener is about to read `key` (storage bytes): it is told of the key's
    /// next change, once. Keys the table dropped to make room are told at once.
    pub fn track(&self, key: &[u8]) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let mut registry = lock(&hub.registry);
        let registry = &mut *registry;
        let Some(table) = registry.table.as_mut() else {
            return;
        };
        for (dropped, listeners) in table.track(self.id, key) {
            for id in listeners {
                if let Some(entry) = registry.listeners.get(&id) {
                    entry.post(Event::Changed {
                        key: dropped.clone(),
                        kind: ChangeKind::Written,
                    });
                }
            }
        }
    }

    /// This listener's read of `key` found the object whose digest is `digest`: other
    /// replicas' reports of that same state do not end its tracking (the near-cache).
    pub fn confirm(&self, key: &[u8], digest: [u8; 32]) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let mut registry = lock(&hub.registry);
        if let Some(table) = registry.table.as_mut() {
            table.confirm(self.id, key, digest);
        }
    }

    /// Changes what this listener is told of; keys it tracked are forgotten when
    /// `tracked` turns off.
    pub fn set_interest(&self, interest: Interest) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let mut registry = lock(&hub.registry);
        if !interest.tracked {
            if let Some(table) = registry.table.as_mut() {
                table.forget(self.id);
            }
        }
        if interest.all || !interest.prefixes.is_empty() {
            registry.broad.insert(self.id);
        } else {
            registry.broad.remove(&self.id);
        }
        if let Some(entry) = registry.listeners.get_mut(&self.id) {
            entry.interest = interest;
        }
    }

    /// Waits until an event is waiting (cancel-safe).
    pub async fn ready(&self) {
        let (mailbox, notify) = &*self.mailbox;
        loop {
            let notified = notify.notified();
            if !lock(mailbox).events.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Takes every event waiting, oldest first.
    pub fn take(&self) -> Vec<Event> {
        let mut mailbox = lock(&self.mailbox.0);
        mailbox.bytes = 0;
        mailbox.events.drain(..).collect()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let last = {
            let mut registry = lock(&hub.registry);
            registry.listeners.remove(&self.id);
            registry.broad.remove(&self.id);
            if let Some(table) = registry.table.as_mut() {
                table.forget(self.id);
            }
            registry.listeners.is_empty()
        };
        if last {
            hub.listeners_changed.notify_one();
        }
    }
}

/// What a reader of the region's feeds needs of the node: the hub's readers and
/// `GET /v1/feed`.
#[derive(Clone)]
pub struct Sources {
    pub feed: Arc<Feed>,
    pub state: Arc<ClusterState>,
    pub transport: Transport<PeerRequest, PeerResponse>,
    /// Longest one read waits for a change: `FEED_WAIT_MS`, or half the peer request
    /// timeout when that is shorter, so a waiting read is never taken for a dead peer.
    pub wait: Duration,
}

impl Sources {
    /// The nodes of this region whose feeds may hold changes of its keys.
    pub fn region_nodes(&self) -> std::collections::BTreeSet<NodeId> {
        self.state.region_nodes()
    }

    /// One read of `node`'s feed from `from`, waiting up to `wait` for a change: this
    /// node's own directly, another's with `PeerRequest::FeedRead`; `None` if the peer
    /// did not answer with a page.
    pub async fn read(&self, node: &NodeId, from: Cursor, wait: Duration) -> Option<Page> {
        if *node == self.state.me {
            let (entries, bytes) = (limits::FEED_PAGE_ENTRIES_MAX, limits::FEED_PAGE_BYTES_MAX);
            return Some(self.feed.read_waiting(from, wait, entries, bytes).await);
        }
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let request = PeerRequest::FeedRead { from, wait_ms };
        match self.transport.request(node, &request).await {
            Ok(PeerResponse::Feed(page)) => Some(*page),
            Ok(other) => {
                tracing::debug!(peer = %node, ?other, "feed read refused");
                None
            }
            Err(error) => {
                tracing::debug!(peer = %node, %error, "feed read failed");
                None
            }
        }
    }
}

/// Runs the hub's readers until `stop`: while anyone listens, one per node of this
/// region (the member list looked at again every `FEED_PEERS_REFRESH_MS`), none
/// otherwise.
pub async fn run(hub: Hub, sources: Sources, mut stop: tokio::sync::watch::Receiver<bool>) {
    let sources = Arc::new(sources);
    let mut readers: HashMap<NodeId, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let wanted: HashSet<NodeId> = if hub.has_listeners() {
            sources.region_nodes().into_iter().collect()
        } else {
            HashSet::new()
        };
        readers.retain(|node, reader| {
            let keep = wanted.contains(node) && !reader.is_finished();
            if !keep {
                reader.abort();
            }
            keep
        });
        for node in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = readers.entry(node) {
                let node = slot.key().clone();
                slot.insert(tokio::spawn(read_feed(hub.clone(), sources.clone(), node)));
            }
        }
        let refresh = Duration::from_millis(limits::FEED_PEERS_REFRESH_MS);
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            _ = hub.inner.listeners_changed.notified() => {}
            _ = tokio::time::sleep(refresh) => {}
        }
    }
    for reader in readers.into_values() {
        reader.abort();
    }
}

/// Reads one node's feed for as long as the task lives. Its first read starts behind
/// (no position yet), so the listeners are told everything may have changed before any
/// change of this feed could have been missed.
async fn read_feed(hub: Hub, sources: Arc<Sources>, node: NodeId) {
    let mut from = Cursor { epoch: 0, next: 0 };
    let stats = &hub.inner.stats;
    // Set after a failed read: the listeners were told once, and the read that
    // succeeds again starts behind (a new position), so they are told again then.
    let mut failing = false;
    loop {
        let page = sources.read(&node, from, sources.wait).await;
        let Some(page) = page else {
            stats.feed_reads_failed.fetch_add(1, Ordering::Relaxed);
            if !failing {
                hub.lost();
            }
            failing = true;
            from = Cursor { epoch: 0, next: 0 };
            tokio::time::sleep(Duration::from_millis(limits::FEED_RETRY_MS)).await;
            continue;
        };
        failing = false;
        if page.behind {
            stats.feeds_behind.fetch_add(1, Ordering::Relaxed);
            hub.lost();
        }
        hub.deliver(&page.changes);
        from = page.next;
        // Under load, let changes gather before the next read: one answer then carries
        // many instead of one each (a change waits at most this much longer).
        if !page.changes.is_empty() {
            tokio::time::sleep(Duration::from_millis(limits::FEED_GATHER_PAUSE_MS)).await;
        }
    }
}

mod deadlines;
mod near_cache;

pub use deadlines::report_expired;
pub use near_cache::near_cache;

#[cfg(test)]
mod tests;
