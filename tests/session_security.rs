//! The session API under attack, against real nodes: made-up tokens cost no read and
//! floods of them are limited and slowed, two rotations of one token never leave two live
//! successors, reuse of a rotated token revokes its chain and is audited, and
//! logout-everywhere racing a login in another region refuses the older token.

mod common;

use cartwheel::config::{SessionFlags, TuningFlags};
use common::sessions::{code, Client, Session, THREE_REGIONS};
use common::{single_region, InProcessCluster, ADMIN_SECRET};
use serde_json::{json, Value};

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
async fn made_up_tokens_cost_no_read_and_floods_of_them_stay_local_and_slow() {
    // A burst the first 80 rejections fit in, earned back slowly (1 a second), so the
    // steps past it do not depend on timing.
    let flags = TuningFlags {
        session: SessionFlags {
            failed_validations_burst: Some(100),
            failed_validations_per_s: Some(1),
            ..SessionFlags::default()
        },
        ..TuningFlags::default()
    };
    let cluster = InProcessCluster::start(THREE_REGIONS, flags).await;
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

    // Past its burst the address keeps its local answers, but each rejection waits
    // before it is answered (so a flood slows to the pace of its answers) and a genuine
    // token missing here is no longer looked up in other regions; its valid token
    // still gets in at once.
    let delay = cartwheel::limits::OVER_LIMIT_REJECTION_DELAY;
    let mut delayed_at = None;
    for index in 0..200 {
        let started = std::time::Instant::now();
        let (status, _) = status_code(&east, &"B".repeat(66)).await;
        assert_eq!(status, 401);
        if started.elapsed() >= delay {
            delayed_at = Some(index);
            break;
        }
    }
    let delayed_at = delayed_at.expect("no rejection was delayed past the burst");
    assert!(delayed_at >= 15, "delayed after only {delayed_at} failures");
    // The delay earned one failure back, but the address stays limited until it has
    // earned its whole burst back.
    let unseen = cluster_keys().issue_token().text;
    let started = std::time::Instant::now();
    let (status, code) = status_code(&east, &unseen).await;
    assert_eq!((status, code.as_str()), (401, "token_unknown"));
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    let limited_status = cluster.status(0).await.sessions;
    assert_eq!(limited_status.rate_limited - cached.rate_limited, 1);
    assert_eq!(
        limited_status.delayed_rejections - cached.delayed_rejections,
        2
    );
    assert_eq!(
        limited_status.remote_validation_reads,
        cached.remote_validation_reads
    );
    assert_eq!(east.get(&session).await.0, 200);
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
