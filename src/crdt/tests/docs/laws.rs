//! Merge laws and convergence under random ops, expiries and delivery.

use super::*;

// ---- random runs ----------------------------------------------------------------------

/// One step of a random run. Wall times are drawn per step, so the replicas' clocks
/// disagree (skew) and writes, refreshes and expiries interleave in every order.
#[derive(Clone, Debug)]
enum Step {
    User {
        replica: usize,
        change: UserChange,
        now_ms: u64,
        logical: u32,
        ttl_ms: u64,
        limits: DocLimits,
        /// A few ids, so retries of one operation meet at several replicas.
        op_id: Option<u8>,
    },
    Token {
        replica: usize,
        op: TokenOp,
    },
    UserAuth {
        replica: usize,
        op: UserAuthOp,
    },
    /// The sweeper: expires the replica's document at the deadline it holds, once past.
    Sweep {
        replica: usize,
        now_ms: u64,
    },
    /// An expiry naming any deadline (refused with `StillLive` when the replica holds a
    /// later one).
    Expire {
        replica: usize,
        deadline_ms: u64,
        now_ms: u64,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

const WALL_MS_END: u64 = 24;

fn user_change() -> impl Strategy<Value = UserChange> {
    // Few keys, so concurrent writes to one key are common.
    prop_oneof![
        Just(UserChange::Touch),
        // QUANTITY_MAX makes a second add overflow (refused).
        (0u8..4, prop_oneof![1u32..4, Just(QUANTITY_MAX)])
            .prop_map(|(key, quantity)| cart_add(key, quantity)),
        (0u8..4, 0u32..4).prop_map(|(key, quantity)| cart_set(key, quantity)),
        (0u8..4).prop_map(|key| UserChange::CartRemove { sku: sku(key) }),
        (0u8..4, 0u8..3)
            .prop_map(|(key, value)| pref_set(&format!("p{key}"), &format!("v{value}"))),
        (0u8..4).prop_map(|key| UserChange::PrefRemove {
            name: format!("p{key}")
        }),
        (0u8..6).prop_map(|key| UserChange::HistoryAdd {
            item: format!("item-{key}")
        }),
        (0u8..4).prop_map(|key| UserChange::DeviceAdd {
            token: format!("dev-{key}")
        }),
        (0u8..4).prop_map(|key| UserChange::DeviceRemove {
            token: format!("dev-{key}")
        }),
    ]
}

fn doc_limits() -> impl Strategy<Value = DocLimits> {
    prop_oneof![
        3 => Just(DocLimits::default()),
        1 => Just(DocLimits { cart_lines_max: 2, prefs_max: 2, doc_bytes_max: SESSION_DOC_BYTES_MAX }),
        1 => Just(DocLimits { doc_bytes_max: 120, ..DocLimits::default() }),
    ]
}

fn sync_or_expiry() -> impl Strategy<Value = Step> {
    let replica = 0..REPLICAS;
    prop_oneof![
        3 => (replica.clone(), replica.clone()).prop_map(|(from, to)| Step::Sync { from, to }),
        1 => (replica.clone(), 0..WALL_MS_END).prop_map(|(replica, now_ms)| Step::Sweep { replica, now_ms }),
        1 => (replica, 0..WALL_MS_END, 0..WALL_MS_END).prop_map(|(replica, deadline_ms, now_ms)| {
            Step::Expire { replica, deadline_ms, now_ms }
        }),
    ]
}

fn user_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (
            (0..REPLICAS, user_change(), 0..WALL_MS_END, 0u32..3),
            (0u64..8, doc_limits(), proptest::option::of(0u8..4))
        )
            .prop_map(|((replica, change, now_ms, logical), (ttl_ms, limits, op_id))| {
                Step::User { replica, change, now_ms, logical, ttl_ms, limits, op_id }
            }),
        3 => sync_or_expiry(),
    ]
}

fn token_op() -> impl Strategy<Value = TokenOp> {
    prop_oneof![
        // Conflicting creates (two users, two absolute deadlines) must still converge.
        (0u8..2, 8u64..WALL_MS_END, 0u64..WALL_MS_END).prop_map(
            |(user, absolute_ms, idle_deadline_ms)| {
                TokenOp::Create(TokenRecord {
                    identity: Some(identity(&format!("user-{user}"), absolute_ms)),
                    idle_deadline_ms,
                    ..TokenRecord::default()
                })
            }
        ),
        (0..WALL_MS_END, 0u64..8).prop_map(|(at_ms, ttl_ms)| TokenOp::Seen {
            at_ms,
            idle_deadline_ms: at_ms + ttl_ms
        }),
        (0..WALL_MS_END).prop_map(|at_ms| TokenOp::Revoke { at_ms }),
        (0..WALL_MS_END, 0u8..3).prop_map(|(at_ms, to)| TokenOp::Rotate(Rotation {
            at_ms,
            to: [to; 32]
        })),
    ]
}

fn user_auth_op() -> impl Strategy<Value = UserAuthOp> {
    let family = (0..WALL_MS_END, 0u8..6).prop_map(|(at_ms, family)| RevokedFamily {
        at_ms,
        family: [family; 32],
    });
    let audit = (0..WALL_MS_END, 0u8..3).prop_map(|(at_ms, device)| AuditEntry {
        at_ms,
        event: "token_reused".into(),
        device: format!("device-{device}"),
        region: "east".into(),
    });
    (
        proptest::option::of(0..WALL_MS_END),
        proptest::option::of(family),
        proptest::option::of(audit),
    )
        .prop_map(|(not_before_ms, revoke, audit)| UserAuthOp {
            not_before_ms,
            revoke,
            audit,
        })
}

fn user_auth_step() -> impl Strategy<Value = Step> {
    let lifetime = crate::limits::SESSION_LIFETIME_MS_MAX;
    prop_oneof![
        5 => (0..REPLICAS, user_auth_op()).prop_map(|(replica, op)| Step::UserAuth { replica, op }),
        2 => (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Step::Sync { from, to }),
        // Sweeps: an expiry naming a deadline some elements are past.
        1 => (0..REPLICAS, 0..WALL_MS_END).prop_map(move |(replica, at)| Step::Expire {
            replica,
            deadline_ms: lifetime + at,
            now_ms: lifetime + WALL_MS_END,
        }),
    ]
}

fn token_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0..REPLICAS, token_op()).prop_map(|(replica, op)| Step::Token { replica, op }),
        3 => sync_or_expiry(),
    ]
}

/// The op a step applies at its replica, with the replica's timestamp and wall time;
/// `None` for a sync or a sweep with nothing to sweep.
fn step_op(step: &Step, doc: &Doc) -> Option<(usize, DocOp, Hlc, u64)> {
    match step {
        Step::User {
            replica,
            change,
            now_ms,
            logical,
            ttl_ms,
            limits,
            op_id,
        } => {
            let op = DocOp::User(UserOp {
                deadline_ms: now_ms + ttl_ms,
                change: change.clone(),
                limits: *limits,
                op_id: op_id.map(|id| OpId([id; 16])),
            });
            Some((*replica, op, Hlc::new(*now_ms, *logical), *now_ms))
        }
        Step::Token { replica, op } => Some((*replica, DocOp::Token(op.clone()), at(0), 0)),
        Step::UserAuth { replica, op } => Some((*replica, DocOp::UserAuth(op.clone()), at(0), 0)),
        Step::Sweep { replica, now_ms } => {
            let deadline_ms = doc.deadline_ms();
            (deadline_ms > 0 && deadline_ms <= *now_ms && !doc.is_tombstone()).then(|| {
                let op = DocOp::Expire { deadline_ms };
                (*replica, op, at(*now_ms), *now_ms)
            })
        }
        Step::Expire {
            replica,
            deadline_ms,
            now_ms,
        } => {
            let op = DocOp::Expire {
                deadline_ms: *deadline_ms,
            };
            Some((*replica, op, at(*now_ms), *now_ms))
        }
        Step::Sync { .. } => None,
    }
}

/// A merged document must already be in normal form: merging it with itself changes
/// nothing, and a user document holds nothing written at or before its floor. Its
/// digest from its stored bytes (what replicas compute) is its digest.
fn check_normal(doc: &Doc) -> Result<(), TestCaseError> {
    prop_assert_eq!(&merged(doc, doc), doc, "not idempotent");
    let object = crate::object::Object::Doc(doc.clone());
    let stored = crate::object::encode_object(&object);
    prop_assert_eq!(
        object.digest_stored(&stored),
        object.digest(),
        "stored digest"
    );
    if let Doc::User(user) = doc {
        let mut pruned = user.session.clone();
        pruned.prune(user.floor);
        prop_assert_eq!(&pruned, &user.session, "content at or below the floor");
    }
    Ok(())
}

/// Runs `steps` on REPLICAS replicas starting from `initial`; returns the replicas and
/// every delta produced. Checks on the way that a refused op changes nothing.
fn run(initial: &Doc, steps: &[Step]) -> Result<(Vec<Doc>, Vec<Doc>), TestCaseError> {
    let mut replicas = vec![initial.clone(); REPLICAS];
    let mut deltas = Vec::new();
    for step in steps {
        if let Step::Sync { from, to } = *step {
            let source = replicas[from].clone();
            replicas[to].merge(&source).expect("one kind");
            continue;
        }
        let replica = match step {
            Step::User { replica, .. }
            | Step::Token { replica, .. }
            | Step::UserAuth { replica, .. }
            | Step::Sweep { replica, .. }
            | Step::Expire { replica, .. } => *replica,
            Step::Sync { .. } => unreachable!("handled above"),
        };
        let Some((replica, op, stamp, now_ms)) = step_op(step, &replicas[replica]) else {
            continue;
        };
        let doc = &mut replicas[replica];
        let before = doc.clone();
        match doc.apply(&op, actor(replica), stamp, now_ms) {
            Ok(delta) => {
                prop_assert_eq!(&merged(&before, &delta), &*doc, "state != before ⊔ delta");
                deltas.push(delta);
            }
            Err(error) => {
                prop_assert!(error != CrdtError::Mismatch, "generator mixed kinds");
                prop_assert_eq!(&*doc, &before, "a refused op changed the document");
            }
        }
        check_normal(doc)?;
    }
    Ok((replicas, deltas))
}

fn check_laws(initial: &Doc, steps: &[Step]) -> Result<(), TestCaseError> {
    let (replicas, deltas) = run(initial, steps)?;
    let (a, b, c) = (&replicas[0], &replicas[1], &replicas[2]);
    prop_assert_eq!(merged(a, b), merged(b, a), "commutative");
    prop_assert_eq!(
        merged(&merged(a, b), c),
        merged(a, &merged(b, c)),
        "associative"
    );
    for doc in replicas.iter().chain(&deltas) {
        check_normal(doc)?;
    }
    // Deltas are states too: the laws hold between a replica and any delta.
    for delta in deltas.iter().take(8) {
        prop_assert_eq!(
            merged(a, delta),
            merged(delta, a),
            "commutative with a delta"
        );
        prop_assert_eq!(
            merged(&merged(a, delta), b),
            merged(a, &merged(delta, b)),
            "associative with a delta"
        );
    }
    Ok(())
}

/// Every delta, delivered in a random order with duplicates to every replica and to a
/// fresh one, yields the same state: the join of all replicas.
fn check_convergence(initial: &Doc, steps: &[Step], seed: u64) -> Result<(), TestCaseError> {
    let (replicas, deltas) = run(initial, steps)?;
    let everything = replicas
        .iter()
        .fold(initial.clone(), |joined, replica| merged(&joined, replica));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut targets = replicas;
    targets.push(initial.clone());
    for target in &mut targets {
        let mut delivery: Vec<&Doc> = deltas.iter().collect();
        for _ in 0..deltas.len() / 2 {
            delivery.push(&deltas[rng.gen_range(0..deltas.len())]);
        }
        delivery.shuffle(&mut rng);
        for delta in delivery {
            target.merge(delta).expect("one kind");
        }
        prop_assert_eq!(&*target, &everything);
        // A quorum read compares a replica's digest of its stored bytes with the digest
        // of the object another replica decoded: equal states must give equal digests.
        let stored = crate::object::encode_object(&crate::object::Object::Doc(target.clone()));
        let decoded = crate::object::decode_object(&stored).expect("stored bytes decode");
        let expected = crate::object::Object::Doc(everything.clone()).digest();
        prop_assert_eq!(decoded.digest(), expected, "digest of the decoded state");
        prop_assert_eq!(
            decoded.digest_stored(&stored),
            expected,
            "digest of the bytes"
        );
    }
    Ok(())
}

pub(super) fn empty_user() -> Doc {
    Doc::User(UserDoc::default())
}

pub(super) fn empty_user_auth() -> Doc {
    Doc::UserAuth(UserAuth::default())
}

pub(super) fn empty_token() -> Doc {
    Doc::Token(TokenDoc::Live(TokenRecord::default()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn user_doc_laws_and_convergence(
        steps in proptest::collection::vec(user_step(), 0..48),
        seed: u64,
    ) {
        check_laws(&empty_user(), &steps)?;
        check_convergence(&empty_user(), &steps, seed)?;
    }

    #[test]
    fn token_doc_laws_and_convergence(
        steps in proptest::collection::vec(token_step(), 0..40),
        seed: u64,
    ) {
        check_laws(&empty_token(), &steps)?;
        check_convergence(&empty_token(), &steps, seed)?;
    }

    #[test]
    fn user_auth_laws_and_convergence(
        steps in proptest::collection::vec(user_auth_step(), 0..48),
        seed: u64,
    ) {
        check_laws(&empty_user_auth(), &steps)?;
        check_convergence(&empty_user_auth(), &steps, seed)?;
    }

    /// Two rotations of one token minted on different replicas, delivered in any order:
    /// every replica that holds both names the same successor, and a replica that
    /// already holds one refuses the other.
    #[test]
    fn concurrent_rotations_leave_one_successor(
        first_at in 0..WALL_MS_END,
        second_at in 0..WALL_MS_END,
        first_to in 0u8..4,
        second_to in 4u8..8,
        seed: u64,
    ) {
        let created = TokenOp::Create(token_record(100, 1_000));
        let mut here = TokenDoc::Live(TokenRecord::default());
        here.apply(&created).expect("create");
        let mut there = here.clone();
        let first = Rotation { at_ms: first_at, to: [first_to; 32] };
        let second = Rotation { at_ms: second_at, to: [second_to; 32] };
        let first_delta = here.apply(&TokenOp::Rotate(first)).expect("first mints here");
        let second_delta = there.apply(&TokenOp::Rotate(second)).expect("second there");
        // On a replica holding the first, the second is refused (and vice versa).
        let mut holding_first = there.clone();
        holding_first.merge(&first_delta);
        prop_assert_eq!(
            here.clone().apply(&TokenOp::Rotate(second)),
            Err(CrdtError::AlreadyRotated)
        );
        let mut rng = StdRng::seed_from_u64(seed);
        let mut deltas = vec![first_delta, second_delta];
        deltas.shuffle(&mut rng);
        let mut third = TokenDoc::Live(TokenRecord::default());
        third.apply(&created).expect("create");
        for delta in &deltas {
            third.merge(delta);
            here.merge(delta);
            there.merge(delta);
        }
        for doc in [&here, &there, &third, &holding_first] {
            let valid: Vec<u8> = [first_to, second_to]
                .into_iter()
                .filter(|to| crate::crdt::is_successor_of(Some(doc), &[*to; 32]))
                .collect();
            prop_assert_eq!(valid.len(), 1, "exactly one successor validates");
        }
        let winner = |doc: &TokenDoc| doc.record().and_then(|record| record.rotated);
        prop_assert_eq!(winner(&here), winner(&there));
        prop_assert_eq!(winner(&here), winner(&third));
        prop_assert_eq!(winner(&here), Some(first.min(second)));
    }
}
