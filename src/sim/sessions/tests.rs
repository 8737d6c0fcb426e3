use super::*;

#[test]
fn picks_cover_every_weight_in_order() {
    let weights = Weights::default();
    assert_eq!(weights.pick(0), Choice::Read);
    assert_eq!(weights.pick(weights.read), Choice::CartAdd);
    assert_eq!(weights.pick(weights.total() - 1), Choice::Replay);
    let only_logout = Weights {
        read: 0,
        cart_add: 0,
        cart_remove: 0,
        pref_set: 0,
        history_add: 0,
        rotate: 0,
        logout: 1,
        replay: 0,
    };
    assert_eq!(only_logout.pick(0), Choice::Logout);
}

#[test]
fn the_table_is_checked() {
    let raw: RawSessions = toml::from_str("users_per_client = 0").unwrap();
    let error = SessionMix::from_raw(&raw).unwrap_err().to_string();
    assert!(error.contains("sessions.users_per_client"), "{error}");
    let raw: RawSessions = toml::from_str("[weights]\nread = 5").unwrap();
    let mix = SessionMix::from_raw(&raw).unwrap();
    assert_eq!(mix.weights.read, 5);
    assert_eq!(mix.weights.logout, Weights::default().logout);
    assert!(toml::from_str::<RawSessions>("colour = 1").is_err());
}

#[test]
fn requests_are_retried_as_the_readme_says_application_authors_may() {
    use crate::sim::driver::Retry;
    use reqwest::Method;
    let rule = client::retry_rule;
    assert_eq!(rule(&Method::GET, "/v1/session"), (Retry::Speculate, false));
    assert_eq!(rule(&Method::POST, "/v1/sessions"), (Retry::Always, false));
    assert_eq!(rule(&Method::DELETE, "/v1/session"), (Retry::Always, false));
    assert_eq!(
        rule(&Method::POST, "/v1/session/cart"),
        (Retry::Always, true),
        "a cart change carries an idempotency key"
    );
    assert_eq!(
        rule(&Method::PUT, "/v1/session/prefs/x"),
        (Retry::Always, true)
    );
    assert_eq!(
        rule(&Method::POST, "/v1/session/rotate"),
        (Retry::Always, true),
        "a rotation retried with its key makes the same successor"
    );
}

#[test]
fn a_revocation_is_given_the_time_a_node_may_hold_it_while_a_region_goes_down() {
    use crate::limits::{AUTH_REVOCATION_WAIT_MS, SIM_READ_ATTEMPT_TIMEOUT_MS};
    use reqwest::Method;
    let timeout = client::attempt_timeout_ms;
    assert_eq!(
        timeout(&Method::GET, "/v1/session"),
        SIM_READ_ATTEMPT_TIMEOUT_MS
    );
    for (method, path) in [
        (Method::DELETE, "/v1/session"),
        (Method::POST, "/v1/session/rotate"),
    ] {
        assert!(
            timeout(&method, path) > AUTH_REVOCATION_WAIT_MS,
            "{method} {path}"
        );
    }
    assert!(timeout(&Method::POST, "/v1/session/cart") < AUTH_REVOCATION_WAIT_MS);
}
