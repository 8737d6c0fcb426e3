//! The Redis commands that change a key, as operations one replica applies (minting
//! its dots and stamping with its clock) and the reply-relevant outcome of each. The
//! edge turns a command into a `RedisOp` (computing deadlines from the time it read);
//! this module never sees RESP and never reads a clock.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::expiry::Deadline;
use super::value::HeadKind;
use super::{parse_integer, RedisContent, RedisError, RedisKind, RedisValue, Stamp};
use crate::clock::{Actor, Hlc};
use crate::crdt::CrdtError;
use crate::limits::{RESP_FIELD_NAME_BYTES_MAX, RESP_HASH_FIELDS_MAX, VALUE_BYTES_MAX};

/// `SET`'s `NX` (only if the key does not exist) or `XX` (only if it does), decided on
/// the state of the replica applying the op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCondition {
    Nx,
    Xx,
}

/// What `SET` does to the key's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetExpiry {
    /// No option: the new value has no deadline.
    Clear,
    /// `KEEPTTL`: the deadline of the value replaced carries over.
    KeepTtl,
    /// `EX|PX|EXAT|PXAT`, as milliseconds since the epoch (`SETEX`, `PSETEX` too).
    AtMs(u64),
}

/// `GETEX`'s change of expiry (`GETEX` without an option is a plain read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GetExExpiry {
    AtMs(u64),
    Persist,
}

/// `EXPIRE`'s `NX|XX|GT|LT`; a key without deadline counts as an infinite TTL for `GT`
/// and `LT`, as in Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireCondition {
    Nx,
    Xx,
    Gt,
    Lt,
}

/// A command changing one key (`MSET`, `RENAME` and `UNLINK` are several of these).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RedisOp {
    /// `SET`, `SETEX`, `PSETEX`, `SETNX` (`condition: Some(Nx)`), an `MSET` entry.
    Set {
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        expiry: SetExpiry,
        condition: Option<SetCondition>,
        /// `GET`: answer the old string (refused with `WRONGTYPE` on a hash).
        get: bool,
    },
    /// `DEL`, `UNLINK`.
    Del,
    GetDel,
    GetEx(GetExExpiry),
    /// `INCR`, `INCRBY`, `DECR` (-1), `DECRBY` (negated by the edge).
    IncrBy(i64),
    /// `HSET`, `HMSET`: (field, value) pairs; a field named twice keeps the last value.
    HSet(Vec<(ByteBuf, ByteBuf)>),
    HDel(Vec<ByteBuf>),
    HIncrBy {
        #[serde(with = "serde_bytes")]
        field: Vec<u8>,
        by: i64,
    },
    /// `EXPIRE|PEXPIRE|EXPIREAT|PEXPIREAT`, the deadline in milliseconds since the epoch.
    Expire {
        deadline_ms: u64,
        condition: Option<ExpireCondition>,
    },
    Persist,
    /// The new key of a `RENAME`: a whole-key write of `content` with its deadline.
    Replace {
        content: RedisContent,
        deadline_ms: Option<u64>,
    },
}

/// What the command answers, besides what was replicated. It travels from the
/// replica that applied the op to the coordinator (`PeerResponse::Applied`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RedisOutcome {
    /// `SET`: whether it wrote (`false`: `NX`/`XX` not met, the reply is nil unless
    /// `GET`); `old` is the string replaced when `GET` was asked.
    Set {
        written: bool,
        #[serde(with = "serde_bytes")]
        old: Option<Vec<u8>>,
    },
    /// `GETDEL`, `GETEX`: the string read (nil if the key did not exist).
    Value(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    /// `INCRBY`/`HINCRBY`: the new value; `HSET`: fields added; `HDEL`: fields removed;
    /// `DEL`: keys removed (0 or 1); `EXPIRE`/`PERSIST`: 1 if changed, else 0.
    Integer(i64),
    /// `RENAME`'s write: `+OK`.
    Done,
}

/// An applied op: the delta every other replica merges (`None`: nothing changed, no
/// write round needed) and the outcome the client is answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisApplied {
    pub delta: Option<RedisValue>,
    pub outcome: RedisOutcome,
}

impl RedisOp {
    /// Whether applying this twice leaves what applying it once leaves: a counter
    /// increment counts every application (each under the applying replica's actor);
    /// every other op writes registers, fields or deadlines that merge to one.
    pub fn repeatable(&self) -> bool {
        !matches!(self, RedisOp::IncrBy(_))
    }
}

impl RedisValue {
    /// Applies `op` as replica `actor` at `at` (raised above every timestamp the key
    /// holds), judging expiry and conditions at `now_ms`. A key found expired is ended
    /// first (its delete is part of the delta), as Redis's lazy expiry would. A refused
    /// op changes nothing.
    pub fn apply(
        &mut self,
        op: &RedisOp,
        at: Hlc,
        actor: Actor,
        now_ms: u64,
    ) -> Result<RedisApplied, CrdtError> {
        let mut write = Write {
            next: self.clone(),
            delta: RedisValue::default(),
            at,
            actor,
            now_ms,
        };
        if write.next.has_content() && write.next.is_expired(now_ms) {
            let end = write.next.end_epoch_delta(now_ms);
            write.push(end);
        }
        write.at = at.max(write.next.newest_at().successor());
        let outcome = write.apply(op)?;
        let Write { next, delta, .. } = write;
        *self = next;
        Ok(RedisApplied {
            delta: (!delta.is_bottom()).then_some(delta),
            outcome,
        })
    }

    /// The sweeper's delete, at `now_ms`, of a key that expired at `deadline_ms`: ends
    /// the current epoch (the same delete on every replica) and returns its delta;
    /// `None` if the key shows nothing already. Refused with `StillLive` if the key's
    /// deadline is later (or gone: a `PERSIST` reached this replica).
    pub fn sweep(
        &mut self,
        deadline_ms: u64,
        now_ms: u64,
    ) -> Result<Option<RedisValue>, CrdtError> {
        if !self.has_content() {
            return Ok(None);
        }
        if self
            .deadline_ms()
            .is_none_or(|deadline| deadline > deadline_ms)
        {
            return Err(CrdtError::StillLive);
        }
        let delta = self.end_epoch_delta(now_ms);
        self.merge(&delta);
        Ok(Some(delta))
    }
}

/// One op in progress: the state it builds (`next`, committed only on success) and the
/// delta gathering every change.
struct Write {
    next: RedisValue,
    delta: RedisValue,
    at: Hlc,
    actor: Actor,
    now_ms: u64,
}

fn check_bytes(bytes: usize, max: usize) -> Result<(), CrdtError> {
    match bytes > max {
        true => Err(CrdtError::TooLarge { bytes, max }),
        false => Ok(()),
    }
}

impl Write {
    fn push(&mut self, delta: RedisValue) {
        self.next.merge(&delta);
        self.delta.merge(&delta);
    }

    fn stamp(&self) -> Stamp {
        Stamp {
            at: self.at,
            actor: self.actor,
        }
    }

    fn kind(&self) -> Option<RedisKind> {
        self.next.kind(self.now_ms)
    }

    fn string(&self) -> Result<Option<Vec<u8>>, CrdtError> {
        Ok(self.next.get(self.now_ms)?.map(Cow::into_owned))
    }

    fn apply(&mut self, op: &RedisOp) -> Result<RedisOutcome, CrdtError> {
        match op {
            RedisOp::Set {
                value,
                expiry,
                condition,
                get,
            } => self.set(value, *expiry, *condition, *get),
            RedisOp::Del => Ok(RedisOutcome::Integer(i64::from(self.delete()))),
            RedisOp::GetDel => {
                let old = self.string()?;
                self.delete();
                Ok(RedisOutcome::Value(old))
            }
            RedisOp::GetEx(expiry) => self.get_ex(*expiry),
            RedisOp::IncrBy(by) => self.incr_by(*by),
            RedisOp::HSet(fields) => self.hash_set(fields),
            RedisOp::HDel(fields) => self.hash_delete(fields),
            RedisOp::HIncrBy { field, by } => self.hash_incr_by(field, *by),
            RedisOp::Expire {
                deadline_ms,
                condition,
            } => self.expire(*deadline_ms, *condition),
            RedisOp::Persist => self.persist(),
            RedisOp::Replace {
                content,
                deadline_ms,
            } => self.replace(content, *deadline_ms),
        }
    }

    fn set(
        &mut self,
        value: &[u8],
        expiry: SetExpiry,
        condition: Option<SetCondition>,
        get: bool,
    ) -> Result<RedisOutcome, CrdtError> {
        check_bytes(value.len(), VALUE_BYTES_MAX)?;
        let old = if get { self.string()? } else { None };
        let exists = self.kind().is_some();
        let allowed = match condition {
            None => true,
            Some(SetCondition::Nx) => !exists,
            Some(SetCondition::Xx) => exists,
        };
        if !allowed {
            return Ok(RedisOutcome::Set {
                written: false,
                old,
            });
        }
        let deadline_ms = match expiry {
            SetExpiry::Clear => None,
            SetExpiry::KeepTtl => self.next.deadline_ms(),
            SetExpiry::AtMs(deadline_ms) => Some(deadline_ms),
        };
        let kind = HeadKind::String(ByteBuf::from(value.to_vec()));
        self.whole_key(kind, deadline_ms)?;
        Ok(RedisOutcome::Set { written: true, old })
    }

    /// Writes the whole key as `kind` with `deadline_ms` as its expiry.
    fn whole_key(&mut self, kind: HeadKind, deadline_ms: Option<u64>) -> Result<(), CrdtError> {
        let whole = self.next.whole_key_delta(kind, self.stamp());
        self.push(whole);
        if let Some(deadline_ms) = deadline_ms {
            let expiry = self
                .next
                .expiry_delta(Deadline::AtMs(deadline_ms), self.actor)?;
            self.push(expiry);
        }
        Ok(())
    }

    /// Deletes the key if it exists; whether it did.
    fn delete(&mut self) -> bool {
        if self.kind().is_none() {
            return false;
        }
        let whole = self.next.whole_key_delta(HeadKind::Deleted, self.stamp());
        self.push(whole);
        true
    }

    fn get_ex(&mut self, expiry: GetExExpiry) -> Result<RedisOutcome, CrdtError> {
        let old = self.string()?;
        let deadline = match expiry {
            GetExExpiry::AtMs(deadline_ms) => Some(Deadline::AtMs(deadline_ms)),
            GetExExpiry::Persist => self.next.deadline_ms().map(|_| Deadline::Persist),
        };
        if let (Some(_), Some(deadline)) = (&old, deadline) {
            let delta = self.next.expiry_delta(deadline, self.actor)?;
            self.push(delta);
        }
        Ok(RedisOutcome::Value(old))
    }

    fn incr_by(&mut self, by: i64) -> Result<RedisOutcome, CrdtError> {
        let value = match self.kind() {
            Some(RedisKind::Hash) => return Err(RedisError::WrongType.into()),
            None => {
                self.start_key();
                0
            }
            Some(RedisKind::Counter) => self.next.counter_value(),
            Some(RedisKind::String) => {
                let text = self.string()?.unwrap_or_default();
                let base = parse_integer(&text).ok_or(RedisError::NotInteger)?;
                // The integer string becomes a counter, keeping its expiry (as INCR does).
                let deadline_ms = self.next.deadline_ms();
                self.whole_key(HeadKind::Counter(base), deadline_ms)?;
                base
            }
        };
        let new = value.checked_add(by).ok_or(RedisError::Overflow)?;
        let delta = self.next.counter_delta(by, self.at, self.actor)?;
        self.push(delta);
        Ok(RedisOutcome::Integer(new))
    }

    /// Refuses a hash command on a key showing another type; on a key showing nothing,
    /// starts a new one.
    fn check_hash(&mut self) -> Result<(), CrdtError> {
        match self.kind() {
            Some(RedisKind::String | RedisKind::Counter) => Err(RedisError::WrongType.into()),
            Some(RedisKind::Hash) => Ok(()),
            None => {
                self.start_key();
                Ok(())
            }
        }
    }

    /// A key made by a field or an increment on a key showing nothing starts without a
    /// deadline, as a new Redis key does: expiry entries left from before (an `EXPIRE`
    /// made concurrently with the `DEL` of content that is gone) are removed.
    fn start_key(&mut self) {
        let clear = RedisValue {
            expiry: self.next.expiry.clear_delta(),
            ..RedisValue::default()
        };
        if !clear.is_bottom() {
            self.push(clear);
        }
    }

    /// Writes one field, refusing a new field past `RESP_HASH_FIELDS_MAX`; whether the
    /// field is new.
    fn write_field(&mut self, field: &[u8], value: Vec<u8>) -> Result<bool, CrdtError> {
        check_bytes(field.len(), RESP_FIELD_NAME_BYTES_MAX)?;
        check_bytes(value.len(), VALUE_BYTES_MAX)?;
        let new = self.next.field_value(field).is_none();
        if new && self.next.field_count() >= RESP_HASH_FIELDS_MAX {
            return Err(CrdtError::TooMany {
                what: "hash fields",
                max: RESP_HASH_FIELDS_MAX,
            });
        }
        let delta = self.next.field_delta(field, value, self.at, self.actor)?;
        self.push(delta);
        Ok(new)
    }

    fn hash_set(&mut self, fields: &[(ByteBuf, ByteBuf)]) -> Result<RedisOutcome, CrdtError> {
        self.check_hash()?;
        let mut added = 0;
        for (field, value) in fields {
            added += i64::from(self.write_field(field, value.to_vec())?);
        }
        check_bytes(self.next.hash_bytes(), VALUE_BYTES_MAX)?;
        Ok(RedisOutcome::Integer(added))
    }

    fn hash_delete(&mut self, fields: &[ByteBuf]) -> Result<RedisOutcome, CrdtError> {
        if self.kind().is_none() {
            return Ok(RedisOutcome::Integer(0));
        }
        self.check_hash()?;
        let mut removed = 0;
        let unique: BTreeSet<&ByteBuf> = fields.iter().collect();
        for field in unique {
            if self.next.field_value(field).is_some() {
                let delta = self.next.field_remove_delta(field);
                self.push(delta);
                removed += 1;
            }
        }
        Ok(RedisOutcome::Integer(removed))
    }

    fn hash_incr_by(&mut self, field: &[u8], by: i64) -> Result<RedisOutcome, CrdtError> {
        self.check_hash()?;
        let value = match self.next.field_value(field) {
            None => 0,
            Some(text) => parse_integer(text).ok_or(RedisError::HashValueNotInteger)?,
        };
        let new = value.checked_add(by).ok_or(RedisError::Overflow)?;
        self.write_field(field, new.to_string().into_bytes())?;
        check_bytes(self.next.hash_bytes(), VALUE_BYTES_MAX)?;
        Ok(RedisOutcome::Integer(new))
    }

    fn expire(
        &mut self,
        deadline_ms: u64,
        condition: Option<ExpireCondition>,
    ) -> Result<RedisOutcome, CrdtError> {
        if self.kind().is_none() {
            return Ok(RedisOutcome::Integer(0));
        }
        let current = self.next.deadline_ms();
        let allowed = match condition {
            None => true,
            Some(ExpireCondition::Nx) => current.is_none(),
            Some(ExpireCondition::Xx) => current.is_some(),
            Some(ExpireCondition::Gt) => current.is_some_and(|current| deadline_ms > current),
            Some(ExpireCondition::Lt) => current.is_none_or(|current| deadline_ms < current),
        };
        if !allowed {
            return Ok(RedisOutcome::Integer(0));
        }
        let delta = self
            .next
            .expiry_delta(Deadline::AtMs(deadline_ms), self.actor)?;
        self.push(delta);
        Ok(RedisOutcome::Integer(1))
    }

    fn persist(&mut self) -> Result<RedisOutcome, CrdtError> {
        if self.kind().is_none() || self.next.deadline_ms().is_none() {
            return Ok(RedisOutcome::Integer(0));
        }
        let delta = self.next.expiry_delta(Deadline::Persist, self.actor)?;
        self.push(delta);
        Ok(RedisOutcome::Integer(1))
    }

    fn replace(
        &mut self,
        content: &RedisContent,
        deadline_ms: Option<u64>,
    ) -> Result<RedisOutcome, CrdtError> {
        match content {
            RedisContent::String(value) => {
                check_bytes(value.len(), VALUE_BYTES_MAX)?;
                self.whole_key(HeadKind::String(ByteBuf::from(value.clone())), None)?;
            }
            RedisContent::Counter(value) => self.whole_key(HeadKind::Counter(*value), None)?,
            RedisContent::Hash(fields) => {
                self.whole_key(HeadKind::Deleted, None)?;
                for (field, value) in fields {
                    self.write_field(field, value.clone())?;
                }
                check_bytes(self.next.hash_bytes(), VALUE_BYTES_MAX)?;
            }
        }
        // The deadline belongs to the new epoch (an empty hash leaves nothing to expire).
        if let (Some(deadline_ms), Some(_)) = (deadline_ms, self.next.shown_kind()) {
            let delta = self
                .next
                .expiry_delta(Deadline::AtMs(deadline_ms), self.actor)?;
            self.push(delta);
        }
        Ok(RedisOutcome::Done)
    }
}
