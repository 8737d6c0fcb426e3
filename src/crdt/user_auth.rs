//! A user's record in the `auth` class, as a join-semilattice: the not-before time
//! ("log out everywhere": tokens created at or before it are refused; max-wins), the
//! revoked token families (rotation chains revoked at once after a reuse; the newest
//! `REVOKED_FAMILIES_MAX`, an older one dropped raises the not-before time to its
//! revocation so nothing it refused comes back), and an audit list of security events
//! (the newest `AUDIT_ENTRIES_MAX`).
//!
//! Every element carries its time and is kept `SESSION_LIFETIME_MS_MAX` after it: longer
//! than any token it can refuse. The sweeper's delete raises `floor_ms`, and every
//! element whose time plus that bound is at or below the floor is dropped on every
//! merge. Like the user document's floor, pruning by a threshold on each element
//! commutes with the join, so the record stays a join-semilattice; a later logout
//! writes a newer element, which the floor does not reach.

use serde::{Deserialize, Serialize};

use crate::limits::{
    AUDIT_ENTRIES_MAX, AUDIT_TEXT_CHARS_MAX, REVOKED_FAMILIES_MAX, SESSION_LIFETIME_MS_MAX,
};

/// A token family revoked at `at_ms` (by its first token's hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RevokedFamily {
    pub at_ms: u64,
    pub family: [u8; 32],
}

/// One security event, as operators read it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_ms: u64,
    /// What happened, e.g. `token_reused`.
    pub event: String,
    /// The device of the token involved.
    pub device: String,
    /// The region of the node that saw it.
    pub region: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAuth {
    pub not_before_ms: u64,
    /// Newest first, no repeats.
    pub revoked: Vec<RevokedFamily>,
    /// Newest first, no repeats.
    pub audit: Vec<AuditEntry>,
    /// Elements whose time plus `SESSION_LIFETIME_MS_MAX` is at or below it are gone.
    pub floor_ms: u64,
    /// When the sweeper last deleted the record (tombstone collection waits past it).
    pub swept_ms: u64,
}

/// One change to a user's auth record; each part is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAuthOp {
    pub not_before_ms: Option<u64>,
    pub revoke: Option<RevokedFamily>,
    pub audit: Option<AuditEntry>,
}

fn kept(at_ms: u64, floor_ms: u64) -> bool {
    at_ms.saturating_add(SESSION_LIFETIME_MS_MAX) > floor_ms
}

fn cut(text: &str) -> String {
    text.chars().take(AUDIT_TEXT_CHARS_MAX).collect()
}

/// Joins two newest-first lists without repeats.
fn union_newest_first<T: Ord + Clone>(mine: &mut Vec<T>, theirs: &[T]) {
    mine.extend(theirs.iter().cloned());
    mine.sort_unstable_by(|left, right| right.cmp(left));
    mine.dedup();
}

impl UserAuth {
    pub fn merge(&mut self, other: &UserAuth) {
        self.not_before_ms = self.not_before_ms.max(other.not_before_ms);
        self.floor_ms = self.floor_ms.max(other.floor_ms);
        self.swept_ms = self.swept_ms.max(other.swept_ms);
        union_newest_first(&mut self.revoked, &other.revoked);
        union_newest_first(&mut self.audit, &other.audit);
        self.normalize();
    }

    /// Bounds the lists and prunes below the floor.
    fn normalize(&mut self) {
        if self.revoked.len() > REVOKED_FAMILIES_MAX {
            let dropped = self.revoked.split_off(REVOKED_FAMILIES_MAX);
            // The newest dropped revocation: every token of its family, and of the
            // older dropped ones, was created before it.
            if let Some(newest) = dropped.first() {
                self.not_before_ms = self.not_before_ms.max(newest.at_ms);
            }
        }
        self.audit.truncate(AUDIT_ENTRIES_MAX);
        let floor = self.floor_ms;
        if !kept(self.not_before_ms, floor) {
            self.not_before_ms = 0;
        }
        self.revoked.retain(|entry| kept(entry.at_ms, floor));
        self.audit.retain(|entry| kept(entry.at_ms, floor));
    }

    /// Applies `op` and returns the delta to replicate.
    pub fn apply(&mut self, op: &UserAuthOp) -> UserAuth {
        let delta = UserAuth {
            not_before_ms: op.not_before_ms.unwrap_or(0),
            revoked: op.revoke.into_iter().collect(),
            audit: op
                .audit
                .iter()
                .map(|entry| AuditEntry {
                    at_ms: entry.at_ms,
                    event: cut(&entry.event),
                    device: cut(&entry.device),
                    region: cut(&entry.region),
                })
                .collect(),
            floor_ms: 0,
            swept_ms: 0,
        };
        self.merge(&delta);
        delta
    }

    /// The tombstone of a record that expired at `deadline_ms`, swept at `now_ms`.
    pub fn expired_at(deadline_ms: u64, now_ms: u64) -> UserAuth {
        UserAuth {
            floor_ms: deadline_ms,
            swept_ms: now_ms,
            ..UserAuth::default()
        }
    }

    /// Whether a token of `family` created at `created_ms` is refused by this record.
    pub fn refuses(&self, created_ms: u64, family: &[u8; 32]) -> bool {
        created_ms <= self.not_before_ms || self.revoked.iter().any(|r| r.family == *family)
    }

    /// When the newest element stops being needed (0 for an empty record).
    pub fn deadline_ms(&self) -> u64 {
        let newest = [
            Some(self.not_before_ms).filter(|at| *at > 0),
            self.revoked.first().map(|entry| entry.at_ms),
            self.audit.first().map(|entry| entry.at_ms),
        ];
        newest
            .into_iter()
            .flatten()
            .max()
            .map_or(0, |at| at.saturating_add(SESSION_LIFETIME_MS_MAX))
    }

    /// Emptied by a sweep: what the sweeper leaves behind.
    pub fn is_tombstone(&self) -> bool {
        self.floor_ms > 0
            && self.not_before_ms == 0
            && self.revoked.is_empty()
            && self.audit.is_empty()
    }
}

#[cfg(test)]
mod tests;
