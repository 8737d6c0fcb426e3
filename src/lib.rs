//! cartwheel: a leaderless, Dynamo-style, multi-region session store.
//!
//! See ARCHITECTURE.md for the map. Core modules (`ring`, `clock`, `membership`,
//! `coordinator::quorum`) are deterministic and do no I/O; the shell (`transport`,
//! `storage`, `runtime`, `peer`, `api`, `node`, `cluster`, `sim`) carries out what they
//! decide. The modules form layers, each importing only the ones below it; the order is
//! written once, in `layers.rs`, whose tests check it.
//!
//! The tools (`sim`, `bench`, local clusters in `cluster`) are behind the `tools`
//! feature, on by default; the node itself never uses them, so a node-only build
//! (`--no-default-features`) carries no HTTP, Redis or etcd client.

pub mod antientropy;
pub mod api;
#[cfg(feature = "tools")]
pub mod bench;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod crdt;
pub mod edge;
pub mod feed;
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
pub mod resp;
pub mod ring;
pub mod runtime;
pub mod session;
#[cfg(feature = "tools")]
pub mod sim;
pub mod stats;
pub mod storage;
pub mod transport;
pub mod wire;
