//! `RedisValue`: the state one RESP key holds on a replica, its merge, and what it shows
//! (type, value, deadline) as a pure function of that state. It never reads a clock:
//! whoever asks passes the time.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::counter::Counter;
use super::expiry::{Deadline, Expiry};
use super::{RedisError, Stamp};
use crate::clock::{Actor, Hlc};
use crate::crdt::kernel::DotKernel;
use crate::crdt::CrdtError;

/// What the winning whole-key write left: ordered so a full tie of stamps (only from a
/// misbehaving replica) still resolves the same everywhere.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum HeadKind {
    /// `DEL`, an expiry, or the reset a `RENAME` of a hash starts with.
    Deleted,
    /// An integer string turned into a counter by `INCRBY`: the counter's base.
    Counter(i64),
    String(ByteBuf),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Head {
    pub(crate) stamp: Stamp,
    pub(crate) kind: HeadKind,
}

/// One write of a hash field, under a dot of the field kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FieldRegister {
    pub(crate) at: Hlc,
    pub(crate) value: ByteBuf,
}

/// One hash field as shown: (name, value).
pub type FieldView<'a> = (&'a [u8], &'a [u8]);

/// The type a live key shows. `TYPE` answers `string` for a counter, as Redis does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RedisKind {
    String,
    Counter,
    Hash,
}

impl RedisKind {
    /// The reply of `TYPE`.
    pub fn type_name(self) -> &'static str {
        match self {
            RedisKind::String | RedisKind::Counter => "string",
            RedisKind::Hash => "hash",
        }
    }
}

/// A key's visible content, owned: what `RENAME` carries to the new key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RedisContent {
    String(Vec<u8>),
    Counter(i64),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
}

/// The replicated state of one RESP key. `Default` is the key nothing was written to.
/// Deltas are `RedisValue`s too; apply one with `merge`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisValue {
    /// The winning whole-key write: max by (stamp, kind).
    pub(crate) head: Option<Head>,
    pub(crate) fields: DotKernel<ByteBuf, FieldRegister>,
    pub(crate) counter: Counter,
    pub(crate) expiry: Expiry,
    /// When the newest delete or expiry of this key was made (max-wins): what tombstone
    /// collection waits past. The head's stamp is not enough: an expiry's delete is
    /// stamped just above the expired write, which may be months old.
    #[serde(default)]
    pub(crate) deleted_ms: u64,
}

impl RedisValue {
    pub fn new() -> Self {
        Self::default()
    }

    /// The join: every part merged on its own.
    pub fn merge(&mut self, other: &RedisValue) {
        if other.head > self.head {
            self.head = other.head.clone();
        }
        self.fields.merge(&other.fields);
        self.counter.merge(&other.counter);
        self.expiry.merge(&other.expiry);
        self.deleted_ms = self.deleted_ms.max(other.deleted_ms);
    }

    /// Whether this state holds nothing at all (what a delta that changed nothing is).
    pub fn is_bottom(&self) -> bool {
        self.head.is_none()
            && self.fields.is_bottom()
            && self.counter.is_bottom()
            && self.expiry.is_bottom()
            && self.deleted_ms == 0
    }

    // ---- what the key shows ----------------------------------------------------------

    /// The stamp of the current whole-key write (`Stamp::ZERO` if none).
    pub(crate) fn epoch(&self) -> Stamp {
        self.head.as_ref().map_or(Stamp::ZERO, |head| head.stamp)
    }

    /// The winning write of each field: highest (Hlc, actor, counter) of its dots.
    fn field_winners(&self) -> impl Iterator<Item = (&ByteBuf, Stamp, &ByteBuf)> {
        self.fields.entries.iter().filter_map(|(field, dots)| {
            let (dot, register) = dots
                .iter()
                .max_by_key(|(dot, register)| (register.at, dot.actor, dot.counter))?;
            let stamp = Stamp {
                at: register.at,
                actor: dot.actor,
            };
            Some((field, stamp, &register.value))
        })
    }

    /// The type the state shows, time aside: the newest of the head's type, the
    /// surviving counter slots and the surviving fields. A delete has no type, so
    /// elements written concurrently with it show (add-wins).
    pub(crate) fn shown_kind(&self) -> Option<RedisKind> {
        let head = self.head.as_ref();
        let string = head.and_then(|head| match head.kind {
            HeadKind::String(_) => Some(head.stamp),
            _ => None,
        });
        let counter_base = head.and_then(|head| match head.kind {
            HeadKind::Counter(_) => Some(head.stamp),
            _ => None,
        });
        let counter = counter_base.max(self.counter.newest());
        let hash = self.field_winners().map(|(_, stamp, _)| stamp).max();
        [
            (string, RedisKind::String),
            (counter, RedisKind::Counter),
            (hash, RedisKind::Hash),
        ]
        .into_iter()
        .filter_map(|(stamp, kind)| stamp.map(|stamp| (stamp, kind)))
        .max()
        .map(|(_, kind)| kind)
    }

    /// The deadline of the key's current content (`None`: it never expires). Of a key
    /// reborn after a delete, every surviving entry counts.
    pub fn deadline_ms(&self) -> Option<u64> {
        match &self.head {
            Some(Head {
                kind: HeadKind::Deleted,
                ..
            })
            | None => self.expiry.deadline_ms(None),
            Some(head) => self.expiry.deadline_ms(Some(head.stamp)),
        }
    }

    /// Whether the key shows content at all, time aside.
    pub(crate) fn has_content(&self) -> bool {
        self.shown_kind().is_some()
    }

    /// Whether the key's deadline has passed at `now_ms` (content or not).
    pub(crate) fn is_expired(&self, now_ms: u64) -> bool {
        self.deadline_ms()
            .is_some_and(|deadline_ms| deadline_ms <= now_ms)
    }

    /// Whether the key exists at `now_ms`: it shows content and has not expired.
    /// Nothing that is not live may be served.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.has_content() && !self.is_expired(now_ms)
    }

    /// Only what a delete or an expiry left behind: no content, a delete as head.
    pub fn is_tombstone(&self) -> bool {
        matches!(
            self.head,
            Some(Head {
                kind: HeadKind::Deleted,
                ..
            })
        ) && !self.has_content()
    }

    /// When the newest delete or expiry of this key was made (0 if none).
    pub fn deleted_ms(&self) -> u64 {
        self.deleted_ms
    }

    /// The reply of `PTTL` at `now_ms`: -2 if the key does not exist, -1 if it has no
    /// deadline, else the milliseconds left (`TTL` is this rounded to seconds, as Redis
    /// rounds: `(ms + 500) / 1000`).
    pub fn pttl(&self, now_ms: u64) -> i64 {
        if !self.is_live(now_ms) {
            return -2;
        }
        self.deadline_ms().map_or(-1, |deadline_ms| {
            i64::try_from(deadline_ms.saturating_sub(now_ms)).unwrap_or(i64::MAX)
        })
    }

    /// The type of the key at `now_ms`, `None` if it does not exist.
    pub fn kind(&self, now_ms: u64) -> Option<RedisKind> {
        if self.is_expired(now_ms) {
            return None;
        }
        self.shown_kind()
    }

    /// The counter's value: its base (an integer string it was made from) plus the
    /// surviving increments, saturated at the ends of `i64` (concurrent increments in
    /// several regions may together pass them; Redis alone would have refused one).
    pub(crate) fn counter_value(&self) -> i64 {
        let base = match self.head.as_ref().map(|head| &head.kind) {
            Some(HeadKind::Counter(base)) => i128::from(*base),
            _ => 0,
        };
        let value = base.saturating_add(self.counter.sum());
        i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
    }

    /// `GET`: the string (a counter as its decimal), `None` if the key does not exist,
    /// `WrongType` for a hash.
    pub fn get(&self, now_ms: u64) -> Result<Option<Cow<'_, [u8]>>, RedisError> {
        match self.kind(now_ms) {
            None => Ok(None),
            Some(RedisKind::Hash) => Err(RedisError::WrongType),
            Some(RedisKind::Counter) => Ok(Some(Cow::Owned(
                self.counter_value().to_string().into_bytes(),
            ))),
            Some(RedisKind::String) => match self.head.as_ref().map(|head| &head.kind) {
                Some(HeadKind::String(value)) => Ok(Some(Cow::Borrowed(value.as_slice()))),
                _ => Ok(None),
            },
        }
    }

    /// The hash's fields in field order, empty if the key does not exist, `WrongType`
    /// for a string or a counter.
    pub fn hash_fields(&self, now_ms: u64) -> Result<Vec<FieldView<'_>>, RedisError> {
        match self.kind(now_ms) {
            None => Ok(Vec::new()),
            Some(RedisKind::Hash) => Ok(self
                .field_winners()
                .map(|(field, _, value)| (field.as_slice(), value.as_slice()))
                .collect()),
            Some(_) => Err(RedisError::WrongType),
        }
    }

    /// `HGET`.
    pub fn hash_get(&self, field: &[u8], now_ms: u64) -> Result<Option<&[u8]>, RedisError> {
        match self.kind(now_ms) {
            None => Ok(None),
            Some(RedisKind::Hash) => Ok(self.field_value(field)),
            Some(_) => Err(RedisError::WrongType),
        }
    }

    /// `HLEN`.
    pub fn hash_len(&self, now_ms: u64) -> Result<usize, RedisError> {
        match self.kind(now_ms) {
            None => Ok(0),
            Some(RedisKind::Hash) => Ok(self.fields.entries.len()),
            Some(_) => Err(RedisError::WrongType),
        }
    }

    /// The winning value of `field`, whatever the key shows.
    pub(crate) fn field_value(&self, field: &[u8]) -> Option<&[u8]> {
        let dots = self.fields.entries.get(serde_bytes::Bytes::new(field))?;
        dots.iter()
            .max_by_key(|(dot, register)| (register.at, dot.actor, dot.counter))
            .map(|(_, register)| register.value.as_slice())
    }

    /// Bytes of the hash's field names and winning values.
    pub(crate) fn hash_bytes(&self) -> usize {
        self.field_winners()
            .map(|(field, _, value)| field.len() + value.len())
            .sum()
    }

    /// The key's content at `now_ms`, owned (`None` if it does not exist).
    pub fn content(&self, now_ms: u64) -> Option<RedisContent> {
        Some(match self.kind(now_ms)? {
            RedisKind::Counter => RedisContent::Counter(self.counter_value()),
            RedisKind::String => RedisContent::String(self.get(now_ms).ok()??.into_owned()),
            RedisKind::Hash => RedisContent::Hash(
                self.field_winners()
                    .map(|(field, _, value)| (field.to_vec(), value.to_vec()))
                    .collect(),
            ),
        })
    }

    /// The newest timestamp anywhere in the state: a write stamped here must exceed it,
    /// or a write that saw the state could lose to what it saw.
    pub(crate) fn newest_at(&self) -> Hlc {
        let head = self.head.as_ref().map_or(Hlc::ZERO, |head| head.stamp.at);
        let fields = self
            .fields
            .entries
            .values()
            .flat_map(|dots| dots.values())
            .map(|register| register.at)
            .max()
            .unwrap_or(Hlc::ZERO);
        head.max(fields).max(self.counter.newest_at())
    }

    // ---- deltas ----------------------------------------------------------------------

    /// A whole-key write: `kind` becomes the head at `stamp`, and every field, increment
    /// and expiry entry seen here is removed (concurrent ones survive). A delete records
    /// `stamp`'s wall time as when it was made.
    pub(crate) fn whole_key_delta(&self, kind: HeadKind, stamp: Stamp) -> RedisValue {
        let deleted_ms = match kind {
            HeadKind::Deleted => stamp.at.wall_ms,
            _ => 0,
        };
        RedisValue {
            head: Some(Head { stamp, kind }),
            fields: self.fields.remove_all_delta(),
            counter: self.counter.reset_delta(),
            expiry: self.expiry.clear_delta(),
            deleted_ms,
        }
    }

    /// The delete that ends the current epoch once expired: stamped just above the
    /// epoch's own write, so it removes that epoch and nothing written after it or
    /// concurrently with a later clock. Every replica ending one epoch writes the same
    /// head; `now_ms` is when (for tombstone collection).
    pub(crate) fn end_epoch_delta(&self, now_ms: u64) -> RedisValue {
        let epoch = self.epoch();
        let stamp = Stamp {
            at: epoch.at.successor(),
            actor: epoch.actor,
        };
        let mut delta = self.whole_key_delta(HeadKind::Deleted, stamp);
        delta.deleted_ms = delta.deleted_ms.max(now_ms);
        delta
    }

    /// A delta setting the current epoch's expiry.
    pub(crate) fn expiry_delta(
        &self,
        deadline: Deadline,
        actor: Actor,
    ) -> Result<RedisValue, CrdtError> {
        Ok(RedisValue {
            expiry: self.expiry.set_delta(self.epoch(), deadline, actor)?,
            ..RedisValue::default()
        })
    }

    /// A delta writing `value` to `field` under a fresh dot of `actor`.
    pub(crate) fn field_delta(
        &self,
        field: &[u8],
        value: Vec<u8>,
        at: Hlc,
        actor: Actor,
    ) -> Result<RedisValue, CrdtError> {
        let register = FieldRegister {
            at,
            value: ByteBuf::from(value),
        };
        Ok(RedisValue {
            fields: self
                .fields
                .write_delta(ByteBuf::from(field), register, actor)?,
            ..RedisValue::default()
        })
    }

    /// A delta removing the writes of `field` seen here.
    pub(crate) fn field_remove_delta(&self, field: &[u8]) -> RedisValue {
        RedisValue {
            fields: self.fields.remove_delta(&ByteBuf::from(field)),
            ..RedisValue::default()
        }
    }

    /// A delta adding `by` to the counter as `actor`.
    pub(crate) fn counter_delta(
        &self,
        by: i64,
        at: Hlc,
        actor: Actor,
    ) -> Result<RedisValue, CrdtError> {
        Ok(RedisValue {
            counter: self.counter.add_delta(by, at, actor)?,
            ..RedisValue::default()
        })
    }

    /// Hash fields held, hidden ones included.
    pub(crate) fn field_count(&self) -> usize {
        self.fields.entries.len()
    }
}
