//! The session API against real nodes: every endpoint, every error (401 per kind of
//! token, 403 for CSRF, 400/413/422 for bodies) with nothing written, rotation,
//! logout and logout-everywhere, regions sharing a cart, and expiry. The abuse side
//! (made-up tokens, rotation races, reuse, logout-everywhere races) is in
//! session_security.rs.

use crate::common;

use cartwheel::config::{SessionFlags, TuningFlags};
use common::sessions::{code, wait_validating_locally, Client, Session, THREE_REGIONS};
use common::{single_region, InProcessCluster};
use serde_json::{json, Value};

fn cart_of(body: &Value) -> Vec<(String, u64)> {
    body["cart"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            (
                line["sku"].as_str().unwrap().to_string(),
                line["qty"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_works_and_rotation_and_logout_end_tokens() {
    let cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let client = Client::new(&cluster, 0);
    let other = Client::new(&cluster, 2);
    let phone = client.login("alice", "phone").await;

    let (status, body) = other.get(&phone).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["token"]["device"], "phone");
    assert_eq!(body["devices"].as_array().unwrap().len(), 1);

    assert_eq!(client.cart(&phone, "add", "sku-1", 2).await.0, 200);
    assert_eq!(client.cart(&phone, "add", "sku-1", 1).await.0, 200);
    let (_, body) = client.cart(&phone, "add", "sku-2", 1).await;
    assert_eq!(
        cart_of(&body),
        vec![("sku-1".into(), 3), ("sku-2".into(), 1)]
    );
    let (_, body) = client.cart(&phone, "set", "sku-1", 7).await;
    assert_eq!(cart_of(&body)[0], ("sku-1".into(), 7));
    let (_, body) = client.cart(&phone, "set", "sku-1", 0).await;
    assert_eq!(cart_of(&body), vec![("sku-2".into(), 1)]);
    let (_, body) = client.cart(&phone, "remove", "sku-2", 0).await;
    assert!(cart_of(&body).is_empty());

    let put = reqwest::Method::PUT;
    let (status, body) = client
        .send(
            put.clone(),
            "/v1/session/prefs/lang",
            &phone,
            Some(json!({"value": "fr"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["prefs"]["lang"], "fr");
    let (_, body) = client
        .send(
            reqwest::Method::DELETE,
            "/v1/session/prefs/lang",
            &phone,
            None,
        )
        .await;
    assert!(body["prefs"].as_object().unwrap().is_empty());
    for item in ["p-1", "p-2"] {
        let history = json!({"item": item});
        let (status, _) = client
            .send(
                reqwest::Method::POST,
                "/v1/session/history",
                &phone,
                Some(history),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (_, body) = other.get(&phone).await;
    assert_eq!(body["history"][0]["item"], "p-2", "newest first: {body}");

    // Rotation: the new token works, the old one is reported as reused.
    let (status, rotated) = client
        .send(reqwest::Method::POST, "/v1/session/rotate", &phone, None)
        .await;
    assert_eq!(status, 200);
    let rotated = Session {
        token: rotated["token"].as_str().unwrap().to_string(),
        csrf: rotated["csrf_token"].as_str().unwrap().to_string(),
    };
    assert_eq!(other.get(&rotated).await.0, 200);
    let (status, body) = other.get(&phone).await;
    assert_eq!((status, code(&body)), (401, "token_reused"));

    // Logout of one device; then logout everywhere ends the others.
    let laptop = client.login("alice", "laptop").await;
    let tablet = client.login("alice", "tablet").await;
    let (status, _) = client
        .send(reqwest::Method::DELETE, "/v1/session", &laptop, None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = other.get(&laptop).await;
    assert_eq!((status, code(&body)), (401, "token_revoked"));
    let (status, body) = client
        .send(reqwest::Method::DELETE, "/v1/session/all", &tablet, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], 2, "tablet and the rotated phone token");
    for session in [&rotated, &tablet] {
        let (status, body) = other.get(session).await;
        assert_eq!((status, code(&body)), (401, "token_revoked"));
    }
    // Node 0 took the logins, the rotation and both logouts.
    let counted = cluster.status(0).await.sessions;
    assert_eq!(
        (counted.logins, counted.rotations, counted.logouts),
        (3, 1, 2)
    );
    // Node 2 validated: the reused and the revoked tokens are counted by outcome.
    let metrics = reqwest::get(cluster.url(2, "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let outcome = |name: &str| -> f64 {
        let series = format!("cartwheel_session_validation_outcomes_total{{outcome=\"{name}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{series} in {metrics}"))
    };
    assert!(outcome("accepted") >= 3.0);
    assert!(outcome("reused") >= 1.0);
    assert!(outcome("revoked") >= 3.0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_csrf_and_bodies_are_refused_and_change_nothing() {
    let flags = TuningFlags {
        session: SessionFlags {
            cart_lines_max: Some(2),
            session_bytes_max: Some(900),
            ..SessionFlags::default()
        },
        ..TuningFlags::default()
    };
    let cluster = InProcessCluster::start(&single_region(1, 1), flags).await;
    let client = Client::new(&cluster, 0);
    let session = client.login("bob", "phone").await;
    assert_eq!(client.cart(&session, "add", "kept", 1).await.0, 200);
    let (_, before) = client.get(&session).await;

    // Tokens: each kind of rejection has its code; none of these costs a read (a token
    // of the old 43-character format is malformed, a made-up one fails its tag).
    let url = format!("{}/v1/session", client.base);
    let old_format = "A".repeat(43);
    let made_up = "A".repeat(66);
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "token_missing"),
        (Some("Basic abc".into()), "token_malformed"),
        (Some("Bearer short".into()), "token_malformed"),
        (Some(format!("Bearer {old_format}")), "token_malformed"),
        (Some(format!("Bearer {made_up}")), "token_unknown"),
    ];
    let reads = |status: cartwheel::api::Status| status.sessions.validation_reads;
    for (header, expected) in cases {
        let before_reads = reads(cluster.status(0).await);
        let mut request = client.http.get(&url);
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), expected);
        assert_eq!(
            reads(cluster.status(0).await) - before_reads,
            0,
            "{expected}"
        );
    }

    // CSRF: missing or wrong → 403.
    let cart_url = format!("{}/v1/session/cart", client.base);
    let add = json!({"op": "add", "sku": "x", "qty": 1});
    let response = client
        .http
        .post(&cart_url)
        .bearer_auth(&session.token)
        .json(&add)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(code(&response.json().await.unwrap()), "csrf_missing");
    let wrong = Session {
        token: session.token.clone(),
        csrf: "B".repeat(66),
    };
    let (status, body) = client.cart(&wrong, "add", "x", 1).await;
    assert_eq!((status, code(&body)), (403, "csrf_invalid"));

    // Bodies.
    let post = reqwest::Method::POST;
    let long = "s".repeat(129);
    let bodies: Vec<(Value, u16, &str)> = vec![
        (
            json!({"op": "add", "sku": "x", "qty": -1}),
            422,
            "bad_quantity",
        ),
        (
            json!({"op": "add", "sku": "x", "qty": 1_000_000_000_000i64}),
            422,
            "bad_quantity",
        ),
        (
            json!({"op": "add", "sku": "x", "qty": 0}),
            422,
            "bad_quantity",
        ),
        (
            json!({"op": "add", "sku": long, "qty": 1}),
            422,
            "name_too_long",
        ),
        (json!({"op": "fling", "sku": "x", "qty": 1}), 400, "bad_op"),
        (json!({"op": "add", "sku": "", "qty": 1}), 400, "bad_name"),
        (
            json!({"op": "add", "sku": "x", "qty": 1, "extra": 1}),
            400,
            "bad_json",
        ),
        (
            json!({"op": "add", "sku": "x", "qty": 1.5}),
            400,
            "bad_json",
        ),
        (
            json!({"op": "add", "sku": "y".repeat(17_000), "qty": 1}),
            413,
            "body_too_large",
        ),
    ];
    for (body, status, expected) in bodies {
        let (got, answer) = client
            .send(post.clone(), "/v1/session/cart", &session, Some(body))
            .await;
        assert_eq!((got, code(&answer)), (status, expected), "{answer}");
    }
    let response = client
        .http
        .post(&cart_url)
        .bearer_auth(&session.token)
        .header("x-csrf-token", &session.csrf)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Limits of the document: a third cart line, then a document past its bytes.
    assert_eq!(client.cart(&session, "add", "second", 1).await.0, 200);
    let (status, body) = client.cart(&session, "add", "third", 1).await;
    assert_eq!((status, code(&body)), (422, "limit_exceeded"));
    let (_, at_limit) = client.get(&session).await;
    let mut refused = None;
    for index in 0..20 {
        let item = json!({"item": format!("{index:0>100}")});
        let (status, body) = client
            .send(post.clone(), "/v1/session/history", &session, Some(item))
            .await;
        if status != 200 {
            refused = Some((status, code(&body).to_string()));
            break;
        }
    }
    assert_eq!(refused, Some((413, "session_too_large".to_string())));
    let (_, after) = client.get(&session).await;
    assert_eq!(cart_of(&after), cart_of(&at_limit));
    assert_ne!(
        cart_of(&before),
        cart_of(&after),
        "the second line was added"
    );
    assert!(cart_of(&after)
        .iter()
        .all(|(sku, _)| sku != "third" && sku != "x"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_in_two_regions_share_one_cart_and_a_revoke_is_felt_everywhere() {
    let cluster = InProcessCluster::start(THREE_REGIONS, TuningFlags::default()).await;
    let east = Client::new(&cluster, 0);
    let west = Client::new(&cluster, 1);
    let europe = Client::new(&cluster, 2);
    let phone = east.login("carol", "phone").await;
    // Created in one region, valid at once in every other.
    assert_eq!(europe.get(&phone).await.0, 200);
    let laptop = west.login("carol", "laptop").await;
    assert_eq!(east.get(&laptop).await.0, 200);
    // The concurrent writes below are concurrent only if both validations are local
    // (a node starts catching up, reading other regions, until anti-entropy synced it).
    for index in 0..3 {
        wait_validating_locally(&cluster, index, &phone).await;
    }

    // Concurrent adds of different items from the two devices: both stay.
    let (first, second) = tokio::join!(
        east.cart(&phone, "add", "boots", 1),
        west.cart(&laptop, "add", "scarf", 2)
    );
    assert_eq!((first.0, second.0), (200, 200));
    // A remove concurrent with an add of the same sku: the add wins.
    east.cart(&phone, "add", "hat", 1).await;
    let (removed, added) = tokio::join!(
        east.cart(&phone, "remove", "hat", 0),
        west.cart(&laptop, "add", "hat", 1)
    );
    assert_eq!((removed.0, added.0), (200, 200));
    let expected = ["boots", "hat", "scarf"];
    for client in [&east, &west, &europe] {
        let mut found = Vec::new();
        for _ in 0..50 {
            let (_, body) = client.get(&phone).await;
            found = cart_of(&body)
                .into_iter()
                .map(|(sku, _)| sku)
                .collect::<Vec<_>>();
            if found == expected {
                break;
            }
            // Bounded poll: the region_safe writes reach the third region in the background.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(found, expected);
    }

    // Revoke in one region, validate in another at once: refused.
    let (status, _) = west
        .send(reqwest::Method::DELETE, "/v1/session", &laptop, None)
        .await;
    assert_eq!(status, 204);
    for client in [&east, &europe] {
        let (status, body) = client.get(&laptop).await;
        assert_eq!((status, code(&body)), (401, "token_revoked"));
    }
    assert_eq!(europe.get(&phone).await.0, 200, "the other device stays in");
    cluster.shutdown().await;
}

const DAY_MS: i64 = 86_400_000;

fn move_clocks(cluster: &InProcessCluster, offset_ms: i64) {
    for node in &cluster.nodes {
        node.clock.set_offset_ms(offset_ms);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sessions_expire_active_ones_end_at_the_absolute_deadline_and_are_swept() {
    let flags = TuningFlags {
        tombstone_grace: Some(std::time::Duration::from_millis(1)),
        session: SessionFlags {
            sweep_interval: Some(std::time::Duration::from_millis(200)),
            sweep_rate: Some(1000),
            ..SessionFlags::default()
        },
        ..TuningFlags::default()
    };
    let cluster = InProcessCluster::start(&single_region(3, 3), flags).await;
    let client = Client::new(&cluster, 0);
    let idle = client.login("dora", "phone").await;
    client.cart(&idle, "add", "lamp", 1).await;
    let active = client.login("erin", "phone").await;

    // Erin uses her session every day; Dora never again.
    let mut last_seen = 0;
    for day in 1..=89 {
        move_clocks(&cluster, day * DAY_MS);
        let (status, body) = client.get(&active).await;
        assert_eq!(status, 200, "day {day}: {body}");
        // The refresh is written in the background: wait (bounded) until it landed.
        let mut seen = body["token"]["last_seen_at"].as_u64().unwrap();
        for _ in 0..100 {
            if seen > last_seen {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            seen = client.get(&active).await.1["token"]["last_seen_at"]
                .as_u64()
                .unwrap();
        }
        assert!(
            seen > last_seen,
            "day {day}: the idle deadline was not slid"
        );
        last_seen = seen;
        if day == 31 {
            let (status, body) = client.get(&idle).await;
            assert_eq!(
                (status, code(&body)),
                (401, "token_expired"),
                "idle 31 days"
            );
        }
    }
    move_clocks(&cluster, 91 * DAY_MS);
    let (status, body) = client.get(&active).await;
    assert_eq!(
        (status, code(&body)),
        (401, "token_expired"),
        "past 90 days"
    );

    // The sweeper deletes the expired records; tombstone collection then empties the disks.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let statuses = futures::future::join_all((0..3).map(|i| cluster.status(i))).await;
        if statuses.iter().all(|status| status.keys == 0) {
            // Both token records; the user documents may have been ended first by the
            // device removal that follows each token's sweep.
            assert!(statuses.iter().map(|s| s.sessions.swept).sum::<u64>() >= 2);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expired sessions stayed on disk: {:?}",
            statuses.iter().map(|s| s.keys).collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Once collected the record is gone: the token is unknown, still never served.
    let (status, body) = client.get(&idle).await;
    assert_eq!((status, code(&body)), (401, "token_unknown"));
    cluster.shutdown().await;
}

/// A retried "add 1 sku" is applied once: on the node that took the first attempt, on
/// the other replicas, and on a replica restarted from its disk; a new key adds again,
/// and a malformed key is refused with nothing written.
#[tokio::test(flavor = "multi_thread")]
async fn a_retried_cart_add_with_its_idempotency_key_is_applied_once_anywhere() {
    let mut cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let first = Client::new(&cluster, 0);
    let session = first.login("dora", "phone").await;
    let quantity = |body: &Value| cart_of(body).first().map_or(0, |line| line.1);

    let (status, body) = first.cart_once(&session, "sku-1", 1, "add-sku-1-a").await;
    assert_eq!((status, quantity(&body)), (200, 1), "{body}");
    for index in [0, 1, 2] {
        let retry = Client::new(&cluster, index);
        let (status, body) = retry.cart_once(&session, "sku-1", 1, "add-sku-1-a").await;
        assert_eq!(
            (status, quantity(&body)),
            (200, 1),
            "retry on node {index}: {body}"
        );
    }
    // Node 0 from its disk: it still knows the id.
    let id = cluster.stop(0).await;
    cluster.start_again(0, &id).await;
    let restarted = Client::new(&cluster, 0);
    let (status, body) = restarted
        .cart_once(&session, "sku-1", 1, "add-sku-1-a")
        .await;
    assert_eq!(
        (status, quantity(&body)),
        (200, 1),
        "after a restart: {body}"
    );
    // Another action is another key.
    let (status, body) = restarted
        .cart_once(&session, "sku-1", 1, "add-sku-1-b")
        .await;
    assert_eq!((status, quantity(&body)), (200, 2), "{body}");
    for bad in ["", &"k".repeat(129), "caf\u{e9}", "two words"] {
        let response = restarted
            .http
            .post(format!("{}/v1/session/cart", restarted.base))
            .bearer_auth(&session.token)
            .header("x-csrf-token", &session.csrf)
            .header("idempotency-key", bad)
            .json(&json!({"op": "add", "sku": "sku-1", "qty": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "key {bad:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), "bad_idempotency_key");
    }
    let (_, body) = restarted.get(&session).await;
    assert_eq!(quantity(&body), 2, "refused keys wrote nothing: {body}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_rotation_retried_on_another_node_with_its_key_answers_the_same_successor() {
    let cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let first = Client::new(&cluster, 0);
    let session = first.login("iris", "phone").await;
    let (status, rotated) = first.rotate_once(&session, "rotate-iris-1").await;
    assert_eq!(status, 200, "{rotated}");
    // The answer was lost: the client retries on the other nodes with the same key.
    for index in [1, 2, 0] {
        let retry = Client::new(&cluster, index);
        let (status, again) = retry.rotate_once(&session, "rotate-iris-1").await;
        assert_eq!(status, 200, "retry on node {index}: {again}");
        assert_eq!(again["token"], rotated["token"], "the same successor");
        assert_eq!(again["csrf_token"], rotated["csrf_token"]);
    }
    let successor = Session {
        token: rotated["token"].as_str().unwrap().to_string(),
        csrf: rotated["csrf_token"].as_str().unwrap().to_string(),
    };
    assert_eq!(first.get(&successor).await.0, 200, "the successor works");
    // Another key is a second rotation of a rotated token: a reuse, which ends the chain.
    let (status, body) = first.rotate_once(&session, "rotate-iris-2").await;
    assert_eq!((status, code(&body)), (401, "token_reused"), "{body}");
    assert_eq!(first.get(&successor).await.0, 401, "the chain is revoked");
    cluster.shutdown().await;
}
