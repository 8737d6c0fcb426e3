use super::*;
use axum::routing::get;
use axum::Router;
use tower::ServiceExt;

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn(tagged))
}

async fn answer(id: Option<&[u8]>) -> Response {
    let mut request = Request::builder().uri("/");
    if let Some(id) = id {
        request = request.header(REQUEST_ID_HEADER, HeaderValue::from_bytes(id).unwrap());
    }
    router()
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_acceptable_id_is_echoed() {
    let response = answer(Some(b"req-42.a:b/c")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get(REQUEST_ID_HEADER).unwrap(),
        "req-42.a:b/c"
    );
}

#[tokio::test]
async fn no_id_or_an_unacceptable_one_is_not_echoed() {
    let too_long = [b'a'; limits::REQUEST_ID_BYTES_MAX + 1];
    let longest = [b'a'; limits::REQUEST_ID_BYTES_MAX];
    for id in [
        None,
        Some(&b"has space"[..]),
        Some(&b"tab\there"[..]),
        Some(&too_long[..]),
    ] {
        let response = answer(id).await;
        assert_eq!(response.status(), 200);
        assert!(
            response.headers().get(REQUEST_ID_HEADER).is_none(),
            "{id:?}"
        );
    }
    let response = answer(Some(&longest)).await;
    assert!(response.headers().get(REQUEST_ID_HEADER).is_some());
}

#[test]
fn only_visible_ascii_is_acceptable() {
    assert!(acceptable(&HeaderValue::from_static("abc-123")));
    assert!(!acceptable(&HeaderValue::from_static("")));
    assert!(!acceptable(
        &HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()
    ));
}
