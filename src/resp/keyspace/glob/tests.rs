use super::*;
use proptest::prelude::*;

fn matches(pattern: &str, key: &str) -> bool {
    Glob::new(pattern.as_bytes())
        .unwrap()
        .matches(key.as_bytes())
}

#[test]
fn patterns_match_as_in_redis() {
    assert!(matches("*", ""));
    assert!(matches("*", "anything"));
    assert!(matches("session:*", "session:42"));
    assert!(!matches("session:*", "sessions:42"));
    assert!(matches("h?llo", "hello"));
    assert!(!matches("h?llo", "hllo"));
    assert!(matches("h*llo", "hllo"));
    assert!(matches("h[ae]llo", "hallo"));
    assert!(!matches("h[ae]llo", "hillo"));
    assert!(matches("h[^e]llo", "hallo"));
    assert!(!matches("h[^e]llo", "hello"));
    assert!(matches("h[a-b]llo", "hbllo"));
    assert!(matches("h[b-a]llo", "hallo"));
    assert!(matches("a[-]b", "a-b"));
    assert!(matches("a[x-]b", "a-b"));
    assert!(matches(r"a\*b", "a*b"));
    assert!(!matches(r"a\*b", "axb"));
    assert!(matches(r"a[\]]b", "a]b"));
    assert!(matches("a\\", "a\\"));
    assert!(matches("*a*b*c*", "xxaxxbxxcxx"));
    assert!(!matches("*a*b*c*", "xxaxxcxxbxx"));
    assert!(matches("[abc", "b"));
}

#[test]
fn a_pattern_past_the_limit_is_refused() {
    let long = vec![b'*'; limits::RESP_SCAN_PATTERN_BYTES_MAX + 1];
    assert_eq!(Glob::new(&long), Err(PatternTooLong));
}

#[test]
fn a_pathological_pattern_is_answered_at_once() {
    // Exponential for a naive backtracking matcher.
    let pattern = "a*".repeat(200) + "b";
    let key = "a".repeat(1024);
    let glob = Glob::new(pattern.as_bytes()).unwrap();
    let started = std::time::Instant::now();
    assert!(!glob.matches(key.as_bytes()));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// A reference: the obvious recursive matcher, on patterns of `*`, `?` and letters.
fn reference(pattern: &[u8], key: &[u8]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((b'*', rest)) => (0..=key.len()).any(|skip| reference(rest, &key[skip..])),
        Some((b'?', rest)) => !key.is_empty() && reference(rest, &key[1..]),
        Some((byte, rest)) => key.first() == Some(byte) && reference(rest, &key[1..]),
    }
}

proptest! {
    #[test]
    fn matching_agrees_with_the_recursive_reference(
        pattern in "[ab*?]{0,8}", key in "[ab]{0,10}"
    ) {
        let glob = Glob::new(pattern.as_bytes()).unwrap();
        prop_assert_eq!(
            glob.matches(key.as_bytes()),
            reference(pattern.as_bytes(), key.as_bytes())
        );
    }

    #[test]
    fn any_pattern_parses_and_matches_without_panicking(
        pattern in proptest::collection::vec(any::<u8>(), 0..64),
        key in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let glob = Glob::new(&pattern).unwrap();
        let _ = glob.matches(&key);
    }
}
