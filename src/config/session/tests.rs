use super::*;

fn topology(regions: usize) -> Topology {
    let mut text = String::from("[cluster]\nreplicas_per_region = 2\n");
    for region in 0..regions {
        text.push_str(&format!("[[regions]]\nname = \"r{region}\"\nnodes = 3\n"));
    }
    text.push_str("[latency.rtt_ms]\n");
    for from in 0..regions {
        for to in from + 1..regions {
            text.push_str(&format!("\"r{from}/r{to}\" = 20\n"));
        }
    }
    Topology::parse(&text).expect("test topology")
}

#[test]
fn defaults_follow_the_design() {
    let mut warnings = Vec::new();
    let settings =
        SessionSettings::new(&topology(3), &SessionFlags::default(), true, &mut warnings).unwrap();
    assert_eq!(settings.auth.write, Level::MajorityQuorum);
    assert_eq!(settings.auth_create, Level::RegionSafe);
    assert_eq!(settings.auth.read, Level::LocalQuorum);
    assert!(!settings.auth.policy.sloppy && settings.auth.policy.sync_repair);
    assert_eq!(settings.user.write, Level::RegionSafe);
    assert!(settings.user.policy.sloppy);
    assert_eq!(settings.idle, Duration::from_secs(30 * DAY_S));
    assert_eq!(settings.lifetime, Duration::from_secs(90 * DAY_S));
    assert_eq!(
        (settings.failures_burst, settings.failures_per_s),
        (
            limits::FAILED_VALIDATIONS_BURST,
            limits::FAILED_VALIDATIONS_PER_S
        )
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let single =
        SessionSettings::new(&topology(1), &SessionFlags::default(), true, &mut warnings).unwrap();
    assert_eq!(single.user.write, Level::Quorum);
    assert_eq!(single.auth_create, Level::Quorum);
}

#[test]
fn the_auth_write_shorthand_sets_both_levels_and_each_flag_wins_over_it() {
    let levels = |flags: SessionFlags| {
        let mut warnings = Vec::new();
        let settings = SessionSettings::new(&topology(3), &flags, true, &mut warnings).unwrap();
        (settings.auth_create, settings.auth.write, warnings.len())
    };
    let both = SessionFlags {
        auth_write: Some(Level::EachQuorum),
        ..SessionFlags::default()
    };
    assert_eq!(levels(both), (Level::EachQuorum, Level::EachQuorum, 0));
    let split = SessionFlags {
        auth_write: Some(Level::EachQuorum),
        auth_create_write: Some(Level::RegionSafe),
        ..SessionFlags::default()
    };
    assert_eq!(levels(split), (Level::RegionSafe, Level::EachQuorum, 0));
    // A login kept in one region warns; so does a revocation a local read may miss.
    let local_create = SessionFlags {
        auth_create_write: Some(Level::LocalQuorum),
        ..SessionFlags::default()
    };
    assert_eq!(levels(local_create).2, 1);
    let quorum_revoke = SessionFlags {
        auth_revoke_write: Some(Level::Quorum),
        ..SessionFlags::default()
    };
    assert_eq!(levels(quorum_revoke).2, 1);
}

#[test]
fn weak_auth_levels_warn_and_bad_values_are_refused() {
    let mut warnings = Vec::new();
    let flags = SessionFlags {
        auth_write: Some(Level::LocalQuorum),
        ..SessionFlags::default()
    };
    SessionSettings::new(&topology(3), &flags, true, &mut warnings).unwrap();
    // One for the revocations a validation may miss, one for logins kept in a region.
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let refused = [
        SessionFlags {
            auth_read: Some(Level::RegionSafe),
            ..SessionFlags::default()
        },
        SessionFlags {
            cart_lines_max: Some(501),
            ..SessionFlags::default()
        },
        SessionFlags {
            session_idle: Some(Duration::from_secs(100 * DAY_S)),
            ..SessionFlags::default()
        },
        SessionFlags {
            user_write: Some(Level::Count(7)),
            ..SessionFlags::default()
        },
        SessionFlags {
            failed_validations_burst: Some(0),
            ..SessionFlags::default()
        },
        SessionFlags {
            failed_validations_per_s: Some(0),
            ..SessionFlags::default()
        },
    ];
    for flags in refused {
        assert!(
            SessionSettings::new(&topology(3), &flags, true, &mut warnings).is_err(),
            "{flags:?}"
        );
    }
}
