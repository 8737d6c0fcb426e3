use super::*;

#[test]
fn defaults_hold_and_zero_or_huge_values_are_refused() {
    let settings = HttpSettings::default();
    assert_eq!(settings.header_timeout, Duration::from_secs(10));
    assert_eq!(settings.connections_per_address_max, 1024);
    let zero = HttpFlags {
        http_idle_timeout_ms: Some(0),
        ..HttpFlags::default()
    };
    let error = HttpSettings::new(&zero).unwrap_err().to_string();
    assert!(error.contains("--http-idle-timeout-ms"), "{error}");
    let huge = HttpFlags {
        http_connections_max: Some(limits::HTTP_CONNECTIONS_MAX_MAX + 1),
        ..HttpFlags::default()
    };
    assert!(HttpSettings::new(&huge).is_err());
}

#[test]
fn flags_travel_to_child_processes() {
    let flags = HttpFlags {
        http_write_timeout_ms: Some(500),
        http_connections_per_address_max: Some(8),
        ..HttpFlags::default()
    };
    assert_eq!(
        flags.to_args(),
        [
            "--http-write-timeout-ms",
            "500",
            "--http-connections-per-address-max",
            "8"
        ]
    );
}
