//! One connection's client tracking and subscriptions, carried out against the node's
//! change hub (`runtime::hub`), and the node-wide part of both ([`Notifications`]: the
//! `notify-keyspace-events` setting and the inboxes that `CLIENT TRACKING ... REDIRECT`
//! sends invalidations to).
//!
//! It owns `CLIENT TRACKING|CACHING|TRACKINGINFO|GETREDIR`, `CONFIG GET|SET`,
//! `(P)SUBSCRIBE`/`(P)UNSUBSCRIBE`, RESP2's subscribed mode, registering the keys a read
//! command reads before it runs, and turning the hub's events into pushes. It never
//! writes a socket: the server asks it for the pushes waiting ([`Pushes::take`]) between
//! answers only, so a push never splits a reply, and a change made while a command ran
//! is pushed after that command's answer.
//!
//! A connection holds at most two hub listeners: one for its tracking (the keys it read,
//! or its `BCAST` prefixes) and one for its keyspace notifications (every change); both
//! are dropped when tracking turns off, the last subscription goes, `RESET` or the
//! connection closes.

use super::codec::Args;
use super::connection::ConnectionState;
use super::notify::events::{self, EventFlags};
use super::notify::pubsub::{self, Subscriptions, INVALIDATE_CHANNEL};
use super::notify::tracking::{self, Tracking};
use super::reply::{Protocol, Reply};
use crate::limits;
use crate::object::{Class, ObjectKey};
use crate::runtime::hub::{Event, Hub, Interest, Listener};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// The node-wide part: the keyspace notification flags and every open connection's
/// inbox (the targets of `REDIRECT`), at most one per open connection.
#[derive(Default)]
pub struct Notifications {
    flags: AtomicU16,
    inboxes: Mutex<HashMap<u64, Weak<Inbox>>>,
}

impl Notifications {
    pub fn flags(&self) -> EventFlags {
        EventFlags::from_bits(self.flags.load(Ordering::Relaxed))
    }

    pub fn set_flags(&self, flags: EventFlags) {
        self.flags.store(flags.bits(), Ordering::Relaxed);
    }

    fn exists(&self, id: u64) -> bool {
        lock(&self.inboxes).contains_key(&id)
    }

    /// Hands an invalidation (`None`: everything) to connection `id`; false if it is
    /// gone.
    fn forward(&self, id: u64, keys: Option<Vec<Bytes>>) -> bool {
        let inbox = lock(&self.inboxes).get(&id).and_then(Weak::upgrade);
        match inbox {
            Some(inbox) => {
                inbox.post(keys);
                true
            }
            None => false,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Invalidations other connections redirected to this one, bounded in bytes
/// (`RESP_REDIRECT_PENDING_BYTES_MAX`): past it everything waiting becomes one flush.
#[derive(Default)]
pub struct Inbox {
    waiting: Mutex<(VecDeque<Option<Vec<Bytes>>>, usize)>,
    notify: Notify,
}

impl Inbox {
    fn post(&self, keys: Option<Vec<Bytes>>) {
        {
            let mut waiting = lock(&self.waiting);
            // A flush waiting covers every change told after it too: it reaches the
            // client after them.
            if waiting.0.front() == Some(&None) {
                return;
            }
            let cost = limits::RESP_REDIRECT_ITEM_BYTES
                + keys
                    .as_ref()
                    .map_or(0, |keys| keys.iter().map(|key| key.len() + 16).sum());
            if keys.is_none() || waiting.1 + cost > limits::RESP_REDIRECT_PENDING_BYTES_MAX {
                waiting.0.clear();
                waiting.0.push_back(None);
                waiting.1 = limits::RESP_REDIRECT_ITEM_BYTES;
            } else {
                waiting.1 += cost;
                waiting.0.push_back(keys);
            }
        }
        self.notify.notify_one();
    }

    fn take(&self) -> Vec<Option<Vec<Bytes>>> {
        let mut waiting = lock(&self.waiting);
        waiting.1 = 0;
        waiting.0.drain(..).collect()
    }

    /// Waits until an invalidation waits (cancel-safe).
    async fn ready(&self) {
        loop {
            let notified = self.notify.notified();
            if !lock(&self.waiting).0.is_empty() {
                return;
            }
            notified.await;
        }
    }
}

/// Read commands whose keys tracking registers: (name, every argument is a key).
const READS: &[(&str, bool)] = &[
    ("GET", false),
    ("MGET", true),
    ("EXISTS", true),
    ("TYPE", false),
    ("TTL", false),
    ("PTTL", false),
    ("STRLEN", false),
    ("HGET", false),
    ("HMGET", false),
    ("HGETALL", false),
    ("HEXISTS", false),
    ("HLEN", false),
    ("HKEYS", false),
    ("HVALS", false),
    ("HSTRLEN", false),
];

/// Commands a RESP2 connection may send while subscribed.
const SUBSCRIBED_MODE: &[&str] = &[
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "PING",
    "QUIT",
    "RESET",
];

/// One connection's tracking and subscriptions.
pub struct Pushes {
    id: u64,
    notifications: Arc<Notifications>,
    hub: Option<Hub>,
    inbox: Arc<Inbox>,
    tracking: Option<Tracking>,
    tracker: Option<Listener>,
    /// `CLIENT CACHING` given for the next command.
    caching: Option<bool>,
    broken_redirect: bool,
    subscriptions: Subscriptions,
    subscriber: Option<Listener>,
}

impl Drop for Pushes {
    fn drop(&mut self) {
        lock(&self.notifications.inboxes).remove(&self.id);
    }
}

fn is(name: &[u8], listed: &str) -> bool {
    name.eq_ignore_ascii_case(listed.as_bytes())
}

impl Pushes {
    pub fn new(id: u64, notifications: Arc<Notifications>, hub: Option<Hub>) -> Pushes {
        let inbox = Arc::new(Inbox::default());
        lock(&notifications.inboxes).insert(id, Arc::downgrade(&inbox));
        Pushes {
            id,
            notifications,
            hub,
            inbox,
            tracking: None,
            tracker: None,
            caching: None,
            broken_redirect: false,
            subscriptions: Subscriptions::default(),
            subscriber: None,
        }
    }

    /// Whether the connection is in RESP2's subscribed mode (only (un)subscribe, `PING`,
    /// `QUIT` and `RESET` answered).
    pub fn subscribed_mode(&self, state: &ConnectionState) -> bool {
        state.protocol == Protocol::Resp2 && !self.subscriptions.is_empty()
    }

    /// Whether the connection is subscribed (exempt from the idle timeout, as Redis
    /// exempts pub/sub clients from `timeout`).
    pub fn subscribed(&self) -> bool {
        !self.subscriptions.is_empty()
    }

    /// Called for every request as it is decoded, before it runs (and before anything
    /// after it): registers the keys a tracked read reads, and refuses what RESP2's
    /// subscribed mode does not allow.
    pub fn before_command(&mut self, state: &ConnectionState, args: &Args) -> Option<Reply> {
        let name = args.first()?;
        if self.subscribed_mode(state) && !SUBSCRIBED_MODE.iter().any(|listed| is(name, listed)) {
            return Some(Reply::err(format!(
                "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
                 RESET are allowed in this context",
                String::from_utf8_lossy(name).to_ascii_lowercase()
            )));
        }
        let caching_command =
            is(name, "CLIENT") && args.get(1).is_some_and(|sub| is(sub, "CACHING"));
        let caching = match caching_command {
            true => self.caching,
            false => self.caching.take(),
        };
        let (Some(tracking), Some(tracker)) = (&self.tracking, &self.tracker) else {
            return None;
        };
        if !state.authenticated || !tracking::reads_tracked(tracking, caching) {
            return None;
        }
        let (_, all_keys) = READS.iter().find(|(listed, _)| is(name, listed))?;
        let keys = match all_keys {
            true => args.get(1..).unwrap_or_default(),
            false => args.get(1..2).unwrap_or_default(),
        };
        for key in keys.iter().filter(|key| key.len() <= limits::KEY_BYTES_MAX) {
            tracker.track(&ObjectKey::new(Class::Resp, key).storage_bytes());
        }
        None
    }

    /// Answers the commands this module owns (`None` for any other): one reply, or one
    /// per channel for the (un)subscribe commands.
    pub fn command(&mut self, state: &ConnectionState, args: &Args) -> Option<Vec<Reply>> {
        let name = args.first()?;
        if !state.authenticated {
            return None;
        }
        let one = |reply| Some(vec![reply]);
        if is(name, "CLIENT") {
            let sub = args.get(1)?;
            let rest = &args[2..];
            return if is(sub, "TRACKING") {
                one(self.client_tracking(rest))
            } else if is(sub, "CACHING") {
                one(match tracking::caching(self.tracking.as_ref(), rest) {
                    Ok(caching) => {
                        self.caching = Some(caching);
                        Reply::ok()
                    }
                    Err(error) => error,
                })
            } else if is(sub, "TRACKINGINFO") {
                one(match rest.is_empty() {
                    true => {
                        tracking::info(self.tracking.as_ref(), self.caching, self.broken_redirect)
                    }
                    false => Reply::wrong_arity("client|trackinginfo"),
                })
            } else if is(sub, "GETREDIR") {
                one(match rest.is_empty() {
                    true => Reply::Integer(tracking::redirect_id(self.tracking.as_ref())),
                    false => Reply::wrong_arity("client|getredir"),
                })
            } else {
                None
            };
        }
        if is(name, "CONFIG") {
            return one(self.config(args));
        }
        if is(name, "PING") && self.subscribed_mode(state) {
            // Subscribed RESP2 connections get PING's answer as a message, as in Redis.
            let message = match args.len() {
                1 => Bytes::new(),
                2 => args[1].clone(),
                _ => return one(Reply::wrong_arity("ping")),
            };
            return one(Reply::Array(vec![
                Reply::bulk("pong"),
                Reply::Bulk(message),
            ]));
        }
        for (command, patterns, subscribing) in [
            ("SUBSCRIBE", false, true),
            ("PSUBSCRIBE", true, true),
            ("UNSUBSCRIBE", false, false),
            ("PUNSUBSCRIBE", true, false),
        ] {
            if is(name, command) {
                return Some(match subscribing {
                    true => self.subscribe(&args[1..], patterns, command),
                    false => self.unsubscribe(&args[1..], patterns),
                });
            }
        }
        None
    }

    /// `RESET`: tracking off, every subscription gone.
    pub fn reset(&mut self) {
        self.tracking = None;
        self.tracker = None;
        self.caching = None;
        self.broken_redirect = false;
        self.subscriptions = Subscriptions::default();
        self.subscriber = None;
    }

    fn client_tracking(&mut self, args: &[Bytes]) -> Reply {
        let notifications = self.notifications.clone();
        let asked = match tracking::parse(args, |id| notifications.exists(id)) {
            Ok(tracking::Request::On(asked)) => asked,
            Ok(tracking::Request::Off) => {
                self.tracking = None;
                self.tracker = None;
                self.caching = None;
                self.broken_redirect = false;
                return Reply::ok();
            }
            Err(error) => return error,
        };
        let tracking = match tracking::turn_on(self.tracking.as_ref(), asked) {
            Ok(tracking) => tracking,
            Err(error) => return error,
        };
        let interest = Interest {
            all: false,
            prefixes: tracking::storage_prefixes(&tracking),
            tracked: !tracking.bcast,
        };
        match &self.tracker {
            Some(tracker) => tracker.set_interest(interest),
            None => {
                let Some(hub) = &self.hub else {
                    return Reply::err("client tracking needs a node with a keyspace");
                };
                match hub.listen(interest) {
                    Ok(tracker) => self.tracker = Some(tracker),
                    Err(error) => return Reply::err(error),
                }
            }
        }
        if tracking.redirect != self.tracking.as_ref().and_then(|held| held.redirect) {
            self.broken_redirect = false;
        }
        self.tracking = Some(tracking);
        Reply::ok()
    }

    fn config(&self, args: &[Bytes]) -> Reply {
        let Some(sub) = args.get(1) else {
            return Reply::wrong_arity("config");
        };
        let rest = &args[2..];
        if is(sub, "GET") {
            if rest.is_empty() {
                return Reply::wrong_arity("config|get");
            }
            let matched = rest.iter().any(|pattern| {
                super::keyspace::glob::Glob::new(&pattern.to_ascii_lowercase())
                    .is_ok_and(|glob| glob.matches(events::SETTING.as_bytes()))
            });
            let mut pairs = Vec::new();
            if matched {
                let value = self.notifications.flags().text();
                pairs.push((Reply::bulk(events::SETTING), Reply::bulk(value)));
            }
            return Reply::Map(pairs);
        }
        if is(sub, "SET") {
            let [setting, value] = rest else {
                return match rest.len().is_multiple_of(2) && !rest.is_empty() {
                    true => Reply::err(
                        "CONFIG SET of several settings: cartwheel sets notify-keyspace-events only",
                    ),
                    false => Reply::wrong_arity("config|set"),
                };
            };
            if !setting.eq_ignore_ascii_case(events::SETTING.as_bytes()) {
                return Reply::err(format!(
                    "Unknown option or number of arguments for CONFIG SET - '{}'",
                    String::from_utf8_lossy(setting)
                ));
            }
            return match EventFlags::parse(value) {
                Ok(flags) => {
                    self.notifications.set_flags(flags);
                    Reply::ok()
                }
                Err(error) => Reply::err(error),
            };
        }
        Reply::err(format!(
            "'CONFIG {}' is not supported by cartwheel: CONFIG GET and CONFIG SET serve \
             notify-keyspace-events only",
            String::from_utf8_lossy(sub).to_ascii_uppercase()
        ))
    }

    fn subscribe(&mut self, names: &[Bytes], patterns: bool, command: &str) -> Vec<Reply> {
        if names.is_empty() {
            return vec![Reply::wrong_arity(command)];
        }
        if let Err(error) = self.subscriptions.check(names, patterns) {
            return vec![Reply::err(error)];
        }
        if let Err(error) = self.listen_for_notifications(names, patterns) {
            return vec![error];
        }
        let mut replies = Vec::with_capacity(names.len());
        for name in names {
            let kind = match patterns {
                true => {
                    if let Err(error) = self.subscriptions.psubscribe(name) {
                        replies.push(Reply::err(error));
                        continue;
                    }
                    "psubscribe"
                }
                false => {
                    self.subscriptions.subscribe(name);
                    "subscribe"
                }
            };
            replies.push(pubsub::confirmation(
                kind,
                Some(name),
                self.subscriptions.count(),
            ));
        }
        replies
    }

    fn unsubscribe(&mut self, names: &[Bytes], patterns: bool) -> Vec<Reply> {
        let kind = match patterns {
            true => "punsubscribe",
            false => "unsubscribe",
        };
        let names = match names.is_empty() {
            true if patterns => self.subscriptions.patterns(),
            true => self.subscriptions.channels(),
            false => names.to_vec(),
        };
        if names.is_empty() {
            return vec![pubsub::confirmation(kind, None, self.subscriptions.count())];
        }
        let replies = names
            .iter()
            .map(|name| {
                match patterns {
                    true => self.subscriptions.punsubscribe(name),
                    false => self.subscriptions.unsubscribe(name),
                };
                pubsub::confirmation(kind, Some(name), self.subscriptions.count())
            })
            .collect();
        if !self.subscriptions.wants_notifications() {
            self.subscriber = None;
        }
        replies
    }

    /// Registers the listener for every change that keyspace notifications need, unless
    /// one is held or no subscription could want one; the hub's refusal as the answer.
    fn listen_for_notifications(&mut self, names: &[Bytes], patterns: bool) -> Result<(), Reply> {
        let wanted = patterns
            || names
                .iter()
                .any(|name| name.as_ref() != INVALIDATE_CHANNEL.as_bytes());
        if !wanted || self.subscriber.is_some() {
            return Ok(());
        }
        let Some(hub) = &self.hub else {
            return Ok(());
        };
        let interest = Interest {
            all: true,
            ..Interest::default()
        };
        self.subscriber = Some(hub.listen(interest).map_err(Reply::err)?);
        Ok(())
    }

    /// Waits until a push may be waiting (cancel-safe); never returns with nothing to
    /// listen to.
    pub async fn ready(&self) {
        let tracker = async {
            match &self.tracker {
                Some(listener) => listener.ready().await,
                None => std::future::pending().await,
            }
        };
        let subscriber = async {
            match &self.subscriber {
                Some(listener) => listener.ready().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tracker => {}
            _ = subscriber => {}
            _ = self.inbox.ready() => {}
        }
    }

    /// The pushes waiting, oldest first, for a connection speaking `protocol`.
    pub fn take(&mut self, protocol: Protocol) -> Vec<Reply> {
        let mut pushes = Vec::new();
        if let Some(tracker) = &self.tracker {
            let invalidations = invalidations(tracker.take());
            self.send_invalidations(invalidations, protocol, &mut pushes);
        }
        for keys in self.inbox.take() {
            if let Some(push) = self.invalidation(keys, protocol, true) {
                pushes.push(push);
            }
        }
        if let Some(subscriber) = &self.subscriber {
            let flags = self.notifications.flags();
            for event in subscriber.take() {
                // A lost feed cannot be told as a notification: Redis's pub/sub is
                // at-most-once too.
                let Event::Changed { key, kind } = event else {
                    continue;
                };
                let Some(key) = resp_key(&key) else {
                    continue;
                };
                for (channel, payload) in flags.messages(key, kind) {
                    self.subscriptions
                        .deliver(&channel, &Reply::Bulk(payload), &mut pushes);
                }
            }
        }
        pushes
    }

    /// Invalidations of this connection's tracking: here, to its redirect, or nowhere
    /// (RESP2 without a redirect, as Redis).
    fn send_invalidations(
        &mut self,
        invalidations: Vec<Option<Vec<Bytes>>>,
        protocol: Protocol,
        pushes: &mut Vec<Reply>,
    ) {
        let redirect = self
            .tracking
            .as_ref()
            .and_then(|tracking| tracking.redirect);
        for keys in invalidations {
            match redirect {
                Some(id) if id != self.id => {
                    if !self.notifications.forward(id, keys) {
                        self.broken_redirect = true;
                        if protocol == Protocol::Resp3 {
                            let id = i64::try_from(id).unwrap_or(i64::MAX);
                            pushes.push(Reply::Push(vec![
                                Reply::bulk("tracking-redir-broken"),
                                Reply::Integer(id),
                            ]));
                        }
                    }
                }
                Some(_) => pushes.extend(self.invalidation(keys, protocol, true)),
                None => pushes.extend(self.invalidation(keys, protocol, false)),
            }
        }
    }

    /// One invalidation as this connection is sent it: a push in RESP3; in RESP2 a
    /// message on `__redis__:invalidate` when redirected here to a subscribed
    /// connection, nothing otherwise.
    fn invalidation(
        &self,
        keys: Option<Vec<Bytes>>,
        protocol: Protocol,
        redirected: bool,
    ) -> Option<Reply> {
        let keys = keys.map_or(Reply::Null, |keys| {
            Reply::Array(keys.into_iter().map(Reply::Bulk).collect())
        });
        match protocol {
            Protocol::Resp3 => Some(Reply::Push(vec![Reply::bulk("invalidate"), keys])),
            Protocol::Resp2 if redirected && self.subscribed() => Some(Reply::Push(vec![
                Reply::bulk("message"),
                Reply::bulk(INVALIDATE_CHANNEL),
                keys,
            ])),
            Protocol::Resp2 => None,
        }
    }
}

/// The RESP key of a change's storage bytes; `None` for another class.
fn resp_key(storage: &[u8]) -> Option<&[u8]> {
    match storage.split_first() {
        Some((&tag, key)) if tag == Class::Resp.tag() => Some(key),
        _ => None,
    }
}

/// A tracker's events as invalidations: one flush (`None`) if any event was `Lost`
/// (it covers every key), else the RESP keys in pushes of at most
/// `RESP_INVALIDATE_KEYS_PER_PUSH_MAX`.
fn invalidations(events: Vec<Event>) -> Vec<Option<Vec<Bytes>>> {
    if events.is_empty() {
        return Vec::new();
    }
    if events.contains(&Event::Lost) {
        return vec![None];
    }
    let keys: Vec<Bytes> = events
        .iter()
        .filter_map(|event| match event {
            Event::Changed { key, .. } => resp_key(key).map(Bytes::copy_from_slice),
            Event::Lost => None,
        })
        .collect();
    keys.chunks(limits::RESP_INVALIDATE_KEYS_PER_PUSH_MAX)
        .map(|chunk| Some(chunk.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests;
