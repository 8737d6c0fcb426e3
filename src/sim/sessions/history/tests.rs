use super::*;

fn token(retire: Option<Retire>) -> TokenEntry {
    TokenEntry {
        user: 0,
        token: "t".into(),
        csrf: "c".into(),
        created_ack_us: 100,
        retire,
    }
}

fn op(kind: OpKind, start_us: u64, end_us: u64, outcome: Outcome) -> OpRecord {
    OpRecord {
        kind,
        region: 0,
        node: "127.0.0.1:1".parse().unwrap(),
        start_us,
        end_us,
        outcome,
        token: Some(0),
    }
}

const REVOKED: Outcome = Outcome::Refused {
    status: 401,
    code: Code::TokenRevoked,
};

#[test]
fn a_token_accepted_after_its_acknowledged_logout_is_flagged() {
    let logout = Retire {
        kind: RetireKind::Logout,
        started_us: 1_000,
        acked_us: Some(2_000),
    };
    let tokens = [token(Some(logout))];
    let ops = [
        op(OpKind::Read, 500, 900, Outcome::Ok(200)),
        // Concurrent with the logout: either answer is allowed.
        op(OpKind::Read, 1_500, 2_500, Outcome::Ok(200)),
        op(OpKind::RetiredRead, 2_100, 2_300, REVOKED),
        op(OpKind::RetiredRead, 3_000, 3_200, Outcome::Ok(200)),
    ];
    assert_eq!(retired_token_accepted(&ops, &tokens), vec![3]);
    assert!(retired_token_accepted(&ops[..3], &tokens).is_empty());
}

#[test]
fn an_unacknowledged_rotation_constrains_nothing() {
    let rotation = Retire {
        kind: RetireKind::Rotate,
        started_us: 1_000,
        acked_us: None,
    };
    let tokens = [token(Some(rotation))];
    let ops = [op(OpKind::RetiredRead, 5_000, 5_100, Outcome::Ok(200))];
    assert!(retired_token_accepted(&ops, &tokens).is_empty());
    // Nor is a refusal after a rotation started a live token refused.
    let ops = [op(OpKind::Read, 900, 1_200, REVOKED)];
    assert!(valid_token_rejected(&ops, &tokens).is_empty());
}

#[test]
fn a_live_token_refused_is_flagged_and_remote_failures_are_counted_apart() {
    let tokens = [token(None)];
    let ops = [
        op(OpKind::Read, 200, 300, Outcome::Ok(200)),
        op(OpKind::CartAdd, 400, 500, REVOKED),
        op(OpKind::RemoteRead, 150, 250, REVOKED),
        op(OpKind::RemoteRead, 150, 250, Outcome::Uncertain(Some(503))),
    ];
    assert_eq!(valid_token_rejected(&ops, &tokens), vec![1]);
    // Only the refusal: a 503 is the other region's availability, not a failed check.
    assert_eq!(cross_region_failures(&ops), vec![2]);
    assert!(!ops[3].met() && !ops[2].met() && ops[0].met());
}

#[test]
fn only_acknowledged_adds_never_possibly_removed_are_required() {
    let add = |sku: &str, acked, removal| CartAdd {
        user: 1,
        sku: sku.into(),
        acked,
        removal,
    };
    let adds = [
        add("a", true, Removal::None),
        add("b", true, Removal::Refused),
        add("c", true, Removal::Attempted),
        add("d", false, Removal::None),
    ];
    let required = required_skus(&adds);
    let expected: BTreeSet<String> = ["a", "b"].map(String::from).into();
    assert_eq!(required[&1], expected);
    let cart: BTreeSet<String> = ["a", "x"].map(String::from).into();
    assert_eq!(missing_skus(&required[&1], &cart), vec!["b"]);
}
