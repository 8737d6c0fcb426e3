//! A reader's position in its region's change feeds, as the opaque text a client keeps
//! (`position=`, an event's `id:`, `Last-Event-ID`): the cursor of each node's feed.
//! Any node of the region reads on from it, since it names every node's cursor, not
//! the node that handed it out.
//!
//! The text is base64url (no padding) of a version byte (1) and the MessagePack of the
//! `(node, epoch, next)` list. Decoding never panics and refuses anything else: too
//! long, not base64url, another version, trailing bytes, a bad node id, a node named
//! twice, too many nodes.

use crate::feed::Cursor;
use crate::ids::NodeId;
use crate::limits;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::BTreeMap;

/// The version byte of the encoding this node writes and reads.
const VERSION: u8 = 1;

/// The cursor a node's entry holds when its position is unknown (the node did not
/// answer): reading from it is always behind, and gives the tail. Epochs are drawn at
/// random, so a real log has this one with a chance of 2^-64.
pub const UNKNOWN: Cursor = Cursor { epoch: 0, next: 0 };

/// Where a reader is in each node's feed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub cursors: BTreeMap<NodeId, Cursor>,
}

/// Why a position was refused (400 `bad_position`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PositionError {
    #[error("the position is over {0} characters")]
    TooLong(usize),
    #[error("the position is not base64url text")]
    NotBase64,
    #[error("the position is empty")]
    Empty,
    #[error("the position is of version {0}, this node reads version 1")]
    Version(u8),
    #[error("the position could not be decoded")]
    Malformed,
    #[error("the position names node {0:?}, which is not a node id")]
    BadNode(String),
    #[error("the position names node {0} twice")]
    Repeated(String),
    #[error("the position names more than {0} nodes")]
    TooManyNodes(usize),
}

impl Position {
    pub fn encode(&self) -> String {
        let list: Vec<(&str, u64, u64)> = self
            .cursors
            .iter()
            .map(|(node, cursor)| (node.as_str(), cursor.epoch, cursor.next))
            .collect();
        let mut bytes = vec![VERSION];
        // Writing a list of strings and integers into a vector cannot fail.
        rmp_serde::encode::write(&mut bytes, &list).expect("a position encodes");
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(text: &str) -> Result<Position, PositionError> {
        if text.len() > limits::FEED_POSITION_CHARS_MAX {
            return Err(PositionError::TooLong(limits::FEED_POSITION_CHARS_MAX));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| PositionError::NotBase64)?;
        let (version, mut body) = bytes.split_first().ok_or(PositionError::Empty)?;
        if *version != VERSION {
            return Err(PositionError::Version(*version));
        }
        // The text's bound bounds what this allocates (serde preallocates cautiously).
        let mut reader = rmp_serde::Deserializer::new(&mut body);
        let list: Vec<(String, u64, u64)> =
            serde::Deserialize::deserialize(&mut reader).map_err(|_| PositionError::Malformed)?;
        if list.len() > limits::FEED_POSITION_NODES_MAX {
            return Err(PositionError::TooManyNodes(limits::FEED_POSITION_NODES_MAX));
        }
        let mut cursors = BTreeMap::new();
        for (node, epoch, next) in list {
            let id = NodeId::new(&node).map_err(|_| PositionError::BadNode(node.clone()))?;
            if cursors.insert(id, Cursor { epoch, next }).is_some() {
                return Err(PositionError::Repeated(node));
            }
        }
        if !body.is_empty() {
            return Err(PositionError::Malformed);
        }
        Ok(Position { cursors })
    }
}
