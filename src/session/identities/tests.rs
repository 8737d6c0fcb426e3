use super::*;
use crate::crdt::TokenLineage;

fn identity(user: &str, parent: Option<[u8; 32]>) -> TokenIdentity {
    TokenIdentity {
        user: user.to_string(),
        device: "phone".to_string(),
        csrf: [7; 32],
        created_ms: 1_000,
        absolute_ms: 2_000,
        lineage: parent.map(|parent| {
            Box::new(TokenLineage {
                parent,
                family: [9; 32],
            })
        }),
    }
}

fn hash(first: u8, rest: u8) -> [u8; 32] {
    let mut hash = [rest; 32];
    hash[0] = first;
    hash
}

#[test]
fn a_remembered_identity_is_found_by_its_hash_only() {
    let cache = IdentityCache::with_capacity(64);
    let token = hash(1, 0);
    assert_eq!(cache.get(&token), None);
    cache.insert(&token, &identity("alice", Some([5; 32])));
    let known = cache.get(&token).expect("remembered");
    assert_eq!(&*known.user, "alice");
    assert_eq!(known.parent, Some([5; 32]));
    // Another hash that lands in the same slot is not taken for it.
    assert_eq!(cache.get(&hash(1, 1)), None);
}

#[test]
fn a_colliding_token_replaces_the_slot_and_the_table_never_grows() {
    let cache = IdentityCache::with_capacity(4);
    let (first, second) = (hash(2, 0), hash(2, 1));
    cache.insert(&first, &identity("alice", None));
    cache.insert(&second, &identity("bob", None));
    assert_eq!(cache.get(&first), None);
    assert_eq!(
        cache.get(&second).map(|known| known.user),
        Some("bob".into())
    );
    for byte in 0..=255u8 {
        cache.insert(&hash(byte, byte), &identity("carol", None));
    }
    assert_eq!(cache.capacity(), 4);
}

#[test]
fn an_identity_matches_only_its_user_and_parent() {
    let cache = IdentityCache::with_capacity(8);
    let token = hash(3, 0);
    cache.insert(&token, &identity("alice", Some([5; 32])));
    let known = cache.get(&token).expect("remembered");
    assert!(known.matches(&identity("alice", Some([5; 32]))));
    assert!(!known.matches(&identity("bob", Some([5; 32]))));
    assert!(!known.matches(&identity("alice", Some([6; 32]))));
    assert!(!known.matches(&identity("alice", None)));
}

#[test]
fn a_user_name_longer_than_a_valid_one_is_not_kept() {
    let cache = IdentityCache::with_capacity(8);
    let token = hash(4, 0);
    let long = "x".repeat(limits::IDENTITY_CACHE_USER_BYTES_MAX + 1);
    cache.insert(&token, &identity(&long, None));
    assert_eq!(cache.get(&token), None);
    let longest = "x".repeat(limits::IDENTITY_CACHE_USER_BYTES_MAX);
    cache.insert(&token, &identity(&longest, None));
    assert!(cache.get(&token).is_some());
}
