//! The messages nodes send each other over the transport.
//!
//! These types are the wire format (rmp-serde inside a versioned frame, see
//! `transport`); adding a variant at the end is compatible, changing one is not.

use crate::clock::{Hlc, VersionVector};
use crate::ids::{NodeId, Region};
use crate::object::{Blob, Object, ObjectKey};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Where a member can be reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddress {
    pub node: NodeId,
    pub region: Region,
    pub quic: SocketAddr,
    pub http: SocketAddr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Read the local replica of a key.
    Get { key: ObjectKey },
    /// Coordinate a new version of a key on this replica.
    Mint {
        key: ObjectKey,
        context: VersionVector,
        value: Option<Blob>,
        timestamp: Hlc,
    },
    /// Merge a version into this replica (replication and read repair).
    Merge { key: ObjectKey, object: Object },
    /// Exchange address books.
    Members { known: Vec<MemberAddress> },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    Object(Option<Object>),
    Stored(Object),
    Members(Vec<MemberAddress>),
    Error(PeerError),
}

/// A replica's refusal, with a code the coordinator branches on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PeerError {
    #[error("replica storage failed: {0}")]
    Storage(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("replica overloaded")]
    Overloaded,
}
