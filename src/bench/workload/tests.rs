use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

#[test]
fn workloads_parse_by_name_and_refuse_others_listing_the_choices() {
    for workload in Workload::ALL {
        assert_eq!(workload.name().parse::<Workload>(), Ok(workload));
        assert_eq!(workload.to_string(), workload.name());
    }
    let error = "session".parse::<Workload>().unwrap_err();
    assert!(
        error.contains("kv, session-read, cart-write, login-storm"),
        "{error}"
    );
    assert!("".parse::<Workload>().is_err());
    assert!("KV".parse::<Workload>().is_err());
}

#[test]
fn op_indexes_match_their_place_and_names_are_distinct() {
    for (place, op) in Op::ALL.iter().enumerate() {
        assert_eq!(op.index(), place);
    }
    let mut names: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Op::COUNT);
}

/// Draws `draws` steps and returns the share of reads (kv or session).
fn read_share(workload: Workload, read_ratio: f64, seed: u64, draws: u32) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut reads = 0u32;
    for _ in 0..draws {
        match workload.pick(&mut rng, read_ratio) {
            Step::Read | Step::SessionRead => reads += 1,
            Step::CartAdd { sku } => assert!(sku < CART_SKUS),
            Step::Write => assert_eq!(workload, Workload::Kv),
            Step::LoginStorm => assert_eq!(workload, Workload::LoginStorm),
        }
    }
    f64::from(reads) / f64::from(draws)
}

#[test]
fn mixes_respect_their_ratios_over_many_draws() {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let draws = 100_000;
    // Five standard deviations of a binomial share at p = 0.5 over 100 000 draws.
    let tolerance = 5.0 * (0.25f64 / f64::from(draws)).sqrt();
    for (workload, read_ratio, expected) in [
        (Workload::Kv, 0.5, 0.5),
        (Workload::Kv, 0.95, 0.95),
        (Workload::Kv, 0.0, 0.0),
        (Workload::Kv, 1.0, 1.0),
        // read_ratio is ignored by the session workloads.
        (Workload::SessionRead, 0.0, SESSION_READ_SHARE),
        (Workload::CartWrite, 1.0, CART_WRITE_READ_SHARE),
        (Workload::LoginStorm, 0.5, 0.0),
    ] {
        let share = read_share(workload, read_ratio, seed, draws);
        assert!(
            (share - expected).abs() <= tolerance,
            "{workload} at read ratio {read_ratio}: {share} reads, expected {expected} \
             (seed {seed})"
        );
    }
}

#[test]
fn cart_adds_spread_over_every_sku() {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = vec![0u32; CART_SKUS as usize];
    for _ in 0..50_000 {
        if let Step::CartAdd { sku } = Workload::CartWrite.pick(&mut rng, 0.5) {
            seen[sku as usize] += 1;
        }
    }
    // About 390 each; none may be starved.
    assert!(
        seen.iter().all(|count| *count > 200),
        "{seen:?} (seed {seed})"
    );
}

#[test]
fn each_workload_records_the_ops_its_steps_make() {
    assert_eq!(Workload::Kv.ops(), &[Op::Read, Op::Write]);
    assert_eq!(Workload::SessionRead.ops(), &[Op::Read, Op::CartAdd]);
    assert_eq!(Workload::CartWrite.ops(), &[Op::Read, Op::CartAdd]);
    assert_eq!(
        Workload::LoginStorm.ops(),
        &[Op::Login, Op::Validate, Op::Logout]
    );
    assert!(Workload::SessionRead.needs_sessions());
    assert!(!Workload::LoginStorm.needs_sessions());
    assert!(!Workload::Kv.needs_sessions());
}
