//! What a validation needs to know about a token before it has read it: whose it is
//! and which token it replaced. A token's identity is written once, when it is made
//! (its hash is a keyed hash of fresh random bits, so no other write can name it), and
//! never changes after; so a node that has read it once may remember it and send the
//! reads of the checks (the user's auth record, the parent, the user's document) at
//! the same time as the read of the token itself: one round of reads instead of two.
//! (A node that has not, but holds a replica of the token's record, reads the identity
//! from its own copy in place: `validate`.)
//!
//! Nothing is decided from what is remembered. The token is still read at the
//! validation's level, every verdict (revoked, expired, reused, not-before) comes from
//! that read and from the check reads, and the checks read ahead are used only when
//! the identity the token read names is the one remembered; otherwise they are read
//! again for the right user. A fixed table allocated once (direct-mapped by the keyed
//! hash, so a client cannot aim at a slot): only tokens found valid enter it, so
//! nothing a client sends makes it grow, and a user name longer than a valid one is
//! not kept.

use std::sync::Mutex;

use super::guard::slot_of;

use crate::crdt::TokenIdentity;
use crate::limits;

/// What the check reads of a token need: its user and the token it replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub user: Box<str>,
    pub parent: Option<[u8; 32]>,
}

impl Known {
    pub fn of(identity: &TokenIdentity) -> Known {
        Known {
            user: identity.user.as_str().into(),
            parent: identity.parent(),
        }
    }

    /// Whether `identity` (as a token read named it) is this one.
    pub fn matches(&self, identity: &TokenIdentity) -> bool {
        *self.user == *identity.user && self.parent == identity.parent()
    }
}

/// A token hash and its identity.
type Slot = Option<([u8; 32], Known)>;

/// The identities of tokens found valid on this node, by token hash.
pub struct IdentityCache {
    slots: Mutex<Vec<Slot>>,
}

impl Default for IdentityCache {
    fn default() -> Self {
        IdentityCache::with_capacity(limits::IDENTITY_CACHE_ENTRIES_MAX)
    }
}

impl IdentityCache {
    pub fn with_capacity(entries: usize) -> Self {
        IdentityCache {
            slots: Mutex::new(vec![None; entries.max(1)]),
        }
    }

    /// The identity remembered for the token hashing to `hash`.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Known> {
        let slots = self.slots.lock().expect("identity cache lock poisoned");
        match &slots[slot_of(hash, slots.len())] {
            Some((held, known)) if held == hash => Some(known.clone()),
            _ => None,
        }
    }

    /// Remembers the identity of the token hashing to `hash` (found valid), in place of
    /// whatever its slot held. A user name longer than a valid one is not kept.
    pub fn insert(&self, hash: &[u8; 32], identity: &TokenIdentity) {
        if identity.user.len() > limits::IDENTITY_CACHE_USER_BYTES_MAX {
            return;
        }
        let known = Known::of(identity);
        let mut slots = self.slots.lock().expect("identity cache lock poisoned");
        let index = slot_of(hash, slots.len());
        if matches!(&slots[index], Some((held, kept)) if held == hash && *kept == known) {
            return;
        }
        slots[index] = Some((*hash, known));
    }

    /// Entries the table can hold (its size never changes).
    pub fn capacity(&self) -> usize {
        self.slots
            .lock()
            .expect("identity cache lock poisoned")
            .len()
    }
}

#[cfg(test)]
mod tests;
