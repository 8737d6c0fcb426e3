//! The causal context a client carries between a read and its next write
//! (`X-Cartwheel-Context`): the version vector the cluster handed out for one key, with
//! a tag made under a key derived from the cluster's session keys. Every node of a
//! cluster derives the same key, so a context from any node is accepted by every other.
//!
//! A client's context is merged into the key's stored version vector on its next write,
//! so an unauthenticated one could name made-up actors (filling the vector to
//! `VV_ACTORS_MAX`) or counters near `u64::MAX` (so the next write by that actor
//! overflows), and every later write of that key would fail. This module owns the
//! format and its keys; it must never accept a context whose tag it cannot check, and
//! never panics on what a client sends.
//!
//! Format (base64url, no padding): version byte, key id byte, the vector in
//! MessagePack, then `CONTEXT_TAG_BYTES` of keyed blake3 over the version, the key id,
//! the object key (length-prefixed) and the vector. The object key is in the tag so a
//! context handed out for one key cannot be replayed on another.

use crate::clock::VersionVector;
use crate::limits::{CONTEXT_BYTES_MAX, CONTEXT_TAG_BYTES};
use crate::object::ObjectKey;
use base64::Engine;

/// Version of the causal context format handed to clients. Version 1 carried no tag and
/// is refused.
pub const CONTEXT_FORMAT_VERSION: u8 = 2;

/// The `blake3::derive_key` context string of the context key: distinct from the token
/// keys' strings, so the same session secret yields independent keys.
const CONTEXT_KEY_PURPOSE: &str = "cartwheel 2026 causal context v2";

/// Why a causal context a client sent is refused (all answered `400 bad_context`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    #[error("causal context is {got} bytes, the limit is {max}")]
    TooLarge { got: usize, max: usize },
    #[error("causal context is not base64url")]
    NotBase64,
    #[error("causal context is {got} bytes, too short to hold a version, a key id and a tag")]
    Truncated { got: usize },
    #[error("causal context format {found} is not accepted (this build reads {supported}); read the key again")]
    Version { found: u8, supported: u8 },
    #[error(
        "causal context is signed by key {id}, which this node does not hold; read the key again"
    )]
    UnknownKey { id: u8 },
    #[error("causal context was not handed out by this cluster for this key")]
    Forged,
    #[error("causal context holds no valid version vector: {0}")]
    Malformed(String),
    #[error("this node has no session secret, so it accepts no causal context; write without one")]
    Disabled,
}

/// The keys causal contexts are signed and checked with, one per session key id.
#[derive(Clone)]
pub struct ContextKeys {
    /// Newest first; contexts are signed with the first.
    keys: Vec<(u8, [u8; 32])>,
}

impl std::fmt::Debug for ContextKeys {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u8> = self.keys.iter().map(|(id, _)| *id).collect();
        formatter
            .debug_struct("ContextKeys")
            .field("ids", &ids)
            .finish_non_exhaustive()
    }
}

impl ContextKeys {
    /// Context keys from the cluster's session keys, newest first as `(id, key)`. New
    /// contexts are signed with the newest; a context is checked with the key its id
    /// names, so contexts signed before a rotation keep working while their key is
    /// listed. `None` for an empty list. A repeated id keeps its first (newest) key.
    pub fn new(session_keys: &[(u8, [u8; 32])]) -> Option<ContextKeys> {
        let mut keys: Vec<(u8, [u8; 32])> = Vec::with_capacity(session_keys.len());
        for (id, secret) in session_keys {
            if keys.iter().all(|(known, _)| known != id) {
                keys.push((*id, blake3::derive_key(CONTEXT_KEY_PURPOSE, secret)));
            }
        }
        (!keys.is_empty()).then_some(ContextKeys { keys })
    }

    /// The context of `vector` for `key`, signed with the newest key, as a header value.
    pub fn encode(&self, key: &ObjectKey, vector: &VersionVector) -> String {
        let (id, context_key) = &self.keys[0];
        let mut bytes = vec![CONTEXT_FORMAT_VERSION, *id];
        rmp_serde::encode::write(&mut bytes, vector).expect("encoding to a Vec cannot fail");
        let tag = tag_of(context_key, key, &bytes);
        bytes.extend_from_slice(&tag);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The version vector of a context this cluster handed out for `key`.
    pub fn decode(&self, key: &ObjectKey, text: &str) -> Result<VersionVector, ContextError> {
        if text.len() > CONTEXT_BYTES_MAX {
            return Err(ContextError::TooLarge {
                got: text.len(),
                max: CONTEXT_BYTES_MAX,
            });
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| ContextError::NotBase64)?;
        if bytes.len() < 2 + CONTEXT_TAG_BYTES {
            return Err(ContextError::Truncated { got: bytes.len() });
        }
        let (signed, tag) = bytes.split_at(bytes.len() - CONTEXT_TAG_BYTES);
        let (version, id) = (signed[0], signed[1]);
        if version != CONTEXT_FORMAT_VERSION {
            return Err(ContextError::Version {
                found: version,
                supported: CONTEXT_FORMAT_VERSION,
            });
        }
        let (_, context_key) = self
            .keys
            .iter()
            .find(|(known, _)| *known == id)
            .ok_or(ContextError::UnknownKey { id })?;
        let expected = tag_of(context_key, key, signed);
        if !constant_time_eq::constant_time_eq(&expected, tag) {
            return Err(ContextError::Forged);
        }
        rmp_serde::from_slice(&signed[2..])
            .map_err(|error| ContextError::Malformed(error.to_string()))
    }
}

/// The tag of `signed` (version, key id, vector) for the object `key`.
fn tag_of(context_key: &[u8; 32], key: &ObjectKey, signed: &[u8]) -> [u8; CONTEXT_TAG_BYTES] {
    let mut hasher = blake3::Hasher::new_keyed(context_key);
    hasher.update(&[key.class.tag()]);
    hasher.update(&(key.key.len() as u64).to_le_bytes());
    hasher.update(&key.key);
    hasher.update(signed);
    let mut tag = [0; CONTEXT_TAG_BYTES];
    tag.copy_from_slice(&hasher.finalize().as_bytes()[..CONTEXT_TAG_BYTES]);
    tag
}

#[cfg(test)]
mod tests;
