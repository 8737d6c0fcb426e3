//! What the session clients record (every operation with its start and end time, every
//! token they held, every cart add) and the pure checks over those records: a retired
//! token accepted after its retirement was acknowledged, a live token refused, a fresh
//! token not valid in another region, an acknowledged cart add missing from a cart.
//! Nothing here does I/O or reads a clock: times are microseconds since the run's epoch.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// The operations of the session workload, each a row of the latency table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    Login,
    Read,
    CartAdd,
    CartRemove,
    PrefSet,
    HistoryAdd,
    Rotate,
    Logout,
    /// A fresh token validated in another region right after its login was acknowledged.
    RemoteRead,
    /// A rotated or logged-out token presented again; it must be refused.
    RetiredRead,
}

/// Name of the latency row of writes of the `auth` class (login, rotate, logout).
pub const AUTH_WRITE_ROW: &str = "auth_write";
/// Name of the latency row of writes of the `user` class (cart, prefs, history).
pub const USER_WRITE_ROW: &str = "user_write";

impl OpKind {
    /// The row name in the latency table and the JSON summary.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Login => "session_login",
            OpKind::Read => "session_read",
            OpKind::CartAdd => "cart_add",
            OpKind::CartRemove => "cart_remove",
            OpKind::PrefSet => "pref_set",
            OpKind::HistoryAdd => "history_add",
            OpKind::Rotate => "session_rotate",
            OpKind::Logout => "session_logout",
            OpKind::RemoteRead => "session_read_remote",
            OpKind::RetiredRead => "retired_token_read",
        }
    }

    /// The class row a write also counts in.
    pub fn class_row(self) -> Option<&'static str> {
        match self {
            OpKind::Login | OpKind::Rotate | OpKind::Logout => Some(AUTH_WRITE_ROW),
            OpKind::CartAdd | OpKind::CartRemove | OpKind::PrefSet | OpKind::HistoryAdd => {
                Some(USER_WRITE_ROW)
            }
            OpKind::Read | OpKind::RemoteRead | OpKind::RetiredRead => None,
        }
    }
}

/// The error codes of the session API the checks branch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    TokenMissing,
    TokenMalformed,
    TokenUnknown,
    TokenExpired,
    TokenRevoked,
    TokenReused,
    CsrfMissing,
    CsrfInvalid,
    /// Any other code, or a body without one.
    Other,
}

impl Code {
    pub fn parse(code: &str) -> Code {
        match code {
            "token_missing" => Code::TokenMissing,
            "token_malformed" => Code::TokenMalformed,
            "token_unknown" => Code::TokenUnknown,
            "token_expired" => Code::TokenExpired,
            "token_revoked" => Code::TokenRevoked,
            "token_reused" => Code::TokenReused,
            "csrf_missing" => Code::CsrfMissing,
            "csrf_invalid" => Code::CsrfInvalid,
            _ => Code::Other,
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Ok(u16),
    /// A 4xx answer: the request was definitely not applied.
    Refused { status: u16, code: Code },
    /// A 5xx answer, a timeout or a connection error: it may or may not have applied.
    Uncertain(Option<u16>),
}

impl Outcome {
    pub fn is_ok(self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    /// Refused because of the token (401).
    pub fn is_unauthorized(self) -> bool {
        matches!(self, Outcome::Refused { status: 401, .. })
    }
}

/// One request a client made.
#[derive(Clone, Debug)]
pub struct OpRecord {
    pub kind: OpKind,
    /// Index of the region of the node asked, in the topology's order.
    pub region: u8,
    pub node: SocketAddr,
    pub start_us: u64,
    pub end_us: u64,
    pub outcome: Outcome,
    /// Index of the token presented in the client's token list.
    pub token: Option<u32>,
}

impl OpRecord {
    /// Whether the request got the answer it should: a retired token refused, a fresh
    /// one validated elsewhere, anything else a 2xx. The latency table and the
    /// availability during faults count the others as errors.
    pub fn met(&self) -> bool {
        match self.kind {
            OpKind::RetiredRead => self.outcome.is_unauthorized(),
            OpKind::RemoteRead => self.outcome == Outcome::Ok(200),
            _ => self.outcome.is_ok(),
        }
    }
}

/// Why a token stopped being the client's current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetireKind {
    Rotate,
    Logout,
    /// A rotated token of its chain was presented again: the nodes take that as a
    /// theft and revoke the whole chain (never acknowledged to the client: its chain
    /// may have been another one).
    ChainRevoked,
}

/// A rotation or logout of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retire {
    pub kind: RetireKind,
    pub started_us: u64,
    /// When the 2xx answer arrived; `None` when the outcome is not known to be a success.
    pub acked_us: Option<u64>,
}

/// A token a client received from a login or a rotation.
#[derive(Clone, Debug)]
pub struct TokenEntry {
    /// Index of the user in the client's user list.
    pub user: u16,
    pub token: String,
    pub csrf: String,
    pub created_ack_us: u64,
    pub retire: Option<Retire>,
}

/// What is known of the removal of a cart line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Never asked.
    None,
    /// Refused with a 4xx: the line stays.
    Refused,
    /// Acknowledged, or of unknown outcome: the line may be gone.
    Attempted,
}

/// One cart add: a sku unique to the client, quantity 1.
#[derive(Clone, Debug)]
pub struct CartAdd {
    pub user: u16,
    pub sku: String,
    pub acked: bool,
    pub removal: Removal,
}

/// Every acknowledged add whose sku no remove may have taken out, per user index.
pub fn required_skus(adds: &[CartAdd]) -> BTreeMap<u16, BTreeSet<String>> {
    let mut required: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
    for add in adds {
        if add.acked && add.removal != Removal::Attempted {
            required
                .entry(add.user)
                .or_default()
                .insert(add.sku.clone());
        }
    }
    required
}

/// The required skus a cart read does not hold.
pub fn missing_skus(required: &BTreeSet<String>, cart: &BTreeSet<String>) -> Vec<String> {
    required.difference(cart).cloned().collect()
}

/// Requests let in by a token whose rotation or logout was acknowledged before they
/// started (indices into `ops`).
pub fn retired_token_accepted(ops: &[OpRecord], tokens: &[TokenEntry]) -> Vec<usize> {
    ops.iter()
        .enumerate()
        .filter(|(_, op)| op.outcome.is_ok())
        .filter(|(_, op)| {
            let retire = op
                .token
                .and_then(|index| tokens.get(index as usize))
                .and_then(|entry| entry.retire);
            matches!(retire, Some(Retire { acked_us: Some(acked), .. }) if op.start_us > acked)
        })
        .map(|(index, _)| index)
        .collect()
}

/// Workload requests refused with a 401 although their token's creation was
/// acknowledged and no rotation or logout of it had started before they ended (indices
/// into `ops`). Cross-region validations are counted apart, retired tokens are meant
/// to be refused.
pub fn valid_token_rejected(ops: &[OpRecord], tokens: &[TokenEntry]) -> Vec<usize> {
    ops.iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op.kind, OpKind::RemoteRead | OpKind::RetiredRead))
        .filter(|(_, op)| op.outcome.is_unauthorized())
        .filter(|(_, op)| {
            let Some(entry) = op.token.and_then(|index| tokens.get(index as usize)) else {
                return false;
            };
            let retiring = entry
                .retire
                .is_some_and(|retire| retire.started_us <= op.end_us);
            entry.created_ack_us <= op.start_us && !retiring
        })
        .map(|(index, _)| index)
        .collect()
}

/// Validations of a fresh token in another region that refused it (indices). One that
/// got no answer (a region down, a timeout, a 5xx) is not a validation that failed: it
/// counts against that region's availability instead.
pub fn cross_region_failures(ops: &[OpRecord]) -> Vec<usize> {
    ops.iter()
        .enumerate()
        .filter(|(_, op)| op.kind == OpKind::RemoteRead)
        .filter(|(_, op)| matches!(op.outcome, Outcome::Refused { .. }))
        .map(|(index, _)| index)
        .collect()
}

#[cfg(test)]
mod tests;
