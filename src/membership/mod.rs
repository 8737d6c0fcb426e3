//! Membership: the SWIM failure detector and member gossip (`swim`), and who owns
//! which partition while members join and leave (`ownership`).
//!
//! Pure state machines: time and randomness come in as arguments; the node's gossip
//! driver (`runtime::gossip`) and transfer worker (`handoff::transfer`) carry out what they
//! return.

pub mod ownership;
pub mod swim;
