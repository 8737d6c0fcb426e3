//! The wire messages of the tree exchange and their compact encoding.
//!
//! A hash travels as a msgpack binary string (34 bytes; a plain `[u8; 32]` would be an
//! array of 32 integers, up to 65 bytes), and a list of node hashes as one binary string
//! of 32-byte blocks (32 bytes a hash). Decoding only checks shapes (a block length, a hash length);
//! the meaning (ranges, order, counts against the limits) is checked by the receiver in
//! `exchange`, which knows what it asked for. This module never interprets a message.

use serde::{Deserialize, Serialize};

use super::tree::Hash;
use crate::ids::PartitionId;

/// A key and the digest of its version, as one leaf lists them.
pub type Entry = (Vec<u8>, Hash);

/// One message of the anti-entropy protocol. The initiator sends requests (`Roots`,
/// `TreeLevel`, `LeafRequest`); the responder answers each with exactly one response
/// (`RootsDiffer`, `Descendants`, `InSync`, `LeafEntries`), so the protocol maps onto
/// request/response streams and the responder keeps no state between requests.
/// Versioning is the transport frame's version byte.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Request: the initiator's roots of the partitions both sides replicate.
    Roots {
        #[serde(with = "root_list")]
        partitions: Vec<(PartitionId, Hash)>,
    },
    /// Response to `Roots`: the partitions whose roots differ, and those the responder
    /// does not hold.
    RootsDiffer {
        differing: Vec<PartitionId>,
        not_held: Vec<PartitionId>,
    },
    /// Request: the initiator's hashes of nodes `indexes` at `level` (strictly
    /// increasing). The responder answers with its hashes at `reply_level` of every
    /// descendant of the nodes that differ (`Descendants`), or, when `level` is the leaf
    /// level, with its entries of the differing leaves (`LeafEntries`); `InSync` when
    /// none differs.
    TreeLevel {
        partition: PartitionId,
        depth: u8,
        level: u8,
        reply_level: u8,
        indexes: Vec<u32>,
        #[serde(with = "hash_list")]
        hashes: Vec<Hash>,
    },
    /// Response to `TreeLevel`: the responder's hashes of nodes `indexes` at `level`.
    Descendants {
        partition: PartitionId,
        level: u8,
        indexes: Vec<u32>,
        #[serde(with = "hash_list")]
        hashes: Vec<Hash>,
    },
    /// Response to `TreeLevel`: every node named had the responder's hash.
    InSync { partition: PartitionId },
    /// Request: the responder's entries of `leaves` (strictly increasing), the first
    /// leaf resuming after key `after` when a previous page stopped there.
    LeafRequest {
        partition: PartitionId,
        depth: u8,
        leaves: Vec<u32>,
        #[serde(with = "serde_bytes")]
        after: Option<Vec<u8>>,
    },
    /// Response to a leaf-level `TreeLevel` or a `LeafRequest`: pages of leaves in leaf
    /// order (only the last may be incomplete), then the leaves left for a next request.
    LeafEntries {
        partition: PartitionId,
        pages: Vec<LeafPage>,
        unsent: Vec<u32>,
    },
}

/// The entries of one leaf, or of a key range of it when the leaf is paged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafPage {
    pub leaf: u32,
    /// Strictly increasing by key.
    #[serde(with = "entry_list")]
    pub entries: Vec<Entry>,
    /// False when the leaf continues after the last key of this page.
    pub complete: bool,
}

/// The kind of a message, for errors that say what was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Roots,
    RootsDiffer,
    TreeLevel,
    Descendants,
    InSync,
    LeafRequest,
    LeafEntries,
}

/// A message that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("undecodable anti-entropy message: {0}")]
pub struct DecodeError(#[from] rmp_serde::decode::Error);

impl Message {
    /// The compact msgpack encoding (structs as arrays), as the transport frames it.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("anti-entropy messages hold only encodable types")
    }

    /// Decodes one message. Sizes are bounded by the transport's frame limit; the
    /// receiver validates the content.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }

    /// Bytes of the encoded message (without the transport's length prefix and version).
    pub fn encoded_len(&self) -> usize {
        self.encode().len()
    }

    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Roots { .. } => MessageKind::Roots,
            Message::RootsDiffer { .. } => MessageKind::RootsDiffer,
            Message::TreeLevel { .. } => MessageKind::TreeLevel,
            Message::Descendants { .. } => MessageKind::Descendants,
            Message::InSync { .. } => MessageKind::InSync,
            Message::LeafRequest { .. } => MessageKind::LeafRequest,
            Message::LeafEntries { .. } => MessageKind::LeafEntries,
        }
    }

    /// The partition a per-partition message is about (`None` for the roots messages),
    /// so the shell can route it to that partition's tree.
    pub fn partition(&self) -> Option<PartitionId> {
        match self {
            Message::Roots { .. } | Message::RootsDiffer { .. } => None,
            Message::TreeLevel { partition, .. }
            | Message::Descendants { partition, .. }
            | Message::InSync { partition }
            | Message::LeafRequest { partition, .. }
            | Message::LeafEntries { partition, .. } => Some(*partition),
        }
    }
}

/// A list of hashes as one binary string of 32-byte blocks.
mod hash_list {
    use super::Hash;
    use serde::de::Error;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hashes: &[Hash], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(hashes.as_flattened())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Hash>, D::Error> {
        let bytes: serde_bytes::ByteBuf = serde::Deserialize::deserialize(deserializer)?;
        let (blocks, rest) = bytes.as_chunks::<32>();
        if !rest.is_empty() {
            return Err(D::Error::custom(
                "hash list is not a whole number of 32-byte hashes",
            ));
        }
        Ok(blocks.to_vec())
    }
}

/// `(partition, root)` pairs, each as `[u32, bin]`.
mod root_list {
    use super::{Hash, PartitionId};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Root(u32, #[serde(with = "serde_bytes")] Hash);

    pub fn serialize<S: Serializer>(
        roots: &[(PartitionId, Hash)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            roots
                .iter()
                .map(|(partition, hash)| Root(partition.0, *hash)),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(PartitionId, Hash)>, D::Error> {
        let roots = Vec::<Root>::deserialize(deserializer)?;
        Ok(roots
            .into_iter()
            .map(|Root(partition, hash)| (PartitionId(partition), hash))
            .collect())
    }
}

/// `(key, digest)` entries, each as `[bin, bin]`.
mod entry_list {
    use super::{Entry, Hash};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct EntryRef<'a>(
        #[serde(with = "serde_bytes")] &'a [u8],
        #[serde(with = "serde_bytes")] &'a Hash,
    );

    #[derive(Deserialize)]
    struct EntryOwned(
        #[serde(with = "serde_bytes")] Vec<u8>,
        #[serde(with = "serde_bytes")] Hash,
    );

    pub fn serialize<S: Serializer>(entries: &[Entry], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(entries.iter().map(|(key, digest)| EntryRef(key, digest)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Entry>, D::Error> {
        let entries = Vec::<EntryOwned>::deserialize(deserializer)?;
        Ok(entries
            .into_iter()
            .map(|EntryOwned(key, digest)| (key, digest))
            .collect())
    }
}
