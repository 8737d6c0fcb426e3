//! Merge laws and convergence of `RedisValue` for states built from random command
//! sequences at several replicas (random clocks, so replicas disagree; random syncs and
//! sweeps), plus the cross-region promises as properties. Proptest prints the failing
//! case, the delivery `seed` included, so a failure replays exactly.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_bytes::ByteBuf;

use super::*;

const REPLICAS: usize = 3;
const WALL_MS_END: u64 = 40;

#[derive(Clone, Debug)]
enum Step {
    Op {
        replica: usize,
        op: RedisOp,
        wall_ms: u64,
    },
    /// The sweeper, at a replica whose key's deadline has passed by `now_ms`.
    Sweep {
        replica: usize,
        now_ms: u64,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

fn bytes(options: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    proptest::sample::select(options).prop_map(|text| text.as_bytes().to_vec())
}

fn field() -> impl Strategy<Value = Vec<u8>> {
    bytes(&["f0", "f1", "f2"])
}

fn deadline() -> impl Strategy<Value = u64> {
    0..WALL_MS_END + 20
}

fn set_op() -> impl Strategy<Value = RedisOp> {
    let expiry = prop_oneof![
        Just(SetExpiry::Clear),
        Just(SetExpiry::KeepTtl),
        deadline().prop_map(SetExpiry::AtMs),
    ];
    let condition =
        proptest::option::of(prop_oneof![Just(SetCondition::Nx), Just(SetCondition::Xx)]);
    (
        bytes(&["a", "b", "7", "-3"]),
        expiry,
        condition,
        any::<bool>(),
    )
        .prop_map(|(value, expiry, condition, get)| RedisOp::Set {
            value,
            expiry,
            condition,
            get,
        })
}

fn increment() -> impl Strategy<Value = i64> {
    prop_oneof![8 => -3i64..4, 1 => Just(i64::MAX), 1 => Just(i64::MIN)]
}

fn hash_op() -> impl Strategy<Value = RedisOp> {
    let pair = (field(), bytes(&["1", "x", "-2"]))
        .prop_map(|(field, value)| (ByteBuf::from(field), ByteBuf::from(value)));
    prop_oneof![
        proptest::collection::vec(pair, 1..3).prop_map(RedisOp::HSet),
        proptest::collection::vec(field().prop_map(ByteBuf::from), 1..3).prop_map(RedisOp::HDel),
        (field(), increment()).prop_map(|(field, by)| RedisOp::HIncrBy { field, by }),
    ]
}

fn expiry_op() -> impl Strategy<Value = RedisOp> {
    let condition = proptest::option::of(prop_oneof![
        Just(ExpireCondition::Nx),
        Just(ExpireCondition::Xx),
        Just(ExpireCondition::Gt),
        Just(ExpireCondition::Lt),
    ]);
    prop_oneof![
        (deadline(), condition).prop_map(|(deadline_ms, condition)| RedisOp::Expire {
            deadline_ms,
            condition
        }),
        Just(RedisOp::Persist),
        deadline().prop_map(|deadline_ms| RedisOp::GetEx(GetExExpiry::AtMs(deadline_ms))),
        Just(RedisOp::GetEx(GetExExpiry::Persist)),
    ]
}

fn replace_op() -> impl Strategy<Value = RedisOp> {
    let content = prop_oneof![
        bytes(&["r"]).prop_map(RedisContent::String),
        (-3i64..4).prop_map(RedisContent::Counter),
        proptest::collection::btree_map(field(), bytes(&["h"]), 0..3).prop_map(RedisContent::Hash),
    ];
    (content, proptest::option::of(deadline())).prop_map(|(content, deadline_ms)| {
        RedisOp::Replace {
            content,
            deadline_ms,
        }
    })
}

fn redis_op() -> impl Strategy<Value = RedisOp> {
    prop_oneof![
        3 => set_op(),
        2 => Just(RedisOp::Del),
        1 => Just(RedisOp::GetDel),
        3 => increment().prop_map(RedisOp::IncrBy),
        4 => hash_op(),
        2 => expiry_op(),
        1 => replace_op(),
    ]
}

fn step(op: impl Strategy<Value = RedisOp>) -> impl Strategy<Value = Step> {
    let replica = 0..REPLICAS;
    prop_oneof![
        5 => (replica.clone(), op, 0..WALL_MS_END)
            .prop_map(|(replica, op, wall_ms)| Step::Op { replica, op, wall_ms }),
        3 => (replica.clone(), replica.clone()).prop_map(|(from, to)| Step::Sync { from, to }),
        1 => (replica, 0..WALL_MS_END + 20).prop_map(|(replica, now_ms)| Step::Sweep { replica, now_ms }),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step(redis_op()), 0..50)
}

/// Runs `steps`; checks on the way that a delta merged into the state before the op
/// gives the state after it, and that a refused op changes nothing. Returns the
/// replicas and every delta.
fn run(steps: &[Step]) -> Result<(Vec<RedisValue>, Vec<RedisValue>), TestCaseError> {
    let mut replicas = vec![RedisValue::new(); REPLICAS];
    let mut deltas = Vec::new();
    for step in steps {
        match step {
            Step::Op {
                replica,
                op,
                wall_ms,
            } => {
                let before = replicas[*replica].clone();
                let state = &mut replicas[*replica];
                match state.apply(op, at(*wall_ms), actor(*replica), *wall_ms) {
                    Ok(applied) => {
                        let mut via_delta = before;
                        if let Some(delta) = applied.delta {
                            via_delta.merge(&delta);
                            deltas.push(delta);
                        }
                        prop_assert_eq!(&via_delta, &*state, "delta equals op: {:?}", op);
                    }
                    Err(_) => prop_assert_eq!(&before, &*state, "refused op changed state"),
                }
            }
            Step::Sweep { replica, now_ms } => {
                let state = &mut replicas[*replica];
                let Some(deadline_ms) = state.deadline_ms().filter(|due| due <= now_ms) else {
                    continue;
                };
                let before = state.clone();
                if let Ok(Some(delta)) = state.sweep(deadline_ms, *now_ms) {
                    let mut via_delta = before;
                    via_delta.merge(&delta);
                    prop_assert_eq!(&via_delta, &*state, "sweep delta");
                    deltas.push(delta);
                }
            }
            Step::Sync { from, to } => {
                let source = replicas[*from].clone();
                replicas[*to].merge(&source);
            }
        }
    }
    Ok((replicas, deltas))
}

fn joined(left: &RedisValue, right: &RedisValue) -> RedisValue {
    let mut out = left.clone();
    out.merge(right);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn merge_is_a_join_and_deltas_converge(steps in steps(), seed: u64) {
        let (replicas, deltas) = run(&steps)?;
        let (a, b, c) = (&replicas[0], &replicas[1], &replicas[2]);
        prop_assert_eq!(joined(a, b), joined(b, a), "commutative");
        prop_assert_eq!(joined(&joined(a, b), c), joined(a, &joined(b, c)), "associative");
        prop_assert_eq!(&joined(a, a), a, "idempotent");
        let everything = joined(&joined(a, b), c);
        // Every delta, in a random order with duplicates, gives the join of all replicas.
        let mut rng = StdRng::seed_from_u64(seed);
        let mut delivery: Vec<&RedisValue> = deltas.iter().collect();
        for _ in 0..deltas.len() / 2 {
            delivery.push(&deltas[rng.gen_range(0..deltas.len())]);
        }
        delivery.shuffle(&mut rng);
        let mut fresh = RedisValue::new();
        for delta in delivery {
            fresh.merge(delta);
        }
        prop_assert_eq!(&fresh, &everything, "seed {}", seed);
        // Every replica holding the join answers the same.
        for now_ms in [0, WALL_MS_END, u64::MAX] {
            prop_assert_eq!(fresh.content(now_ms), everything.content(now_ms));
        }
    }

    #[test]
    fn counters_count_every_increment_once(
        steps in proptest::collection::vec(step((-5i64..6).prop_map(RedisOp::IncrBy)), 0..60),
        seed: u64,
    ) {
        let (replicas, deltas) = run(&steps)?;
        let total: i64 = steps.iter().map(|step| match step {
            Step::Op { op: RedisOp::IncrBy(by), .. } => *by,
            _ => 0,
        }).sum();
        let everything = joined(&joined(&replicas[0], &replicas[1]), &replicas[2]);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut delivery: Vec<&RedisValue> = deltas.iter().chain(&deltas).collect();
        delivery.shuffle(&mut rng);
        let mut fresh = RedisValue::new();
        for delta in delivery {
            fresh.merge(delta);
        }
        for state in [&everything, &fresh] {
            let shown = state.get(0).expect("a counter").map(|value| value.into_owned());
            let expected = (!deltas.is_empty()).then(|| total.to_string().into_bytes());
            prop_assert_eq!(shown, expected, "seed {}", seed);
        }
    }

    #[test]
    fn a_field_set_concurrent_with_del_survives(
        steps in steps(), del_ms in 0..WALL_MS_END, set_ms in 0..WALL_MS_END,
    ) {
        let (replicas, _) = run(&steps)?;
        let (mut east, mut west) = (replicas[0].clone(), replicas[1].clone());
        east.apply(&RedisOp::Del, at(del_ms), actor(0), del_ms)?;
        let hset = RedisOp::HSet(vec![(ByteBuf::from(&b"f9"[..]), ByteBuf::from(&b"z"[..]))]);
        if west.apply(&hset, at(set_ms), actor(1), set_ms).is_ok() {
            let merged = joined(&east, &west);
            prop_assert_eq!(merged.shown_kind(), Some(RedisKind::Hash));
            prop_assert_eq!(merged.field_value(b"f9"), Some(&b"z"[..]));
            prop_assert_eq!(merged, joined(&west, &east));
        }
    }

    #[test]
    fn the_longest_ttl_wins_and_persist_wins(
        steps in steps(),
        now_ms in 0..WALL_MS_END,
        east_deadline in WALL_MS_END..WALL_MS_END * 3,
        west_deadline in WALL_MS_END..WALL_MS_END * 3,
        west_persists: bool,
    ) {
        let (replicas, _) = run(&steps)?;
        let (mut east, mut west) = (replicas[0].clone(), replicas[0].clone());
        let east_op = RedisOp::Expire { deadline_ms: east_deadline, condition: None };
        let west_op = match west_persists {
            true => RedisOp::Persist,
            false => RedisOp::Expire { deadline_ms: west_deadline, condition: None },
        };
        let east_done = east.apply(&east_op, at(now_ms), actor(0), now_ms)?.outcome;
        let west_done = west.apply(&west_op, at(now_ms), actor(1), now_ms)?.outcome;
        if east_done == RedisOutcome::Integer(1) && west_done == RedisOutcome::Integer(1) {
            let merged = joined(&east, &west);
            let expected = (!west_persists).then(|| east_deadline.max(west_deadline));
            prop_assert_eq!(merged.deadline_ms(), expected);
        }
    }

    #[test]
    fn decoded_nonsense_never_panics(steps in steps(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let (replicas, _) = run(&steps)?;
        let mut bytes = rmp_serde::to_vec(&replicas[0]).expect("encodes");
        for (index, byte) in flips {
            let len = bytes.len();
            bytes[index % len] = byte;
        }
        if let Ok(decoded) = rmp_serde::from_slice::<RedisValue>(&bytes) {
            let mut state = joined(&replicas[1], &decoded);
            state.merge(&replicas[2]);
            let _ = state.content(WALL_MS_END);
            let _ = state.deadline_ms();
            let _ = state.is_tombstone();
            let _ = state.apply(&RedisOp::IncrBy(1), at(WALL_MS_END), actor(0), WALL_MS_END);
            let _ = state.apply(&RedisOp::Del, at(WALL_MS_END), actor(0), WALL_MS_END);
        }
    }
}
