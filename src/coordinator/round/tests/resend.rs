//! Resends: a lost message costs a round the resend wait, not the request timeout.

use super::*;

#[test]
fn a_write_sends_its_version_again_to_the_voters_that_have_not_answered() {
    let mut round = WriteRound::new(write_plan(Level::All, Some(0)), 0, 5_000);
    round.on_minted(0, MintAnswer::Stored { flushing: true }, 1);
    assert_eq!(
        write_effects(&mut round),
        ["mint 0", "replicate 1", "replicate 2"]
    );
    // Nothing measured: the most it waits.
    let first_ms = 1 + limits::RESEND_MAX_MS;
    assert_eq!(round.next_wake_ms(), Some(first_ms));
    round.on_reply(1, true, 10);
    round.on_time(first_ms - 1);
    assert!(write_effects(&mut round).is_empty(), "not yet");
    round.on_time(first_ms);
    // Only the one that has not answered; never the minter (its flush is its answer).
    assert_eq!(write_effects(&mut round), ["replicate 2"]);
    assert_eq!(round.resends(), 1);
    // The wait doubles, and there are at most RESENDS_MAX.
    let second_ms = first_ms + 2 * limits::RESEND_MAX_MS;
    assert_eq!(round.next_wake_ms(), Some(second_ms));
    round.on_time(second_ms);
    assert_eq!(write_effects(&mut round), ["replicate 2"]);
    assert_eq!(round.resends(), limits::RESENDS_MAX);
    assert_eq!(
        round.next_wake_ms(),
        Some(5_000),
        "only the deadline is left"
    );
    round.on_reply(2, true, 3_000);
    round.on_reply(0, true, 3_001);
    assert_eq!(write_effects(&mut round), ["ok"]);
    assert_eq!(round.next_wake_ms(), None);
}

#[test]
fn a_write_resends_at_a_multiple_of_the_measured_p99_and_hints_again() {
    let plan = hinted_region_safe_plan();
    let measured = health(&[false; 3], &[None, Some(60), None]);
    let mut round = WriteRound::with_health(plan, &measured, 0, 2_000);
    round.on_minted(0, MintAnswer::Stored { flushing: false }, 0);
    let _ = write_effects(&mut round);
    let resend_ms = 60 * limits::RESEND_P99_FACTOR;
    assert!(resend_ms > limits::RESEND_FLOOR_MS && resend_ms < limits::RESEND_MAX_MS);
    assert_eq!(round.next_wake_ms(), Some(resend_ms));
    round.on_reply(1, true, 5);
    round.on_time(resend_ms);
    // The dead voter's fallback gets its hint again; the dead voter nothing.
    assert_eq!(write_effects(&mut round), ["hint 2"]);
    round.on_reply(2, true, resend_ms + 1);
    assert_eq!(write_effects(&mut round), ["ok"]);
}

#[test]
fn an_answered_write_resends_nothing() {
    let mut round = WriteRound::new(write_plan(Level::One, Some(0)), 0, 5_000);
    round.on_minted(0, MintAnswer::Stored { flushing: false }, 1);
    assert_eq!(
        write_effects(&mut round),
        ["mint 0", "replicate 1", "replicate 2", "ok"]
    );
    assert_eq!(round.next_wake_ms(), None);
    round.on_time(1 + limits::RESEND_MAX_MS);
    assert!(write_effects(&mut round).is_empty());
    assert_eq!(round.resends(), 0);
}

#[test]
fn a_read_asks_again_the_replicas_that_have_not_answered() {
    let mut round = ReadRound::new(read_plan(Level::All, Some(0)), 0, 5_000);
    assert_eq!(
        read_effects(&mut round),
        [
            "ask 1 Digest Digest",
            "ask 2 Digest Digest",
            "here 0 Get Digest"
        ]
    );
    round.on_reply(0, Phase::Digest, ReadAnswer::Object(Some(new())), 1);
    round.on_reply(
        1,
        Phase::Digest,
        ReadAnswer::Digest(Some(new().digest())),
        2,
    );
    // Every replica asked: the speculation asks nobody new; then the resends.
    round.on_time(limits::READ_SPECULATE_MS);
    assert!(read_effects(&mut round).is_empty());
    let first_ms = limits::READ_SPECULATE_MS + limits::RESEND_MAX_MS;
    assert_eq!(round.next_wake_ms(), Some(first_ms));
    round.on_time(first_ms);
    assert_eq!(read_effects(&mut round), ["ask 2 Digest Digest"]);
    let second_ms = first_ms + 2 * limits::RESEND_MAX_MS;
    assert_eq!(round.next_wake_ms(), Some(second_ms));
    round.on_time(second_ms);
    assert_eq!(read_effects(&mut round), ["ask 2 Digest Digest"]);
    assert_eq!(round.resends_total(), limits::RESENDS_MAX);
    assert_eq!(round.next_wake_ms(), Some(5_000));
    // The answer to any copy counts once.
    let digest = ReadAnswer::Digest(Some(new().digest()));
    round.on_reply(2, Phase::Digest, digest.clone(), second_ms + 1);
    assert_eq!(read_effects(&mut round), ["answer new"]);
    round.on_reply(2, Phase::Digest, digest, second_ms + 2);
    assert!(read_effects(&mut round).is_empty());
    assert!(round.is_done());
}

#[test]
fn a_read_asks_the_object_again_of_the_replica_that_owes_it() {
    let measured = health(&[false; 3], &[Some(5); 3]);
    let mut round = ReadRound::with_health(read_plan(Level::All, None), measured, 0, 5_000);
    assert_eq!(
        read_effects(&mut round),
        [
            "ask 0 Get Digest",
            "ask 1 Digest Digest",
            "ask 2 Digest Digest"
        ]
    );
    round.on_reply(
        1,
        Phase::Digest,
        ReadAnswer::Digest(Some(new().digest())),
        2,
    );
    let speculate_ms = 5;
    round.on_time(speculate_ms);
    let resend_ms = speculate_ms + limits::RESEND_FLOOR_MS;
    assert_eq!(round.next_wake_ms(), Some(resend_ms));
    round.on_time(resend_ms);
    assert_eq!(
        read_effects(&mut round),
        ["ask 0 Get Digest", "ask 2 Digest Digest"]
    );
}

#[test]
fn a_write_its_dead_voters_decide_fails_without_minting() {
    let mut plan = write_plan(Level::All, Some(0));
    plan.dead = vec![false, true, false];
    let mut round = WriteRound::new(plan, 0, 5_000);
    assert_eq!(
        write_effects(&mut round),
        ["err consistency all not reached: 0 of 3 replicas answered, 3 needed"]
    );
    assert!(round.is_answered());
}
