//! The node's shared runtime: the state every part of a running node reads and the
//! async drivers that keep it current. The cluster view (`state`), the gossip driver
//! that feeds it (`gossip`, with the final-status proofs of `proof`), the data clock
//! (`clock`), the incarnation and its early-send rule (`incarnation`), the
//! anti-entropy driver (`repair`) and the per-peer batching of replica requests
//! (`batch`).
//!
//! It sits below `handoff`, `peer` and `api`, which use it, and above `replica`,
//! `coordinator` and the pure cores, whose decisions it carries out. It must never
//! import from the layers above it (the layer test in `layers.rs` checks), and it
//! starts no task of its own: `node` spawns its drivers and stops them.

pub mod batch;
pub mod clock;
pub mod gossip;
pub mod hub;
pub mod incarnation;
pub mod proof;
pub mod regions;
pub mod repair;
pub mod state;
