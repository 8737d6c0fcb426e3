//! cartwheel: a leaderless, Dynamo-style, multi-region session store.
//!
//! See ARCHITECTURE.md for the map. Core modules (`ring`, `clock`, `membership`,
//! `coordinator::quorum`) are deterministic and do no I/O; the shell (`transport`,
//! `storage`, `runtime`, `peer`, `api`, `node`, `cluster`, `sim`) carries out what they
//! decide. The modules form layers, each importing only the ones below it; the order is
//! written once, in `layers.rs`, whose tests check it.

pub mod antientropy;
pub mod api;
pub mod bench;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod crdt;
pub mod handoff;
pub mod ids;
#[cfg(test)]
mod layers;
pub mod limits;
pub mod membership;
pub mod node;
pub mod object;
pub mod peer;
pub mod replica;
pub mod ring;
pub mod runtime;
pub mod session;
pub mod sim;
pub mod storage;
pub mod transport;
pub mod wire;
