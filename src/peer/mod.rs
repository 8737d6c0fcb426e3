//! The peer service: what this node answers other nodes (and its own coordinator, in
//! process) over the transport: replica reads and writes, membership messages,
//! anti-entropy exchanges and pages of partitions for ownership transfer.
//!
//! It sits above `handoff` (it stores the hints a forwarded write leaves) and the
//! `runtime`, and below `node`, which binds it to the transport. It decides nothing
//! about replication itself: the replica, membership and anti-entropy cores do. It must
//! never import `api` or `node`.

pub mod served;
mod service;

pub use service::{OverviewSource, PeerService};
