//! Session tokens: 256 random bits from the OS CSPRNG, base64url without padding. A
//! token is stored and looked up only as its keyed blake3 hash under a key derived from
//! the cluster's session secret, so the store never holds a usable token; hashes are
//! compared with `blake3::Hash`'s constant-time equality. Tokens are never logged.

use base64::Engine;
use rand::RngCore;

/// Bytes of randomness in a token (and in a CSRF token).
pub const TOKEN_BYTES: usize = 32;
/// Characters of a token as text (base64url of 32 bytes, no padding).
pub const TOKEN_CHARS: usize = 43;

/// What was wrong with a presented token, before any lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFormat {
    Missing,
    Malformed,
}

/// The keys derived from the cluster's session secret.
#[derive(Clone)]
pub struct TokenKeys {
    token: [u8; 32],
    csrf: [u8; 32],
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

/// A freshly made secret: its text for the client, its hash for the store.
pub struct Issued {
    pub text: String,
    pub hash: [u8; 32],
}

impl TokenKeys {
    pub fn new(secret: &[u8; 32]) -> Self {
        TokenKeys {
            token: blake3::derive_key("cartwheel 2026 session token v1", secret),
            csrf: blake3::derive_key("cartwheel 2026 csrf token v1", secret),
        }
    }

    /// A new session token.
    pub fn issue_token(&self) -> Issued {
        issue(&self.token)
    }

    /// A new CSRF token.
    pub fn issue_csrf(&self) -> Issued {
        issue(&self.csrf)
    }

    /// The lookup hash of a presented token, or why it cannot be one. A malformed token
    /// still gets a hash (of its text) so that rejecting it costs the same lookup.
    pub fn token_hash(&self, text: Option<&str>) -> Result<[u8; 32], ([u8; 32], TokenFormat)> {
        let Some(text) = text else {
            return Err((keyed(&self.token, b""), TokenFormat::Missing));
        };
        match decode(text) {
            Some(raw) => Ok(keyed(&self.token, &raw)),
            None => Err((keyed(&self.token, text.as_bytes()), TokenFormat::Malformed)),
        }
    }

    /// Whether `presented` is the CSRF token whose hash is `expected` (constant time).
    pub fn csrf_matches(&self, presented: &str, expected: &[u8; 32]) -> bool {
        let raw = decode(presented).unwrap_or_default();
        blake3::Hash::from(keyed(&self.csrf, &raw)) == blake3::Hash::from(*expected)
    }
}

fn keyed(key: &[u8; 32], raw: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(key, raw).as_bytes()
}

fn issue(key: &[u8; 32]) -> Issued {
    let mut raw = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    Issued {
        text: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
        hash: keyed(key, &raw),
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    if text.len() != TOKEN_CHARS {
        return None;
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    (raw.len() == TOKEN_BYTES).then_some(raw)
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
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_their_own_hash_matches() {
        let keys = TokenKeys::new(&[7; 32]);
        let first = keys.issue_token();
        let second = keys.issue_token();
        assert_ne!(first.text, second.text);
        assert_eq!(first.text.len(), TOKEN_CHARS);
        assert_eq!(keys.token_hash(Some(&first.text)), Ok(first.hash));
        assert_ne!(keys.token_hash(Some(&second.text)), Ok(first.hash));
        // Another cluster secret gives other hashes for the same token.
        let other = TokenKeys::new(&[8; 32]);
        assert_ne!(other.token_hash(Some(&first.text)), Ok(first.hash));
    }

    #[test]
    fn missing_and_malformed_tokens_are_named() {
        let keys = TokenKeys::new(&[7; 32]);
        for (text, expected) in [
            (None, TokenFormat::Missing),
            (Some(""), TokenFormat::Malformed),
            (Some("short"), TokenFormat::Malformed),
            (
                Some(&"*".repeat(TOKEN_CHARS) as &str),
                TokenFormat::Malformed,
            ),
        ] {
            assert_eq!(keys.token_hash(text).map_err(|(_, why)| why), Err(expected));
        }
    }

    #[test]
    fn csrf_tokens_match_only_themselves() {
        let keys = TokenKeys::new(&[7; 32]);
        let csrf = keys.issue_csrf();
        assert!(keys.csrf_matches(&csrf.text, &csrf.hash));
        assert!(!keys.csrf_matches(&keys.issue_csrf().text, &csrf.hash));
        assert!(!keys.csrf_matches("", &csrf.hash));
        // A session token is not a CSRF token even with the same bytes.
        let token = keys.issue_token();
        assert!(!keys.csrf_matches(&token.text, &token.hash));
    }

    #[test]
    fn hex_round_trips() {
        let hash = [0xab; 32];
        assert_eq!(from_hex(&hex(&hash)), Some(hash));
        assert_eq!(from_hex("zz"), None);
    }
}
