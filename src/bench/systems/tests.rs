use super::*;

#[test]
fn targets_parse_and_refuse_what_is_not_loopback() {
    assert_eq!(
        "redis://127.0.0.1:6379".parse::<TargetSpec>(),
        Ok(TargetSpec::Redis {
            url: "redis://127.0.0.1:6379/".into()
        })
    );
    assert!("redis://10.0.0.1:6379".parse::<TargetSpec>().is_err());
    assert!("redis://localhost".parse::<TargetSpec>().is_err());
    assert!("postgres://x".parse::<TargetSpec>().is_err());
    assert!(matches!(
        "cartwheel".parse::<TargetSpec>(),
        Ok(TargetSpec::Cartwheel { .. })
    ));
}

#[test]
fn etcd_specs_list_loopback_endpoints() {
    let one: SocketAddr = "127.0.0.1:2379".parse().unwrap();
    let two: SocketAddr = "127.0.0.1:22379".parse().unwrap();
    assert_eq!(
        "etcd://127.0.0.1:2379".parse::<TargetSpec>(),
        Ok(TargetSpec::Etcd {
            endpoints: vec![one]
        })
    );
    let both = "etcd://127.0.0.1:2379, 127.0.0.1:22379/".parse::<TargetSpec>();
    assert_eq!(
        both,
        Ok(TargetSpec::Etcd {
            endpoints: vec![one, two]
        })
    );
    assert_eq!(
        both.unwrap().describe(Path::new("ignored")),
        "etcd://127.0.0.1:2379,127.0.0.1:22379"
    );
    assert!("etcd://[::1]:2379".parse::<TargetSpec>().is_ok());
}

#[test]
fn bad_etcd_specs_say_what_is_wrong() {
    for (spec, says) in [
        ("etcd://", "expected etcd://127.0.0.1:PORT"),
        ("etcd://127.0.0.1", "expected etcd://127.0.0.1:PORT"),
        ("etcd://localhost:2379", "expected etcd://127.0.0.1:PORT"),
        ("etcd://127.0.0.1:2379,", "expected etcd://127.0.0.1:PORT"),
        ("etcd://127.0.0.1:99999", "expected etcd://127.0.0.1:PORT"),
        ("etcd://10.0.0.5:2379", "only talk to loopback"),
        (
            "etcd://127.0.0.1:2379,192.168.1.2:2379",
            "192.168.1.2:2379 is not one",
        ),
        ("etcd:/127.0.0.1:2379", "expected cartwheel"),
    ] {
        let error = spec.parse::<TargetSpec>().unwrap_err();
        assert!(error.contains(says), "{spec}: {error}");
        assert!(error.starts_with(spec), "{spec}: {error}");
    }
    let many = format!(
        "etcd://{}",
        vec!["127.0.0.1:2379"; ETCD_ENDPOINTS_MAX + 1].join(",")
    );
    let error = many.parse::<TargetSpec>().unwrap_err();
    assert!(error.contains("at most 16 endpoints"), "{error}");
}

#[cfg(not(feature = "etcd"))]
#[tokio::test]
async fn an_etcd_target_without_the_etcd_feature_says_how_to_build_it() {
    let spec: TargetSpec = "etcd://127.0.0.1:2379".parse().unwrap();
    let connected = Target::connect(
        &spec,
        None,
        RedisClient::default(),
        1,
        CartwheelClient::default(),
    )
    .await;
    let error = connected.err().expect("no etcd client in this build");
    assert!(error.to_string().contains("--features etcd"), "{error}");
}

#[test]
fn tokens_are_fresh_and_fixed_width() {
    let (first, second) = (new_token(), new_token());
    assert_eq!(first.len(), 32);
    assert_ne!(first, second);
}
