//! A replicated document of the session service's classes: what replicas store for `auth`
//! and `user` keys, merged by their lattices (never kept as siblings), and the operations
//! a replica applies to them. A RESP key's `RedisValue` is one of them too (`Doc::Redis`):
//! it is stored, replicated, repaired and swept as the session documents are.

use serde::{Deserialize, Serialize};

use super::redis::{RedisOp, RedisOutcome, RedisValue};
use super::token::{TokenDoc, TokenOp};
use super::user::{UserDoc, UserOp};
use super::user_auth::{UserAuth, UserAuthOp};
use super::CrdtError;
use crate::clock::{Actor, Hlc};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Doc {
    User(UserDoc),
    Token(TokenDoc),
    /// A user's `auth` record: not-before time, revoked families, audit entries.
    UserAuth(UserAuth),
    /// A RESP key's value (`Class::Resp`). Last, so the encodings of the variants
    /// before it do not change.
    Redis(RedisValue),
}

/// An operation on a document, sent to the one replica that applies it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DocOp {
    User(UserOp),
    Token(TokenOp),
    UserAuth(UserAuthOp),
    /// The sweeper's delete of a document that expired at `deadline_ms`.
    Expire {
        deadline_ms: u64,
    },
    /// A Redis command changing one RESP key (last: earlier encodings stay).
    Redis(RedisOp),
    /// A Redis command that reads what it changes (HINCRBY, PERSIST, a conditional SET
    /// or EXPIRE), applied after `base`, the value the coordinator read from a quorum,
    /// is merged in: the replica that applies it may have missed a write another node
    /// acknowledged (it was not in that write's quorum), and would otherwise compute
    /// from the older value (an increment lost, a PERSIST answered 1 twice).
    RedisAfter {
        base: Box<RedisValue>,
        op: RedisOp,
    },
}

impl DocOp {
    /// Whether applying this twice (at two replicas, after the first one's answer was
    /// lost) leaves what applying it once leaves: false for a counter increment, which
    /// each replica counts under its own actor.
    pub fn repeatable(&self) -> bool {
        match self {
            DocOp::Redis(op) | DocOp::RedisAfter { op, .. } => op.repeatable(),
            _ => true,
        }
    }
}

impl Doc {
    /// Joins `other` into `self`; documents of different kinds never merge.
    pub fn merge(&mut self, other: &Doc) -> Result<(), CrdtError> {
        match (self, other) {
            (Doc::User(mine), Doc::User(theirs)) => mine.merge(theirs),
            (Doc::Token(mine), Doc::Token(theirs)) => mine.merge(theirs),
            (Doc::UserAuth(mine), Doc::UserAuth(theirs)) => mine.merge(theirs),
            (Doc::Redis(mine), Doc::Redis(theirs)) => mine.merge(theirs),
            _ => return Err(CrdtError::Mismatch),
        }
        Ok(())
    }

    /// Whether this is only what a delete left behind.
    pub fn is_tombstone(&self) -> bool {
        match self {
            Doc::User(user) => user.is_tombstone(),
            Doc::Token(token) => matches!(token, TokenDoc::Erased { .. }),
            Doc::UserAuth(record) => record.is_tombstone(),
            // An empty value (what a `DEL` or `HDEL` of a missing key stores) holds
            // nothing a merge could need: collected as a tombstone, it is not kept for
            // ever.
            Doc::Redis(value) => value.is_tombstone() || value.is_bottom(),
        }
    }

    /// When the delete this tombstone stands for was made.
    pub fn deleted_ms(&self) -> u64 {
        match self {
            Doc::User(user) => user.swept_ms,
            Doc::Token(TokenDoc::Erased { at_ms }) => *at_ms,
            Doc::Token(TokenDoc::Live(_)) => 0,
            Doc::UserAuth(record) => record.swept_ms,
            Doc::Redis(value) => value.deleted_ms(),
        }
    }

    /// The time after which the document is never served (0 if it has none yet). A
    /// Redis key without a deadline never expires: `u64::MAX`, never 0, or the sweeper
    /// would delete it.
    pub fn deadline_ms(&self) -> u64 {
        match self {
            Doc::Redis(value) => value.deadline_ms().unwrap_or(u64::MAX),
            Doc::User(user) => user.deadline_ms,
            Doc::Token(TokenDoc::Live(record)) => record.deadline_ms(),
            Doc::Token(TokenDoc::Erased { .. }) => 0,
            Doc::UserAuth(record) => record.deadline_ms(),
        }
    }

    /// A document nothing was written to, of the kind `op` works on.
    pub fn empty_for(op: &DocOp) -> Option<Doc> {
        match op {
            DocOp::User(_) => Some(Doc::User(UserDoc::default())),
            DocOp::Token(_) => Some(Doc::Token(TokenDoc::Live(Default::default()))),
            DocOp::UserAuth(_) => Some(Doc::UserAuth(UserAuth::default())),
            DocOp::Redis(_) | DocOp::RedisAfter { .. } => Some(Doc::Redis(RedisValue::default())),
            DocOp::Expire { .. } => None,
        }
    }

    /// Applies `op` as replica `actor` at `at` (`now_ms` decides expiry) and returns the
    /// delta to send to the other replicas. A refused op changes nothing.
    pub fn apply(
        &mut self,
        op: &DocOp,
        actor: Actor,
        at: Hlc,
        now_ms: u64,
    ) -> Result<Doc, CrdtError> {
        Ok(self.apply_outcome(op, actor, at, now_ms)?.0)
    }

    /// `apply`, also returning what a Redis command answers (`None` for the other
    /// documents). A Redis op that changed nothing returns an empty delta.
    pub fn apply_outcome(
        &mut self,
        op: &DocOp,
        actor: Actor,
        at: Hlc,
        now_ms: u64,
    ) -> Result<(Doc, Option<RedisOutcome>), CrdtError> {
        let delta = match (self, op) {
            (Doc::User(user), DocOp::User(op)) => Doc::User(user.apply(op, actor, at, now_ms)?),
            (Doc::Token(token), DocOp::Token(op)) => Doc::Token(token.apply(op)?),
            (Doc::UserAuth(record), DocOp::UserAuth(op)) => Doc::UserAuth(record.apply(op)),
            (Doc::Redis(value), DocOp::Redis(op)) => {
                let applied = value.apply(op, at, actor, now_ms)?;
                let delta = Doc::Redis(applied.delta.unwrap_or_default());
                return Ok((delta, Some(applied.outcome)));
            }
            (Doc::Redis(value), DocOp::RedisAfter { base, op }) => {
                // The base goes out with the delta: a replica that missed it catches up.
                value.merge(base);
                let applied = value.apply(op, at, actor, now_ms)?;
                let mut delta = RedisValue::clone(base);
                if let Some(changed) = &applied.delta {
                    delta.merge(changed);
                }
                return Ok((Doc::Redis(delta), Some(applied.outcome)));
            }
            (Doc::Redis(value), DocOp::Expire { deadline_ms }) => {
                Doc::Redis(value.sweep(*deadline_ms, now_ms)?.unwrap_or_default())
            }
            (doc, DocOp::Expire { deadline_ms }) => {
                if doc.deadline_ms() > *deadline_ms {
                    return Err(CrdtError::StillLive);
                }
                let delta = match doc {
                    Doc::User(_) => Doc::User(UserDoc::expired_at(*deadline_ms, now_ms)),
                    Doc::Token(_) => Doc::Token(TokenDoc::Erased { at_ms: now_ms }),
                    Doc::UserAuth(_) => Doc::UserAuth(UserAuth::expired_at(*deadline_ms, now_ms)),
                    Doc::Redis(_) => return Err(CrdtError::Mismatch),
                };
                doc.merge(&delta)?;
                delta
            }
            _ => return Err(CrdtError::Mismatch),
        };
        Ok((delta, None))
    }
}
