use super::*;

fn at(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn without_a_flag_the_bound_address_is_advertised() {
    for bound in ["127.0.0.1:7000", "10.213.0.2:41234", "[fd00::5]:80"] {
        assert_eq!(
            advertised(Listener::Quic, at(bound), None),
            Ok(at(bound)),
            "{bound}"
        );
    }
}

#[test]
fn the_flag_wins_and_its_port_0_means_the_bound_port() {
    let bound = at("0.0.0.0:41234");
    assert_eq!(
        advertised(Listener::Http, bound, Some(at("10.213.0.1:8080"))),
        Ok(at("10.213.0.1:8080"))
    );
    assert_eq!(
        advertised(Listener::Http, bound, Some(at("10.213.0.1:0"))),
        Ok(at("10.213.0.1:41234"))
    );
    assert_eq!(
        advertised(Listener::Quic, at("[::]:7000"), Some(at("[fd00::1]:0"))),
        Ok(at("[fd00::1]:7000"))
    );
}

#[test]
fn an_unspecified_address_is_never_advertised() {
    for bound in [
        "0.0.0.0:0",
        "0.0.0.0:7000",
        "[::]:7000",
        "[::ffff:0.0.0.0]:1",
    ] {
        let error = advertised(Listener::Quic, at(bound), None).unwrap_err();
        assert_eq!(
            error,
            AdvertiseError::UnspecifiedBind {
                listener: Listener::Quic,
                bind: at(bound)
            }
        );
        // The message names the flag that fixes it.
        assert!(error.to_string().contains("--advertise-quic"), "{error}");
    }
    for advertise in ["0.0.0.0:7000", "[::]:0"] {
        let error = advertised(Listener::Http, at("10.0.0.5:80"), Some(at(advertise))).unwrap_err();
        assert!(
            matches!(
                error,
                AdvertiseError::UnspecifiedAdvertise {
                    listener: Listener::Http,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("--advertise-http"), "{error}");
    }
}

#[test]
fn check_judges_every_listener_before_binding() {
    let loopback = at("127.0.0.1:0");
    let everywhere = at("0.0.0.0:0");
    let none = Advertise::default();
    assert_eq!(none.check(loopback, loopback, Some(loopback)), Ok(()));
    assert_eq!(none.check(loopback, loopback, None), Ok(()));
    let refused = |advertise: Advertise, quic, http, resp| {
        advertise.check(quic, http, resp).unwrap_err().to_string()
    };
    assert!(refused(none, everywhere, loopback, None).contains("--advertise-quic"));
    assert!(refused(none, loopback, everywhere, None).contains("--advertise-http"));
    assert!(refused(none, loopback, loopback, Some(everywhere)).contains("--advertise-resp"));
    let reachable = Advertise {
        quic: Some(at("10.213.0.1:0")),
        http: Some(at("10.213.0.1:8080")),
        resp: Some(at("10.213.0.1:0")),
    };
    assert_eq!(
        reachable.check(everywhere, everywhere, Some(everywhere)),
        Ok(())
    );
    // An advertised RESP address without a RESP listener is a mistake, not a no-op.
    let error = reachable.check(everywhere, everywhere, None).unwrap_err();
    assert!(
        matches!(
            error,
            AdvertiseError::NoListener {
                listener: Listener::Resp,
                ..
            }
        ),
        "{error}"
    );
}
