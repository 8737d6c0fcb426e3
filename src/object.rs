//! What a replica stores per key: a versioned object (dotted version vector plus
//! siblings), and the byte formats it travels and rests in.
//!
//! The disk format carries a version byte so that a later release can read what an
//! earlier one wrote (the client-visible causal context is `api::context`'s). Decoders
//! return errors on bad input, never panic.

use crate::clock::{Sibling, VersionError, Versioned};
use crate::crdt::{CrdtError, Doc};
use crate::ids::PartitionId;
use crate::limits;
use crate::ring;
use serde::{Deserialize, Serialize};

/// The data class of a key; classes have their own policies and never share keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Class {
    /// Opaque application values with siblings (`/v1/kv`).
    Kv,
    /// Token records, keyed by the keyed hash of the token.
    Auth,
    /// A user's session document (cart, prefs, history, devices), keyed by user id.
    User,
    /// A key of the Redis protocol edge: a `RedisValue` (string, counter or hash with
    /// its expiry), keyed by the client's key bytes.
    Resp,
}

impl Class {
    pub const ALL: [Class; 4] = [Class::Kv, Class::Auth, Class::User, Class::Resp];

    pub fn tag(self) -> u8 {
        match self {
            Class::Kv => 0,
            Class::Auth => 1,
            Class::User => 2,
            Class::Resp => 3,
        }
    }

    pub fn from_tag(tag: u8) -> Option<Class> {
        Class::ALL.into_iter().find(|class| class.tag() == tag)
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Kv => "kv",
            Class::Auth => "auth",
            Class::User => "user",
            Class::Resp => "resp",
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
        ObjectKey::new(Class::Kv, key)
    }

    pub fn new(class: Class, key: &[u8]) -> Self {
        ObjectKey {
            class,
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
        let class = Class::from_tag(*tag)?;
        Some(ObjectKey {
            class,
            key: key.to_vec(),
        })
    }

    pub fn partition(&self, partitions: u32) -> PartitionId {
        ring::partition_for_hash(self.hash(), partitions)
    }

    /// Where the key lies within its partition (`ring::position_in_partition`): the
    /// order a cluster-wide SCAN visits a partition's keys in.
    pub fn position(&self, partitions: u32) -> u32 {
        ring::position_in_partition(self.hash(), partitions)
    }
}

/// The position within its partition of a stored key (class tag + key), in a ring of
/// `partitions`; `None` for a tag no class has.
pub fn position_of(storage_key: &[u8], partitions: u32) -> Option<u32> {
    Some(ObjectKey::from_storage_bytes(storage_key)?.position(partitions))
}

/// An opaque value; `None` in a sibling marks a delete (tombstone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// The versioned object of one `kv` key: siblings under a dotted version vector.
pub type KvObject = Versioned<Option<Blob>>;

/// What a replica stores under one key: opaque values with siblings (`kv`), or a
/// document of the session service merged by its lattice (`auth`, `user`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[expect(
    clippy::large_enum_variant,
    reason = "a session document is the common object of a session store; boxing it would add an allocation to every session read and write to save stack bytes of short-lived values"
)]
pub enum Object {
    Kv(KvObject),
    Doc(Doc),
}

/// Why two objects could not be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error(transparent)]
    Doc(#[from] CrdtError),
    #[error("a kv object and a document cannot merge")]
    Mismatch,
    /// A write would make the stored object larger than an object may be; nothing
    /// was written.
    #[error("the object would hold {bytes} bytes, more than the {max} an object may hold")]
    TooLarge { bytes: usize, max: usize },
}

/// What a kv sibling counts for against `SIBLINGS_BYTES_MAX`: its value (nothing for a
/// delete) plus a bound on its dot, timestamp and framing.
pub fn sibling_bytes(sibling: &Sibling<Option<Blob>>) -> usize {
    sibling.value.as_ref().map_or(0, |blob| blob.0.len()) + limits::SIBLING_OVERHEAD_BYTES
}

/// The bytes of a kv object's siblings as `SIBLINGS_BYTES_MAX` counts them.
pub fn kv_bytes(object: &KvObject) -> usize {
    object.siblings().iter().map(sibling_bytes).sum()
}

/// Joins `other` into `into` under both sibling caps: at most `siblings_max` siblings
/// of at most `SIBLINGS_BYTES_MAX` bytes, the newest kept.
pub fn merge_kv(
    into: &mut KvObject,
    other: &KvObject,
    siblings_max: usize,
) -> Result<(), VersionError> {
    into.merge_bounded(
        other,
        siblings_max,
        limits::SIBLINGS_BYTES_MAX,
        sibling_bytes,
    )
}

impl Object {
    /// A kv object nothing was written to.
    pub fn empty_kv() -> Object {
        Object::Kv(KvObject::new())
    }

    /// Joins `other` into `self` (for kv objects: siblings capped at `siblings_max` and
    /// at `SIBLINGS_BYTES_MAX` bytes, the newest kept).
    pub fn merge(&mut self, other: &Object, siblings_max: usize) -> Result<(), MergeError> {
        match (self, other) {
            (Object::Kv(mine), Object::Kv(theirs)) => Ok(merge_kv(mine, theirs, siblings_max)?),
            (Object::Doc(mine), Object::Doc(theirs)) => Ok(mine.merge(theirs)?),
            _ => Err(MergeError::Mismatch),
        }
    }

    /// A hash of the whole object; equal objects have equal digests.
    pub fn digest(&self) -> [u8; 32] {
        match self {
            Object::Kv(object) => object.digest(),
            Object::Doc(doc) => {
                // Encoded whole first: MessagePack writes a document in many small
                // pieces, and the hasher's per-call work on each showed in session
                // profiles. The bytes hashed, and so the digest, are the same.
                doc_digest(&rmp_serde::to_vec(doc).expect("encoding to a Vec cannot fail"))
            }
        }
    }

    /// The digest of this object given `stored`, its `encode_object` bytes (or the bytes
    /// it was decoded from), without encoding it again: a document's digest hashes its
    /// MessagePack, which the stored bytes hold after a fixed header. Bytes without that
    /// header cost the encoding: the digest is then `digest()`.
    pub fn digest_stored(&self, stored: &[u8]) -> [u8; 32] {
        match self {
            Object::Doc(_) => match doc_header().and_then(|header| stored.strip_prefix(header)) {
                Some(doc) => doc_digest(doc),
                None => self.digest(),
            },
            Object::Kv(_) => self.digest(),
        }
    }

    /// The digest of the object stored as `stored` (`encode_object` bytes) without
    /// decoding it, when they hold a document after the fixed header (a document's
    /// digest hashes its MessagePack); `None` otherwise: decode, then `digest_stored`.
    /// Bytes that are not a valid document still get a digest, one no valid object
    /// has: a quorum read then reads in full and meets the fault there.
    pub fn digest_of_stored_doc(stored: &[u8]) -> Option<[u8; 32]> {
        let doc = doc_header().and_then(|header| stored.strip_prefix(header))?;
        Some(doc_digest(doc))
    }

    /// When the newest delete in this object was made (0 if none): what tombstone
    /// collection waits past.
    pub fn deleted_ms(&self) -> u64 {
        match self {
            Object::Kv(object) => object
                .siblings()
                .iter()
                .map(|sibling| sibling.timestamp.wall_ms)
                .max()
                .unwrap_or(0),
            Object::Doc(doc) => doc.deleted_ms(),
        }
    }

    pub fn as_kv(&self) -> Option<&KvObject> {
        match self {
            Object::Kv(object) => Some(object),
            Object::Doc(_) => None,
        }
    }

    pub fn as_doc(&self) -> Option<&Doc> {
        match self {
            Object::Doc(doc) => Some(doc),
            Object::Kv(_) => None,
        }
    }
}

/// Version of the disk format written by [`encode_object`]; version 1 held a bare
/// `KvObject` and is still read.
pub const OBJECT_FORMAT_VERSION: u8 = 2;

/// Why stored or received bytes could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty record")]
    Empty,
    #[error("format version {found} is not supported (this build reads {supported})")]
    Version { found: u8, supported: u8 },
    #[error("undecodable record: {0}")]
    Malformed(String),
}

/// A document's digest from its MessagePack encoding.
fn doc_digest(encoded: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"cartwheel.doc.v1");
    hasher.update(encoded);
    *hasher.finalize().as_bytes()
}

/// What `encode_object` writes before a document's own MessagePack: the format version
/// and the `Object::Doc` variant's tag, the same for every document (`None`, and every
/// digest computed from the object, if the encoder ever stops writing it that way).
fn doc_header() -> Option<&'static [u8]> {
    static HEADER: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    HEADER
        .get_or_init(|| {
            let doc = Doc::User(crate::crdt::UserDoc::default());
            let body = rmp_serde::to_vec(&doc).expect("encoding to a Vec cannot fail");
            let whole = encode_object(&Object::Doc(doc));
            let header = whole.strip_suffix(body.as_slice())?;
            (!header.is_empty()).then(|| header.to_vec())
        })
        .as_deref()
}

/// The stored bytes of `object`: `OBJECT_FORMAT_VERSION`, then its MessagePack.
///
/// Encoded into the thread's scratch buffer and copied out at its exact size: written
/// into a new `Vec`, MessagePack's many small writes grow it about ten times for a
/// 2 KiB object, each growth an allocation and a copy, on every write of a replica.
pub fn encode_object(object: &Object) -> Vec<u8> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        // Encoding an object never encodes another, so the buffer is always free; the
        // fallback only keeps a future re-entrant caller correct.
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            let mut bytes = Vec::new();
            encode_into(&mut bytes, object);
            return bytes;
        };
        encode_into(&mut scratch, object);
        let bytes = scratch.to_vec();
        if scratch.capacity() > limits::ENCODE_SCRATCH_BYTES_MAX {
            *scratch = Vec::new();
        }
        bytes
    })
}

fn encode_into(bytes: &mut Vec<u8>, object: &Object) {
    bytes.clear();
    bytes.push(OBJECT_FORMAT_VERSION);
    rmp_serde::encode::write(bytes, object).expect("encoding to a Vec cannot fail");
}

pub fn decode_object(bytes: &[u8]) -> Result<Object, DecodeError> {
    let (version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    let malformed = |error: rmp_serde::decode::Error| DecodeError::Malformed(error.to_string());
    match *version {
        1 => Ok(Object::Kv(rmp_serde::from_slice(body).map_err(malformed)?)),
        OBJECT_FORMAT_VERSION => rmp_serde::from_slice(body).map_err(malformed),
        found => Err(DecodeError::Version {
            found,
            supported: OBJECT_FORMAT_VERSION,
        }),
    }
}

/// Whether an object is only what a delete or an expiry left behind.
pub fn is_tombstone(object: &Object) -> bool {
    match object {
        Object::Kv(object) => {
            !object.is_empty()
                && object
                    .siblings()
                    .iter()
                    .all(|sibling| sibling.value.is_none())
        }
        Object::Doc(doc) => doc.is_tombstone(),
    }
}

/// The deadline the expiry index keeps an object under (`storage::Expiry`): a session
/// document's or a RESP key's, while it is not a tombstone; `None` for kv objects,
/// tombstones and RESP keys that never expire. The sweeper erases what it finds due by
/// this deadline, so it must match what the sweeper checks (`Doc::deadline_ms`).
pub fn expiry_deadline_ms(object: &Object) -> Option<u64> {
    match object {
        Object::Kv(_) => None,
        Object::Doc(doc) if doc.is_tombstone() => None,
        Object::Doc(doc) => Some(doc.deadline_ms()).filter(|deadline| *deadline != u64::MAX),
    }
}

/// Whether stored bytes (`None`: absent) hold a record whose deadline is `deadline_ms`
/// (`expiry_deadline_ms`): what an expiry index entry for that deadline stands for.
pub fn holds_deadline(stored: Option<&[u8]>, deadline_ms: u64) -> bool {
    let Some(Ok(object)) = stored.map(decode_object) else {
        return false;
    };
    expiry_deadline_ms(&object) == Some(deadline_ms)
}

/// The live (not deleted) values of an object, in sibling order.
pub fn live_values(object: &KvObject) -> Vec<&Blob> {
    object
        .siblings()
        .iter()
        .filter_map(|sibling| sibling.value.as_ref())
        .collect()
}

/// A kv object holding `value`, written once by node a-1 (for tests).
#[cfg(test)]
pub(crate) fn sample_kv(value: &[u8]) -> Object {
    let mut object = KvObject::new();
    let actor = crate::clock::Actor::of_incarnation(&crate::ids::NodeId("a-1".into()), 0);
    let at = crate::clock::Hlc {
        wall_ms: 5,
        logical: 0,
    };
    object
        .mint(
            actor,
            &crate::clock::VersionVector::new(),
            Some(Blob(value.to_vec())),
            at,
            crate::limits::SIBLINGS_MAX,
        )
        .expect("a first write mints");
    Object::Kv(object)
}

#[cfg(test)]
mod tests;
