//! A replicated document of the session service's classes: what replicas store for `auth`
//! and `user` keys, merged by their lattices (never kept as siblings), and the operations
//! a replica applies to them.

use serde::{Deserialize, Serialize};

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
}

impl Doc {
    /// Joins `other` into `self`; documents of different kinds never merge.
    pub fn merge(&mut self, other: &Doc) -> Result<(), CrdtError> {
        match (self, other) {
            (Doc::User(mine), Doc::User(theirs)) => mine.merge(theirs),
            (Doc::Token(mine), Doc::Token(theirs)) => mine.merge(theirs),
            (Doc::UserAuth(mine), Doc::UserAuth(theirs)) => mine.merge(theirs),
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
        }
    }

    /// When the delete this tombstone stands for was made.
    pub fn deleted_ms(&self) -> u64 {
        match self {
            Doc::User(user) => user.swept_ms,
            Doc::Token(TokenDoc::Erased { at_ms }) => *at_ms,
            Doc::Token(TokenDoc::Live(_)) => 0,
            Doc::UserAuth(record) => record.swept_ms,
        }
    }

    /// The time after which the document is never served (0 if it has none yet).
    pub fn deadline_ms(&self) -> u64 {
        match self {
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
        match (self, op) {
            (Doc::User(user), DocOp::User(op)) => Ok(Doc::User(user.apply(op, actor, at, now_ms)?)),
            (Doc::Token(token), DocOp::Token(op)) => Ok(Doc::Token(token.apply(op)?)),
            (Doc::UserAuth(record), DocOp::UserAuth(op)) => Ok(Doc::UserAuth(record.apply(op))),
            (doc, DocOp::Expire { deadline_ms }) => {
                if doc.deadline_ms() > *deadline_ms {
                    return Err(CrdtError::StillLive);
                }
                let delta = match doc {
                    Doc::User(_) => Doc::User(UserDoc::expired_at(*deadline_ms, now_ms)),
                    Doc::Token(_) => Doc::Token(TokenDoc::Erased { at_ms: now_ms }),
                    Doc::UserAuth(_) => Doc::UserAuth(UserAuth::expired_at(*deadline_ms, now_ms)),
                };
                doc.merge(&delta)?;
                Ok(delta)
            }
            _ => Err(CrdtError::Mismatch),
        }
    }
}
