//! Session documents in the simulation: the operations simulated clients send on `user`
//! keys (add or remove a cart line, set a preference) and `auth` keys (revoke a token
//! family, log out everywhere), and the checker of what an acknowledged operation
//! promises, judged by the shipping CRDTs' own semantics on the documents the replicas
//! hold (never a model of them):
//!
//! - a cart line an acknowledged add put in is there, unless some replica applied a
//!   remove of that line after the add was issued (an observed remove may take it);
//! - a preference an acknowledged set wrote is there (nothing removes preferences);
//! - a family an acknowledged revoke named is revoked, or the not-before time covers
//!   it (the record keeps the newest `REVOKED_FAMILIES_MAX` families and raises that
//!   time for the ones it drops);
//! - the not-before time is at least what an acknowledged logout set.
//!
//! A quorum read that started after the acknowledgement must show it (unless a hint
//! helped acknowledge it or a new owner after a ring change lacks it, as for kv
//! writes), and so must every replica after the final heal. It keeps at most `DST_WRITES_MAX` acknowledged operations, and never touches
//! the replicas' documents: it only reads what they hold.

use super::DST_WRITES_MAX;
use crate::crdt::{Doc, DocLimits, DocOp, RevokedFamily, UserAuthOp, UserChange, UserOp};
use crate::object::{Class, Object};
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::BTreeMap;

/// Cart lines (skus) the clients add and remove: few, so adds and removes of one line
/// meet often.
const SKUS: u32 = 4;
/// Preference names the clients set.
const PREFS: u32 = 3;
/// How long a session document stays live past its writes, in virtual ms: far past
/// any run, so expiry never ends one (that is the sweeper's business, not simulated).
const SESSION_DEADLINE_MS: u64 = 86_400_000;

/// A document operation a client draws for a key of `class` (`user` or `auth`), at its
/// node's wall time `wall_ms`; `unique` makes values and families unique per run.
pub(super) fn draw(rng: &mut StdRng, class: Class, unique: String, wall_ms: u64) -> DocOp {
    if class == Class::Auth {
        let change = match rng.gen_bool(0.7) {
            true => UserAuthOp {
                revoke: Some(RevokedFamily {
                    at_ms: wall_ms,
                    family: *blake3::hash(unique.as_bytes()).as_bytes(),
                }),
                ..UserAuthOp::default()
            },
            false => UserAuthOp {
                not_before_ms: Some(wall_ms),
                ..UserAuthOp::default()
            },
        };
        return DocOp::UserAuth(change);
    }
    let sku = format!("sku{}", rng.gen_range(0..SKUS));
    let change = match rng.gen_range(0..5) {
        0..=1 => UserChange::CartAdd {
            sku,
            quantity: rng.gen_range(1..=3),
        },
        2 => UserChange::CartRemove { sku },
        3 => UserChange::CartSet { sku, quantity: 0 },
        _ => UserChange::PrefSet {
            name: format!("pref{}", rng.gen_range(0..PREFS)),
            value: unique.clone(),
        },
    };
    // Every change carries its own id, as a retrying client's does: the applied-ops
    // set travels with every delta, hint and transfer the run makes.
    let op_id = Some(crate::crdt::OpId::of_key(&unique));
    DocOp::User(UserOp {
        deadline_ms: wall_ms + SESSION_DEADLINE_MS,
        change,
        limits: DocLimits::default(),
        op_id,
    })
}

/// An operation a client saw acknowledged.
struct Ack {
    op: DocOp,
    /// Event numbers at which the client sent it and received the acknowledgement.
    issued: u64,
    acked: u64,
    /// A fallback's hint counted toward it (a read may miss it until the end).
    hinted: bool,
    /// A ring change gave its key a new owner that lacks it (exempt from reads, as in
    /// `Checker::moved`).
    moved: bool,
}

/// The checker of document operations (see the module doc).
#[derive(Default)]
pub(super) struct Documents {
    acks: BTreeMap<Vec<u8>, Vec<Ack>>,
    acked: usize,
    /// The newest event at which some replica applied a remove of (storage key, sku):
    /// only whether one came after an add matters.
    removes: BTreeMap<(Vec<u8>, String), u64>,
    /// Acknowledged operations checked against a read or a final replica.
    pub checked: u64,
}

impl Documents {
    /// Whether the checker has room for more acknowledged operations.
    pub fn full(&self) -> bool {
        self.acked >= DST_WRITES_MAX
    }

    /// Acknowledged operations so far.
    pub fn acked_count(&self) -> u64 {
        self.acked as u64
    }

    /// A replica applied `op` to `key` at event `event`.
    pub fn applied(&mut self, key: &[u8], op: &DocOp, event: u64) {
        let DocOp::User(UserOp { change, .. }) = op else {
            return;
        };
        if let UserChange::CartRemove { sku } | UserChange::CartSet { sku, quantity: 0 } = change {
            self.removes.insert((key.to_vec(), sku.clone()), event);
        }
    }

    /// A client sent `op` at event `issued` and saw it acknowledged at event `acked`.
    pub fn acked(&mut self, key: &[u8], op: DocOp, issued: u64, acked: u64, hinted: bool) {
        self.acked += 1;
        let ack = Ack {
            op,
            issued,
            acked,
            hinted,
            moved: false,
        };
        self.acks.entry(key.to_vec()).or_default().push(ack);
    }

    /// Judges a read of `key` that started at event `started` and returned `object`.
    pub fn check_read(
        &mut self,
        key: &[u8],
        started: u64,
        object: Option<&Object>,
    ) -> Result<(), String> {
        let Some(acks) = self.acks.get(key) else {
            return Ok(());
        };
        let mut checked = 0;
        let judged = |ack: &&Ack| ack.acked < started && !ack.hinted && !ack.moved;
        for ack in acks.iter().filter(judged) {
            checked += 1;
            self.holds(key, ack, object).map_err(|why| {
                format!(
                    "a quorum read of {} started at event {started}: {why}",
                    name(key)
                )
            })?;
        }
        self.checked += checked;
        Ok(())
    }

    /// A ring change gave `key` a new owner holding `object`: the acknowledged
    /// operations it does not show are exempt from reads (`Checker::moved`).
    pub fn moved(&mut self, key: &[u8], object: Option<&Object>) {
        let lacking: Vec<bool> = self
            .acks
            .get(key)
            .into_iter()
            .flatten()
            .map(|ack| self.holds(key, ack, object).is_err())
            .collect();
        if let Some(acks) = self.acks.get_mut(key) {
            for (ack, lacks) in acks.iter_mut().zip(lacking) {
                ack.moved |= lacks;
            }
        }
    }

    /// The newest acknowledged operation on `key` was planned under the ring before a
    /// change that moved its partition (`Checker::planned_before_change`).
    pub fn planned_before_change(&mut self, key: &[u8]) {
        if let Some(ack) = self.acks.get_mut(key).and_then(|acks| acks.last_mut()) {
            ack.moved = true;
        }
    }

    /// Judges what a replica holds for `key` after the final heal.
    pub fn check_final(&mut self, key: &[u8], object: Option<&Object>) -> Result<(), String> {
        let Some(acks) = self.acks.get(key) else {
            return Ok(());
        };
        for ack in acks {
            self.holds(key, ack, object)?;
        }
        self.checked += acks.len() as u64;
        Ok(())
    }

    /// Storage keys with acknowledged operations.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.acks.keys().cloned().collect()
    }

    /// Whether `object` shows the acknowledged `ack` on `key`.
    fn holds(&self, key: &[u8], ack: &Ack, object: Option<&Object>) -> Result<(), String> {
        let doc = object.and_then(Object::as_doc);
        let shown = match (&ack.op, doc) {
            (DocOp::User(op), Some(Doc::User(user))) => match &op.change {
                UserChange::CartAdd { sku, .. } => {
                    let removed = self
                        .removes
                        .get(&(key.to_vec(), sku.clone()))
                        .is_some_and(|event| *event > ack.issued);
                    removed || user.session.cart.quantity(sku).is_some()
                }
                UserChange::PrefSet { name, .. } => user.session.prefs.get(name).is_some(),
                _ => true,
            },
            (DocOp::UserAuth(op), Some(Doc::UserAuth(record))) => {
                let revoked = op.revoke.is_none_or(|revoke| {
                    record.not_before_ms >= revoke.at_ms
                        || record
                            .revoked
                            .iter()
                            .any(|held| held.family == revoke.family)
                });
                let logged_out = op
                    .not_before_ms
                    .is_none_or(|at_ms| record.not_before_ms >= at_ms);
                revoked && logged_out
            }
            (DocOp::User(op), None) => !matches!(
                op.change,
                UserChange::CartAdd { .. } | UserChange::PrefSet { .. }
            ),
            _ => false,
        };
        match shown {
            true => Ok(()),
            false => Err(format!(
                "operation {:?} acknowledged at event {} is missing: {}",
                ack.op,
                ack.acked,
                describe_doc(object)
            )),
        }
    }
}

/// A key's class and name, for a report.
fn name(key: &[u8]) -> String {
    let class = key.first().copied().and_then(Class::from_tag);
    let class = class.map_or("?", Class::name);
    format!(
        "{class}/{}",
        String::from_utf8_lossy(key.get(1..).unwrap_or(&[]))
    )
}

/// A short description of a document: cart lines and prefs, or the auth record.
pub(super) fn describe_doc(object: Option<&Object>) -> String {
    match object.and_then(Object::as_doc) {
        None => "no document".to_string(),
        Some(Doc::User(user)) => format!(
            "cart {:?}, {} prefs",
            user.session.cart.lines(),
            user.session.prefs.len_live()
        ),
        Some(Doc::UserAuth(record)) => format!(
            "not before {}, {} revoked families",
            record.not_before_ms,
            record.revoked.len()
        ),
        Some(Doc::Token(_)) => "a token document".to_string(),
        Some(Doc::Redis(value)) => format!("a RESP key of kind {:?}", value.kind(u64::MIN)),
    }
}
