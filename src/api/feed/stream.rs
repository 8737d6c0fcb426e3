//! The feed as server-sent events: `change` (one per change that passes the filter,
//! its data the change as JSON), `behind` (changes may have been missed: treat
//! everything as changed) and `heartbeat` (nothing new) events, each with `id:` the
//! position after it, so a client that reconnects with `Last-Event-ID` resumes where
//! it was. Heartbeats keep the connection from reading as idle. A stream ends when the
//! node stops, after `FEED_STREAM_MS_MAX` (the client reconnects), or at a heartbeat
//! once the session token it was let in with is no longer valid. It is pulled:
//! a client that does not read holds the reads back, and the write timeout cuts it off.

use super::filter::{change_body, identity, Filter};
use super::reader::Reader;
use super::{Credential, FeedState};
use crate::feed::Cursor;
use crate::limits;
use axum::response::sse::{Event, Sse};
use futures::Stream;
use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

/// Changes already sent, bounded (`FEED_STREAM_SEEN_MAX`), oldest forgotten first.
#[derive(Default)]
pub struct Seen {
    set: HashSet<[u8; 16]>,
    order: VecDeque<[u8; 16]>,
}

impl Seen {
    /// Remembers `identity`; false if it was already.
    pub fn insert(&mut self, identity: [u8; 16]) -> bool {
        if !self.set.insert(identity) {
            return false;
        }
        self.order.push_back(identity);
        while self.order.len() > limits::FEED_STREAM_SEEN_MAX {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        true
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.set.len()
    }
}

struct Streaming {
    state: Arc<FeedState>,
    reader: Reader,
    filter: Filter,
    seen: Seen,
    /// Events of the last round not yet sent: at most one round's pages.
    queue: VecDeque<Event>,
    started: Instant,
    last_sent: Instant,
    region_read: Instant,
    heartbeat: Duration,
    credential: Option<Credential>,
    _permit: OwnedSemaphorePermit,
}

/// What a stream starts from.
pub struct Start {
    pub reader: Reader,
    pub filter: Filter,
    /// Start with a `behind` event.
    pub behind: bool,
    /// The session token the stream was let in with, if it was.
    pub credential: Option<Credential>,
}

/// The event stream of a reader's changes that pass its filter.
pub fn events(
    state: Arc<FeedState>,
    start: Start,
    permit: OwnedSemaphorePermit,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let Start {
        reader,
        filter,
        behind,
        credential,
    } = start;
    let now = Instant::now();
    let heartbeat =
        Duration::from_millis(limits::FEED_HEARTBEAT_MS).min(state.http.idle_timeout / 3);
    let mut queue = VecDeque::new();
    if behind {
        queue.push_back(behind_event(&reader));
    }
    let streaming = Streaming {
        state,
        reader,
        filter,
        seen: Seen::default(),
        queue,
        started: now,
        last_sent: now,
        region_read: now,
        heartbeat: heartbeat.max(Duration::from_millis(1)),
        credential,
        _permit: permit,
    };
    Sse::new(futures::stream::unfold(streaming, next_event))
}

fn behind_event(reader: &Reader) -> Event {
    Event::default()
        .event("behind")
        .data("{\"behind\":true}")
        .id(reader.position().encode())
}

async fn next_event(mut streaming: Streaming) -> Option<(Result<Event, Infallible>, Streaming)> {
    loop {
        if let Some(event) = streaming.queue.pop_front() {
            streaming.last_sent = Instant::now();
            return Some((Ok(event), streaming));
        }
        let now = Instant::now();
        let lifetime = Duration::from_millis(limits::FEED_STREAM_MS_MAX);
        if *streaming.state.stopped.borrow() || now >= streaming.started + lifetime {
            return None;
        }
        let heartbeat_at = streaming.last_sent + streaming.heartbeat;
        if now >= heartbeat_at {
            if let Some(credential) = &streaming.credential {
                if !credential.valid().await {
                    return None;
                }
            }
            let event = Event::default()
                .event("heartbeat")
                .data("{}")
                .id(streaming.reader.position().encode());
            streaming.last_sent = now;
            return Some((Ok(event), streaming));
        }
        if now >= streaming.region_read + Duration::from_millis(limits::FEED_PEERS_REFRESH_MS) {
            let region = streaming.state.sources.region_nodes();
            streaming.reader.set_region(&region);
            streaming.region_read = now;
        }
        let wait = (heartbeat_at - now).min(streaming.state.sources.wait);
        let mut stopped = streaming.state.stopped.clone();
        let sources = streaming.state.sources.clone();
        let round = tokio::select! {
            round = streaming.reader.round(&sources, wait) => round,
            _ = stopped.wait_for(|stopped| *stopped) => return None,
        };
        fill(&mut streaming, round);
    }
}

/// Turns a round's pages into events. Each event's id is the position after it: every
/// node's cursor at the end of its page, but at the next event of its own that follows
/// (so a resume from it reads that event again, and skips what the round read past,
/// repeats from other replicas included).
fn fill(streaming: &mut Streaming, round: super::reader::Round) {
    if streaming.reader.take_behind() {
        let event = behind_event(&streaming.reader);
        streaming.queue.push_back(event);
    }
    let mut made = Vec::new();
    for (index, (_, page)) in round.iter().enumerate() {
        for change in &page.changes {
            let Some(body) = change_body(change).filter(|_| streaming.filter.matches(change))
            else {
                continue;
            };
            if !streaming.seen.insert(identity(change)) {
                continue;
            }
            let Ok(event) = Event::default().event("change").json_data(&body) else {
                continue;
            };
            made.push((index, change.global, event));
        }
    }
    for (node, page) in &round {
        streaming.reader.advance(node, page.next);
    }
    let mut position = streaming.reader.position();
    let mut events = Vec::with_capacity(made.len());
    for (index, global, event) in made.into_iter().rev() {
        events.push(event.id(position.encode()));
        let (node, page) = &round[index];
        let cursor = Cursor {
            epoch: page.next.epoch,
            next: global,
        };
        position.cursors.insert(node.clone(), cursor);
    }
    streaming.queue.extend(events.into_iter().rev());
}
