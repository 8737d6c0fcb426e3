use super::*;
use crate::clock::Actor;
use proptest::prelude::*;

fn keys(secret: u8) -> ContextKeys {
    ContextKeys::new(&[(0, [secret; 32])]).unwrap()
}

fn vector() -> VersionVector {
    VersionVector::from_entries(vec![(Actor(7), 3), (Actor(9), 12)]).unwrap()
}

#[test]
fn genuine_contexts_round_trip() {
    let keys = keys(1);
    let key = ObjectKey::kv(b"cart");
    let text = keys.encode(&key, &vector());
    assert_eq!(keys.decode(&key, &text), Ok(vector()));
    let empty = keys.encode(&key, &VersionVector::new());
    assert_eq!(keys.decode(&key, &empty), Ok(VersionVector::new()));
}

#[test]
fn other_clusters_other_keys_and_unsigned_contexts_are_refused() {
    let key = ObjectKey::kv(b"cart");
    let text = keys(1).encode(&key, &vector());
    assert_eq!(keys(2).decode(&key, &text), Err(ContextError::Forged));
    assert_eq!(
        keys(1).decode(&ObjectKey::kv(b"carts"), &text),
        Err(ContextError::Forged)
    );
    // The version 1 format: a bare vector, no key id, no tag.
    let mut unsigned = vec![1];
    rmp_serde::encode::write(&mut unsigned, &vector()).unwrap();
    unsigned.extend_from_slice(&[0; CONTEXT_TAG_BYTES]);
    let unsigned = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(unsigned);
    assert!(matches!(
        keys(1).decode(&key, &unsigned),
        Err(ContextError::Version { found: 1, .. })
    ));
    assert_eq!(
        keys(1).decode(&key, "AQID"),
        Err(ContextError::Truncated { got: 3 })
    );
    assert_eq!(keys(1).decode(&key, "!!"), Err(ContextError::NotBase64));
    assert!(matches!(
        keys(1).decode(&key, &"A".repeat(CONTEXT_BYTES_MAX + 1)),
        Err(ContextError::TooLarge { .. })
    ));
}

#[test]
fn truncated_contexts_are_refused() {
    let keys = keys(1);
    let key = ObjectKey::kv(b"cart");
    let text = keys.encode(&key, &vector());
    for length in 0..text.len() {
        assert!(keys.decode(&key, &text[..length]).is_err(), "{length}");
    }
}

#[test]
fn contexts_signed_before_a_rotation_still_verify() {
    let key = ObjectKey::kv(b"cart");
    let before = ContextKeys::new(&[(0, [1; 32])]).unwrap();
    let after = ContextKeys::new(&[(1, [2; 32]), (0, [1; 32])]).unwrap();
    let old = before.encode(&key, &vector());
    assert_eq!(after.decode(&key, &old), Ok(vector()));
    let new = after.encode(&key, &vector());
    assert_eq!(
        before.decode(&key, &new),
        Err(ContextError::UnknownKey { id: 1 })
    );
    let retired = ContextKeys::new(&[(1, [2; 32])]).unwrap();
    assert_eq!(
        retired.decode(&key, &old),
        Err(ContextError::UnknownKey { id: 0 })
    );
    assert!(ContextKeys::new(&[]).is_none());
}

#[test]
fn debug_prints_no_key() {
    let printed = format!("{:?}", keys(0xab));
    assert!(
        !printed.contains("171") && !printed.contains("ab"),
        "{printed}"
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_and_text_are_typed_errors(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        text in ".{0,128}",
    ) {
        let keys = keys(1);
        let key = ObjectKey::kv(b"cart");
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        prop_assert!(keys.decode(&key, &encoded).is_err());
        prop_assert!(keys.decode(&key, &text).is_err());
    }

    #[test]
    fn any_single_bit_change_is_refused(
        entries in proptest::collection::btree_map(any::<u64>(), 1..u64::MAX, 0..8),
        bit in any::<proptest::sample::Index>(),
    ) {
        let keys = keys(1);
        let key = ObjectKey::kv(b"cart");
        let vector = VersionVector::from_entries(
            entries.into_iter().map(|(actor, counter)| (Actor(actor), counter)).collect(),
        ).unwrap();
        let text = keys.encode(&key, &vector);
        // A flipped bit in the decoded bytes (re-encoded), and one in the header text.
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&text).unwrap();
        let index = bit.index(bytes.len() * 8);
        bytes[index / 8] ^= 1 << (index % 8);
        let altered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        prop_assert!(keys.decode(&key, &altered).is_err());
        let mut text_bytes = text.into_bytes();
        let index = bit.index(text_bytes.len() * 8);
        text_bytes[index / 8] ^= 1 << (index % 8);
        if let Ok(altered) = String::from_utf8(text_bytes) {
            prop_assert!(keys.decode(&key, &altered).is_err());
        }
    }
}
