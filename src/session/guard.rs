//! What keeps floods of bad tokens local and cheap: a per-client-address limit on failed
//! validations (token buckets in a fixed table) and a negative cache of genuine tokens
//! found in no region. Both are fixed-size tables allocated once: nothing a client
//! sends makes them grow.
//!
//! Neither ever refuses a valid token found locally: past its limit (until it has not
//! failed for as long as its whole burst takes to earn back) an address only loses the cross-region read of a genuine token
//! missing here and has its rejections answered late, and the negative cache
//! holds only full hashes of tokens that a cross-region read did not find, for a few
//! seconds; a login on this node removes its new token's hash from it. A token created
//! elsewhere cannot be in it: its hash is a keyed hash of 256 fresh random bits, so no
//! earlier validation can have named it. Neither reads a clock: times come in as
//! arguments.

use std::net::IpAddr;
use std::sync::Mutex;

use crate::limits;

/// Genuine tokens recently found in no region, by full hash, direct-mapped by their
/// first bytes (keyed hashes: an attacker cannot aim at a slot).
pub struct NegativeCache {
    slots: Mutex<Vec<Option<Missed>>>,
}

/// A token hash found in no region, remembered until `until_ms`.
type Missed = ([u8; 32], u64);

impl Default for NegativeCache {
    fn default() -> Self {
        NegativeCache::with_capacity(limits::NEGATIVE_CACHE_ENTRIES_MAX)
    }
}

impl NegativeCache {
    pub fn with_capacity(entries: usize) -> Self {
        NegativeCache {
            slots: Mutex::new(vec![None; entries.max(1)]),
        }
    }

    /// Whether `hash` was found nowhere less than `NEGATIVE_CACHE_TTL_MS` before `now_ms`.
    pub fn contains(&self, hash: &[u8; 32], now_ms: u64) -> bool {
        let slots = self.slots.lock().expect("negative cache lock poisoned");
        let index = slot_of(hash, slots.len());
        matches!(slots[index], Some((held, until_ms)) if held == *hash && now_ms < until_ms)
    }

    /// Remembers that `hash` was found in no region at `now_ms`.
    pub fn insert(&self, hash: &[u8; 32], now_ms: u64) {
        let mut slots = self.slots.lock().expect("negative cache lock poisoned");
        let index = slot_of(hash, slots.len());
        slots[index] = Some((*hash, now_ms.saturating_add(limits::NEGATIVE_CACHE_TTL_MS)));
    }

    /// Forgets `hash` (a token just created here).
    pub fn forget(&self, hash: &[u8; 32]) {
        let mut slots = self.slots.lock().expect("negative cache lock poisoned");
        let index = slot_of(hash, slots.len());
        if matches!(slots[index], Some((held, _)) if held == *hash) {
            slots[index] = None;
        }
    }

    /// Entries the table can hold (its size never changes).
    pub fn capacity(&self) -> usize {
        self.slots
            .lock()
            .expect("negative cache lock poisoned")
            .len()
    }
}

/// The slot of a token's keyed hash in a direct-mapped table of `slots`: its first
/// bytes (keyed, so a client cannot aim at a slot).
pub(super) fn slot_of(hash: &[u8; 32], slots: usize) -> usize {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    (u64::from_le_bytes(first) % slots as u64) as usize
}

/// One client address's token bucket of failed validations.
#[derive(Clone, Copy, Default)]
struct Bucket {
    /// The address (an IPv6 one by its /64 network), `None` for a free slot.
    address: Option<[u8; 16]>,
    /// Failures it may still make, in thousandths.
    credit_milli: u64,
    updated_ms: u64,
    /// It ran out of credit and has not earned its whole burst back since (each failure
    /// meanwhile starting the earning over): a flood, slowed by the delayed answers of a
    /// limited address, stays limited instead of earning a burst of fast answers back.
    limited: bool,
}

/// Failed validations per client address, as token buckets in a fixed table.
pub struct FailureLimiter {
    buckets: Mutex<Vec<Bucket>>,
    /// Keys the slot of an address, so a client cannot choose addresses that collide.
    key: [u8; 32],
    burst_milli: u64,
    per_s: u64,
}

/// An address as the limiter counts it: IPv4 whole, IPv6 by its /64 network (one
/// client usually holds a whole /64).
fn address_key(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            if v6.to_ipv4_mapped().is_none() {
                octets[8..].fill(0);
            }
            octets
        }
    }
}

impl FailureLimiter {
    pub fn new(addresses: usize, burst: u32, per_s: u32) -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        FailureLimiter {
            buckets: Mutex::new(vec![Bucket::default(); addresses.max(1)]),
            key,
            burst_milli: u64::from(burst) * 1000,
            per_s: u64::from(per_s),
        }
    }

    fn slot(&self, address: &[u8; 16], slots: usize) -> usize {
        let hash = blake3::keyed_hash(&self.key, address);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        (u64::from_le_bytes(first) % slots as u64) as usize
    }

    /// `bucket`'s credit at `now_ms` (refilled since its last update).
    fn credit(&self, bucket: &Bucket, now_ms: u64) -> u64 {
        let earned = now_ms
            .saturating_sub(bucket.updated_ms)
            .saturating_mul(self.per_s);
        bucket
            .credit_milli
            .saturating_add(earned)
            .min(self.burst_milli)
    }

    /// Whether `address` is within its limit at `now_ms`: it has credit for a failure,
    /// and once it ran out, it has earned its whole burst back.
    pub fn allowed(&self, address: IpAddr, now_ms: u64) -> bool {
        let key = address_key(address);
        let mut buckets = self.buckets.lock().expect("limiter lock poisoned");
        let index = self.slot(&key, buckets.len());
        let bucket = &mut buckets[index];
        if bucket.address != Some(key) {
            return true;
        }
        let credit = self.credit(bucket, now_ms);
        if bucket.limited && credit >= self.burst_milli {
            bucket.limited = false;
        }
        !bucket.limited && credit >= 1000
    }

    /// Charges one failed validation to `address` at `now_ms`. It takes the slot of
    /// another address only once that one's bucket is full again (it stopped failing).
    pub fn charge(&self, address: IpAddr, now_ms: u64) {
        let key = address_key(address);
        let mut buckets = self.buckets.lock().expect("limiter lock poisoned");
        let index = self.slot(&key, buckets.len());
        let bucket = buckets[index];
        let credit = self.credit(&bucket, now_ms);
        let (credit, limited) = match bucket.address {
            Some(held) if held == key => (credit, bucket.limited && credit < self.burst_milli),
            Some(_) if credit < self.burst_milli => return,
            _ => (self.burst_milli, false),
        };
        // A failure while limited starts the earning back over: an address stays
        // limited until it has not failed for as long as its whole burst takes to earn.
        let credit_milli = if limited {
            0
        } else {
            credit.saturating_sub(1000)
        };
        buckets[index] = Bucket {
            address: Some(key),
            credit_milli,
            updated_ms: now_ms,
            limited: limited || credit_milli < 1000,
        };
    }

    /// Addresses the table can count (its size never changes).
    pub fn capacity(&self) -> usize {
        self.buckets.lock().expect("limiter lock poisoned").len()
    }
}

#[cfg(test)]
mod tests;
