use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn region(name: &str) -> Region {
    Region::new(name).unwrap()
}

fn model(jitter_ms: f64) -> WanModel {
    let mut rtt_ms = BTreeMap::new();
    rtt_ms.insert((region("us-east"), region("eu-west")), 80.0);
    WanModel {
        rtt_ms,
        intra_region_rtt_ms: 0.5,
        jitter_ms,
    }
}

#[test]
fn delay_is_half_the_rtt_in_both_orders() {
    let mut rng = StdRng::seed_from_u64(7);
    let wan = model(0.0);
    let east = region("us-east");
    let west = region("eu-west");
    let expected = Duration::from_millis(40);
    assert_eq!(wan.one_way_delay(&east, &west, &mut rng), Ok(expected));
    assert_eq!(wan.one_way_delay(&west, &east, &mut rng), Ok(expected));
    assert_eq!(
        wan.one_way_delay(&east, &east, &mut rng),
        Ok(Duration::from_micros(250))
    );
}

#[test]
fn jitter_stays_within_half_the_jitter() {
    let mut rng = StdRng::seed_from_u64(11);
    let wan = model(10.0);
    let (east, west) = (region("us-east"), region("eu-west"));
    let mut distinct = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let delay = wan.one_way_delay(&east, &west, &mut rng).unwrap();
        assert!(delay >= Duration::from_millis(40), "{delay:?}");
        assert!(delay <= Duration::from_millis(45), "{delay:?}");
        distinct.insert(delay);
    }
    assert!(distinct.len() > 100, "jitter should vary the delay");
}

#[test]
fn missing_pair_is_an_error_unless_emulation_is_disabled() {
    let mut rng = StdRng::seed_from_u64(1);
    let wan = model(0.0);
    let error = wan
        .one_way_delay(&region("us-east"), &region("us-west"), &mut rng)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "WAN model has no round-trip time between regions us-east and us-west"
    );
    let disabled = WanModel::disabled();
    assert_eq!(
        disabled.one_way_delay(&region("us-east"), &region("us-west"), &mut rng),
        Ok(Duration::ZERO)
    );
}

#[test]
fn validate_checks_values_and_completeness() {
    let regions = [region("us-east"), region("eu-west")];
    assert_eq!(model(1.0).validate(&regions), Ok(()));
    let three = [region("us-east"), region("eu-west"), region("us-west")];
    assert!(matches!(
        model(1.0).validate(&three),
        Err(WanError::MissingRtt { .. })
    ));
    let mut broken = model(1.0);
    broken.jitter_ms = f64::NAN;
    assert!(matches!(
        broken.validate(&regions),
        Err(WanError::InvalidValue { .. })
    ));
    broken.jitter_ms = -1.0;
    let mut rng = StdRng::seed_from_u64(3);
    // An unvalidated bad model must still not panic.
    assert!(broken
        .one_way_delay(&regions[0], &regions[1], &mut rng)
        .is_ok());
}
