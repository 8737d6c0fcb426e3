//! Logins and logouts through a region outage, against real nodes: while one region of
//! three is down, logins, rotations and logouts go on in the two others; when it comes
//! back, a token revoked while it was away is refused there from its first request
//! (it catches up before it validates locally), and again once it has caught up. A
//! region cut off (alive, unreachable) fails closed inside while the others revoke
//! without it, and refuses what they revoked once the cut heals.

use crate::common;

use cartwheel::config::TuningFlags;
use common::sessions::{code, wait_validating_locally, Client, Session, THREE_REGIONS};
use common::{InProcessCluster, ProcessCluster};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const EAST: usize = 0;
const WEST: usize = 1;
const EUROPE: usize = 2;

/// Validates `session` at `client` until the answer is not `503 auth_fenced` (a node
/// just back may not see a majority of the regions yet), at most `limit`; every answer
/// must differ from `200`. Returns the last status and code.
async fn refused_while_catching_up(
    client: &Client,
    session: &Session,
    limit: Duration,
) -> (u16, String) {
    let started = Instant::now();
    loop {
        let (status, body) = client.get(session).await;
        assert_ne!(status, 200, "a revoked token was let in: {body}");
        if (status, code(&body)) != (503, "auth_fenced") || started.elapsed() > limit {
            return (status, code(&body).to_string());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_region_back_from_an_outage_refuses_a_token_revoked_while_it_was_away() {
    let mut cluster = InProcessCluster::start(THREE_REGIONS, TuningFlags::default()).await;
    let (east, west, europe) = (
        Client::new(&cluster, EAST),
        Client::new(&cluster, WEST),
        Client::new(&cluster, EUROPE),
    );
    let phone = east.login("dana", "phone").await;
    let laptop = east.login("dana", "laptop").await;
    assert_eq!(
        europe.get(&phone).await.0,
        200,
        "seen in europe before it goes"
    );

    // Europe goes down.
    let europe_id = cluster.stop(EUROPE).await;
    cluster.wait_dead(EAST, europe_id.as_str()).await;
    cluster.wait_dead(WEST, europe_id.as_str()).await;

    // A logout in the east succeeds without europe (after waiting out the margin).
    let started = Instant::now();
    let (status, body) = east
        .send(reqwest::Method::DELETE, "/v1/session", &phone, None)
        .await;
    println!("logout with europe down took {:?}", started.elapsed());
    assert_eq!(status, 204, "logout during the outage: {body}");
    for client in [&east, &west] {
        let (status, body) = client.get(&phone).await;
        assert_eq!((status, code(&body)), (401, "token_revoked"));
    }

    // A fresh login in the west, valid in both surviving regions; a rotation too.
    let tablet = west.login("dana", "tablet").await;
    assert_eq!(east.get(&tablet).await.0, 200);
    let (status, body) = east
        .send(reqwest::Method::POST, "/v1/session/rotate", &laptop, None)
        .await;
    assert_eq!(status, 200, "rotation during the outage: {body}");
    let rotated = Session {
        token: body["token"].as_str().unwrap().to_string(),
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    };
    assert_eq!(west.get(&rotated).await.0, 200);
    let status = cluster.status(EAST).await.sessions;
    assert_eq!(
        status.auth_guard, "fenced",
        "the survivors fence themselves"
    );
    assert!(status.fenced_validations > 0 && status.revocations_without_a_region > 0);

    // Europe comes back: the revoked and the rotated-away tokens are refused there at
    // once, the new ones let in.
    cluster.start_again(EUROPE, &europe_id).await;
    let europe = Client::new(&cluster, EUROPE);
    let limit = Duration::from_secs(20);
    let (status, refused) = refused_while_catching_up(&europe, &phone, limit).await;
    assert_eq!((status, refused.as_str()), (401, "token_revoked"));
    // The rotated-away token is a reuse there too, which revokes its whole chain.
    let (status, refused) = refused_while_catching_up(&europe, &laptop, limit).await;
    assert_eq!((status, refused.as_str()), (401, "token_reused"));
    let (status, body) = west.get(&rotated).await;
    assert_eq!((status, code(&body)), (401, "token_revoked"), "its chain");
    let (status, body) = europe.get(&tablet).await;
    assert_eq!(status, 200, "a token made while europe was away: {body}");
    let back = cluster.status(EUROPE).await.sessions;
    assert!(
        back.catching_up_validations + back.fenced_validations > 0,
        "europe read the other regions: {back:?}"
    );

    // Once anti-entropy has caught it up, it validates locally, and still refuses.
    wait_validating_locally(&cluster, EUROPE, &tablet).await;
    let (status, body) = europe.get(&phone).await;
    assert_eq!((status, code(&body)), (401, "token_revoked"));
    assert_eq!(europe.get(&tablet).await.0, 200);
    cluster.shutdown().await;
}

/// Cuts `inside` off from every other node of `cluster` (both ways), or heals every
/// node with `None`, through each node's fault plan (`--chaos`).
async fn cut(cluster: &ProcessCluster, inside: Option<&str>) {
    let secret = cartwheel::cluster::load_admin_secret(cluster.dir.path()).expect("admin secret");
    let http = reqwest::Client::new();
    for node in &cluster.nodes {
        let others: Vec<&str> = match inside {
            None => Vec::new(),
            Some(cut) if node.id.as_str() == cut => cluster
                .nodes
                .iter()
                .map(|other| other.id.as_str())
                .filter(|other| *other != cut)
                .collect(),
            Some(cut) => vec![cut],
        };
        let plan = json!({"blocked_to_nodes": others, "blocked_from_nodes": others});
        let response = http
            .put(cluster.url(node.id.as_str(), "/v1/admin/faults"))
            .bearer_auth(&secret)
            .json(&plan)
            .send()
            .await
            .expect("fault plan sent");
        assert!(response.status().is_success(), "{}", response.status());
    }
}

fn client_of(cluster: &ProcessCluster, region: &str) -> (String, Client) {
    let node = cluster
        .nodes
        .iter()
        .find(|node| node.region.0 == region)
        .expect("a node in the region");
    let client = Client {
        http: reqwest::Client::new(),
        base: cluster.url(node.id.as_str(), ""),
    };
    (node.id.as_str().to_string(), client)
}

/// Validates `session` at `client` until it answers `status` (at most `limit`); no
/// answer may be `200` while `revoked`.
async fn wait_answer(client: &Client, session: &Session, status: u16, revoked: bool) -> Value {
    let started = Instant::now();
    loop {
        let (got, body) = client.get(session).await;
        assert!(!(revoked && got == 200), "a revoked token was let in");
        if got == status {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still {got} {body} after 30 s (wanted {status})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_region_cut_off_fails_closed_inside_and_catches_up_before_validating_again() {
    let cluster = ProcessCluster::up(THREE_REGIONS, &["--chaos"]);
    let (_, east) = client_of(&cluster, "east");
    let (europe_id, europe) = client_of(&cluster, "europe");
    let phone = east.login("erin", "phone").await;
    let spare = europe.login("erin", "spare").await;
    wait_answer(&europe, &phone, 200, false).await;

    cut(&cluster, Some(&europe_id)).await;
    // Inside: every node fences itself and fails closed.
    let body = wait_answer(&europe, &phone, 503, false).await;
    assert_eq!(code(&body), "auth_fenced");
    // Outside: once europe is held dead for the margin, a logout succeeds.
    let (east_id, _) = client_of(&cluster, "east");
    cluster
        .wait_status(&east_id, Duration::from_secs(20), |status| {
            status
                .members
                .iter()
                .any(|m| m.node == europe_id && m.state == "dead")
        })
        .await;
    let started = Instant::now();
    let (status, body) = east
        .send(reqwest::Method::DELETE, "/v1/session", &phone, None)
        .await;
    println!("logout with europe cut off took {:?}", started.elapsed());
    assert_eq!(status, 204, "logout outside the cut: {body}");
    // Inside, nothing that needs another region succeeds, and the token stays out.
    let (status, body) = europe
        .send(reqwest::Method::DELETE, "/v1/session", &spare, None)
        .await;
    assert_eq!(status, 503, "logout inside the cut: {body}");
    let body = wait_answer(&europe, &phone, 503, true).await;
    assert_eq!(code(&body), "auth_fenced");

    // Healed: europe refuses the token revoked meanwhile, catching up, then locally.
    cut(&cluster, None).await;
    let body = wait_answer(&europe, &phone, 401, true).await;
    assert_eq!(code(&body), "token_revoked");
    let status = cluster.status(&europe_id).await;
    assert!(status.sessions.validations_failed_closed > 0);
    assert_eq!(
        europe.get(&spare).await.0,
        200,
        "the spare was never revoked"
    );
}
