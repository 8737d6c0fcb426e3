//! Session and CSRF tokens. A token is, as base64url without padding (66 characters):
//!
//! `key id (1 byte) ‖ 256 random bits from the OS CSPRNG ‖ tag (16 bytes)`
//!
//! where the tag is a keyed blake3 of `key id ‖ random` under a key derived from the
//! session secret the id names. A token whose tag does not match, or whose key id this
//! node does not hold, was never issued by this cluster: it is refused by arithmetic,
//! before (and instead of) any read. A token is stored and looked up only as its keyed
//! blake3 hash under another key derived from the same secret, so the store never holds
//! a usable token; tags and hashes are compared in constant time. Tokens are never
//! logged, and no `Debug` here prints a token, a hash key or a secret.
//!
//! A rotation that carries the client's `Idempotency-Key` makes its successor (and
//! its CSRF token) from a keyed blake3 of (parent token hash, key) under a third key
//! derived from the secret instead of the CSPRNG (`issue_successor`), so a retried
//! rotation makes the same successor, which the parent's record already names: the
//! retry succeeds with the same token instead of conflicting. Without the secret the
//! successor is as unguessable as a random one.
//!
//! Key ids let the session secret rotate without logging anyone out: `TokenKeys` issues
//! with its newest key and validates a token by the key its id names.

use base64::Engine;
use rand::RngCore;

use crate::limits::TOKEN_TAG_BYTES;

/// Bytes of randomness in a token (and in a CSRF token).
pub const TOKEN_BYTES: usize = 32;
/// Bytes of a token before its text encoding: key id, random part, tag.
pub const TOKEN_RAW_BYTES: usize = 1 + TOKEN_BYTES + TOKEN_TAG_BYTES;
/// Characters of a token as text (base64url of 49 bytes, no padding).
pub const TOKEN_CHARS: usize = (TOKEN_RAW_BYTES * 8).div_ceil(6);

/// What was wrong with a presented token, found without any lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFormat {
    /// No token at all.
    Missing,
    /// Not 66 base64url characters.
    Malformed,
    /// Well formed, but this cluster never issued it: its key id is not held here or
    /// its tag does not match.
    Forged,
}

/// Why a set of session keys cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenKeysError {
    #[error("no session key given")]
    Empty,
}

/// The keys derived from one session secret.
#[derive(Clone)]
struct KeySet {
    id: u8,
    tag: [u8; 32],
    token: [u8; 32],
    csrf_tag: [u8; 32],
    csrf: [u8; 32],
    /// Makes the body of a rotation's successor from its seed (`issue_successor`).
    successor: [u8; 32],
}

/// The keys derived from the cluster's session secrets, newest first.
#[derive(Clone)]
pub struct TokenKeys {
    sets: Vec<KeySet>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u8> = self.sets.iter().map(|set| set.id).collect();
        f.debug_struct("TokenKeys").field("key_ids", &ids).finish()
    }
}

/// A freshly made secret: its text for the client, its hash for the store.
pub struct Issued {
    pub text: String,
    pub hash: [u8; 32],
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Issued(..)")
    }
}

/// Which of the two kinds of token a key set works for.
#[derive(Clone, Copy)]
enum Kind {
    Session,
    Csrf,
}

impl KeySet {
    fn new(id: u8, secret: &[u8; 32]) -> KeySet {
        KeySet {
            id,
            tag: blake3::derive_key("cartwheel 2026 session token tag v2", secret),
            token: blake3::derive_key("cartwheel 2026 session token v1", secret),
            csrf_tag: blake3::derive_key("cartwheel 2026 csrf token tag v2", secret),
            csrf: blake3::derive_key("cartwheel 2026 csrf token v1", secret),
            successor: blake3::derive_key("cartwheel 2026 rotation successor v1", secret),
        }
    }

    fn keys(&self, kind: Kind) -> (&[u8; 32], &[u8; 32]) {
        match kind {
            Kind::Session => (&self.tag, &self.token),
            Kind::Csrf => (&self.csrf_tag, &self.csrf),
        }
    }
}

impl TokenKeys {
    /// Keys from the session secrets `(key id, secret)`, newest first: tokens are
    /// issued with the first, and validated by the key their id names (the first of
    /// that id if one repeats).
    pub fn new(keys: &[(u8, [u8; 32])]) -> Result<Self, TokenKeysError> {
        let mut sets: Vec<KeySet> = Vec::with_capacity(keys.len().min(256));
        for (id, secret) in keys {
            if !sets.iter().any(|set| set.id == *id) {
                sets.push(KeySet::new(*id, secret));
            }
        }
        if sets.is_empty() {
            return Err(TokenKeysError::Empty);
        }
        Ok(TokenKeys { sets })
    }

    /// A new session token.
    pub fn issue_token(&self) -> Issued {
        self.issue(Kind::Session)
    }

    /// A new CSRF token.
    pub fn issue_csrf(&self) -> Issued {
        self.issue(Kind::Csrf)
    }

    /// The lookup hash of a presented session token, or why it cannot be one; found by
    /// arithmetic alone.
    pub fn token_hash(&self, text: Option<&str>) -> Result<[u8; 32], TokenFormat> {
        let text = text.ok_or(TokenFormat::Missing)?;
        self.verify(text, Kind::Session)
    }

    /// Whether `presented` is the CSRF token whose hash is `expected` (constant time).
    pub fn csrf_matches(&self, presented: &str, expected: &[u8; 32]) -> bool {
        match self.verify(presented, Kind::Csrf) {
            Ok(hash) => blake3::Hash::from(hash) == blake3::Hash::from(*expected),
            Err(_) => false,
        }
    }

    fn newest(&self) -> &KeySet {
        // `new` refuses an empty list.
        &self.sets[0]
    }

    /// The session token and CSRF token of the rotation of the token hashing to
    /// `parent` that carries the idempotency key `op_id`: the same for the same pair,
    /// unrelated for another (a keyed hash under a key derived from the secret).
    pub fn issue_successor(&self, parent: &[u8; 32], op_id: &[u8]) -> (Issued, Issued) {
        let seed = |kind: u8| {
            let mut hasher = blake3::Hasher::new_keyed(&self.newest().successor);
            hasher.update(&[kind]);
            hasher.update(parent);
            hasher.update(op_id);
            *hasher.finalize().as_bytes()
        };
        let token = self.issue_from(Kind::Session, Some(seed(0)));
        let csrf = self.issue_from(Kind::Csrf, Some(seed(1)));
        (token, csrf)
    }

    fn issue(&self, kind: Kind) -> Issued {
        self.issue_from(kind, None)
    }

    /// A token of `kind` whose body is `body` (256 bits), or random.
    fn issue_from(&self, kind: Kind, body: Option<[u8; TOKEN_BYTES]>) -> Issued {
        let set = self.newest();
        let (tag_key, hash_key) = set.keys(kind);
        let mut raw = [0u8; TOKEN_RAW_BYTES];
        raw[0] = set.id;
        match body {
            Some(body) => raw[1..=TOKEN_BYTES].copy_from_slice(&body),
            None => rand::rngs::OsRng.fill_bytes(&mut raw[1..=TOKEN_BYTES]),
        }
        let body = &raw[..=TOKEN_BYTES];
        let tag = tag_of(tag_key, body);
        let hash = keyed(hash_key, body);
        raw[1 + TOKEN_BYTES..].copy_from_slice(&tag[..TOKEN_TAG_BYTES]);
        Issued {
            text: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
            hash,
        }
    }

    /// The hash of a token whose tag is right under the key its id names.
    fn verify(&self, text: &str, kind: Kind) -> Result<[u8; 32], TokenFormat> {
        let raw = decode(text).ok_or(TokenFormat::Malformed)?;
        let set = self
            .sets
            .iter()
            .find(|set| set.id == raw[0])
            .ok_or(TokenFormat::Forged)?;
        let (tag_key, hash_key) = set.keys(kind);
        let (body, presented) = raw.split_at(1 + TOKEN_BYTES);
        let mut expected = tag_of(tag_key, body);
        expected[TOKEN_TAG_BYTES..].fill(0);
        let mut given = [0u8; 32];
        given[..TOKEN_TAG_BYTES].copy_from_slice(presented);
        // `blake3::Hash` compares in constant time.
        if blake3::Hash::from(expected) != blake3::Hash::from(given) {
            return Err(TokenFormat::Forged);
        }
        Ok(keyed(hash_key, body))
    }
}

fn keyed(key: &[u8; 32], raw: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(key, raw).as_bytes()
}

fn tag_of(key: &[u8; 32], body: &[u8]) -> [u8; 32] {
    keyed(key, body)
}

fn decode(text: &str) -> Option<[u8; TOKEN_RAW_BYTES]> {
    if text.len() != TOKEN_CHARS {
        return None;
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    raw.try_into().ok()
}

/// Lowercase hex of a hash (how devices name their tokens in a user's document).
pub fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The hash named by `hex` text, if it is one.
pub fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (index, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(hash)
}

#[cfg(test)]
mod tests;
