//! Merge laws and convergence of the stored documents (`UserDoc` and `TokenDoc`, driven
//! through `Doc`) under random ops at several replicas, expiries and random delivery, plus
//! the behaviour the session service relies on: add-wins carts, expiry that never brings
//! old content back, refusals that change nothing, bounded metadata and token verdicts.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::super::*;
use crate::clock::{Actor, Hlc};
use crate::limits::{PREFS_MAX, QUANTITY_MAX, SESSION_DOC_BYTES_MAX};

pub(super) const REPLICAS: usize = 3;
/// Rotation grace used by the verdict tests.
pub(super) const GRACE_MS: u64 = 30;

pub(super) fn actor(replica: usize) -> Actor {
    Actor(replica as u64 + 1)
}

pub(super) fn at(wall_ms: u64) -> Hlc {
    Hlc::new(wall_ms, 0)
}

pub(super) fn sku(key: u8) -> String {
    format!("sku-{key}")
}

pub(super) fn merged(left: &Doc, right: &Doc) -> Doc {
    let mut out = left.clone();
    out.merge(right).expect("documents of one kind merge");
    out
}

pub(super) fn user_op(change: UserChange, deadline_ms: u64) -> UserOp {
    UserOp {
        deadline_ms,
        change,
        limits: DocLimits::default(),
        op_id: None,
    }
}

pub(super) fn cart_add(key: u8, quantity: u32) -> UserChange {
    UserChange::CartAdd {
        sku: sku(key),
        quantity,
    }
}

pub(super) fn cart_set(key: u8, quantity: u32) -> UserChange {
    UserChange::CartSet {
        sku: sku(key),
        quantity,
    }
}

pub(super) fn pref_set(name: &str, value: &str) -> UserChange {
    UserChange::PrefSet {
        name: name.to_string(),
        value: value.to_string(),
    }
}

pub(super) fn identity(user: &str, absolute_ms: u64) -> TokenIdentity {
    TokenIdentity {
        user: user.to_string(),
        device: "laptop".to_string(),
        csrf: [7; 32],
        created_ms: 0,
        absolute_ms,
        lineage: None,
    }
}

pub(super) fn token_record(idle_deadline_ms: u64, absolute_ms: u64) -> TokenRecord {
    TokenRecord {
        identity: Some(identity("alice", absolute_ms)),
        last_seen_ms: 0,
        idle_deadline_ms,
        revoked_ms: None,
        rotated: None,
    }
}

mod laws;
mod redis_doc;
mod units;
