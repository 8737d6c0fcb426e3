//! The stored `auth` record of one token, as a join-semilattice: identity fields are
//! written once, times only move forward (`last_seen_ms`, `idle_deadline_ms` max-wins),
//! a revocation or a rotation once made is never undone (the earliest one wins), and an
//! erased record (the sweeper's tombstone) absorbs everything.
//!
//! Validation is a pure function of the merged record and the time: `verdict`, and for a
//! token made by a rotation, of its parent's merged record: `is_successor_of`.
//!
//! **Rotation is single-use, also in the merged state.** A replica applies `Rotate` only
//! to a record not rotated yet (or rotated to the same successor: a retry), else refuses
//! it with `CrdtError::AlreadyRotated`; the service writes the successor's record naming
//! its parent. Two rotations minted on different replicas (two coordinators, neither
//! seeing the other) both succeed there, and their successors both exist. But the
//! merged `rotated` field is one value (the earliest rotation by time, then by hash:
//! a deterministic winner every replica agrees on once it holds both), and a successor
//! is valid only while its parent's merged rotation names it. So in any merged state at
//! most one successor of a token is valid. With `each_quorum` rotation writes and
//! `local_quorum` validations, once both rotations are acknowledged (before which the
//! client of the later one does not have its token) every validation reads both, so the
//! loser is refused everywhere; the winner was the only one a client could present
//! before. A successor refused this way is a sign of a concurrent use of one token,
//! answered `token_revoked`.

use serde::{Deserialize, Serialize};

use super::CrdtError;

/// What a token record was created with; never changes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenIdentity {
    pub user: String,
    pub device: String,
    /// Keyed hash of the session's CSRF token.
    pub csrf: [u8; 32],
    pub created_ms: u64,
    pub absolute_ms: u64,
    /// Where a token made by a rotation comes from (`None` for a login); boxed, so
    /// a login's record stays small.
    #[serde(default)]
    pub lineage: Option<Box<TokenLineage>>,
}

impl TokenIdentity {
    /// The token this one replaced by a rotation.
    pub fn parent(&self) -> Option<[u8; 32]> {
        self.lineage.as_ref().map(|lineage| lineage.parent)
    }

    /// The first token of its rotation chain; `own` (this token's hash) for a login.
    pub fn family(&self, own: &[u8; 32]) -> [u8; 32] {
        self.lineage.as_ref().map_or(*own, |lineage| lineage.family)
    }
}

/// The parent of a token made by a rotation, and the first token of its chain (its
/// family, revoked as a whole after a reuse: `UserAuth::refuses`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenLineage {
    pub parent: [u8; 32],
    pub family: [u8; 32],
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

    /// Applies `op` and returns the delta to replicate (the op as a partial record). A
    /// rotation of a record already rotated elsewhere is refused and changes nothing.
    pub fn apply(&mut self, op: &TokenOp) -> Result<TokenDoc, CrdtError> {
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
            TokenOp::Rotate(rotation) => {
                let record = self.record();
                if record
                    .and_then(|record| record.rotated)
                    .is_some_and(|done| done.to != rotation.to)
                {
                    return Err(CrdtError::AlreadyRotated);
                }
                // A rotated record is kept until its absolute deadline: its successor's
                // validity is read from it, and so is a later reuse.
                let absolute_ms = record
                    .and_then(|record| record.identity.as_ref())
                    .map_or(0, |identity| identity.absolute_ms);
                TokenRecord {
                    rotated: Some(*rotation),
                    idle_deadline_ms: absolute_ms,
                    ..TokenRecord::default()
                }
            }
        };
        let delta = TokenDoc::Live(delta);
        self.merge(&delta);
        Ok(delta)
    }
}

/// Whether the merged record `parent` of the token hashing to `hash`'s parent names it
/// as its successor: false for any successor but the winning rotation's, and for a
/// parent not found (it is kept until the successor's absolute deadline).
pub fn is_successor_of(parent: Option<&TokenDoc>, hash: &[u8; 32]) -> bool {
    parent
        .and_then(TokenDoc::record)
        .and_then(|record| record.rotated)
        .is_some_and(|rotation| rotation.to == *hash)
}

/// Whether the merged record `doc` lets its token in at `now_ms`; a rotated token keeps
/// working for `grace_ms` after its rotation. With no grace a rotated token is refused
/// whatever the clocks say: the rotation's time comes from another node's clock, and a
/// validating node whose clock runs behind it must not read "not yet" into it. A
/// positive grace is judged by this node's clock, so a skew of S stretches or shortens
/// it by S (README, "Clocks").
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
        Some(_) if grace_ms == 0 => Verdict::Reused,
        Some(rotation) if now_ms >= rotation.at_ms.saturating_add(grace_ms) => Verdict::Reused,
        _ => Verdict::Valid,
    }
}
