//! The session API against real nodes: every endpoint, every error (401 per kind of
//! token, 403 for CSRF, 400/413/422 for bodies) with nothing written, and rotation,
//! logout and logout-everywhere.

mod common;

use cartwheel::config::{SessionFlags, TuningFlags};
use common::{single_region, InProcessCluster, ADMIN_SECRET};
use serde_json::{json, Value};

struct Client {
    http: reqwest::Client,
    base: String,
}

struct Session {
    token: String,
    csrf: String,
}

impl Client {
    fn new(cluster: &InProcessCluster, index: usize) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: cluster.url(index, ""),
        }
    }

    async fn login(&self, user: &str, device: &str) -> Session {
        let response = self
            .http
            .post(format!("{}/v1/sessions", self.base))
            .json(&json!({"user_id": user, "device": device}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        assert!(body["expires_at"].as_u64().unwrap() > body["idle_expires_at"].as_u64().unwrap());
        Session {
            token: body["token"].as_str().unwrap().to_string(),
            csrf: body["csrf_token"].as_str().unwrap().to_string(),
        }
    }

    async fn get(&self, session: &Session) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/v1/session", self.base))
            .bearer_auth(&session.token)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Sends a mutating request with the session's token and CSRF token.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        session: &Session,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&session.token)
            .header("x-csrf-token", &session.csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn cart(&self, session: &Session, op: &str, sku: &str, qty: i64) -> (u16, Value) {
        let body = json!({"op": op, "sku": sku, "qty": qty});
        self.send(
            reqwest::Method::POST,
            "/v1/session/cart",
            session,
            Some(body),
        )
        .await
    }
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

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

const THREE_REGIONS: &str = r#"
[cluster]
replicas_per_region = 1
partitions = 64
[[regions]]
name = "east"
nodes = 1
[[regions]]
name = "west"
nodes = 1
[[regions]]
name = "europe"
nodes = 1
[latency.rtt_ms]
"east/west" = 30
"east/europe" = 40
"west/europe" = 60
"#;

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

/// The session secret of in-process nodes (`tests/common`): tests make genuine tokens
/// with it that the cluster never stored.
fn cluster_keys() -> cartwheel::session::tokens::TokenKeys {
    cartwheel::session::tokens::TokenKeys::new(&[(0, [3; 32])]).unwrap()
}

async fn status_code(client: &Client, token: &str) -> (u16, String) {
    let response = client
        .http
        .get(format!("{}/v1/session", client.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, code(&body).to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn made_up_tokens_cost_no_read_and_floods_of_them_stay_local() {
    let cluster = InProcessCluster::start(THREE_REGIONS, TuningFlags::default()).await;
    let east = Client::new(&cluster, 0);
    let before = cluster.status(0).await.sessions;

    // Made up: random text of a token's length, and tokens of another cluster.
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let other_cluster = cartwheel::session::tokens::TokenKeys::new(&[(0, [4; 32])]).unwrap();
    for index in 0..60 {
        let token: String = if index % 2 == 0 {
            let mut raw = [0u8; 49];
            rand::RngCore::fill_bytes(&mut rng, &mut raw);
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw)
        } else {
            other_cluster.issue_token().text
        };
        let (status, code) = status_code(&east, &token).await;
        assert_eq!((status, code.as_str()), (401, "token_unknown"), "{index}");
    }
    let after = cluster.status(0).await.sessions;
    assert_eq!(
        after.validation_reads, before.validation_reads,
        "no local read"
    );
    assert_eq!(
        after.remote_validation_reads, before.remote_validation_reads,
        "no cross-region read"
    );
    assert_eq!(after.forged - before.forged, 60);

    // A genuine token the cluster never stored: one cross-region read, then the
    // negative cache answers.
    let genuine = cluster_keys().issue_token().text;
    for _ in 0..20 {
        let (status, code) = status_code(&east, &genuine).await;
        assert_eq!((status, code.as_str()), (401, "token_unknown"));
    }
    let cached = cluster.status(0).await.sessions;
    assert_eq!(
        cached.remote_validation_reads - after.remote_validation_reads,
        1
    );
    assert_eq!(cached.negative_cache_hits - after.negative_cache_hits, 19);
    // A login is never refused because of the cache: its new token is found at once.
    let session = east.login("frank", "phone").await;
    assert_eq!(east.get(&session).await.0, 200);

    // Past its burst of failures the address is answered 429 without validation.
    let mut limited = None;
    for attempt in 0..1_000 {
        let (status, code) = status_code(&east, &"B".repeat(66)).await;
        if status == 429 {
            limited = Some((attempt, code));
            break;
        }
        assert_eq!(status, 401);
    }
    let (attempt, code) = limited.expect("the address was never limited");
    assert_eq!(code, "too_many_failures");
    assert!(attempt > 50, "limited after {attempt} failures only");
    let limited_status = cluster.status(0).await.sessions;
    assert!(limited_status.rate_limited >= 1);
    assert_eq!(
        limited_status.remote_validation_reads,
        cached.remote_validation_reads
    );
    cluster.shutdown().await;
}

/// Rotates `session` through `client`: the new session, or the status and code.
async fn rotate(client: &Client, session: &Session) -> Result<Session, (u16, String)> {
    let (status, body) = client
        .send(reqwest::Method::POST, "/v1/session/rotate", session, None)
        .await;
    if status != 200 {
        return Err((status, code(&body).to_string()));
    }
    Ok(Session {
        token: body["token"].as_str().unwrap().to_string(),
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn two_rotations_of_one_token_at_once_never_leave_two_live_successors() {
    // A grace, so the later of the two is not refused as a reuse before it reaches the
    // rotation itself (without one, it would be, and would revoke the chain).
    let flags = TuningFlags {
        session: SessionFlags {
            rotation_grace: Some(std::time::Duration::from_secs(30)),
            ..SessionFlags::default()
        },
        ..TuningFlags::default()
    };
    let cluster = InProcessCluster::start(&single_region(3, 3), flags).await;
    let clients: Vec<Client> = (0..3).map(|index| Client::new(&cluster, index)).collect();
    let mut conflicts = 0;
    for round in 0..20 {
        let session = clients[0].login(&format!("racer-{round}"), "phone").await;
        let (first, second) = tokio::join!(
            rotate(&clients[round % 3], &session),
            rotate(&clients[(round + 1) % 3], &session)
        );
        let successors: Vec<Session> = [first, second]
            .into_iter()
            .filter_map(|outcome| match outcome {
                Ok(session) => Some(session),
                Err(refused) => {
                    assert_eq!(refused, (409, "conflict".to_string()), "round {round}");
                    conflicts += 1;
                    None
                }
            })
            .collect();
        assert!(!successors.is_empty(), "round {round}: both refused");
        // Every node agrees: exactly one successor is live.
        for client in &clients {
            let mut live = 0;
            for successor in &successors {
                let (status, code) = status_code(client, &successor.token).await;
                match status {
                    200 => live += 1,
                    _ => assert_eq!((status, code.as_str()), (401, "token_revoked")),
                }
            }
            assert_eq!(live, 1, "round {round}: live successors");
        }
    }
    println!("rotations refused with 409: {conflicts} of 20 races");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reuse_of_a_rotated_token_revokes_its_chain_and_writes_an_audit_entry() {
    let cluster = InProcessCluster::start(THREE_REGIONS, TuningFlags::default()).await;
    let east = Client::new(&cluster, 0);
    let west = Client::new(&cluster, 1);
    let stolen = east.login("grace", "phone").await;
    let first = rotate(&east, &stolen).await.expect("rotates");
    let second = rotate(&west, &first).await.expect("rotates again");
    assert_eq!(west.get(&second).await.0, 200);
    // The same token rotated twice: refused, nothing issued.
    assert_eq!(
        rotate(&east, &stolen).await.err(),
        Some((401, "token_reused".to_string())),
        "a rotated token past its grace is a reuse"
    );
    // The thief's reuse revoked the whole chain, the live token included.
    assert_eq!(
        status_code(&west, &second.token).await,
        (401, "token_revoked".to_string())
    );
    assert_eq!(status_code(&east, &stolen.token).await.0, 401);
    let status = cluster.status(0).await.sessions;
    assert_eq!(status.families_revoked, 1, "one family, revoked once");

    // Operators read the audit entry.
    let response = east
        .http
        .get(format!("{}/v1/admin/audit/grace", east.base))
        .bearer_auth(ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let audit: Value = response.json().await.unwrap();
    assert_eq!(audit["revoked_families"].as_array().unwrap().len(), 1);
    let entry = &audit["audit"][0];
    assert_eq!(entry["event"], "token_reused");
    assert_eq!(entry["device"], "phone");
    assert_eq!(entry["region"], "east");
    assert!(entry["at_ms"].as_u64().unwrap() > 0);
    let refused = east
        .http
        .get(format!("{}/v1/admin/audit/grace", east.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "the audit needs the admin secret");

    // The user logs in again: a new family, not refused.
    let again = west.login("grace", "phone").await;
    assert_eq!(east.get(&again).await.0, 200);
    cluster.shutdown().await;
}

const LIFETIME_MS: u64 = 90 * 86_400_000;

#[tokio::test(flavor = "multi_thread")]
async fn logout_everywhere_racing_a_login_in_another_region_refuses_the_new_token() {
    let cluster = InProcessCluster::start(THREE_REGIONS, TuningFlags::default()).await;
    let clients: Vec<Client> = (0..3).map(|index| Client::new(&cluster, index)).collect();
    let (mut refused, mut kept) = (0, 0);
    for round in 0..12 {
        let user = format!("henry-{round}");
        let session = clients[0].login(&user, "laptop").await;
        let login = async {
            let response = clients[1]
                .http
                .post(format!("{}/v1/sessions", clients[1].base))
                .json(&json!({"user_id": user, "device": "phone"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.unwrap()
        };
        // Odd rounds: the login has returned before the logout starts (its device
        // entry may not be visible in the first region yet). Even rounds: both at once.
        let (new, logout) = if round % 2 == 1 {
            let new = login.await;
            let logout = clients[0]
                .send(reqwest::Method::DELETE, "/v1/session/all", &session, None)
                .await;
            (new, logout)
        } else {
            tokio::join!(
                login,
                clients[0].send(reqwest::Method::DELETE, "/v1/session/all", &session, None)
            )
        };
        assert_eq!(logout.0, 200, "{}", logout.1);
        let token = new["token"].as_str().unwrap().to_string();
        let created_ms = new["expires_at"].as_u64().unwrap() - LIFETIME_MS;
        let audit: Value = clients[2]
            .http
            .get(format!("{}/v1/admin/audit/{user}", clients[2].base))
            .bearer_auth(ADMIN_SECRET)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let not_before_ms = audit["not_before_ms"].as_u64().unwrap();
        assert!(not_before_ms > 0);
        let created_before = created_ms <= not_before_ms;
        if round % 2 == 1 {
            assert!(created_before, "round {round}: a login that returned first");
        }
        for client in &clients {
            let (status, code) = status_code(client, &token).await;
            if created_before {
                assert_eq!((status, code.as_str()), (401, "token_revoked"), "{round}");
            } else {
                // A login after the not-before time stays in, unless the logout's
                // read of the device list already saw it (then it revoked it too).
                assert!(
                    status == 200 || code == "token_revoked",
                    "round {round}: {status} {code}"
                );
            }
        }
        if created_before {
            refused += 1;
        } else {
            kept += 1;
        }
        assert_eq!(status_code(&clients[2], &session.token).await.0, 401);
    }
    println!("tokens created before the logout (refused): {refused}, after (kept): {kept}");
    cluster.shutdown().await;
}
