//! The stored `user` document: a `Session` plus its replicated expiry.
//!
//! `deadline_ms` is merged max-wins: a sliding refresh only ever raises it. `floor` is the
//! end of an expired incarnation: everything written at or before it is dropped on every
//! merge, so a replica that still holds the old cart cannot bring it back into a session
//! the same user opens later. Pruning by a floor commutes with the join (an element
//! survives both ways exactly when it is newer than the larger floor), so the document is
//! still a join-semilattice.

use serde::{Deserialize, Serialize};

use super::applied::{AppliedOps, OpId};
use super::{CrdtError, Session};
use crate::clock::{Actor, Hlc};
use crate::limits::{self, QUANTITY_MAX};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDoc {
    pub floor: Hlc,
    pub deadline_ms: u64,
    /// When the sweeper last deleted an expired incarnation (tombstone collection waits
    /// for every replica to be in sync after it).
    pub swept_ms: u64,
    pub session: Session,
    /// The client operation ids applied to this document (a retry finds its id here).
    #[serde(default)]
    pub applied: AppliedOps,
}

/// Limits of one user's document, checked by the replica that applies a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocLimits {
    pub cart_lines_max: usize,
    pub prefs_max: usize,
    pub doc_bytes_max: usize,
}

impl Default for DocLimits {
    fn default() -> Self {
        DocLimits {
            cart_lines_max: limits::CART_LINES_MAX,
            prefs_max: limits::PREFS_MAX,
            doc_bytes_max: limits::SESSION_DOC_BYTES_MAX,
        }
    }
}

/// One change to a user's document, applied by one replica (which mints its dots).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserChange {
    /// Only raises the deadline (sliding expiry).
    Touch,
    CartAdd {
        sku: String,
        quantity: u32,
    },
    /// Quantity 0 removes the line.
    CartSet {
        sku: String,
        quantity: u32,
    },
    CartRemove {
        sku: String,
    },
    PrefSet {
        name: String,
        value: String,
    },
    PrefRemove {
        name: String,
    },
    HistoryAdd {
        item: String,
    },
    DeviceAdd {
        token: String,
    },
    DeviceRemove {
        token: String,
    },
}

/// A change plus the deadline the caller's valid token allows (raised, never lowered)
/// and the limits of the node that took the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserOp {
    pub deadline_ms: u64,
    pub change: UserChange,
    pub limits: DocLimits,
    /// The client's id of this operation (its `Idempotency-Key`): a document that has
    /// applied it already applies it again as nothing.
    #[serde(default)]
    pub op_id: Option<OpId>,
}

/// The floor that ends an incarnation which expired at `deadline_ms`.
pub fn floor_for(deadline_ms: u64) -> Hlc {
    Hlc {
        wall_ms: deadline_ms,
        logical: u32::MAX,
    }
}

impl UserDoc {
    /// Whether the document may be served at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.deadline_ms > now_ms && self.deadline_ms > self.floor.wall_ms
    }

    /// Expired and emptied: what the sweeper leaves behind.
    pub fn is_tombstone(&self) -> bool {
        self.deadline_ms <= self.floor.wall_ms && self.session.is_empty()
    }

    pub fn merge(&mut self, other: &UserDoc) {
        self.floor = self.floor.max(other.floor);
        self.deadline_ms = self.deadline_ms.max(other.deadline_ms);
        self.swept_ms = self.swept_ms.max(other.swept_ms);
        self.session.merge(&other.session);
        self.session.prune(self.floor);
        self.applied.merge(&other.applied);
    }

    /// The tombstone of a document that expired at `deadline_ms`, swept at `now_ms`.
    pub fn expired_at(deadline_ms: u64, now_ms: u64) -> UserDoc {
        UserDoc {
            floor: floor_for(deadline_ms),
            deadline_ms,
            swept_ms: now_ms,
            session: Session::new(),
            applied: AppliedOps::default(),
        }
    }

    /// Applies `op` as replica `actor` at `at` and returns the delta to replicate (an
    /// op whose id this document has applied changes nothing and returns the whole
    /// document, so its effect is replicated as far as a first attempt's). A
    /// document already expired at `now_ms` is ended first (its floor raised), so the new
    /// incarnation starts empty. Refused changes leave the document unchanged.
    pub fn apply(
        &mut self,
        op: &UserOp,
        actor: Actor,
        at: Hlc,
        now_ms: u64,
    ) -> Result<UserDoc, CrdtError> {
        let mut next = self.clone();
        let mut delta = UserDoc {
            floor: next.floor,
            deadline_ms: next.deadline_ms.max(op.deadline_ms),
            swept_ms: 0,
            session: Session::new(),
            applied: AppliedOps::default(),
        };
        if op.op_id.is_some_and(|id| next.applied.contains(id)) {
            // A retry of an operation this document has applied: nothing changes here,
            // and the delta is the whole document. The first attempt may have reached
            // only this replica (its round failed, or a duplicated request made this
            // the second mint of one round); the retry's round must carry its effect
            // to as many replicas as a first attempt would before it is acknowledged.
            return Ok(next);
        }
        if next.deadline_ms > 0 && !next.is_live(now_ms) {
            delta.floor = delta.floor.max(floor_for(next.deadline_ms));
            // Ending the incarnation is a delete: collection waits past it.
            delta.swept_ms = now_ms;
            next.merge(&delta);
        }
        next.deadline_ms = delta.deadline_ms;
        // Like any HLC, the stamp must exceed every timestamp seen, the floor included: a
        // write at or below it (made in the expiry's own millisecond, or by a replica whose
        // clock lags the one that ended the last incarnation) would be kept here but pruned
        // by every merge, so acknowledged yet lost everywhere else.
        let at = at.max(next.floor.successor());
        check_limits(&next.session, &op.change, &op.limits)?;
        let session = &mut next.session;
        let change = &mut delta.session;
        match &op.change {
            UserChange::Touch => {}
            UserChange::CartAdd { sku, quantity } => {
                change.cart = session.cart.add(sku.clone(), *quantity, at, actor)?;
            }
            UserChange::CartSet { sku, quantity: 0 } => change.cart = session.cart.remove(sku),
            UserChange::CartSet { sku, quantity } => {
                change.cart = session.cart.set(sku.clone(), *quantity, at, actor)?;
            }
            UserChange::CartRemove { sku } => change.cart = session.cart.remove(sku),
            UserChange::PrefSet { name, value } => {
                change.prefs = session.prefs.set(name.clone(), value.clone(), at, actor)?;
            }
            UserChange::PrefRemove { name } => {
                change.prefs = session.prefs.remove(name.clone(), at, actor);
            }
            UserChange::HistoryAdd { item } => {
                change.history = session.history.add(item.clone(), at, actor);
            }
            UserChange::DeviceAdd { token } => {
                change.devices = session.devices.add(token.clone(), at, actor)?;
            }
            UserChange::DeviceRemove { token } => change.devices = session.devices.remove(token),
        }
        if let Some(id) = op.op_id {
            next.applied.insert(at.wall_ms, id);
            delta.applied.insert(at.wall_ms, id);
        }
        let size = next.encoded_len();
        let max = op.limits.doc_bytes_max.min(limits::SESSION_DOC_BYTES_MAX);
        if size > max {
            return Err(CrdtError::TooLarge { bytes: size, max });
        }
        *self = next;
        Ok(delta)
    }

    /// The size of the document as stored.
    pub fn encoded_len(&self) -> usize {
        rmp_serde::to_vec(self).map_or(usize::MAX, |bytes| bytes.len())
    }
}

/// Refuses a change that adds a cart line or a pref past `limits`.
fn check_limits(
    session: &Session,
    change: &UserChange,
    limits: &DocLimits,
) -> Result<(), CrdtError> {
    match change {
        UserChange::CartAdd { sku, .. } | UserChange::CartSet { sku, .. }
            if session.cart.quantity(sku).is_none()
                && session.cart.len() >= limits.cart_lines_max =>
        {
            Err(CrdtError::TooMany {
                what: "cart lines",
                max: limits.cart_lines_max,
            })
        }
        UserChange::PrefSet { name, .. }
            if session.prefs.get(name).is_none()
                && session.prefs.len_live() >= limits.prefs_max =>
        {
            Err(CrdtError::TooMany {
                what: "prefs",
                max: limits.prefs_max,
            })
        }
        _ => Ok(()),
    }
}

/// Checks a quantity from a client: 0..=`QUANTITY_MAX` for a set, 1.. for an add.
pub fn check_quantity(quantity: i64, allow_zero: bool) -> Result<u32, CrdtError> {
    let lowest = if allow_zero { 0 } else { 1 };
    match u32::try_from(quantity) {
        Ok(checked) if (lowest..=QUANTITY_MAX).contains(&checked) => Ok(checked),
        _ => Err(CrdtError::Quantity {
            quantity,
            max: QUANTITY_MAX,
        }),
    }
}
