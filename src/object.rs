//! What a replica stores per key: a versioned object (dotted version vector plus
//! siblings), and the byte formats it travels and rests in.
//!
//! The disk format and the client-visible causal context carry a version byte so that a
//! later release can read what an earlier one wrote. Decoders return errors on bad input,
//! never panic.

use crate::clock::{VersionVector, Versioned};
use crate::ids::PartitionId;
use crate::limits;
use crate::ring;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The data class of a key; classes have their own policies and never share keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Class {
    /// Opaque application values with siblings (`/v1/kv`).
    Kv,
}

impl Class {
    pub fn tag(self) -> u8 {
        match self {
            Class::Kv => 0,
        }
    }
}

/// A key as the coordinator and replicas see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    pub class: Class,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
}

impl ObjectKey {
    pub fn kv(key: &[u8]) -> Self {
        ObjectKey {
            class: Class::Kv,
            key: key.to_vec(),
        }
    }

    pub fn hash(&self) -> u64 {
        ring::key_hash(self.class.tag(), &self.key)
    }

    /// Bytes under which the object is stored within its partition.
    pub fn storage_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(1 + self.key.len());
        bytes.push(self.class.tag());
        bytes.extend_from_slice(&self.key);
        bytes
    }

    /// The key stored under `bytes` (class tag + key), if the tag is known.
    pub fn from_storage_bytes(bytes: &[u8]) -> Option<ObjectKey> {
        let (tag, key) = bytes.split_first()?;
        let class = match tag {
            0 => Class::Kv,
            _ => return None,
        };
        Some(ObjectKey {
            class,
            key: key.to_vec(),
        })
    }

    pub fn partition(&self, partitions: u32) -> PartitionId {
        ring::partition_for_hash(self.hash(), partitions)
    }
}

/// An opaque value; `None` in a sibling marks a delete (tombstone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// The versioned object of one key.
pub type Object = Versioned<Option<Blob>>;

/// Version of the disk format written by [`encode_object`].
pub const OBJECT_FORMAT_VERSION: u8 = 1;
/// Version of the causal context format handed to clients.
pub const CONTEXT_FORMAT_VERSION: u8 = 1;

/// Why stored or received bytes could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty record")]
    Empty,
    #[error("format version {found} is not supported (this build reads {supported})")]
    Version { found: u8, supported: u8 },
    #[error("undecodable record: {0}")]
    Malformed(String),
    #[error("causal context is {got} bytes, the limit is {max}")]
    TooLarge { got: usize, max: usize },
}

pub fn encode_object(object: &Object) -> Vec<u8> {
    let mut bytes = vec![OBJECT_FORMAT_VERSION];
    rmp_serde::encode::write(&mut bytes, object).expect("encoding to a Vec cannot fail");
    bytes
}

pub fn decode_object(bytes: &[u8]) -> Result<Object, DecodeError> {
    let (version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if *version != OBJECT_FORMAT_VERSION {
        return Err(DecodeError::Version {
            found: *version,
            supported: OBJECT_FORMAT_VERSION,
        });
    }
    rmp_serde::from_slice(body).map_err(|error| DecodeError::Malformed(error.to_string()))
}

/// The causal context as an opaque header value (base64url, no padding).
pub fn encode_context(context: &VersionVector) -> String {
    let mut bytes = vec![CONTEXT_FORMAT_VERSION];
    rmp_serde::encode::write(&mut bytes, context).expect("encoding to a Vec cannot fail");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode_context(text: &str) -> Result<VersionVector, DecodeError> {
    if text.len() > limits::CONTEXT_BYTES_MAX {
        return Err(DecodeError::TooLarge {
            got: text.len(),
            max: limits::CONTEXT_BYTES_MAX,
        });
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|error| DecodeError::Malformed(error.to_string()))?;
    let (version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if *version != CONTEXT_FORMAT_VERSION {
        return Err(DecodeError::Version {
            found: *version,
            supported: CONTEXT_FORMAT_VERSION,
        });
    }
    rmp_serde::from_slice(body).map_err(|error| DecodeError::Malformed(error.to_string()))
}

/// Whether every version of an object is a delete.
pub fn is_tombstone(object: &Object) -> bool {
    !object.is_empty()
        && object
            .siblings()
            .iter()
            .all(|sibling| sibling.value.is_none())
}

/// The live (not deleted) values of an object, in sibling order.
pub fn live_values(object: &Object) -> Vec<&Blob> {
    object
        .siblings()
        .iter()
        .filter_map(|sibling| sibling.value.as_ref())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Actor, Hlc};
    use crate::ids::NodeId;
    use proptest::prelude::*;

    fn sample() -> Object {
        let mut object = Object::new();
        let actor = Actor::of_node(&NodeId("a-1".into()));
        let at = Hlc {
            wall_ms: 5,
            logical: 0,
        };
        object
            .mint(
                actor,
                &VersionVector::new(),
                Some(Blob(b"x".to_vec())),
                at,
                limits::SIBLINGS_MAX,
            )
            .unwrap();
        object
    }

    #[test]
    fn objects_and_contexts_round_trip() {
        let object = sample();
        assert_eq!(decode_object(&encode_object(&object)).unwrap(), object);
        let context = object.context();
        assert_eq!(decode_context(&encode_context(context)).unwrap(), *context);
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors() {
        let mut bytes = encode_object(&sample());
        bytes[0] = 9;
        assert_eq!(
            decode_object(&bytes),
            Err(DecodeError::Version {
                found: 9,
                supported: 1
            })
        );
        assert_eq!(decode_object(&[]), Err(DecodeError::Empty));
        assert!(matches!(
            decode_context("!!"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_context(&"A".repeat(5000)),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_object(&bytes);
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
            let _ = decode_context(&text);
        }
    }
}
