//! The stored `auth` record of one token, as a join-semilattice: identity fields are
//! written once, times only move forward (`last_seen_ms`, `idle_deadline_ms` max-wins),
//! a revocation or a rotation once made is never undone (the earliest one wins), and an
//! erased record (the sweeper's tombstone) absorbs everything.
//!
//! Validation is a pure function of the merged record and the time: `verdict`.

use serde::{Deserialize, Serialize};

/// What a token record was created with; never changes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenIdentity {
    pub user: String,
    pub device: String,
    /// Keyed hash of the session's CSRF token.
    pub csrf: [u8; 32],
    pub created_ms: u64,
    pub absolute_ms: u64,
}

/// A rotation: the token was replaced by the token hashing to `to` at `at_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rotation {
    pub at_ms: u64,
    pub to: [u8; 32],
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// `None` only in deltas that touch a record a replica has not seen yet.
    pub identity: Option<TokenIdentity>,
    pub last_seen_ms: u64,
    pub idle_deadline_ms: u64,
    pub revoked_ms: Option<u64>,
    pub rotated: Option<Rotation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenDoc {
    Live(TokenRecord),
    /// Swept after expiry (at `at_ms`); nothing brings the record back.
    Erased {
        at_ms: u64,
    },
}

/// One change to a token record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenOp {
    Create(TokenRecord),
    /// Used at `at_ms`: slides the idle deadline (capped by the absolute one).
    Seen {
        at_ms: u64,
        idle_deadline_ms: u64,
    },
    Revoke {
        at_ms: u64,
    },
    Rotate(Rotation),
}

/// What validating a token found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Unknown,
    Expired,
    Revoked,
    /// Used after its rotation (past the grace): a sign the old token leaked.
    Reused,
}

fn earliest<T: Ord + Copy>(left: Option<T>, right: Option<T>) -> Option<T> {
    match (left, right) {
        (Some(left), Some(right)) => Some(left.min(right)),
        (left, right) => left.or(right),
    }
}

impl TokenRecord {
    pub fn merge(&mut self, other: &TokenRecord) {
        self.identity = match (self.identity.take(), &other.identity) {
            (Some(mine), Some(theirs)) => Some(mine.max(theirs.clone())),
            (mine, theirs) => mine.or_else(|| theirs.clone()),
        };
        self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
        self.idle_deadline_ms = self.idle_deadline_ms.max(other.idle_deadline_ms);
        self.revoked_ms = earliest(self.revoked_ms, other.revoked_ms);
        self.rotated = earliest(self.rotated, other.rotated);
    }

    /// When the token stops being valid by time alone.
    pub fn deadline_ms(&self) -> u64 {
        let absolute = self.identity.as_ref().map_or(0, |id| id.absolute_ms);
        self.idle_deadline_ms.min(absolute)
    }
}

impl TokenDoc {
    pub fn merge(&mut self, other: &TokenDoc) {
        match (&mut *self, other) {
            (TokenDoc::Erased { at_ms }, TokenDoc::Erased { at_ms: theirs }) => {
                *at_ms = (*at_ms).max(*theirs);
            }
            (TokenDoc::Erased { .. }, TokenDoc::Live(_)) => {}
            (TokenDoc::Live(_), TokenDoc::Erased { .. }) => *self = other.clone(),
            (TokenDoc::Live(mine), TokenDoc::Live(theirs)) => mine.merge(theirs),
        }
    }

    pub fn record(&self) -> Option<&TokenRecord> {
        match self {
            TokenDoc::Live(record) => Some(record),
            TokenDoc::Erased { .. } => None,
        }
    }

    /// Applies `op` and returns the delta to replicate (the op as a partial record).
    pub fn apply(&mut self, op: &TokenOp) -> TokenDoc {
        let delta = match op {
            TokenOp::Create(record) => record.clone(),
            TokenOp::Seen {
                at_ms,
                idle_deadline_ms,
            } => TokenRecord {
                last_seen_ms: *at_ms,
                idle_deadline_ms: *idle_deadline_ms,
                ..TokenRecord::default()
            },
            TokenOp::Revoke { at_ms } => TokenRecord {
                revoked_ms: Some(*at_ms),
                ..TokenRecord::default()
            },
            TokenOp::Rotate(rotation) => TokenRecord {
                rotated: Some(*rotation),
                ..TokenRecord::default()
            },
        };
        let delta = TokenDoc::Live(delta);
        self.merge(&delta);
        delta
    }
}

/// Whether the merged record `doc` lets its token in at `now_ms`; a rotated token keeps
/// working for `grace_ms` after its rotation.
pub fn verdict(doc: Option<&TokenDoc>, now_ms: u64, grace_ms: u64) -> Verdict {
    let Some(record) = doc.and_then(TokenDoc::record) else {
        return match doc {
            Some(TokenDoc::Erased { .. }) => Verdict::Expired,
            _ => Verdict::Unknown,
        };
    };
    if record.identity.is_none() {
        return Verdict::Unknown;
    }
    if record.revoked_ms.is_some() {
        return Verdict::Revoked;
    }
    if record.deadline_ms() <= now_ms {
        return Verdict::Expired;
    }
    match record.rotated {
        Some(rotation) if now_ms >= rotation.at_ms.saturating_add(grace_ms) => Verdict::Reused,
        _ => Verdict::Valid,
    }
}
