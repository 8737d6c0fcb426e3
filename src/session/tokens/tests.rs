use super::*;

fn keys(id: u8, secret: u8) -> TokenKeys {
    TokenKeys::new(&[(id, [secret; 32])]).expect("one key")
}

fn raw_of(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64")
}

fn text_of(raw: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

#[test]
fn tokens_are_random_and_only_their_own_hash_matches() {
    let keys = keys(0, 7);
    let first = keys.issue_token();
    let second = keys.issue_token();
    assert_ne!(first.text, second.text);
    assert_eq!(first.text.len(), TOKEN_CHARS);
    assert_eq!(TOKEN_CHARS, 66);
    assert_eq!(keys.token_hash(Some(&first.text)), Ok(first.hash));
    assert_ne!(keys.token_hash(Some(&second.text)), Ok(first.hash));
}

#[test]
fn forged_tokens_are_refused_by_arithmetic() {
    let keys = keys(0, 7);
    let genuine = keys.issue_token();
    // Another cluster's secret, same key id: its tag does not verify here.
    let other = self::keys(0, 8).issue_token();
    assert_eq!(keys.token_hash(Some(&other.text)), Err(TokenFormat::Forged));
    // A key id this node does not hold.
    let unknown_id = self::keys(9, 7).issue_token();
    assert_eq!(
        keys.token_hash(Some(&unknown_id.text)),
        Err(TokenFormat::Forged)
    );
    // One bit changed anywhere: the random part, the tag, the key id.
    let raw = raw_of(&genuine.text);
    for index in [0, 1, 20, TOKEN_BYTES, TOKEN_BYTES + 1, TOKEN_RAW_BYTES - 1] {
        let mut changed = raw.clone();
        changed[index] ^= 1;
        assert_eq!(
            keys.token_hash(Some(&text_of(&changed))),
            Err(TokenFormat::Forged),
            "byte {index}"
        );
    }
    // Made up from scratch.
    let made_up = "A".repeat(TOKEN_CHARS);
    assert_eq!(keys.token_hash(Some(&made_up)), Err(TokenFormat::Forged));
}

#[test]
fn a_new_key_issues_while_tokens_of_the_old_one_stay_valid() {
    let old = keys(1, 7);
    let before = old.issue_token();
    let before_csrf = old.issue_csrf();
    let rotated = TokenKeys::new(&[(2, [9; 32]), (1, [7; 32])]).expect("two keys");
    assert_eq!(rotated.token_hash(Some(&before.text)), Ok(before.hash));
    assert!(rotated.csrf_matches(&before_csrf.text, &before_csrf.hash));
    let after = rotated.issue_token();
    assert_eq!(raw_of(&after.text)[0], 2, "issued with the newest key");
    assert_eq!(rotated.token_hash(Some(&after.text)), Ok(after.hash));
    // A node that dropped the old key refuses its tokens, still without a read.
    let dropped = keys(2, 9);
    assert_eq!(
        dropped.token_hash(Some(&before.text)),
        Err(TokenFormat::Forged)
    );
}

#[test]
fn missing_and_malformed_tokens_are_named() {
    let keys = keys(0, 7);
    for (text, expected) in [
        (None, TokenFormat::Missing),
        (Some(""), TokenFormat::Malformed),
        (Some("short"), TokenFormat::Malformed),
        (Some(&"A".repeat(43) as &str), TokenFormat::Malformed),
        (
            Some(&"*".repeat(TOKEN_CHARS) as &str),
            TokenFormat::Malformed,
        ),
    ] {
        assert_eq!(keys.token_hash(text), Err(expected));
    }
    assert_eq!(TokenKeys::new(&[]).err(), Some(TokenKeysError::Empty));
}

#[test]
fn csrf_tokens_match_only_themselves() {
    let keys = keys(0, 7);
    let csrf = keys.issue_csrf();
    assert!(keys.csrf_matches(&csrf.text, &csrf.hash));
    assert!(!keys.csrf_matches(&keys.issue_csrf().text, &csrf.hash));
    assert!(!keys.csrf_matches("", &csrf.hash));
    // A session token is not a CSRF token: its tag is made with another key.
    let token = keys.issue_token();
    assert!(!keys.csrf_matches(&token.text, &token.hash));
    assert_eq!(
        keys.token_hash(Some(&csrf.text)),
        Err(TokenFormat::Forged),
        "nor a CSRF token a session token"
    );
}

#[test]
fn debug_prints_nothing_secret() {
    let keys = keys(3, 7);
    let issued = keys.issue_token();
    let printed = format!("{keys:?} {issued:?}");
    assert!(!printed.contains(&issued.text));
    assert!(!printed.contains(&hex(&issued.hash)));
    assert_eq!(printed, "TokenKeys { key_ids: [3] } Issued(..)");
}

#[test]
fn hex_round_trips() {
    let hash = [0xab; 32];
    assert_eq!(from_hex(&hex(&hash)), Some(hash));
    assert_eq!(from_hex("zz"), None);
}

#[test]
fn a_rotations_successor_is_made_by_its_parent_and_key_and_by_nothing_else() {
    let keys = keys(0, 7);
    let (parent, other_parent) = ([1u8; 32], [2u8; 32]);
    let (token, csrf) = keys.issue_successor(&parent, b"key-1");
    let (again, again_csrf) = keys.issue_successor(&parent, b"key-1");
    assert_eq!(
        (token.text.as_str(), token.hash),
        (again.text.as_str(), again.hash)
    );
    assert_eq!(csrf.hash, again_csrf.hash);
    // A real token of this cluster: it validates and hashes as issued.
    assert_eq!(keys.token_hash(Some(&token.text)), Ok(token.hash));
    assert!(keys.csrf_matches(&csrf.text, &csrf.hash));
    assert_ne!(token.hash, csrf.hash);
    // Another key, another parent or another secret: another successor.
    let others = [
        keys.issue_successor(&parent, b"key-2").0.hash,
        keys.issue_successor(&other_parent, b"key-1").0.hash,
        self::keys(0, 8).issue_successor(&parent, b"key-1").0.hash,
    ];
    assert!(others.iter().all(|hash| *hash != token.hash));
}
