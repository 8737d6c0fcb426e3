use super::*;

fn family(byte: u8, at_ms: u64) -> UserAuthOp {
    UserAuthOp {
        revoke: Some(RevokedFamily {
            at_ms,
            family: [byte; 32],
        }),
        ..UserAuthOp::default()
    }
}

#[test]
fn not_before_refuses_tokens_created_at_or_before_it() {
    let mut record = UserAuth::default();
    record.apply(&UserAuthOp {
        not_before_ms: Some(1_000),
        ..UserAuthOp::default()
    });
    assert!(record.refuses(999, &[0; 32]));
    assert!(record.refuses(1_000, &[0; 32]));
    assert!(!record.refuses(1_001, &[0; 32]));
    // max-wins: an older logout-everywhere changes nothing.
    record.apply(&UserAuthOp {
        not_before_ms: Some(10),
        ..UserAuthOp::default()
    });
    assert!(record.refuses(1_000, &[0; 32]));
}

#[test]
fn a_dropped_family_raises_not_before_so_it_stays_refused() {
    let mut record = UserAuth::default();
    for index in 0..=REVOKED_FAMILIES_MAX as u64 {
        record.apply(&family((index % 250) as u8, 100 + index));
    }
    assert_eq!(record.revoked.len(), REVOKED_FAMILIES_MAX);
    // Family 0 (revoked at 100) was dropped: its tokens, created before, stay out.
    assert!(record.refuses(99, &[0; 32]));
    assert_eq!(record.not_before_ms, 100);
    assert!(record.refuses(10_000, &[1; 32]), "family 1 still listed");
    assert!(!record.refuses(10_000, &[0; 32]));
}

#[test]
fn audit_text_is_cut_and_the_list_bounded() {
    let mut record = UserAuth::default();
    for at_ms in 0..(AUDIT_ENTRIES_MAX as u64 + 10) {
        record.apply(&UserAuthOp {
            audit: Some(AuditEntry {
                at_ms,
                event: "token_reused".into(),
                device: "d".repeat(10_000),
                region: "east".into(),
            }),
            ..UserAuthOp::default()
        });
    }
    assert_eq!(record.audit.len(), AUDIT_ENTRIES_MAX);
    assert_eq!(record.audit[0].at_ms, AUDIT_ENTRIES_MAX as u64 + 9);
    assert_eq!(record.audit[0].device.len(), AUDIT_TEXT_CHARS_MAX);
}

#[test]
fn a_sweep_empties_the_record_and_a_later_logout_still_counts() {
    let mut record = UserAuth::default();
    record.apply(&family(1, 100));
    let deadline = record.deadline_ms();
    assert_eq!(deadline, 100 + SESSION_LIFETIME_MS_MAX);
    let tombstone = UserAuth::expired_at(deadline, deadline + 1);
    record.merge(&tombstone);
    assert!(record.is_tombstone());
    let later = deadline + 5;
    record.apply(&UserAuthOp {
        not_before_ms: Some(later),
        ..UserAuthOp::default()
    });
    assert!(record.refuses(later - 1, &[9; 32]));
    assert!(!record.is_tombstone());
}
