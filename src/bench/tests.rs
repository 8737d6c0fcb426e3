use super::*;

#[test]
fn distributions_parse_and_zipf_prefers_low_ranks() {
    assert_eq!("uniform".parse(), Ok(KeyDistribution::Uniform));
    assert_eq!("zipf:0.99".parse(), Ok(KeyDistribution::Zipf(0.99)));
    assert!("zipf:-1".parse::<KeyDistribution>().is_err());
    assert!("gauss".parse::<KeyDistribution>().is_err());
    let config = BenchConfig {
        workload: Workload::Kv,
        read_ratio: 0.5,
        keys: 1000,
        value_bytes: 8,
        clients: 1,
        rate: None,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(1),
        distribution: KeyDistribution::Zipf(1.2),
        seed: 7,
    };
    let picker = KeyPicker::new(&config).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let picks: Vec<u64> = (0..10_000).map(|_| picker.pick(&mut rng)).collect();
    assert!(picks.iter().all(|key| *key < 1000));
    let hottest = picks.iter().filter(|key| **key == 0).count();
    assert!(hottest > 1000, "rank 1 drew {hottest} of 10000");
}

#[test]
fn bad_configs_are_refused() {
    let good = BenchConfig {
        workload: Workload::Kv,
        read_ratio: 0.5,
        keys: 10,
        value_bytes: 8,
        clients: 4,
        rate: Some(100.0),
        warmup: Duration::ZERO,
        duration: Duration::from_secs(1),
        distribution: KeyDistribution::Uniform,
        seed: 1,
    };
    assert!(good.check().is_ok());
    for bad in [
        BenchConfig {
            read_ratio: 1.5,
            ..good.clone()
        },
        BenchConfig {
            keys: 0,
            ..good.clone()
        },
        BenchConfig {
            clients: 0,
            ..good.clone()
        },
        BenchConfig {
            rate: Some(0.0),
            ..good.clone()
        },
        BenchConfig {
            value_bytes: 0,
            ..good.clone()
        },
        BenchConfig {
            workload: Workload::SessionRead,
            keys: BENCH_SESSIONS_MAX + 1,
            ..good.clone()
        },
        BenchConfig {
            workload: Workload::LoginStorm,
            value_bytes: SESSION_PAYLOAD_BYTES_MAX + 1,
            ..good.clone()
        },
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
    }
    // The session limits bind only the session workloads.
    let many_keys = BenchConfig {
        keys: BENCH_SESSIONS_MAX + 1,
        value_bytes: SESSION_PAYLOAD_BYTES_MAX + 1,
        ..good.clone()
    };
    assert!(many_keys.check().is_ok());
    let sessions = BenchConfig {
        workload: Workload::CartWrite,
        keys: BENCH_SESSIONS_MAX,
        value_bytes: SESSION_PAYLOAD_BYTES_MAX,
        ..good
    };
    assert!(sessions.check().is_ok());
}

#[test]
fn the_summary_has_the_documented_fields() {
    let mut recorder = Recorder::new(Workload::Kv);
    for micros in [1_000, 2_000, 3_000] {
        recorder.record(Op::Read, micros, true);
    }
    recorder.record(Op::Write, 10_000, true);
    recorder.record(Op::Write, 0, false);
    let summary = recorder.summary(Duration::from_secs(2));
    assert_eq!(summary["throughput_ops_s"], 2.0);
    assert_eq!(summary["errors"], 1);
    assert!(summary["latency_ms"]["p99"].as_f64().unwrap() >= 9.9);
    assert_eq!(summary["latency_ms"]["read"]["count"], 3);
    assert_eq!(summary["latency_ms"]["write"]["errors"], 1);
    assert!(summary["latency_ms"]["read"]["p999"].is_number());
    assert_eq!(summary["workload"], "kv");
    assert!(summary["latency_ms"].get("login").is_none());
}

#[test]
fn a_login_storm_summary_has_one_row_per_operation() {
    let mut recorder = Recorder::new(Workload::LoginStorm);
    recorder.record(Op::Login, 4_000, true);
    recorder.record(Op::Validate, 1_000, true);
    recorder.record(Op::Logout, 2_000, false);
    let summary = recorder.summary(Duration::from_secs(1));
    assert_eq!(summary["workload"], "login-storm");
    assert_eq!(summary["throughput_ops_s"], 2.0);
    assert_eq!(summary["errors"], 1);
    let latency = &summary["latency_ms"];
    assert_eq!(latency["login"]["count"], 1);
    assert!(latency["login"]["p50"].as_f64().unwrap() >= 3.9);
    assert_eq!(latency["validate"]["count"], 1);
    assert_eq!(latency["logout"]["errors"], 1);
    assert!(latency.get("read").is_none() && latency.get("write").is_none());
    let cart = Recorder::new(Workload::CartWrite).summary(Duration::from_secs(1));
    assert_eq!(cart["latency_ms"]["cart_add"]["count"], 0);
    assert_eq!(cart["latency_ms"]["read"]["count"], 0);
}
