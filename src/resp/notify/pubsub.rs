//! One connection's channels and patterns (`SUBSCRIBE`, `PSUBSCRIBE`), bounded in count
//! (`RESP_SUBSCRIPTIONS_MAX`) and in bytes (`RESP_CHANNEL_BYTES_MAX`), and the messages
//! a publication makes for it: `message` for a channel it subscribed to, `pmessage` for
//! each of its patterns that matches, as Redis sends them.

use crate::limits;
use crate::resp::keyspace::glob::Glob;
use crate::resp::reply::Reply;
use bytes::Bytes;

/// The channel Redis sends redirected invalidations on to a RESP2 connection.
pub const INVALIDATE_CHANNEL: &str = "__redis__:invalidate";

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error(
        "this connection may hold {} channels and patterns at most",
        limits::RESP_SUBSCRIPTIONS_MAX
    )]
    TooMany,
    #[error(
        "channel names are limited to {} bytes and patterns to {} bytes",
        limits::RESP_CHANNEL_BYTES_MAX,
        limits::RESP_SCAN_PATTERN_BYTES_MAX
    )]
    TooLong,
}

#[derive(Debug, Default)]
pub struct Subscriptions {
    /// In the order subscribed (a few; looked through in full).
    channels: Vec<Bytes>,
    patterns: Vec<(Bytes, Glob)>,
}

impl Subscriptions {
    /// Channels and patterns held (what a (un)subscribe answer counts).
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Whether a publication may reach any channel or pattern other than the
    /// invalidation channel (which keyspace notifications never use).
    pub fn wants_notifications(&self) -> bool {
        !self.patterns.is_empty()
            || self
                .channels
                .iter()
                .any(|channel| channel.as_ref() != INVALIDATE_CHANNEL.as_bytes())
    }

    /// Checks that `names` fit beside what is held, before any is taken.
    pub fn check(&self, names: &[Bytes], patterns: bool) -> Result<(), SubscribeError> {
        let longest = match patterns {
            true => limits::RESP_SCAN_PATTERN_BYTES_MAX,
            false => limits::RESP_CHANNEL_BYTES_MAX,
        };
        if names.iter().any(|name| name.len() > longest) {
            return Err(SubscribeError::TooLong);
        }
        if self.count() + names.len() > limits::RESP_SUBSCRIPTIONS_MAX {
            return Err(SubscribeError::TooMany);
        }
        Ok(())
    }

    /// Subscribes to `channel` (once however often asked).
    pub fn subscribe(&mut self, channel: &Bytes) {
        if !self.channels.contains(channel) {
            self.channels.push(channel.clone());
        }
    }

    /// Subscribes to `pattern`; a pattern longer than the glob bound is refused.
    pub fn psubscribe(&mut self, pattern: &Bytes) -> Result<(), SubscribeError> {
        if self.patterns.iter().any(|(held, _)| held == pattern) {
            return Ok(());
        }
        let glob = Glob::new(pattern).map_err(|_| SubscribeError::TooLong)?;
        self.patterns.push((pattern.clone(), glob));
        Ok(())
    }

    /// Unsubscribes from `channel`; whether it was held.
    pub fn unsubscribe(&mut self, channel: &[u8]) -> bool {
        let before = self.channels.len();
        self.channels.retain(|held| held.as_ref() != channel);
        before != self.channels.len()
    }

    pub fn punsubscribe(&mut self, pattern: &[u8]) -> bool {
        let before = self.patterns.len();
        self.patterns.retain(|(held, _)| held.as_ref() != pattern);
        before != self.patterns.len()
    }

    pub fn channels(&self) -> Vec<Bytes> {
        self.channels.clone()
    }

    pub fn patterns(&self) -> Vec<Bytes> {
        self.patterns
            .iter()
            .map(|(pattern, _)| pattern.clone())
            .collect()
    }

    /// The messages a publication of `payload` on `channel` makes for this connection.
    pub fn deliver(&self, channel: &Bytes, payload: &Reply, out: &mut Vec<Reply>) {
        if self.channels.contains(channel) {
            out.push(Reply::Push(vec![
                Reply::bulk("message"),
                Reply::Bulk(channel.clone()),
                payload.clone(),
            ]));
        }
        for (pattern, glob) in &self.patterns {
            if glob.matches(channel) {
                out.push(Reply::Push(vec![
                    Reply::bulk("pmessage"),
                    Reply::Bulk(pattern.clone()),
                    Reply::Bulk(channel.clone()),
                    payload.clone(),
                ]));
            }
        }
    }
}

/// The answer to one channel or pattern of a (un)subscribe: `kind`, the name (or nil
/// for an unsubscribe from nothing), and the count held after it.
pub fn confirmation(kind: &'static str, name: Option<&Bytes>, count: usize) -> Reply {
    Reply::Push(vec![
        Reply::bulk(kind),
        name.map_or(Reply::Null, |name| Reply::Bulk(name.clone())),
        Reply::Integer(i64::try_from(count).unwrap_or(i64::MAX)),
    ])
}
