use super::*;

#[test]
fn chaos_runs_only_on_loopback_addresses() {
    let at = |text: &str| text.parse::<SocketAddr>().unwrap();
    for (http, quic) in [("127.0.0.1:0", "127.0.0.1:0"), ("127.3.2.1:80", "[::1]:0")] {
        assert!(
            check_chaos(true, at(http), at(quic)).is_ok(),
            "{http} {quic}"
        );
    }
    for (http, quic, refused) in [
        ("0.0.0.0:0", "127.0.0.1:0", "0.0.0.0:0"),
        ("127.0.0.1:0", "[::]:0", "[::]:0"),
        ("10.0.0.5:8080", "127.0.0.1:0", "10.0.0.5:8080"),
        (
            "127.0.0.1:0",
            "[::ffff:127.0.0.1]:0",
            "[::ffff:127.0.0.1]:0",
        ),
    ] {
        let error = check_chaos(true, at(http), at(quic)).unwrap_err();
        assert!(
            matches!(&error, NodeError::ChaosNotLoopback { addr, .. } if *addr == at(refused)),
            "{http} {quic}: {error}"
        );
        assert!(error.to_string().contains("--chaos"), "{error}");
        // Without --chaos any address is fine.
        assert!(check_chaos(false, at(http), at(quic)).is_ok());
    }
}
