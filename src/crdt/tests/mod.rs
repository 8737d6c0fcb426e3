//! Merge laws and convergence under random delivery for every CRDT, plus the semantic
//! cases (add-wins, LWW ties, newest K, limits).

use std::fmt::Debug;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::*;
use crate::clock::{Actor, Hlc};
use crate::limits::{CART_LINES_MAX, HISTORY_MAX, PREFS_MAX, QUANTITY_MAX};

const REPLICAS: usize = 3;

fn actor(replica: usize) -> Actor {
    Actor(replica as u64 + 1)
}

fn at(wall_ms: u64) -> Hlc {
    Hlc::new(wall_ms, 0)
}

fn sku(key: u8) -> String {
    format!("sku-{key}")
}

/// A CRDT driven by the generic harness: writes and removes on small key spaces.
trait Replicated: Clone + PartialEq + Debug {
    type Delta: Clone + Debug;
    fn fresh() -> Self;
    fn join(&mut self, other: &Self);
    fn apply(&mut self, delta: &Self::Delta);
    fn write(&mut self, key: u8, quantity: u32, at: Hlc, actor: Actor) -> Option<Self::Delta>;
    fn erase(&mut self, key: u8, at: Hlc, actor: Actor) -> Option<Self::Delta>;
}

impl Replicated for OrSet<String> {
    type Delta = Self;
    fn fresh() -> Self {
        OrSet::new()
    }
    fn join(&mut self, other: &Self) {
        self.merge(other)
    }
    fn apply(&mut self, delta: &Self) {
        self.merge_delta(delta)
    }
    fn write(&mut self, key: u8, _: u32, at: Hlc, actor: Actor) -> Option<Self> {
        self.add(sku(key), at, actor).ok()
    }
    fn erase(&mut self, key: u8, _: Hlc, _: Actor) -> Option<Self> {
        Some(self.remove(&sku(key)))
    }
}

impl Replicated for LwwMap<String, String> {
    type Delta = Self;
    fn fresh() -> Self {
        LwwMap::new(PREFS_MAX)
    }
    fn join(&mut self, other: &Self) {
        self.merge(other)
    }
    fn apply(&mut self, delta: &Self) {
        self.merge_delta(delta)
    }
    fn write(&mut self, key: u8, quantity: u32, at: Hlc, actor: Actor) -> Option<Self> {
        self.set(sku(key), quantity.to_string(), at, actor).ok()
    }
    fn erase(&mut self, key: u8, at: Hlc, actor: Actor) -> Option<Self> {
        Some(self.remove(sku(key), at, actor))
    }
}

impl Replicated for History {
    type Delta = Self;
    fn fresh() -> Self {
        // Small, so the random runs overflow it and exercise trimming.
        History::with_capacity(4)
    }
    fn join(&mut self, other: &Self) {
        self.merge(other)
    }
    fn apply(&mut self, delta: &Self) {
        self.merge_delta(delta)
    }
    fn write(&mut self, key: u8, _: u32, at: Hlc, actor: Actor) -> Option<Self> {
        Some(self.add(sku(key), at, actor))
    }
    fn erase(&mut self, key: u8, at: Hlc, actor: Actor) -> Option<Self> {
        Some(self.add(format!("viewed-{key}"), at, actor))
    }
}

impl Replicated for Cart {
    type Delta = Self;
    fn fresh() -> Self {
        Cart::new()
    }
    fn join(&mut self, other: &Self) {
        self.merge(other)
    }
    fn apply(&mut self, delta: &Self) {
        self.apply_delta(delta)
    }
    fn write(&mut self, key: u8, quantity: u32, at: Hlc, actor: Actor) -> Option<Self> {
        if quantity.is_multiple_of(2) {
            self.add(sku(key), quantity, at, actor).ok()
        } else {
            self.set(sku(key), quantity, at, actor).ok()
        }
    }
    fn erase(&mut self, key: u8, _: Hlc, _: Actor) -> Option<Self> {
        Some(self.remove(&sku(key)))
    }
}

impl Replicated for Session {
    type Delta = SessionDelta;
    fn fresh() -> Self {
        Session::new()
    }
    fn join(&mut self, other: &Self) {
        self.merge(other)
    }
    fn apply(&mut self, delta: &SessionDelta) {
        self.apply_delta(delta)
    }
    fn write(&mut self, key: u8, quantity: u32, at: Hlc, actor: Actor) -> Option<SessionDelta> {
        match quantity % 4 {
            0 => self
                .cart
                .write(key, quantity, at, actor)
                .map(SessionDelta::Cart),
            1 => self
                .prefs
                .write(key, quantity, at, actor)
                .map(SessionDelta::Prefs),
            2 => self
                .history
                .write(key, quantity, at, actor)
                .map(SessionDelta::History),
            _ => self
                .devices
                .write(key, quantity, at, actor)
                .map(SessionDelta::Devices),
        }
    }
    fn erase(&mut self, key: u8, at: Hlc, actor: Actor) -> Option<SessionDelta> {
        match key % 3 {
            0 => self.cart.erase(key, at, actor).map(SessionDelta::Cart),
            1 => self.prefs.erase(key, at, actor).map(SessionDelta::Prefs),
            _ => self
                .devices
                .erase(key, at, actor)
                .map(SessionDelta::Devices),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Write {
        replica: usize,
        key: u8,
        quantity: u32,
        wall_ms: u64,
    },
    Erase {
        replica: usize,
        key: u8,
        wall_ms: u64,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let replica = 0..REPLICAS;
    // Few keys and few wall times, so concurrent writes to one key and HLC ties are common.
    prop_oneof![
        3 => (replica.clone(), 0u8..4, 1u32..6, 0u64..4).prop_map(|(replica, key, quantity, wall_ms)| {
            Op::Write { replica, key, quantity, wall_ms }
        }),
        2 => (replica.clone(), 0u8..4, 0u64..4)
            .prop_map(|(replica, key, wall_ms)| Op::Erase { replica, key, wall_ms }),
        2 => (replica.clone(), replica).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

/// Runs `ops` on REPLICAS replicas; returns the replicas and every delta produced.
fn run<S: Replicated>(ops: &[Op]) -> (Vec<S>, Vec<S::Delta>) {
    let mut replicas: Vec<S> = (0..REPLICAS).map(|_| S::fresh()).collect();
    let mut deltas = Vec::new();
    for op in ops {
        match *op {
            Op::Write {
                replica,
                key,
                quantity,
                wall_ms,
            } => {
                deltas.extend(replicas[replica].write(key, quantity, at(wall_ms), actor(replica)));
            }
            Op::Erase {
                replica,
                key,
                wall_ms,
            } => {
                deltas.extend(replicas[replica].erase(key, at(wall_ms), actor(replica)));
            }
            Op::Sync { from, to } => {
                let source = replicas[from].clone();
                replicas[to].join(&source);
            }
        }
    }
    (replicas, deltas)
}

fn joined<S: Replicated>(left: &S, right: &S) -> S {
    let mut out = left.clone();
    out.join(right);
    out
}

fn check_laws<S: Replicated>(ops: &[Op]) -> Result<(), TestCaseError> {
    let (replicas, _) = run::<S>(ops);
    let (a, b, c) = (&replicas[0], &replicas[1], &replicas[2]);
    prop_assert_eq!(joined(a, b), joined(b, a), "commutative");
    prop_assert_eq!(
        joined(&joined(a, b), c),
        joined(a, &joined(b, c)),
        "associative"
    );
    prop_assert_eq!(&joined(a, a), a, "idempotent");
    Ok(())
}

/// Every delta, delivered in a random order with duplicates to a fresh replica, yields
/// the join of all replicas.
fn check_convergence<S: Replicated>(ops: &[Op], seed: u64) -> Result<(), TestCaseError> {
    let (replicas, deltas) = run::<S>(ops);
    let mut everything = S::fresh();
    for replica in &replicas {
        everything.join(replica);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..2 {
        let mut delivery: Vec<&S::Delta> = deltas.iter().collect();
        for _ in 0..deltas.len() / 2 {
            delivery.push(&deltas[rng.gen_range(0..deltas.len())]);
        }
        delivery.shuffle(&mut rng);
        let mut fresh = S::fresh();
        for delta in delivery {
            fresh.apply(delta);
        }
        prop_assert_eq!(&fresh, &everything);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn orset_laws_and_convergence(ops in proptest::collection::vec(op(), 0..40), seed: u64) {
        check_laws::<OrSet<String>>(&ops)?;
        check_convergence::<OrSet<String>>(&ops, seed)?;
    }

    #[test]
    fn lww_laws_and_convergence(ops in proptest::collection::vec(op(), 0..40), seed: u64) {
        check_laws::<LwwMap<String, String>>(&ops)?;
        check_convergence::<LwwMap<String, String>>(&ops, seed)?;
    }

    #[test]
    fn history_laws_and_convergence(ops in proptest::collection::vec(op(), 0..40), seed: u64) {
        check_laws::<History>(&ops)?;
        check_convergence::<History>(&ops, seed)?;
    }

    #[test]
    fn cart_laws_and_convergence(ops in proptest::collection::vec(op(), 0..40), seed: u64) {
        check_laws::<Cart>(&ops)?;
        check_convergence::<Cart>(&ops, seed)?;
    }

    #[test]
    fn session_laws_and_convergence(ops in proptest::collection::vec(op(), 0..60), seed: u64) {
        check_laws::<Session>(&ops)?;
        check_convergence::<Session>(&ops, seed)?;
    }

    /// With one replica the set behaves like a plain set.
    #[test]
    fn orset_matches_a_sequential_set(ops in proptest::collection::vec((any::<bool>(), 0u8..4), 0..40)) {
        let mut set = OrSet::new();
        let mut model = std::collections::BTreeSet::new();
        for (add, key) in ops {
            if add {
                set.add(key, at(1), actor(0)).unwrap();
                model.insert(key);
            } else {
                set.remove(&key);
                model.remove(&key);
            }
        }
        prop_assert_eq!(set.elements().copied().collect::<Vec<_>>(), model.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn orset_add_wins_over_a_concurrent_remove() {
    let mut left = OrSet::new();
    left.add("phone".to_string(), at(1), actor(0)).unwrap();
    let mut right = left.clone();
    let removal = left.remove(&"phone".to_string());
    let re_add = right.add("phone".to_string(), at(2), actor(1)).unwrap();
    assert!(!left.contains(&"phone".to_string()));
    left.merge_delta(&re_add);
    right.merge_delta(&removal);
    assert!(left.contains(&"phone".to_string()));
    assert_eq!(left, right);
    // An observed remove does remove it everywhere.
    let removal = left.remove(&"phone".to_string());
    right.merge_delta(&removal);
    assert!(right.is_empty());
    assert_eq!(left, right);
}

#[test]
fn orset_keeps_no_tombstones() {
    let mut set = OrSet::new();
    let mut other = OrSet::new();
    for round in 0..500u32 {
        let element = format!("token-{}", round % 7);
        let added = set.add(element.clone(), at(1), actor(0)).unwrap();
        let removed = set.remove(&element);
        other.merge_delta(&removed);
        other.merge_delta(&added);
    }
    assert!(set.is_empty() && other.is_empty());
    assert_eq!(set, other);
    let encoded = serde_json::to_string(&set).unwrap();
    assert!(encoded.len() < 100, "state grew with removals: {encoded}");
}

#[test]
fn cart_add_wins_over_a_concurrent_remove() {
    let mut left = Cart::new();
    left.add(sku(1), 2, at(1), actor(0)).unwrap();
    let mut right = left.clone();
    let removal = left.remove(&sku(1));
    let add = right.add(sku(1), 3, at(2), actor(1)).unwrap();
    left.apply_delta(&add);
    right.apply_delta(&removal);
    assert_eq!(left, right);
    assert_eq!(left.quantity(&sku(1)), Some(5));
    assert_eq!(left.lines(), vec![(sku(1), 5)]);
}

#[test]
fn cart_concurrent_sets_resolve_by_hlc_then_actor() {
    let base = Cart::new();
    let (mut left, mut right) = (base.clone(), base);
    let early = left.set(sku(1), 7, at(5), actor(1)).unwrap();
    let late = right.set(sku(1), 4, at(6), actor(0)).unwrap();
    left.apply_delta(&late);
    right.apply_delta(&early);
    assert_eq!(left, right);
    assert_eq!(left.quantity(&sku(1)), Some(4), "higher Hlc wins");

    let (mut left, mut right) = (Cart::new(), Cart::new());
    let low_actor = left.set(sku(2), 7, at(5), actor(0)).unwrap();
    let high_actor = right.set(sku(2), 4, at(5), actor(1)).unwrap();
    left.apply_delta(&high_actor);
    right.apply_delta(&low_actor);
    assert_eq!(
        left.quantity(&sku(2)),
        Some(4),
        "equal Hlc: higher actor wins"
    );
    assert_eq!(right.quantity(&sku(2)), Some(4));
    // A later set from either side supersedes both observed registers.
    left.set(sku(2), 9, at(1), actor(0)).unwrap();
    assert_eq!(left.quantity(&sku(2)), Some(9));
}

#[test]
fn cart_limits_refuse_and_change_nothing() {
    let mut cart = Cart::new();
    cart.set(sku(1), QUANTITY_MAX - 1, at(1), actor(0)).unwrap();
    let before = cart.clone();
    assert_eq!(
        cart.add(sku(1), 2, at(2), actor(0)),
        Err(CrdtError::Quantity {
            quantity: i64::from(QUANTITY_MAX) + 1,
            max: QUANTITY_MAX
        })
    );
    assert!(matches!(
        cart.set(sku(2), 0, at(2), actor(0)),
        Err(CrdtError::Quantity { .. })
    ));
    assert!(matches!(
        cart.add(sku(2), 0, at(2), actor(0)),
        Err(CrdtError::Quantity { .. })
    ));
    assert!(matches!(
        cart.set(sku(2), QUANTITY_MAX + 1, at(2), actor(0)),
        Err(CrdtError::Quantity { .. })
    ));
    assert_eq!(cart, before);
    cart.add(sku(1), 1, at(2), actor(0)).unwrap();
    assert_eq!(cart.quantity(&sku(1)), Some(QUANTITY_MAX));

    let mut cart = Cart::new();
    for line in 0..CART_LINES_MAX {
        cart.add(format!("line-{line}"), 1, at(1), actor(0))
            .unwrap();
    }
    let full = cart.clone();
    assert_eq!(
        cart.add("one-more".to_string(), 1, at(2), actor(0)),
        Err(CrdtError::TooMany {
            what: "cart lines",
            max: CART_LINES_MAX
        })
    );
    assert_eq!(cart, full);
    // Existing lines stay writable at the bound.
    cart.add("line-0".to_string(), 1, at(2), actor(0)).unwrap();
    assert_eq!(cart.quantity(&"line-0".to_string()), Some(2));
    assert_eq!(cart.len(), CART_LINES_MAX);
}

#[test]
fn lww_ties_break_by_actor_and_removal_is_a_write() {
    let (mut left, mut right) = (LwwMap::new(PREFS_MAX), LwwMap::new(PREFS_MAX));
    let from_low = left.set("theme", "dark", at(5), actor(0)).unwrap();
    let from_high = right.set("theme", "light", at(5), actor(1)).unwrap();
    left.merge_delta(&from_high);
    right.merge_delta(&from_low);
    assert_eq!(left, right);
    assert_eq!(left.get(&"theme"), Some(&"light"));

    let stale = left.set("theme", "blue", at(4), actor(2)).unwrap();
    assert_eq!(left.get(&"theme"), Some(&"light"), "older write loses");
    right.merge_delta(&stale);
    assert_eq!(left, right);

    let removal = left.remove("theme", at(6), actor(0));
    right.merge_delta(&removal);
    assert_eq!(right.get(&"theme"), None);
    assert_eq!(right.len_live(), 0);
    right.set("theme", "green", at(7), actor(0)).unwrap();
    assert_eq!(
        right.get(&"theme"),
        Some(&"green"),
        "a later set beats the removal"
    );
}

#[test]
fn lww_prefs_bound_refuses_new_keys_and_changes_nothing() {
    let mut prefs: LwwMap<String, String> = LwwMap::new(PREFS_MAX);
    for key in 0..PREFS_MAX {
        prefs
            .set(format!("k{key}"), "v".into(), at(1), actor(0))
            .unwrap();
    }
    let full = prefs.clone();
    assert_eq!(
        prefs.set("new".into(), "v".into(), at(2), actor(0)),
        Err(CrdtError::TooMany {
            what: "map keys",
            max: PREFS_MAX
        })
    );
    assert_eq!(prefs, full);
    prefs.set("k0".into(), "w".into(), at(2), actor(0)).unwrap();
    assert_eq!(prefs.get(&"k0".to_string()), Some(&"w".to_string()));
    prefs.remove("k1".into(), at(2), actor(0));
    prefs
        .set("new".into(), "v".into(), at(3), actor(0))
        .unwrap();
    assert_eq!(prefs.len_live(), PREFS_MAX);
}

#[test]
fn lww_prune_drops_only_old_removals() {
    let mut map = LwwMap::new(PREFS_MAX);
    map.set("kept", 1, at(1), actor(0)).unwrap();
    map.remove("old", at(2), actor(0));
    map.remove("recent", at(9), actor(0));
    map.prune_removed(at(5));
    assert!(map.entry(&"old").is_none());
    assert!(map.entry(&"recent").is_some());
    assert_eq!(map.get(&"kept"), Some(&1));
}

#[test]
fn history_keeps_the_newest_k_deduplicated() {
    let mut walls: Vec<u64> = (0..HISTORY_MAX as u64 + 20).collect();
    walls.shuffle(&mut StdRng::seed_from_u64(7));
    let (mut left, mut right) = (History::new(), History::new());
    for (index, wall_ms) in walls.iter().enumerate() {
        let replica = if index % 2 == 0 {
            &mut left
        } else {
            &mut right
        };
        replica.add(format!("item-{wall_ms}"), at(*wall_ms), actor(index % 2));
    }
    // The same entry again (same time, actor and item) on the other replica.
    let newest = walls.iter().position(|wall_ms| *wall_ms == 69).unwrap();
    let duplicate = left.add("item-69".into(), at(69), actor(newest % 2));
    left.merge(&right);
    right.merge(&duplicate);
    right.merge(&left);
    assert_eq!(left, right);
    assert_eq!(left.len(), HISTORY_MAX);
    let kept: Vec<u64> = left.entries().map(|entry| entry.at.wall_ms).collect();
    let expected: Vec<u64> = (20..HISTORY_MAX as u64 + 20).rev().collect();
    assert_eq!(
        kept, expected,
        "newest first, oldest dropped, duplicate merged"
    );
}

#[test]
fn session_deltas_travel_alone_and_round_trip() {
    let mut origin = Session::new();
    let mut replica = Session::new();
    let deltas = vec![
        SessionDelta::Cart(origin.cart.add(sku(1), 2, at(1), actor(0)).unwrap()),
        SessionDelta::Prefs(
            origin
                .prefs
                .set("lang".into(), "fr".into(), at(1), actor(0))
                .unwrap(),
        ),
        SessionDelta::History(origin.history.add("viewed".into(), at(1), actor(0))),
        SessionDelta::Devices(origin.devices.add("ab12".into(), at(1), actor(0)).unwrap()),
    ];
    for delta in &deltas {
        let wire = rmp_serde::to_vec(delta).unwrap();
        let decoded: SessionDelta = rmp_serde::from_slice(&wire).unwrap();
        replica.apply_delta(&decoded);
    }
    assert_eq!(replica, origin);
    let wire = rmp_serde::to_vec(&origin).unwrap();
    assert_eq!(rmp_serde::from_slice::<Session>(&wire).unwrap(), origin);
}

mod docs;
