//! Causality and time for replicated objects: version vectors whose actors are replica
//! nodes, dotted-version-vector sibling sets (`Versioned`) that keep concurrent writes
//! apart and supersede what a client has seen, and a hybrid logical clock for LWW and
//! expiry timestamps.
//!
//! Everything here is pure and deterministic: wall time comes in as an argument, there
//! is no I/O, no clock read, no randomness, and no tokio/quinn/sled/axum import. Values
//! decoded from the wire or disk are validated (sizes, ordering, coverage) and refused
//! with a `VersionError` rather than trusted; operations that would grow a vector past
//! `VV_ACTORS_MAX` fail instead of panicking.

mod dvv;
mod hlc;
mod vv;

pub use dvv::{Sibling, Versioned};
pub use hlc::{ClockError, Hlc, HybridClock};
pub use vv::{Actor, Causality, Dot, VersionError, VersionVector};
