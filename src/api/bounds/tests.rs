use super::*;

#[test]
fn every_route_has_a_limit_and_body_less_routes_a_small_one() {
    let kv = body_limit(&Method::PUT, "/v1/kv/k");
    assert_eq!(kv, (limits::VALUE_BYTES_MAX, ErrorCode::ValueTooLarge));
    let login = body_limit(&Method::POST, "/v1/sessions");
    assert_eq!(
        login,
        (limits::SESSION_BODY_BYTES_MAX, ErrorCode::BodyTooLarge)
    );
    let pref = body_limit(&Method::PUT, "/v1/session/prefs/x");
    assert_eq!(pref.0, limits::SESSION_BODY_BYTES_MAX);
    let faults = body_limit(&Method::PUT, "/v1/admin/faults");
    assert_eq!(faults.0, limits::HTTP_ADMIN_BODY_BYTES_MAX);
    for (method, path) in [
        (Method::GET, "/v1/kv/k"),
        (Method::DELETE, "/v1/kv/k"),
        (Method::GET, "/v1/pipeline"),
        (Method::POST, "/v1/nowhere"),
    ] {
        let (limit, _) = body_limit(&method, path);
        assert_eq!(limit, limits::HTTP_EMPTY_BODY_BYTES_MAX, "{method} {path}");
    }
}
