use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

#[test]
fn an_address_is_limited_after_its_burst_until_it_earns_the_burst_back() {
    let limiter = FailureLimiter::new(64, 3, 2);
    let client = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    for _ in 0..3 {
        assert!(limiter.allowed(client, 0));
        limiter.charge(client, 0);
    }
    assert!(!limiter.allowed(client, 0), "burst spent");
    assert!(
        !limiter.allowed(client, 500),
        "one failure earned back at 2/s"
    );
    assert!(!limiter.allowed(client, 1499), "not yet the whole burst");
    assert!(limiter.allowed(client, 1500), "the whole burst earned back");
    // Within its limit again, it is limited only once it runs out again.
    limiter.charge(client, 1500);
    assert!(limiter.allowed(client, 1500));
    limiter.charge(client, 1500);
    limiter.charge(client, 1500);
    assert!(!limiter.allowed(client, 1500));
    // A failure while limited starts the earning over: the whole burst takes 1.5 s
    // from it.
    limiter.charge(client, 2500);
    assert!(!limiter.allowed(client, 3999));
    assert!(limiter.allowed(client, 4000));
    // Another address is not charged for it (unless it shares the slot, which a
    // 64-slot table makes unlikely for two fixed addresses; check it does not).
    if limiter.slot(&address_key(client), 64) != limiter.slot(&address_key(other), 64) {
        assert!(limiter.allowed(other, 0));
    }
}

#[test]
fn the_table_never_grows_and_a_flood_of_addresses_only_fails_open() {
    let limiter = FailureLimiter::new(16, 1, 1);
    for index in 0..10_000u32 {
        let address = IpAddr::V4(Ipv4Addr::from(index));
        limiter.charge(address, 0);
    }
    assert_eq!(limiter.capacity(), 16);
    // Every slot is held by an address in debt: at most 16 addresses are refused.
    let refused = (0..10_000u32)
        .filter(|index| !limiter.allowed(IpAddr::V4(Ipv4Addr::from(*index)), 0))
        .count();
    assert!(refused <= 16 && refused > 0, "{refused}");
}

#[test]
fn ipv6_addresses_of_one_network_share_a_bucket() {
    let limiter = FailureLimiter::new(64, 2, 1);
    for last in 1..=2u16 {
        limiter.charge(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)),
            0,
        );
    }
    let third = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 9, 9, 9, 9));
    assert!(!limiter.allowed(third, 0));
}

#[test]
fn the_negative_cache_is_bounded_expires_and_holds_only_full_hashes() {
    let cache = NegativeCache::with_capacity(8);
    for index in 0..1000u32 {
        let mut hash = [0u8; 32];
        hash[..4].copy_from_slice(&index.to_le_bytes());
        cache.insert(&hash, 0);
    }
    assert_eq!(cache.capacity(), 8);
    let gone = [7u8; 32];
    cache.insert(&gone, 100);
    assert!(cache.contains(&gone, 100));
    assert!(!cache.contains(&gone, 100 + limits::NEGATIVE_CACHE_TTL_MS));
    // Another hash in the same slot (same first bytes) is not taken for it.
    let mut neighbour = gone;
    neighbour[31] ^= 1;
    assert!(!cache.contains(&neighbour, 100));
    cache.forget(&gone);
    assert!(!cache.contains(&gone, 100));
}
