use super::*;

#[test]
fn defaults_hold_and_zero_or_huge_values_are_refused() {
    let settings = RespSettings::default();
    assert_eq!(settings.idle_timeout, Duration::from_secs(300));
    assert_eq!(settings.connections_max, 10_000);
    let zero = RespFlags {
        resp_write_timeout_ms: Some(0),
        ..RespFlags::default()
    };
    let error = RespSettings::new(&zero).unwrap_err().to_string();
    assert!(error.contains("--resp-write-timeout-ms"), "{error}");
    let huge = RespFlags {
        resp_connections_max: Some(limits::HTTP_CONNECTIONS_MAX_MAX + 1),
        ..RespFlags::default()
    };
    assert!(RespSettings::new(&huge).is_err());
}

#[test]
fn flags_travel_to_child_processes() {
    let flags = RespFlags {
        resp_idle_timeout_ms: Some(500),
        resp_connections_max: Some(8),
        ..RespFlags::default()
    };
    assert_eq!(
        flags.to_args(),
        [
            "--resp-idle-timeout-ms",
            "500",
            "--resp-connections-max",
            "8"
        ]
    );
}
