//! Behaviour the session service relies on, case by case.

#[allow(unused_imports)]
use super::laws::{empty_token, empty_user};
use super::*;

// ---- user documents -----------------------------------------------------------------

const DEADLINE_MS: u64 = 1_000;

#[test]
fn concurrent_adds_of_different_skus_both_survive() {
    let mut left = UserDoc::default();
    let mut right = UserDoc::default();
    let from_left = left
        .apply(&user_op(cart_add(1, 2), DEADLINE_MS), actor(0), at(5), 5)
        .unwrap();
    let from_right = right
        .apply(&user_op(cart_add(2, 3), DEADLINE_MS), actor(1), at(5), 5)
        .unwrap();
    left.merge(&from_right);
    right.merge(&from_left);
    assert_eq!(left, right);
    assert_eq!(left.session.cart.lines(), vec![(sku(1), 2), (sku(2), 3)]);
}

#[test]
fn remove_concurrent_with_add_keeps_the_line() {
    let mut left = UserDoc::default();
    left.apply(&user_op(cart_add(1, 2), DEADLINE_MS), actor(0), at(1), 1)
        .unwrap();
    let mut right = left.clone();
    let removal = left
        .apply(
            &user_op(UserChange::CartRemove { sku: sku(1) }, DEADLINE_MS),
            actor(0),
            at(2),
            2,
        )
        .unwrap();
    let add = right
        .apply(&user_op(cart_add(1, 3), DEADLINE_MS), actor(1), at(2), 2)
        .unwrap();
    assert!(left.session.cart.is_empty());
    left.merge(&add);
    right.merge(&removal);
    assert_eq!(left, right);
    assert_eq!(left.session.cart.lines(), vec![(sku(1), 5)], "add wins");

    // A set to 0 is a remove: concurrent with a set, the set wins too.
    let mut other = left.clone();
    let zero = left
        .apply(&user_op(cart_set(1, 0), DEADLINE_MS), actor(0), at(3), 3)
        .unwrap();
    let set = other
        .apply(&user_op(cart_set(1, 4), DEADLINE_MS), actor(2), at(3), 3)
        .unwrap();
    left.merge(&set);
    other.merge(&zero);
    assert_eq!(left, other);
    assert_eq!(left.session.cart.lines(), vec![(sku(1), 4)]);
}

#[test]
fn concurrent_quantity_sets_resolve_identically_everywhere() {
    let base = {
        let mut doc = UserDoc::default();
        doc.apply(&user_op(cart_add(1, 1), DEADLINE_MS), actor(0), at(1), 1)
            .unwrap();
        doc
    };
    let mut replicas = vec![base.clone(); REPLICAS];
    // Two sets tie on the Hlc (the higher actor wins), one is earlier.
    let stamps = [at(7), Hlc::new(6, 3), at(7)];
    let mut deltas = Vec::new();
    for (replica, doc) in replicas.iter_mut().enumerate() {
        let quantity = 10 + replica as u32;
        let op = user_op(cart_set(1, quantity), DEADLINE_MS);
        deltas.push(doc.apply(&op, actor(replica), stamps[replica], 7).unwrap());
    }
    let mut rng = StdRng::seed_from_u64(11);
    for doc in &mut replicas {
        let mut delivery = deltas.clone();
        delivery.extend(deltas.clone());
        delivery.shuffle(&mut rng);
        for delta in &delivery {
            doc.merge(delta);
        }
    }
    assert!(replicas.iter().all(|doc| *doc == replicas[0]));
    assert_eq!(replicas[0].session.cart.lines(), vec![(sku(1), 12)]);
    // A later set observing the survivors replaces them all.
    let later = replicas[1]
        .apply(&user_op(cart_set(1, 5), DEADLINE_MS), actor(1), at(8), 8)
        .unwrap();
    replicas[0].merge(&later);
    assert_eq!(replicas[0].session.cart.lines(), vec![(sku(1), 5)]);
    assert_eq!(replicas[0], replicas[1]);
}

/// A replica that still holds everything of the first incarnation.
fn filled(deadline_ms: u64) -> UserDoc {
    let mut doc = UserDoc::default();
    let changes = [
        cart_add(1, 2),
        pref_set("theme", "dark"),
        UserChange::HistoryAdd {
            item: "viewed-1".to_string(),
        },
        UserChange::DeviceAdd {
            token: "dev-a".to_string(),
        },
    ];
    for (tick, change) in changes.into_iter().enumerate() {
        let wall_ms = 10 + tick as u64;
        doc.apply(
            &user_op(change, deadline_ms),
            actor(1),
            at(wall_ms),
            wall_ms,
        )
        .unwrap();
    }
    doc
}

fn assert_only_new_incarnation(doc: &UserDoc) {
    assert_eq!(doc.session.cart.lines(), vec![(sku(3), 1)]);
    assert_eq!(doc.session.prefs.len_live(), 0);
    assert!(doc.session.prefs.is_clear());
    assert!(doc.session.history.is_empty());
    assert!(doc.session.devices.is_empty());
}

#[test]
fn a_stale_replica_does_not_bring_back_an_expired_incarnation() {
    let mut fresh = filled(100);
    let mut stale = fresh.clone();
    // A write of the old incarnation that reaches the others only late.
    let late = stale
        .apply(&user_op(cart_add(2, 1), 100), actor(2), at(90), 90)
        .unwrap();

    // The same user comes back after the deadline: the doc is ended first.
    let delta = fresh
        .apply(&user_op(cart_add(3, 1), 300), actor(0), at(150), 150)
        .unwrap();
    assert_eq!(fresh.floor, floor_for(100));
    assert_eq!(fresh.deadline_ms, 300);
    assert!(fresh.is_live(150));
    assert_only_new_incarnation(&fresh);

    fresh.merge(&stale);
    fresh.merge(&late);
    assert_only_new_incarnation(&fresh);
    stale.merge(&delta);
    assert_only_new_incarnation(&stale);
    assert_eq!(stale, fresh);

    // The same through the sweeper's tombstone instead of a new incarnation.
    let mut swept = Doc::User(filled(100));
    let tombstone = swept
        .apply(&DocOp::Expire { deadline_ms: 100 }, actor(0), at(120), 120)
        .unwrap();
    assert_eq!(tombstone, Doc::User(UserDoc::expired_at(100, 120)));
    swept.merge(&Doc::User(filled(100))).unwrap();
    swept.merge(&Doc::User(late)).unwrap();
    assert!(swept.is_tombstone());
    assert_eq!(swept.deleted_ms(), 120);
    let Doc::User(swept) = swept else {
        panic!("a user doc stays one")
    };
    assert_eq!(swept.floor, floor_for(100));
    assert_eq!(swept.deadline_ms, 100);
    assert!(swept.session.is_empty());
}

/// The first write of a new incarnation made in the very millisecond the last one
/// expired, or by a replica whose clock lags the floor, must survive the floor everywhere
/// (it used to be kept locally and pruned by every merge).
#[test]
fn a_write_at_or_below_the_floor_is_not_lost() {
    let mut here = filled(100);
    let delta = here
        .apply(&user_op(cart_add(3, 1), 300), actor(0), at(100), 100)
        .unwrap();
    assert_only_new_incarnation(&here);
    let mut there = filled(100);
    there.merge(&delta);
    assert_only_new_incarnation(&there);
    let mut again = here.clone();
    again.merge(&here);
    assert_eq!(again, here);

    // The sweeper (clock ahead) ended it; a replica whose clock lags writes next.
    let mut lagging = Doc::User(filled(100));
    lagging
        .merge(&Doc::User(UserDoc::expired_at(100, 130)))
        .unwrap();
    let write = DocOp::User(user_op(cart_add(3, 1), 300));
    let delta = lagging.apply(&write, actor(2), at(95), 95).unwrap();
    let Doc::User(user) = &lagging else {
        panic!("a user doc stays one")
    };
    assert_only_new_incarnation(user);
    let tombstone = Doc::User(UserDoc::expired_at(100, 130));
    let elsewhere = merged(&merged(&Doc::User(filled(100)), &delta), &tombstone);
    assert_eq!(elsewhere, lagging);
}

#[test]
fn an_expired_doc_served_again_starts_empty_even_for_a_touch() {
    let mut doc = filled(100);
    let delta = doc
        .apply(&user_op(UserChange::Touch, 400), actor(0), at(200), 200)
        .unwrap();
    assert!(doc.session.is_empty());
    assert_eq!(doc.deadline_ms, 400);
    let mut stale = filled(100);
    stale.merge(&delta);
    assert_eq!(stale, doc, "the touch's delta carries the floor");
}

fn assert_refused(doc: &mut UserDoc, op: &UserOp, now_ms: u64, expected: CrdtError) {
    let before = doc.clone();
    assert_eq!(
        doc.apply(op, actor(0), at(now_ms), now_ms),
        Err(expected),
        "{op:?}"
    );
    assert_eq!(*doc, before, "refused {op:?} changed the doc");
}

fn assert_bad_quantity(doc: &mut UserDoc, change: UserChange) {
    let before = doc.clone();
    let result = doc.apply(&user_op(change.clone(), DEADLINE_MS), actor(0), at(9), 9);
    assert!(
        matches!(result, Err(CrdtError::Quantity { .. })),
        "{change:?}: {result:?}"
    );
    assert_eq!(*doc, before, "refused {change:?} changed the doc");
}

#[test]
fn refused_changes_leave_the_doc_unchanged() {
    let tight = DocLimits {
        cart_lines_max: 2,
        prefs_max: 1,
        doc_bytes_max: SESSION_DOC_BYTES_MAX,
    };
    let op = |change| UserOp {
        deadline_ms: DEADLINE_MS,
        change,
        limits: tight,
        op_id: None,
    };
    let mut doc = UserDoc::default();
    for change in [cart_add(1, 1), cart_add(2, 1), pref_set("a", "1")] {
        doc.apply(&op(change), actor(0), at(1), 1).unwrap();
    }
    let too_many_lines = CrdtError::TooMany {
        what: "cart lines",
        max: 2,
    };
    assert_refused(&mut doc, &op(cart_add(3, 1)), 2, too_many_lines.clone());
    assert_refused(&mut doc, &op(cart_set(3, 1)), 2, too_many_lines);
    let too_many_prefs = CrdtError::TooMany {
        what: "prefs",
        max: 1,
    };
    assert_refused(&mut doc, &op(pref_set("b", "1")), 2, too_many_prefs);
    // Existing lines and prefs stay writable at the bound.
    doc.apply(&op(cart_add(1, 1)), actor(0), at(3), 3).unwrap();
    doc.apply(&op(pref_set("a", "2")), actor(0), at(3), 3)
        .unwrap();
    assert_eq!(doc.session.cart.quantity(&sku(1)), Some(2));

    assert_bad_quantity(&mut doc, cart_add(1, 0));
    assert_bad_quantity(&mut doc, cart_set(1, QUANTITY_MAX + 1));
    assert_bad_quantity(&mut doc, cart_add(1, QUANTITY_MAX - 1));
    assert_bad_quantity(&mut doc, cart_add(4, QUANTITY_MAX + 1));

    let small = DocLimits {
        doc_bytes_max: doc.encoded_len() + 8,
        ..DocLimits::default()
    };
    let big = UserOp {
        deadline_ms: DEADLINE_MS,
        change: pref_set("a", &"x".repeat(64)),
        limits: small,
        op_id: None,
    };
    let before = doc.clone();
    let refused = doc.apply(&big, actor(0), at(4), 4);
    assert!(
        matches!(refused, Err(CrdtError::TooLarge { max, .. }) if max == small.doc_bytes_max),
        "{refused:?}"
    );
    assert_eq!(doc, before);
}

#[test]
fn doc_bytes_are_capped_by_the_global_limit_whatever_the_op_says() {
    let lenient = DocLimits {
        cart_lines_max: usize::MAX,
        prefs_max: usize::MAX,
        doc_bytes_max: usize::MAX,
    };
    let mut doc = UserDoc::default();
    let value = "v".repeat(1024);
    let refusal = (0..PREFS_MAX).find_map(|key| {
        let op = UserOp {
            deadline_ms: DEADLINE_MS,
            change: pref_set(&format!("pref-{key}"), &value),
            limits: lenient,
            op_id: None,
        };
        let before = doc.clone();
        let result = doc.apply(&op, actor(0), at(1), 1);
        result.err().map(|error| (error, before))
    });
    let (error, before) = refusal.expect("PREFS_MAX prefs of 1 KiB exceed the doc limit");
    assert!(
        matches!(error, CrdtError::TooLarge { bytes, max } if max == SESSION_DOC_BYTES_MAX && bytes > max),
        "{error:?}"
    );
    assert_eq!(doc, before);
    assert!(doc.encoded_len() <= SESSION_DOC_BYTES_MAX);
}

#[test]
fn a_refused_change_on_an_expired_doc_does_not_end_it() {
    let mut doc = filled(100);
    let before = doc.clone();
    let bad = user_op(cart_add(1, 0), 300);
    assert!(matches!(
        doc.apply(&bad, actor(0), at(150), 150),
        Err(CrdtError::Quantity { .. })
    ));
    assert_eq!(doc, before, "floor, deadline and content untouched");
}

#[test]
fn check_quantity_accepts_only_the_client_range() {
    assert_eq!(check_quantity(1, false), Ok(1));
    assert_eq!(
        check_quantity(i64::from(QUANTITY_MAX), false),
        Ok(QUANTITY_MAX)
    );
    assert_eq!(check_quantity(0, true), Ok(0));
    for (quantity, allow_zero) in [
        (0, false),
        (-1, true),
        (i64::from(QUANTITY_MAX) + 1, true),
        (i64::from(u32::MAX) + 1, true),
        (i64::MIN, false),
        (i64::MAX, true),
    ] {
        assert_eq!(
            check_quantity(quantity, allow_zero),
            Err(CrdtError::Quantity {
                quantity,
                max: QUANTITY_MAX
            })
        );
    }
}

/// Three actors add and remove devices and cart lines many times, delivering deltas late
/// and out of order; once everything is delivered the document is back to a small size
/// (no tombstone per removed item).
#[test]
fn metadata_stays_bounded_after_many_add_remove_cycles() {
    let mut replicas = vec![UserDoc::default(); REPLICAS];
    let mut in_flight: Vec<UserDoc> = Vec::new();
    let mut rng = StdRng::seed_from_u64(3);
    let mut sizes = Vec::new();
    for round in 0..600u64 {
        let replica = (round % REPLICAS as u64) as usize;
        let name = format!("thing-{}", round % 5);
        let changes = [
            UserChange::DeviceAdd {
                token: name.clone(),
            },
            UserChange::CartAdd {
                sku: name.clone(),
                quantity: 1,
            },
            UserChange::DeviceRemove {
                token: name.clone(),
            },
            UserChange::CartRemove { sku: name },
        ];
        for change in changes {
            let delta = replicas[replica]
                .apply(
                    &user_op(change, 1_000_000),
                    actor(replica),
                    at(round),
                    round,
                )
                .unwrap();
            in_flight.push(delta);
        }
        if round % 50 == 49 {
            in_flight.shuffle(&mut rng);
            for doc in &mut replicas {
                for delta in &in_flight {
                    doc.merge(delta);
                }
            }
            in_flight.clear();
            assert!(replicas.iter().all(|doc| *doc == replicas[0]));
            assert!(replicas[0].session.is_empty());
            sizes.push(replicas[0].encoded_len());
        } else if round % 7 == 0 {
            // Some deltas arrive early, so gaps (context clouds) form on the way.
            let delta = in_flight.swap_remove(rng.gen_range(0..in_flight.len()));
            replicas[(replica + 1) % REPLICAS].merge(&delta);
            in_flight.push(delta);
        }
    }
    let largest = *sizes.iter().max().unwrap();
    assert!(largest < 160, "document grew to {largest} bytes: {sizes:?}");
    assert!(
        sizes.iter().all(|size| size.abs_diff(sizes[0]) <= 8),
        "size grows with the number of removals: {sizes:?}"
    );
}

// ---- tokens ---------------------------------------------------------------------------

#[test]
fn verdicts() {
    let live = TokenDoc::Live(token_record(100, 1_000));
    assert_eq!(verdict(Some(&live), 50, GRACE_MS), Verdict::Valid);
    assert_eq!(verdict(Some(&live), 99, GRACE_MS), Verdict::Valid);
    assert_eq!(
        verdict(Some(&live), 100, GRACE_MS),
        Verdict::Expired,
        "idle"
    );

    assert_eq!(verdict(None, 50, GRACE_MS), Verdict::Unknown);
    let anonymous = TokenDoc::Live(TokenRecord::default());
    assert_eq!(verdict(Some(&anonymous), 50, GRACE_MS), Verdict::Unknown);
    // Only a refresh arrived, not the create: still unknown.
    let mut partial = TokenDoc::Live(TokenRecord::default());
    partial
        .apply(&TokenOp::Seen {
            at_ms: 40,
            idle_deadline_ms: 140,
        })
        .expect("applies");
    assert_eq!(verdict(Some(&partial), 50, GRACE_MS), Verdict::Unknown);

    // Sliding refreshes never outlive the absolute deadline.
    let mut capped = TokenDoc::Live(token_record(100, 200));
    capped
        .apply(&TokenOp::Seen {
            at_ms: 90,
            idle_deadline_ms: 900,
        })
        .expect("applies");
    assert_eq!(verdict(Some(&capped), 199, GRACE_MS), Verdict::Valid);
    assert_eq!(
        verdict(Some(&capped), 200, GRACE_MS),
        Verdict::Expired,
        "absolute"
    );
    assert_eq!(
        verdict(Some(&TokenDoc::Erased { at_ms: 5 }), 1, GRACE_MS),
        Verdict::Expired
    );

    let mut revoked = live.clone();
    revoked
        .apply(&TokenOp::Revoke { at_ms: 40 })
        .expect("applies");
    assert_eq!(verdict(Some(&revoked), 50, GRACE_MS), Verdict::Revoked);

    let mut rotated = live;
    rotated
        .apply(&TokenOp::Rotate(Rotation {
            at_ms: 60,
            to: [9; 32],
        }))
        .expect("applies");
    assert_eq!(verdict(Some(&rotated), 60, GRACE_MS), Verdict::Valid);
    assert_eq!(
        verdict(Some(&rotated), 60 + GRACE_MS - 1, GRACE_MS),
        Verdict::Valid,
        "within the grace"
    );
    assert_eq!(
        verdict(Some(&rotated), 60 + GRACE_MS, GRACE_MS),
        Verdict::Reused
    );
    assert_eq!(verdict(Some(&rotated), 99, GRACE_MS), Verdict::Reused);
    // With no grace, a node whose clock runs behind the rotating node's (now before the
    // rotation's time) still refuses the rotated token.
    assert_eq!(
        verdict(Some(&rotated), 10, 0),
        Verdict::Reused,
        "clock behind"
    );
    assert_eq!(verdict(Some(&rotated), 60, 0), Verdict::Reused);
}

#[test]
fn a_merged_revoke_is_never_undone_by_older_states() {
    let mut here = TokenDoc::Live(TokenRecord::default());
    let create = here
        .apply(&TokenOp::Create(token_record(100, 1_000)))
        .expect("applies");
    let mut there = TokenDoc::Live(TokenRecord::default());
    there.merge(&create);
    let before_revoke = here.clone();
    // Concurrent with the revoke, a refresh later in time.
    let seen = here
        .apply(&TokenOp::Seen {
            at_ms: 70,
            idle_deadline_ms: 170,
        })
        .expect("applies");
    let revoke = there
        .apply(&TokenOp::Revoke { at_ms: 50 })
        .expect("applies");
    here.merge(&revoke);
    assert_eq!(verdict(Some(&here), 80, GRACE_MS), Verdict::Revoked);

    for old in [&before_revoke, &create, &seen] {
        here.merge(old);
        there.merge(old);
    }
    let later_revoke = TokenDoc::Live(TokenRecord {
        revoked_ms: Some(90),
        ..TokenRecord::default()
    });
    here.merge(&later_revoke);
    assert_eq!(here, there.clone().merged_with(&later_revoke));
    for doc in [&here, &there] {
        assert_eq!(verdict(Some(doc), 80, GRACE_MS), Verdict::Revoked);
        assert_eq!(doc.record().unwrap().revoked_ms, Some(50), "earliest wins");
        assert_eq!(doc.record().unwrap().idle_deadline_ms, 170);
    }
}

trait MergedWith {
    fn merged_with(self, other: &Self) -> Self;
}

impl MergedWith for TokenDoc {
    fn merged_with(mut self, other: &Self) -> Self {
        self.merge(other);
        self
    }
}

#[test]
fn conflicting_creates_and_rotations_resolve_the_same_everywhere() {
    let first = TokenDoc::Live(token_record(100, 1_000));
    let mut second_record = token_record(120, 900);
    second_record.identity = Some(identity("bob", 900));
    let second = TokenDoc::Live(second_record);
    let rotate = |at_ms, to| {
        TokenDoc::Live(TokenRecord {
            rotated: Some(Rotation {
                at_ms,
                to: [to; 32],
            }),
            ..TokenRecord::default()
        })
    };
    let left = first
        .clone()
        .merged_with(&rotate(50, 1))
        .merged_with(&second)
        .merged_with(&rotate(40, 2));
    let right = second
        .merged_with(&rotate(40, 2))
        .merged_with(&first)
        .merged_with(&rotate(50, 1));
    assert_eq!(left, right);
    let record = left.record().unwrap();
    assert_eq!(record.rotated.unwrap().at_ms, 40, "earliest rotation wins");
    assert_eq!(record.idle_deadline_ms, 120);
}

#[test]
fn an_erased_token_absorbs_every_live_state() {
    let erased = TokenDoc::Erased { at_ms: 500 };
    let live = TokenDoc::Live(token_record(10_000, 20_000));
    assert_eq!(erased.clone().merged_with(&live), erased);
    assert_eq!(live.merged_with(&erased), erased);
    assert_eq!(
        erased.clone().merged_with(&TokenDoc::Erased { at_ms: 700 }),
        TokenDoc::Erased { at_ms: 700 }
    );
    assert!(erased.record().is_none());
}

// ---- documents --------------------------------------------------------------------------

#[test]
fn documents_of_different_kinds_never_merge() {
    let user = Doc::User(filled(100));
    let token = Doc::Token(TokenDoc::Live(token_record(100, 1_000)));
    let mut mine = user.clone();
    assert_eq!(mine.merge(&token), Err(CrdtError::Mismatch));
    assert_eq!(mine, user);
    let mut mine = token.clone();
    assert_eq!(mine.merge(&user), Err(CrdtError::Mismatch));
    assert_eq!(mine, token);

    let user_write = DocOp::User(user_op(cart_add(1, 1), DEADLINE_MS));
    assert_eq!(
        mine.apply(&user_write, actor(0), at(1), 1),
        Err(CrdtError::Mismatch)
    );
    let token_write = DocOp::Token(TokenOp::Revoke { at_ms: 1 });
    let mut mine = user.clone();
    assert_eq!(
        mine.apply(&token_write, actor(0), at(1), 1),
        Err(CrdtError::Mismatch)
    );
    assert_eq!(mine, user);

    assert_eq!(Doc::empty_for(&user_write), Some(empty_user()));
    assert_eq!(Doc::empty_for(&token_write), Some(empty_token()));
    assert_eq!(Doc::empty_for(&DocOp::Expire { deadline_ms: 1 }), None);
}

#[test]
fn expire_on_a_refreshed_user_doc_is_still_live() {
    let mut doc = empty_user();
    let touch = |deadline_ms| DocOp::User(user_op(UserChange::Touch, deadline_ms));
    doc.apply(&touch(100), actor(0), at(10), 10).unwrap();
    doc.apply(&touch(200), actor(1), at(50), 50).unwrap();
    assert_eq!(doc.deadline_ms(), 200);
    let before = doc.clone();
    assert_eq!(
        doc.apply(&DocOp::Expire { deadline_ms: 100 }, actor(2), at(150), 150),
        Err(CrdtError::StillLive)
    );
    assert_eq!(doc, before);
    assert!(!doc.is_tombstone());
    assert_eq!(doc.deleted_ms(), 0);

    let delta = doc
        .apply(&DocOp::Expire { deadline_ms: 200 }, actor(2), at(250), 250)
        .unwrap();
    assert!(doc.is_tombstone() && delta.is_tombstone());
    assert_eq!(doc.deleted_ms(), 250);
    assert_eq!(doc.deadline_ms(), 200);
    // A new incarnation is no longer a tombstone.
    doc.apply(&touch(400), actor(0), at(300), 300).unwrap();
    assert!(!doc.is_tombstone());
    assert_eq!(doc.deadline_ms(), 400);
}

#[test]
fn expire_on_a_refreshed_token_is_still_live() {
    let mut doc = empty_token();
    let create = DocOp::Token(TokenOp::Create(token_record(100, 1_000)));
    doc.apply(&create, actor(0), at(1), 1).unwrap();
    assert_eq!(doc.deadline_ms(), 100);
    let seen = DocOp::Token(TokenOp::Seen {
        at_ms: 90,
        idle_deadline_ms: 190,
    });
    doc.apply(&seen, actor(1), at(90), 90).unwrap();
    let before = doc.clone();
    assert_eq!(
        doc.apply(&DocOp::Expire { deadline_ms: 100 }, actor(2), at(120), 120),
        Err(CrdtError::StillLive)
    );
    assert_eq!(doc, before);

    let delta = doc
        .apply(&DocOp::Expire { deadline_ms: 190 }, actor(2), at(200), 200)
        .unwrap();
    assert_eq!(delta, Doc::Token(TokenDoc::Erased { at_ms: 200 }));
    assert!(doc.is_tombstone());
    assert_eq!(doc.deleted_ms(), 200);
    assert_eq!(doc.deadline_ms(), 0);
    doc.merge(&before).unwrap();
    assert_eq!(doc, delta, "a stale live record does not come back");
}

#[test]
fn a_retried_cart_add_is_applied_once_here_and_at_a_replica_that_heard_of_it() {
    let retried = UserOp {
        op_id: Some(OpId::of_key("add-1-sku-7")),
        ..user_op(cart_add(7, 1), DEADLINE_MS)
    };
    let mut first = UserDoc::default();
    let delta = first.apply(&retried, actor(0), at(1), 1).unwrap();
    assert_eq!(first.session.cart.quantity(&sku(7)), Some(1));
    // The same replica again (the client did not hear the answer).
    let before = first.clone();
    let whole = first.apply(&retried, actor(0), at(2), 2).unwrap();
    assert_eq!(first, before, "a retry changes nothing");
    assert_eq!(whole, before, "its delta is the whole document");
    // A replica the first attempt never reached gets its effect from the retry.
    let mut missed = UserDoc::default();
    missed.merge(&whole);
    assert_eq!(missed.session.cart.quantity(&sku(7)), Some(1));
    // Another replica that got the first attempt by replication, then the retry.
    let mut second = UserDoc::default();
    second.merge(&delta);
    second.apply(&retried, actor(1), at(3), 3).unwrap();
    assert_eq!(second.session.cart.quantity(&sku(7)), Some(1));
    second.merge(&first);
    assert_eq!(second.session.cart.quantity(&sku(7)), Some(1));
    // A new id is a new add; no id at all is never deduplicated.
    let another = UserOp {
        op_id: Some(OpId::of_key("add-1-sku-7-again")),
        ..user_op(cart_add(7, 1), DEADLINE_MS)
    };
    second.apply(&another, actor(1), at(4), 4).unwrap();
    assert_eq!(second.session.cart.quantity(&sku(7)), Some(2));
    let plain = user_op(cart_add(7, 1), DEADLINE_MS);
    second.apply(&plain, actor(1), at(5), 5).unwrap();
    second.apply(&plain, actor(1), at(6), 6).unwrap();
    assert_eq!(second.session.cart.quantity(&sku(7)), Some(4));
}

#[test]
fn a_document_written_before_op_ids_still_decodes() {
    #[derive(serde::Serialize)]
    struct Before {
        floor: Hlc,
        deadline_ms: u64,
        swept_ms: u64,
        session: Session,
    }
    let old = rmp_serde::to_vec(&Before {
        floor: Hlc::default(),
        deadline_ms: 9,
        swept_ms: 0,
        session: Session::new(),
    })
    .unwrap();
    let decoded: UserDoc = rmp_serde::from_slice(&old).unwrap();
    assert_eq!(decoded.deadline_ms, 9);
    assert!(decoded.applied.is_empty());
}
