//! Every code an error answer of the HTTP API carries (`{"code", "message"}`), as one
//! enum: the set is closed and known, and a test holds it equal to the codes
//! `openapi.yaml` lists for its `Error` schema. A code never changes once shipped
//! (clients match on it); the message is for humans and may.
//!
//! It owns the names only; which status goes with a code is the caller's (one code may
//! answer more than one situation). It must never grow a code that is not documented.

use crate::session::Rejection;
use serde::{Serialize, Serializer};

/// Declares `ErrorCode` and its wire names from one list, so the list of every code
/// (`ErrorCode::ALL`) cannot miss a variant.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $code:literal,)*) => {
        /// A stable, machine-readable error code of the HTTP API.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it goes on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    /// The node has no admin secret: its admin endpoints are off (403).
    AdminDisabled => "admin_disabled",
    /// A pipelined answer over the pipeline's frame limit (500).
    AnswerTooLarge => "answer_too_large",
    /// A missing or wrong admin secret (401).
    BadAdminSecret => "bad_admin_secret",
    /// The request body could not be read, e.g. a broken chunked encoding (400).
    BadBody => "bad_body",
    /// A causal context that is malformed, too long or not one this cluster handed out for this key (400).
    BadContext => "bad_context",
    /// A feed filter (`class`, `key`, `prefix`, `user`) that is unknown, malformed or over
    /// its bounds (400).
    BadFilter => "bad_filter",
    /// A fault plan the transport refuses (422).
    BadFaultPlan => "bad_fault_plan",
    /// A pipelined frame that is too long or not a request (400).
    BadFrame => "bad_frame",
    /// Malformed JSON or an unknown field (400).
    BadJson => "bad_json",
    /// An empty name or one with control characters (400).
    BadName => "bad_name",
    /// A cart op other than add, set or remove (400).
    BadOp => "bad_op",
    /// An `Idempotency-Key` header that is empty, too long or not printable ASCII (400).
    BadIdempotencyKey => "bad_idempotency_key",
    /// A feed position (`position=` or `Last-Event-ID`) that is not one a node handed
    /// out: malformed, too long or of another version (400).
    BadPosition => "bad_position",
    /// A cart quantity out of its range (422).
    BadQuantity => "bad_quantity",
    /// A bad or unknown query parameter, or a malformed request (400).
    BadRequest => "bad_request",
    /// The body did not arrive within the body timeout (408).
    BodyTimeout => "body_timeout",
    /// A body over its route's limit (413).
    BodyTooLarge => "body_too_large",
    /// The replica refused a conflicting change, or a token was already rotated (409).
    Conflict => "conflict",
    /// An `X-CSRF-Token` of another session (403).
    CsrfInvalid => "csrf_invalid",
    /// No `X-CSRF-Token` on a mutating session call (403).
    CsrfMissing => "csrf_missing",
    /// A valid credential that may not read what was asked, e.g. a session token
    /// following another user's feed (403).
    Forbidden => "forbidden",
    /// A stored record of the wrong kind: a bug of ours (500).
    Internal => "internal",
    /// A token's validation on a node that may have missed revocations (cut off from a
    /// region, or catching up after one) when a majority of the regions did not answer:
    /// it fails closed (503).
    AuthFenced => "auth_fenced",
    /// A logout, rotation or revoke-all not confirmed in time: a region stopped
    /// answering and was not yet held down long enough, or too few regions answer. It
    /// may have reached some replicas; retrying is harmless (503).
    RevocationUnconfirmed => "revocation_unconfirmed",
    /// A kv key over `KEY_BYTES_MAX` (413).
    KeyTooLarge => "key_too_large",
    /// A count or value limit of a document, or of a version vector (422).
    LimitExceeded => "limit_exceeded",
    /// A name over `SESSION_NAME_CHARS_MAX` characters (422).
    NameTooLong => "name_too_long",
    /// No such endpoint (404).
    NoRoute => "no_route",
    /// No such key, or it was deleted (404).
    NotFound => "not_found",
    /// The write would make the stored object larger than an object may be (413).
    ObjectTooLarge => "object_too_large",
    /// Too many requests, connections or pipelines in flight on this node (503).
    Overloaded => "overloaded",
    /// Too few replicas answered to meet the level (503).
    QuorumNotReached => "quorum_not_reached",
    /// An admin change refused, e.g. one that would leave a region short of replicas (409).
    Refused => "refused",
    /// A removal without a valid signature of the cluster CA key (403).
    RemovalUnproven => "removal_unproven",
    /// A session document would grow past its size limit (413).
    SessionTooLarge => "session_too_large",
    /// The node has no session secret: the session API is off (503).
    SessionsDisabled => "sessions_disabled",
    /// The level was not met in time, or the request passed its deadline (504).
    Timeout => "timeout",
    /// No `Authorization` header (401).
    TokenMissing => "token_missing",
    /// A token that is not `Bearer` and 66 base64url characters (401).
    TokenMalformed => "token_malformed",
    /// A token this cluster never issued, or found in no region (401).
    TokenUnknown => "token_unknown",
    /// A token past its idle or absolute deadline (401).
    TokenExpired => "token_expired",
    /// A token logged out or whose rotation chain was revoked (401).
    TokenRevoked => "token_revoked",
    /// A rotated token used after the grace: its chain is revoked (401).
    TokenReused => "token_reused",
    /// A level that does not exist, or `region_safe` on a read (400).
    UnknownConsistency => "unknown_consistency",
    /// An admin call naming a node that is not a member (404).
    UnknownNode => "unknown_node",
    /// The level needs more replicas than the key has (400).
    UnsatisfiableLevel => "unsatisfiable_level",
    /// `/v1/pipeline` without the upgrade headers, or over a pipeline (400).
    UpgradeRequired => "upgrade_required",
    /// A kv value over `VALUE_BYTES_MAX` (413).
    ValueTooLarge => "value_too_large",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl From<Rejection> for ErrorCode {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Missing => ErrorCode::TokenMissing,
            Rejection::Malformed => ErrorCode::TokenMalformed,
            Rejection::Unknown => ErrorCode::TokenUnknown,
            Rejection::Expired => ErrorCode::TokenExpired,
            Rejection::Revoked => ErrorCode::TokenRevoked,
            Rejection::Reused => ErrorCode::TokenReused,
        }
    }
}

#[cfg(test)]
mod tests;
