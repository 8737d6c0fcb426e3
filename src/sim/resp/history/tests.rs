use super::*;

fn set(version: u64, acked: bool) -> RegisterWrite {
    RegisterWrite {
        version: Some(version),
        acked,
        sends: 1,
    }
}

fn del(acked: bool) -> RegisterWrite {
    RegisterWrite {
        version: None,
        acked,
        sends: 1,
    }
}

/// A set acknowledged only on its second attempt: the first is in doubt.
fn retried(version: u64) -> RegisterWrite {
    RegisterWrite {
        sends: 2,
        ..set(version, true)
    }
}

/// Judges a string register (last writer wins).
fn judge_register(writes: &[RegisterWrite], observed: Option<u64>) -> Judgement {
    super::judge_register(writes, Merge::LastWriterWins, observed)
}

fn incr(amount: u64, sends: u32, acked: bool) -> CounterWrite {
    CounterWrite {
        amount,
        sends,
        acked,
    }
}

#[test]
fn a_register_holds_its_last_acknowledged_version_or_a_later_attempted_one() {
    let writes = [set(1, true), set(2, true), set(3, false), set(4, false)];
    assert_eq!(judge_register(&writes, Some(2)), Judgement::Allowed);
    assert_eq!(judge_register(&writes, Some(3)), Judgement::Allowed);
    assert_eq!(judge_register(&writes, Some(4)), Judgement::Allowed);
    // Older than the last acknowledged version: lost.
    assert_eq!(judge_register(&writes, Some(1)), Judgement::Lost);
    // No value at all, though a set was acknowledged and no delete attempted: lost.
    assert_eq!(judge_register(&writes, None), Judgement::Lost);
    // A value this workload never wrote: lost too.
    assert_eq!(judge_register(&writes, Some(0)), Judgement::Lost);
}

#[test]
fn an_attempted_write_before_the_last_acknowledged_one_is_not_allowed() {
    let writes = [set(1, false), set(2, true)];
    assert_eq!(judge_register(&writes, Some(1)), Judgement::Lost);
    assert_eq!(judge_register(&writes, Some(2)), Judgement::Allowed);
}

#[test]
fn a_value_back_after_an_acknowledged_delete_is_resurrected() {
    let writes = [set(1, true), set(2, false), del(true)];
    assert_eq!(judge_register(&writes, None), Judgement::Allowed);
    assert_eq!(judge_register(&writes, Some(2)), Judgement::Resurrected);
    assert_eq!(judge_register(&writes, Some(1)), Judgement::Resurrected);
    // A set attempted after the delete may have applied: its version is allowed.
    let later = [set(1, true), del(true), set(3, false)];
    assert_eq!(judge_register(&later, Some(3)), Judgement::Allowed);
    assert_eq!(judge_register(&later, Some(1)), Judgement::Resurrected);
    // A delete only attempted after an acknowledged set allows both states.
    let maybe = [set(1, true), del(false)];
    assert_eq!(judge_register(&maybe, None), Judgement::Allowed);
    assert_eq!(judge_register(&maybe, Some(1)), Judgement::Allowed);
}

#[test]
fn a_register_never_acknowledged_may_be_empty_or_hold_an_attempt() {
    let writes = [set(1, false), set(2, false)];
    assert_eq!(judge_register(&writes, None), Judgement::Allowed);
    assert_eq!(judge_register(&writes, Some(1)), Judgement::Allowed);
    assert_eq!(judge_register(&writes, Some(9)), Judgement::Lost);
    assert_eq!(judge_register(&[], None), Judgement::Allowed);
}

#[test]
fn a_counter_lies_between_its_acknowledged_and_its_sent_increments() {
    // 5 acknowledged; a 2 sent twice (retried) and never acknowledged; a 3 sent once
    // and acknowledged on its second attempt (so sent twice).
    let writes = [incr(5, 1, true), incr(2, 2, false), incr(3, 2, true)];
    assert_eq!(counter_bounds(&writes), (8, 5 + 4 + 6));
    assert!(counter_in_range(&writes, 8));
    assert!(counter_in_range(&writes, 15));
    assert!(
        !counter_in_range(&writes, 7),
        "an acknowledged increment lost"
    );
    assert!(!counter_in_range(&writes, 16), "more than was ever sent");
    // An increment never sent (no node reached) cannot raise the counter.
    assert_eq!(counter_bounds(&[incr(4, 0, false)]), (0, 0));
}

#[test]
fn reads_behind_the_clients_own_acknowledged_writes_are_counted() {
    let register = Register {
        writes: vec![set(1, true), set(2, true), del(true)],
        reads: vec![
            // After the first write: version 1 is right, nothing is behind.
            RegisterRead {
                after_writes: 1,
                observed: Some(1),
            },
            RegisterRead {
                after_writes: 1,
                observed: None,
            },
            // After the second: version 1 is an older one.
            RegisterRead {
                after_writes: 2,
                observed: Some(1),
            },
            // After the delete: a value back.
            RegisterRead {
                after_writes: 3,
                observed: Some(2),
            },
            RegisterRead {
                after_writes: 3,
                observed: None,
            },
        ],
        ..Register::default()
    };
    assert_eq!(register_reads_behind(&register), 3);
    let counter = Counter {
        writes: vec![incr(1, 1, true), incr(1, 1, true)],
        reads: vec![
            CounterRead {
                after_writes: 2,
                observed: 2,
            },
            CounterRead {
                after_writes: 2,
                observed: 1,
            },
            CounterRead {
                after_writes: 0,
                observed: 0,
            },
        ],
        ..Counter::default()
    };
    assert_eq!(counter_reads_behind(&counter), 1);
}

#[test]
fn versions_round_trip_and_foreign_values_match_no_write() {
    assert_eq!(version_of(value_of(42).as_bytes()), 42);
    assert_eq!(version_of(b"hello"), 0);
    assert_eq!(version_of(b"v"), 0);
}

#[test]
fn a_hash_field_in_doubt_may_survive_a_later_acknowledged_removal() {
    // HSET v1 acknowledged on its second attempt (the first node crashed mid-write),
    // then an acknowledged HDEL whose read missed the first attempt: add-wins keeps it.
    let writes = [retried(1), del(true)];
    let field = |observed| super::judge_register(&writes, Merge::AddWins, observed);
    assert_eq!(field(None), Judgement::Allowed);
    assert_eq!(field(Some(1)), Judgement::Allowed);
    // A string is last-writer-wins: the removal is later on the clock, so it stays.
    assert_eq!(judge_register(&writes, Some(1)), Judgement::Resurrected);
    // A field written once and answered has nothing in doubt: back after HDEL is a bug.
    let answered = [set(1, true), set(2, true), del(true)];
    let field = |observed| super::judge_register(&answered, Merge::AddWins, observed);
    assert_eq!(field(Some(2)), Judgement::Resurrected);
    assert_eq!(field(Some(1)), Judgement::Resurrected);
    // An unanswered set is in doubt too; but only a removal lets it back, never an
    // acknowledged set after it (that set is later on the clock, and wins the field).
    let unanswered = [set(1, false), set(2, true)];
    let field = |observed| super::judge_register(&unanswered, Merge::AddWins, observed);
    assert_eq!(field(Some(1)), Judgement::Lost);
    let then_removed = [set(1, false), set(2, true), del(true)];
    let field = |observed| super::judge_register(&then_removed, Merge::AddWins, observed);
    assert_eq!(field(Some(1)), Judgement::Allowed);
    assert_eq!(field(Some(2)), Judgement::Resurrected);
}

#[test]
fn a_write_is_in_doubt_when_an_attempt_went_unanswered() {
    assert!(!set(1, true).in_doubt());
    assert!(set(1, false).in_doubt());
    assert!(retried(1).in_doubt());
    let never_sent = RegisterWrite {
        sends: 0,
        ..set(1, false)
    };
    assert!(!never_sent.in_doubt());
}
