//! The rounds' own tests: tables of inputs and the effects they must produce, and the
//! laws every run keeps (one answer at most; no acknowledgement before the level).

use super::*;
use crate::clock::{Actor, Hlc};
use crate::coordinator::quorum::Requirement;
use crate::ids::{NodeId, Region};
use crate::limits;
use crate::object::{Blob, Object};
use proptest::prelude::*;

fn region(name: &str) -> Region {
    Region(name.to_string())
}

/// `level` over `count` replicas in one region.
fn tracker(level: Level, count: usize) -> QuorumTracker {
    let regions = vec![region("a"); count];
    let requirement = Requirement::new(level, &regions, &region("a")).expect("level fits");
    QuorumTracker::new(requirement, regions)
}

fn write_plan(level: Level, here: Option<usize>) -> WritePlan {
    WritePlan {
        level,
        tracker: tracker(level, 3),
        replicas: 3,
        here,
        dead: vec![false; 3],
        fallbacks: Vec::new(),
    }
}

fn read_plan(level: Level, here: Option<usize>) -> ReadPlan {
    ReadPlan {
        level,
        tracker: tracker(level, 3),
        replicas: 3,
        here,
        dead: vec![false; 3],
        digests: vec![true; 3],
        sync_repair: false,
    }
}

fn old() -> Object {
    crate::object::sample_kv(b"old")
}

/// A version that supersedes `old()`.
fn new() -> Object {
    let Object::Kv(mut kv) = old() else {
        unreachable!("sample_kv makes a kv object")
    };
    let context = kv.context().clone();
    let actor = Actor::of_incarnation(&NodeId("a-2".into()), 0);
    let at = Hlc {
        wall_ms: 9,
        logical: 0,
    };
    kv.mint(actor, &context, Some(Blob(b"new".to_vec())), at, 8)
        .expect("mints");
    Object::Kv(kv)
}

fn write_effects(round: &mut WriteRound) -> Vec<String> {
    std::iter::from_fn(|| round.poll_effect())
        .map(|effect| match effect {
            WriteEffect::Mint { index } => format!("mint {index}"),
            WriteEffect::Replicate { index } => format!("replicate {index}"),
            WriteEffect::Hint { index } => format!("hint {index}"),
            WriteEffect::Answer(Ok(())) => "ok".to_string(),
            WriteEffect::Answer(Err(error)) => format!("err {error}"),
        })
        .collect()
}

fn read_effects(round: &mut ReadRound) -> Vec<String> {
    std::iter::from_fn(|| round.poll_effect())
        .map(|effect| match effect {
            ReadEffect::Ask { index, ask, phase } => format!("ask {index} {ask:?} {phase:?}"),
            ReadEffect::ReadHere { index, ask, phase } => {
                format!("here {index} {ask:?} {phase:?}")
            }
            ReadEffect::Repair {
                index,
                object,
                wait,
            } => {
                let which = if object == new() { "new" } else { "other" };
                format!("repair {index} {which} wait={wait}")
            }
            ReadEffect::Answer(Ok(None)) => "answer none".to_string(),
            ReadEffect::Answer(Ok(Some(object))) => {
                let which = if object == new() { "new" } else { "old" };
                format!("answer {which}")
            }
            ReadEffect::Answer(Err(error)) => format!("err {error}"),
        })
        .collect()
}

#[test]
fn a_version_minted_here_counts_once_flushed_and_travels_meanwhile() {
    let mut round = WriteRound::new(write_plan(Level::Quorum, Some(1)), 0, 300);
    assert_eq!(write_effects(&mut round), ["mint 1"]);
    round.on_minted(1, MintAnswer::Stored { flushing: true }, 1);
    assert_eq!(write_effects(&mut round), ["replicate 0", "replicate 2"]);
    round.on_reply(0, true, 2);
    assert!(
        write_effects(&mut round).is_empty(),
        "one durable copy is not a quorum"
    );
    round.on_reply(1, true, 3);
    assert_eq!(write_effects(&mut round), ["ok"]);
    round.on_reply(2, true, 4);
    assert!(write_effects(&mut round).is_empty(), "answered once");
}

#[test]
fn a_failed_mint_asks_the_next_replica_and_a_refusal_ends_the_write() {
    let mut round = WriteRound::new(write_plan(Level::Quorum, None), 0, 300);
    assert_eq!(write_effects(&mut round), ["mint 0"]);
    round.on_minted(2, MintAnswer::Stored { flushing: false }, 1);
    assert!(write_effects(&mut round).is_empty(), "not the one asked");
    round.on_minted(0, MintAnswer::Failed, 1);
    assert_eq!(write_effects(&mut round), ["mint 1"]);
    let refusal = crate::wire::Refusal::Limit;
    let message = "too many lines".to_string();
    round.on_minted(1, MintAnswer::Refused { refusal, message }, 2);
    assert_eq!(write_effects(&mut round), ["err too many lines"]);
}

#[test]
fn an_unknown_mint_outcome_ends_the_write_without_asking_another_replica() {
    // The first minter's answer was lost after it may have applied a counter
    // increment: a second minter would count it twice.
    let mut round = WriteRound::new(write_plan(Level::Quorum, None), 0, 300);
    assert_eq!(write_effects(&mut round), ["mint 0"]);
    round.on_minted(0, MintAnswer::Unknown, 40);
    let effects = write_effects(&mut round);
    assert_eq!(effects.len(), 1, "{effects:?}");
    assert!(effects[0].contains("timed out"), "{effects:?}");
    assert!(round.is_answered());
}

#[test]
fn a_late_minter_hands_over_to_the_next_and_still_counts_when_it_stores() {
    // All three must store: the late first minter is not counted as failed.
    let mut round = WriteRound::new(write_plan(Level::All, None), 0, 2000);
    assert_eq!(write_effects(&mut round), ["mint 0"]);
    assert!(round.mint_alternative_left());
    round.on_minted(0, MintAnswer::Late, 30);
    assert_eq!(write_effects(&mut round), ["mint 1"]);
    round.on_minted(1, MintAnswer::Stored { flushing: false }, 35);
    assert_eq!(write_effects(&mut round), ["replicate 0", "replicate 2"]);
    round.on_reply(2, true, 36);
    assert!(
        write_effects(&mut round).is_empty(),
        "the late one has not stored yet"
    );
    round.on_reply(0, true, 40);
    assert_eq!(write_effects(&mut round), ["ok"]);
}

#[test]
fn the_last_minter_late_ends_the_write_as_at_its_deadline() {
    let mut round = WriteRound::new(write_plan(Level::Quorum, None), 0, 2000);
    assert_eq!(write_effects(&mut round), ["mint 0"]);
    round.on_minted(0, MintAnswer::Late, 30);
    round.on_minted(1, MintAnswer::Late, 60);
    assert_eq!(write_effects(&mut round), ["mint 1", "mint 2"]);
    assert!(!round.mint_alternative_left(), "three attempts at most");
    round.on_minted(2, MintAnswer::Late, 90);
    let effects = write_effects(&mut round);
    assert_eq!(effects.len(), 1, "{effects:?}");
    assert!(effects[0].contains("timed out"), "{effects:?}");
}

#[test]
fn a_write_times_out_at_its_deadline_saying_who_answered() {
    let mut round = WriteRound::new(write_plan(Level::All, None), 10, 300);
    round.on_minted(0, MintAnswer::Stored { flushing: false }, 11);
    let _ = write_effects(&mut round);
    round.on_reply(1, true, 12);
    assert_eq!(round.next_wake_ms(), Some(310));
    round.on_time(309);
    assert!(write_effects(&mut round).is_empty());
    round.on_time(310);
    assert_eq!(
        write_effects(&mut round),
        ["err consistency all timed out after 300 ms: 2 of 3 replicas answered, 2 acknowledged, 3 needed"]
    );
    assert_eq!(round.next_wake_ms(), None);
}

/// `region_safe` over two replicas in region a (this node the first) and one in b,
/// which is dead and hinted to a fallback in region c.
fn hinted_region_safe_plan() -> WritePlan {
    let regions = vec![region("a"), region("a"), region("b")];
    let requirement = Requirement::new(Level::RegionSafe, &regions, &region("a")).unwrap();
    WritePlan {
        level: Level::RegionSafe,
        tracker: QuorumTracker::new(requirement, regions),
        replicas: 3,
        here: Some(0),
        dead: vec![false, false, true],
        fallbacks: vec![(2, region("c"))],
    }
}

#[test]
fn a_dead_voter_with_a_fallback_gets_a_hint_that_counts_in_the_fallbacks_region() {
    let plan = hinted_region_safe_plan();
    let mut round = WriteRound::new(plan, 0, 300);
    round.on_minted(0, MintAnswer::Stored { flushing: false }, 1);
    assert_eq!(
        write_effects(&mut round),
        ["mint 0", "replicate 1", "hint 2"]
    );
    round.on_reply(1, true, 2);
    assert!(
        write_effects(&mut round).is_empty(),
        "nothing outside a yet"
    );
    round.on_reply(2, true, 3);
    assert_eq!(write_effects(&mut round), ["ok"]);
}

#[test]
fn the_planted_bug_acknowledges_before_any_replica_stored() {
    let mut round = WriteRound::new(write_plan(Level::All, None), 0, 300);
    round.plant_ack_before_store();
    round.on_minted(0, MintAnswer::Stored { flushing: false }, 1);
    assert_eq!(
        write_effects(&mut round),
        ["mint 0", "replicate 1", "replicate 2", "ok"]
    );
}

#[test]
fn a_read_asks_only_what_its_level_needs_this_node_last_and_in_place() {
    let mut round = ReadRound::new(read_plan(Level::Quorum, Some(1)), 0, 300);
    assert_eq!(
        read_effects(&mut round),
        ["ask 0 Digest Digest", "here 1 Get Digest"]
    );
    round.on_reply(1, Phase::Digest, ReadAnswer::Object(Some(new())), 0);
    round.on_reply(
        0,
        Phase::Digest,
        ReadAnswer::Digest(Some(new().digest())),
        1,
    );
    assert_eq!(read_effects(&mut round), ["answer new"]);
    assert!(round.is_done(), "every request answered: nothing to repair");
}

#[test]
fn a_read_speculates_after_its_delay_and_a_differing_digest_reads_in_full() {
    let mut round = ReadRound::new(read_plan(Level::Quorum, None), 0, 300);
    assert_eq!(
        read_effects(&mut round),
        ["ask 0 Get Digest", "ask 1 Digest Digest"]
    );
    assert_eq!(round.next_wake_ms(), Some(limits::READ_SPECULATE_MS));
    round.on_time(limits::READ_SPECULATE_MS);
    assert_eq!(read_effects(&mut round), ["ask 2 Digest Digest"]);
    round.on_reply(0, Phase::Digest, ReadAnswer::Object(Some(new())), 60);
    round.on_reply(
        2,
        Phase::Digest,
        ReadAnswer::Digest(Some(old().digest())),
        61,
    );
    assert!(round.digest_mismatched());
    assert_eq!(
        read_effects(&mut round),
        ["ask 0 Get Full", "ask 1 Get Full"]
    );
    round.on_reply(1, Phase::Digest, ReadAnswer::Digest(None), 62);
    assert!(
        read_effects(&mut round).is_empty(),
        "the digest phase is over"
    );
    round.on_reply(0, Phase::Full, ReadAnswer::Object(Some(new())), 63);
    round.on_reply(1, Phase::Full, ReadAnswer::Object(Some(old())), 64);
    assert_eq!(
        read_effects(&mut round),
        ["answer new", "repair 1 new wait=false"]
    );
    assert!(round.is_done());
}

#[test]
fn the_object_missing_at_the_speculation_delay_with_the_level_met_reads_in_full() {
    let mut round = ReadRound::new(read_plan(Level::One, None), 0, 300);
    assert_eq!(read_effects(&mut round), ["ask 0 Get Digest"]);
    round.on_reply(
        0,
        Phase::Digest,
        ReadAnswer::Failed {
            refuses_digests: false,
        },
        5,
    );
    assert_eq!(read_effects(&mut round), ["ask 1 Digest Digest"]);
    round.on_reply(1, Phase::Digest, ReadAnswer::Digest(None), 6);
    assert_eq!(read_effects(&mut round), ["ask 0 Get Full"]);
    assert!(round.read_in_full());
}

#[test]
fn a_refused_digest_reads_in_full_when_the_level_needs_it() {
    let mut round = ReadRound::new(read_plan(Level::All, None), 0, 300);
    let _ = read_effects(&mut round);
    round.on_reply(
        1,
        Phase::Digest,
        ReadAnswer::Failed {
            refuses_digests: true,
        },
        5,
    );
    assert_eq!(
        read_effects(&mut round),
        ["ask 0 Get Full", "ask 1 Get Full", "ask 2 Get Full"]
    );
}

#[test]
fn a_late_digest_that_differs_is_fetched_and_repaired() {
    let mut round = ReadRound::new(read_plan(Level::One, Some(0)), 0, 300);
    assert_eq!(read_effects(&mut round), ["here 0 Get Digest"]);
    round.on_time(limits::READ_SPECULATE_MS);
    assert_eq!(
        read_effects(&mut round),
        ["ask 1 Digest Digest", "ask 2 Digest Digest"]
    );
    round.on_reply(0, Phase::Digest, ReadAnswer::Object(Some(new())), 51);
    assert_eq!(read_effects(&mut round), ["answer new"]);
    round.on_reply(
        1,
        Phase::Digest,
        ReadAnswer::Digest(Some(new().digest())),
        52,
    );
    round.on_reply(
        2,
        Phase::Digest,
        ReadAnswer::Digest(Some(old().digest())),
        53,
    );
    assert_eq!(read_effects(&mut round), ["ask 2 Get Refetch"]);
    round.on_reply(2, Phase::Refetch, ReadAnswer::Object(Some(old())), 54);
    assert_eq!(read_effects(&mut round), ["repair 2 new wait=false"]);
    assert!(round.is_done());
}

#[test]
fn sync_repair_answers_after_the_stale_replicas_stored() {
    let plan = ReadPlan {
        sync_repair: true,
        ..read_plan(Level::Quorum, None)
    };
    let mut round = ReadRound::new(plan, 0, 300);
    round.on_reply(0, Phase::Digest, ReadAnswer::Object(Some(new())), 1);
    round.on_reply(1, Phase::Digest, ReadAnswer::Digest(None), 1);
    let _ = read_effects(&mut round);
    round.on_reply(0, Phase::Full, ReadAnswer::Object(Some(new())), 2);
    round.on_reply(1, Phase::Full, ReadAnswer::Object(None), 3);
    assert_eq!(read_effects(&mut round), ["repair 1 new wait=true"]);
    round.on_repaired(1, true, 4);
    assert_eq!(read_effects(&mut round), ["answer new"]);
    assert!(round.is_done(), "the repaired replica holds the merge");
}

#[test]
fn a_read_that_cannot_meet_its_level_fails_without_waiting() {
    let plan = ReadPlan {
        dead: vec![true, true, false],
        ..read_plan(Level::Quorum, None)
    };
    let mut round = ReadRound::new(plan, 0, 300);
    // The one live replica is asked (as the node always has), but nothing is awaited.
    assert_eq!(
        read_effects(&mut round),
        [
            "ask 2 Get Digest",
            "err consistency quorum not reached: 0 of 3 replicas answered, 2 needed"
        ]
    );
}

/// `level` over replicas in `regions` (the first is the local one).
fn tracker_in(level: Level, regions: &[&str]) -> QuorumTracker {
    let regions: Vec<Region> = regions.iter().map(|name| region(name)).collect();
    let requirement = Requirement::new(level, &regions, &regions[0]).expect("level fits");
    QuorumTracker::new(requirement, regions)
}

fn health(suspect: &[bool], p99_ms: &[Option<u64>]) -> Health {
    Health {
        suspect: suspect.to_vec(),
        p99_ms: p99_ms.to_vec(),
    }
}

#[test]
fn a_read_speculates_at_the_slowest_p99_of_the_replicas_it_asked() {
    let cases: [(&[Option<u64>], u64); 6] = [
        // The slowest of those asked (0 and 1), not the third.
        (&[Some(4), Some(7), Some(40)], 7),
        // Never below the floor.
        (
            &[Some(1), Some(1), Some(1)],
            limits::READ_SPECULATE_FLOOR_MS,
        ),
        // One not measured yet: as the slowest healthy replica measured.
        (&[Some(4), None, Some(6)], 6),
        (&[None, None, Some(6)], 6),
        // None healthy measured: the ceiling, as before anything was measured.
        (&[None, None, Some(400)], limits::READ_SPECULATE_MS),
        // A slow replica is asked last; the two healthy ones set the delay.
        (&[Some(300), Some(9), Some(12)], 12),
    ];
    for (p99_ms, delay_ms) in cases {
        let plan = read_plan(Level::Quorum, None);
        let health = health(&[false; 3], p99_ms);
        let mut round = ReadRound::with_health(plan, health, 100, 300);
        let asked = read_effects(&mut round);
        assert_eq!(asked.len(), 2, "{p99_ms:?}: {asked:?}");
        assert_eq!(round.next_wake_ms(), Some(100 + delay_ms), "{p99_ms:?}");
        assert!(!round.speculation_due(100 + delay_ms - 1));
        assert!(round.speculation_due(100 + delay_ms));
        round.on_time(100 + delay_ms);
        assert_eq!(read_effects(&mut round).len(), 1, "{p99_ms:?}");
        assert!(round.speculated());
    }
}

#[test]
fn this_nodes_own_copy_costs_no_wait_and_unmeasured_plans_keep_the_ceiling() {
    let plan = read_plan(Level::One, Some(0));
    let measured = health(&[false; 3], &[None, Some(20), Some(20)]);
    let mut round = ReadRound::with_health(plan.clone(), measured, 0, 300);
    assert_eq!(read_effects(&mut round), ["here 0 Get Digest"]);
    assert_eq!(round.next_wake_ms(), Some(limits::READ_SPECULATE_FLOOR_MS));
    let mut round = ReadRound::new(plan, 0, 300);
    let _ = read_effects(&mut round);
    assert_eq!(round.next_wake_ms(), Some(limits::READ_SPECULATE_MS));
}

#[test]
fn suspects_are_asked_only_when_the_level_needs_them() {
    let cases: [(Level, &[bool], &[&str]); 4] = [
        // Two of three without the suspect: it is skipped.
        (
            Level::Quorum,
            &[true, false, false],
            &["ask 1 Get Digest", "ask 2 Digest Digest"],
        ),
        (Level::One, &[true, true, false], &["ask 2 Get Digest"]),
        // Every replica needed: the suspect too, last.
        (
            Level::All,
            &[true, false, false],
            &[
                "ask 1 Get Digest",
                "ask 2 Digest Digest",
                "ask 0 Digest Digest",
            ],
        ),
        (
            Level::Quorum,
            &[false; 3],
            &["ask 0 Get Digest", "ask 1 Digest Digest"],
        ),
    ];
    for (level, suspect, asked) in cases {
        let health = health(suspect, &[Some(2); 3]);
        let mut round = ReadRound::with_health(read_plan(level, None), health, 0, 300);
        assert_eq!(read_effects(&mut round), asked, "{level:?} {suspect:?}");
    }
}

#[test]
fn a_slow_replica_is_asked_last_within_its_region() {
    // Local region a (0, 1, 2), then b (3, 4, 5); 0 is slow, 4 suspected.
    let tracker = tracker_in(Level::LocalQuorum, &["a", "a", "a", "b", "b", "b"]);
    let health = health(
        &[false, false, false, false, true, false],
        &[Some(200), Some(2), Some(60), Some(70), Some(70), Some(90)],
    );
    let order = preferred_order(&tracker, None, &[false; 6], &health);
    assert_eq!(order, [1, 2, 0, 3, 5, 4]);
    // This node first, even when it is the slow one (its copy is read in place).
    let order = preferred_order(&tracker, Some(0), &[false; 6], &health);
    assert_eq!(order, [0, 1, 2, 3, 5, 4]);
    // Dead replicas are not in the order at all.
    let dead = [false, true, false, false, false, false];
    let order = preferred_order(&tracker, None, &dead, &health);
    assert_eq!(order, [2, 0, 3, 5, 4]);
}

#[test]
fn a_refused_speculation_waits_for_the_replicas_asked() {
    let health = health(&[false; 3], &[Some(5); 3]);
    let mut round = ReadRound::with_health(read_plan(Level::Quorum, None), health, 0, 300);
    let _ = read_effects(&mut round);
    assert!(round.speculation_due(5));
    round.forgo_speculation();
    assert!(!round.speculation_due(5));
    // The next wake is the resend of what it asked, not a speculation.
    let resend_ms = 5 + limits::RESEND_FLOOR_MS;
    assert_eq!(round.next_wake_ms(), Some(resend_ms));
    round.on_time(5);
    assert!(read_effects(&mut round).is_empty());
    round.on_reply(0, Phase::Digest, ReadAnswer::Object(Some(new())), 250);
    round.on_reply(
        1,
        Phase::Digest,
        ReadAnswer::Digest(Some(new().digest())),
        260,
    );
    assert_eq!(read_effects(&mut round), ["answer new"]);
    assert!(!round.speculated());
}

#[test]
fn a_level_met_after_the_speculation_without_the_object_reads_in_full_at_once() {
    // The object's reply is lost (a lossy network); the digests meet the level after
    // the speculation asked everyone: read in full then, not time out with the level met.
    let health = health(&[false; 3], &[Some(5); 3]);
    let mut round = ReadRound::with_health(read_plan(Level::Quorum, None), health, 0, 300);
    assert_eq!(
        read_effects(&mut round),
        ["ask 0 Get Digest", "ask 1 Digest Digest"]
    );
    assert!(round.speculation_due(5));
    round.on_time(5);
    assert_eq!(read_effects(&mut round), ["ask 2 Digest Digest"]);
    assert_eq!(round.next_wake_ms(), Some(5 + limits::RESEND_FLOOR_MS));
    round.on_reply(
        1,
        Phase::Digest,
        ReadAnswer::Digest(Some(new().digest())),
        6,
    );
    round.on_reply(
        2,
        Phase::Digest,
        ReadAnswer::Digest(Some(new().digest())),
        7,
    );
    let full = read_effects(&mut round);
    assert_eq!(full, ["ask 0 Get Full", "ask 1 Get Full"]);
    assert!(round.read_in_full());
    round.on_reply(1, Phase::Full, ReadAnswer::Object(Some(new())), 9);
    round.on_reply(
        0,
        Phase::Full,
        ReadAnswer::Failed {
            refuses_digests: false,
        },
        10,
    );
    assert_eq!(read_effects(&mut round), ["ask 2 Get Full"]);
    round.on_reply(2, Phase::Full, ReadAnswer::Object(Some(new())), 11);
    assert_eq!(read_effects(&mut round), ["answer new"]);
}

#[test]
fn a_write_mints_on_a_healthy_replica_and_answers_without_the_slow_one() {
    // This node is no replica; the nearest (0) is slow: 1 mints.
    let slow = health(&[false; 3], &[Some(200), Some(2), Some(2)]);
    let plan = write_plan(Level::Quorum, None);
    let mut round = WriteRound::with_health(plan, &slow, 0, 300);
    assert_eq!(write_effects(&mut round), ["mint 1"]);
    round.on_minted(1, MintAnswer::Stored { flushing: false }, 3);
    assert_eq!(write_effects(&mut round), ["replicate 0", "replicate 2"]);
    // Two of three stored: answered, the slow one's acknowledgement not waited for.
    round.on_reply(2, true, 5);
    assert_eq!(write_effects(&mut round), ["ok"]);
    // A suspect mints last too.
    let suspected = health(&[true, false, false], &[]);
    let mut round = WriteRound::with_health(write_plan(Level::One, None), &suspected, 0, 300);
    assert_eq!(write_effects(&mut round), ["mint 1"]);
}

/// One input to a round: which replica, whether it answered well, when.
fn step() -> impl Strategy<Value = (usize, u8, u64)> {
    (0usize..4, 0u8..4, 0u64..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A write answers at most once, and never `Ok` before the level is met.
    #[test]
    fn a_write_answers_once_and_only_when_its_level_is_met(
        level in prop_oneof![Just(Level::One), Just(Level::Quorum), Just(Level::All)],
        steps in proptest::collection::vec(step(), 0..24),
    ) {
        let mut round = WriteRound::new(write_plan(level, Some(0)), 0, 300);
        let mut answers = 0;
        let mut now_ms = 0;
        for (index, kind, advance_ms) in steps {
            now_ms += advance_ms;
            match kind {
                0 => round.on_minted(index, MintAnswer::Stored { flushing: index == 0 }, now_ms),
                1 => round.on_minted(index, MintAnswer::Failed, now_ms),
                2 => round.on_reply(index, now_ms % 3 != 0, now_ms),
                _ => round.on_time(now_ms),
            }
            while let Some(effect) = round.poll_effect() {
                if let WriteEffect::Answer(answer) = effect {
                    answers += 1;
                    if answer.is_ok() {
                        prop_assert_eq!(round.tracker().progress(), Progress::Met);
                    }
                }
            }
        }
        prop_assert!(answers <= 1, "{} answers", answers);
    }

    /// The speculation delay stays between the floor and the ceiling, and the order asks
    /// every live voter once, suspects after the others of their region.
    #[test]
    fn the_delay_is_clamped_and_the_order_a_permutation_of_the_live(
        p99_ms in proptest::collection::vec(proptest::option::of(0u64..2_000), 6),
        suspect in proptest::collection::vec(any::<bool>(), 6),
        dead in proptest::collection::vec(any::<bool>(), 6),
        asked in proptest::collection::vec(any::<bool>(), 6),
        here in proptest::option::of(0usize..6),
    ) {
        let health = Health { suspect: suspect.clone(), p99_ms };
        let delay_ms = speculate_after_ms(&asked, here, &health);
        prop_assert!((limits::READ_SPECULATE_FLOOR_MS..=limits::READ_SPECULATE_MS).contains(&delay_ms));
        let tracker = tracker_in(Level::LocalQuorum, &["a", "a", "a", "b", "b", "b"]);
        let order = preferred_order(&tracker, here, &dead, &health);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        // This node is never dead to itself.
        let live: Vec<usize> = (0..6).filter(|index| !dead[*index] || here == Some(*index)).collect();
        prop_assert_eq!(sorted, live);
        for pair in order.windows(2) {
            let same_region = (pair[0] < 3) == (pair[1] < 3);
            let not_here = here != Some(pair[0]);
            prop_assert!(!(same_region && not_here && suspect[pair[0]] && !suspect[pair[1]]), "{:?}", order);
        }
    }

    /// A read answers at most once, whatever its replies and the time do.
    #[test]
    fn a_read_answers_at_most_once(
        level in prop_oneof![Just(Level::One), Just(Level::Quorum), Just(Level::All)],
        sync_repair in any::<bool>(),
        steps in proptest::collection::vec(step(), 0..32),
    ) {
        let plan = ReadPlan { sync_repair, ..read_plan(level, Some(0)) };
        let mut round = ReadRound::new(plan, 0, 300);
        let mut answers = 0;
        let mut now_ms = 0;
        for (index, kind, advance_ms) in steps {
            now_ms += advance_ms;
            let phase = [Phase::Digest, Phase::Full, Phase::Refetch][index % 3];
            match kind {
                0 => round.on_reply(index, phase, ReadAnswer::Object(Some(new())), now_ms),
                1 => round.on_reply(index, phase, ReadAnswer::Digest(Some(old().digest())), now_ms),
                2 => round.on_repaired(index, true, now_ms),
                _ => round.on_time(now_ms),
            }
            while let Some(effect) = round.poll_effect() {
                answers += usize::from(matches!(effect, ReadEffect::Answer(_)));
            }
        }
        prop_assert!(answers <= 1, "{} answers", answers);
        if round.is_done() {
            prop_assert_eq!(answers, 1);
        }
    }
}

mod resend;
