//! The session service: what the shop calls. It turns logins, validations, cart and
//! pref changes, rotations and logouts into operations on three kinds of documents
//! (`auth` token records, `auth` per-user records of not-before times, revoked token
//! families and audit entries, and `user` session documents), each class under its own
//! policy, and decides what is served: never an expired, revoked or rotated-away
//! session.
//!
//! It owns tokens (issue, tag, hash, validate), the limits on failed validations, the
//! sliding refresh and the expiry sweeper. It never touches storage directly: every
//! read and write goes through the coordinator.

pub mod fence;
mod guard;
mod identities;
pub mod near_cache;
pub mod regions;
mod revocation;
mod rotation;
mod service;
mod sweeper;
pub mod tokens;
mod validate;

pub use guard::{FailureLimiter, NegativeCache};
pub use identities::IdentityCache;
pub use rotation::TOKEN_REUSED_EVENT;
pub use service::{
    validation_outcome, Authenticated, Login, Rejection, SessionError, SessionService,
    SessionStats, VALIDATION_OUTCOMES,
};
pub use sweeper::{horizon_ms, Sweeper};

#[cfg(test)]
mod tests;
