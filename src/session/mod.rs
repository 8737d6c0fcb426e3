//! The session service: what the shop calls. It turns logins, validations, cart and
//! pref changes, rotations and logouts into operations on two classes of documents
//! (`auth` token records and `user` session documents), each under its own policy, and
//! decides what is served: never an expired, revoked or rotated-away session.
//!
//! It owns tokens (issue, hash, validate), the sliding refresh and the expiry sweeper.
//! It never touches storage directly: every read and write goes through the coordinator.

mod service;
mod sweeper;
pub mod tokens;

pub use service::{Authenticated, Login, Rejection, SessionError, SessionService, SessionStats};
pub use sweeper::Sweeper;
