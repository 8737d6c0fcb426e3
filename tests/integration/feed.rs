//! `GET /v1/feed` against real nodes of two regions: a write through the other region
//! reaches a reader of this one, once though both replicas here report it; a position
//! handed out by one node resumes at the other node of the region with the changes
//! after it only; deletes and expiries read as such; a session user's feed needs that
//! user's token; a node down or restarted makes the reader behind; the event-stream form
//! resumes from an event's id (`Last-Event-ID`).

use crate::common;

use cartwheel::config::TuningFlags;
use common::sessions::Client;
use common::{InProcessCluster, ADMIN_SECRET};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The indexes of the nodes of `region`.
fn region(cluster: &InProcessCluster, name: &str) -> Vec<usize> {
    let nodes = cluster.nodes.iter().enumerate();
    nodes
        .filter(|(_, node)| node.region.as_str() == name)
        .map(|(index, _)| index)
        .collect()
}

/// One `GET /v1/feed?{query}` (with `position` when given), its status and body.
async fn feed(
    cluster: &InProcessCluster,
    index: usize,
    query: &str,
    position: Option<&str>,
    bearer: Option<&str>,
) -> (u16, Value) {
    let mut url = format!("{}?{query}", cluster.url(index, "/v1/feed"));
    if let Some(position) = position {
        url.push_str(&format!("&position={position}"));
    }
    let mut request = reqwest::Client::new().get(url);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// What a reader saw while following the feed until `done` held of everything seen.
struct Followed {
    changes: Vec<Value>,
    behind: bool,
    position: String,
}

/// Long-polls node `index` from `position` (at most 30 s in all) until `done` holds of
/// the changes seen, then until an answer brings nothing (the other replicas' reports
/// of those changes read too: a change two replicas report may come again from a
/// position taken between their reports); every answer lists a change at most once.
async fn follow(
    cluster: &InProcessCluster,
    index: usize,
    query: &str,
    position: &str,
    bearer: Option<&str>,
    done: impl Fn(&[Value]) -> bool,
) -> Followed {
    let started = Instant::now();
    let mut followed = Followed {
        changes: Vec::new(),
        behind: false,
        position: position.to_string(),
    };
    let mut quiet = false;
    while !quiet || !done(&followed.changes) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not seen in 30 s; saw {:?}",
            followed.changes
        );
        let wait_ms = if done(&followed.changes) { 300 } else { 2000 };
        let query = format!("{query}&wait_ms={wait_ms}");
        let (status, body) = feed(cluster, index, &query, Some(&followed.position), bearer).await;
        assert_eq!(status, 200, "{body}");
        let changes = body["changes"].as_array().unwrap().clone();
        let mut named: Vec<(String, String)> = changes
            .iter()
            .map(|c| (c["key"].to_string(), c["digest"].to_string()))
            .collect();
        named.sort();
        let count = named.len();
        named.dedup();
        assert_eq!(named.len(), count, "a change listed twice: {changes:?}");
        quiet = changes.is_empty() && done(&followed.changes);
        followed.changes.extend(changes);
        followed.behind |= body["behind"].as_bool().unwrap();
        followed.position = body["position"].as_str().unwrap().to_string();
    }
    followed
}

fn has(changes: &[Value], class: &str, key: &str, kind: &str) -> bool {
    changes
        .iter()
        .any(|c| c["class"] == class && c["key"] == key && c["kind"] == kind)
}

/// Where a reader starting now stands (not behind: it starts at the tails).
async fn tail(
    cluster: &InProcessCluster,
    index: usize,
    query: &str,
    bearer: Option<&str>,
) -> String {
    let (status, body) = feed(cluster, index, &format!("{query}&wait_ms=0"), None, bearer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["behind"], false, "{body}");
    body["position"].as_str().unwrap().to_string()
}

/// A kv write (or delete) of `key` at node `index`, with the causal context of a read
/// first, so a delete supersedes the value instead of standing beside it.
async fn kv(cluster: &InProcessCluster, index: usize, method: reqwest::Method, key: &str) {
    let url = cluster.url(index, &format!("/v1/kv/{key}"));
    let client = reqwest::Client::new();
    let read = client.get(&url).send().await.unwrap();
    let mut request = client.request(method, url).body("value");
    if let Some(context) = read.headers().get(cartwheel::api::CONTEXT_HEADER) {
        request = request.header(cartwheel::api::CONTEXT_HEADER, context.clone());
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// Sends one RESP command to `node` and reads its one-line answer.
async fn resp(cluster: &InProcessCluster, index: usize, args: &[&str]) -> String {
    let addr = cluster.nodes[index].resp_addr.expect("a RESP listener");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut command = format!("*{}\r\n", args.len());
    for arg in args {
        command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(command.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n") {
        let read = stream.read(&mut byte).await.unwrap();
        assert_eq!(read, 1, "the connection closed");
        answer.push(byte[0]);
    }
    String::from_utf8_lossy(&answer).trim_end().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_follows_writes_from_another_region_and_resumes_at_another_node() {
    let cluster = InProcessCluster::start(common::TWO_REGIONS_OF_TWO, TuningFlags::default()).await;
    let (east, west) = (region(&cluster, "east"), region(&cluster, "west"));
    let (here, there, writer) = (east[0], east[1], west[0]);

    // A write through the west reaches a kv reader at one east node, listed once.
    let start = tail(&cluster, here, "class=kv", None).await;
    kv(&cluster, writer, reqwest::Method::PUT, "cart:1").await;
    let first = follow(&cluster, here, "class=kv", &start, None, |seen| {
        has(seen, "kv", "cart:1", "written")
    })
    .await;
    assert!(!first.behind);
    assert_eq!(first.changes[0]["encoding"], "utf8");

    // Its position resumes at the other east node: what came after, not before.
    kv(&cluster, writer, reqwest::Method::PUT, "cart:2").await;
    kv(&cluster, writer, reqwest::Method::DELETE, "cart:1").await;
    let second = follow(&cluster, there, "class=kv", &first.position, None, |seen| {
        has(seen, "kv", "cart:2", "written") && has(seen, "kv", "cart:1", "deleted")
    })
    .await;
    assert!(!second.behind);
    let written = first
        .changes
        .iter()
        .find(|c| c["key"] == "cart:1")
        .map(|c| c["digest"].clone());
    assert!(
        !second
            .changes
            .iter()
            .any(|c| c["key"] == "cart:1" && Some(&c["digest"]) == written.as_ref()),
        "a change from before the position came again: {:?} after {:?}",
        second.changes,
        first.changes
    );

    // A key filter lets through only its keys; the resp class needs the admin secret.
    let keyed = tail(&cluster, there, "class=kv&key=only", None).await;
    kv(&cluster, writer, reqwest::Method::PUT, "other").await;
    kv(&cluster, writer, reqwest::Method::PUT, "only").await;
    let only = follow(&cluster, there, "class=kv&key=only", &keyed, None, |seen| {
        has(seen, "kv", "only", "written")
    })
    .await;
    assert!(
        only.changes.iter().all(|c| c["key"] == "only"),
        "{:?}",
        only.changes
    );
    let (status, body) = feed(&cluster, here, "class=resp&wait_ms=0", None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("bad_admin_secret"))
    );

    // An expiry reads as one: a key past its deadline, then deleted.
    let admin = Some(ADMIN_SECRET);
    let start = tail(&cluster, here, "class=resp", admin).await;
    assert_eq!(
        resp(&cluster, writer, &["SET", "brief", "v", "PX", "100"]).await,
        "+OK"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while resp(&cluster, writer, &["EXISTS", "brief"]).await != ":0" {
        assert!(Instant::now() < deadline, "brief still exists after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    resp(&cluster, writer, &["DEL", "brief"]).await;
    let expiry = follow(&cluster, here, "class=resp", &start, admin, |seen| {
        has(seen, "resp", "brief", "expired")
    })
    .await;
    assert!(has(&expiry.changes, "resp", "brief", "written"));

    // At most FEED_STREAMS_MAX feeds at once on a node: one more is 503 overloaded,
    // and a slot comes back when a stream closes.
    let mut open = Vec::new();
    for _ in 0..cartwheel::limits::FEED_STREAMS_MAX {
        open.push(sse(&cluster, here, "class=kv", "", None, None).await);
    }
    let (status, body) = feed(&cluster, here, "class=kv&wait_ms=0", None, None).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("overloaded")));
    open.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = feed(&cluster, here, "class=kv&wait_ms=0", None, None).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(open);

    // Bad input: 400 with its code.
    let (status, body) = feed(&cluster, here, "class=kv", Some("garbage!"), None).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_position")));
    let (status, body) = feed(&cluster, here, "class=nope", None, None).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_filter")));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_users_feed_needs_their_token_and_a_restart_makes_the_reader_behind() {
    let mut cluster =
        InProcessCluster::start(common::TWO_REGIONS_OF_TWO, TuningFlags::default()).await;
    let (east, west) = (region(&cluster, "east"), region(&cluster, "west"));
    let (here, there, writer) = (east[0], east[1], west[0]);

    // A user's other device's backend follows their session document.
    let west_client = Client::new(&cluster, writer);
    let phone = west_client.login("dana", "phone").await;
    let laptop = Client::new(&cluster, here).login("dana", "laptop").await;
    let other = Client::new(&cluster, here).login("erin", "phone").await;
    let mine = Some(laptop.token.as_str());
    let start = tail(&cluster, here, "user=dana", mine).await;
    let (status, body) = west_client
        .send(
            reqwest::Method::PUT,
            "/v1/session/prefs/theme",
            &phone,
            Some(serde_json::json!({"value": "dark"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let followed = follow(&cluster, here, "user=dana", &start, mine, |seen| {
        has(seen, "user", "dana", "written")
    })
    .await;
    assert!(followed.changes.iter().all(|c| c["key"] == "dana"));
    let (status, body) = feed(
        &cluster,
        here,
        "user=dana&wait_ms=0",
        None,
        Some(&other.token),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, body) = feed(&cluster, here, "user=dana&wait_ms=0", None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_missing"))
    );

    // The event stream: an event per change, with the position after it as its id.
    let admin = ADMIN_SECRET;
    let position = tail(&cluster, here, "class=kv", None).await;
    let mut events = sse(&cluster, here, "class=kv", &position, None, None).await;
    kv(&cluster, writer, reqwest::Method::PUT, "streamed:1").await;
    let acknowledged = Instant::now();
    let (id, data) = events
        .until("change", |data| data["key"] == "streamed:1")
        .await;
    println!(
        "event from the other region {:?} after the write's acknowledgement",
        acknowledged.elapsed()
    );
    assert_eq!(data["kind"], "written");

    // An event's id is a position: read on from it until both east replicas'
    // reports are behind it, then resume at the other node with `Last-Event-ID`: what
    // came after, not before.
    let drained = follow(&cluster, here, "class=kv", &id, None, |_| true).await;
    kv(&cluster, writer, reqwest::Method::PUT, "streamed:2").await;
    let last = Some(drained.position.as_str());
    let mut resumed = sse(&cluster, there, "class=kv", "", last, None).await;
    let (_, data) = resumed
        .until("change", |data| data["key"] == "streamed:2")
        .await;
    assert_eq!(data["kind"], "written");
    assert!(
        !resumed.seen.iter().any(|data| data["key"] == "streamed:1"),
        "a change before Last-Event-ID came again"
    );
    drop((events, resumed));

    // The other east node restarts: a reader from before it is behind.
    let before = tail(&cluster, here, "class=auth", Some(admin)).await;
    let id = cluster.stop(there).await;
    // While it is down, every answer is behind (never a silent gap).
    cluster.wait_dead(here, id.as_str()).await;
    for _ in 0..2 {
        let query = "class=auth&wait_ms=300";
        let (status, body) = feed(&cluster, here, query, Some(&before), Some(admin)).await;
        assert_eq!(
            (status, body["behind"].as_bool()),
            (200, Some(true)),
            "{body}"
        );
    }
    let mut down = sse(&cluster, here, "class=auth", "", Some(&before), Some(admin)).await;
    down.until("behind", |data| data["behind"] == true).await;
    drop(down);
    cluster.start_again(there, &id).await;
    let (status, body) = feed(
        &cluster,
        here,
        "class=auth&wait_ms=5000",
        Some(&before),
        Some(admin),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["behind"], true, "{body}");
    // Read on from there, it is no longer behind.
    let position = body["position"].as_str().unwrap();
    let (status, body) = feed(
        &cluster,
        here,
        "class=auth&wait_ms=0",
        Some(position),
        Some(admin),
    )
    .await;
    assert_eq!(
        (status, body["behind"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    cluster.shutdown().await;
}

/// An open event stream and the events read from it so far.
struct Events {
    response: reqwest::Response,
    buffer: String,
    seen: Vec<Value>,
}

async fn sse(
    cluster: &InProcessCluster,
    index: usize,
    query: &str,
    position: &str,
    last_event_id: Option<&str>,
    bearer: Option<&str>,
) -> Events {
    let mut url = format!("{}?{query}", cluster.url(index, "/v1/feed"));
    if !position.is_empty() {
        url.push_str(&format!("&position={position}"));
    }
    let mut request = reqwest::Client::new()
        .get(url)
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    Events {
        response,
        buffer: String::new(),
        seen: Vec::new(),
    }
}

impl Events {
    /// Reads events (at most 30 s) until one named `name` whose data passes `wanted`;
    /// returns its id and data.
    async fn until(&mut self, name: &str, wanted: impl Fn(&Value) -> bool) -> (String, Value) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |field: &str| {
                    block
                        .lines()
                        .find_map(|line| line.strip_prefix(field))
                        .map(|value| value.trim_start().to_string())
                };
                let (event, id) = (field("event:"), field("id:"));
                let data: Value = serde_json::from_str(&field("data:").unwrap_or_default())
                    .unwrap_or(Value::Null);
                assert!(id.is_some(), "every event carries its position: {block}");
                if event.as_deref() == Some("change") {
                    self.seen.push(data.clone());
                }
                if event.as_deref() == Some(name) && wanted(&data) {
                    return (id.unwrap_or_default(), data);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("the event came within 30 s")
                .expect("the stream reads")
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_users_stream_ends_once_their_token_is_logged_out() {
    // A short idle timeout makes heartbeats (and the token's checks) come every 0.5 s.
    let mut flags = TuningFlags::default();
    flags.http.http_idle_timeout_ms = Some(1_500);
    let cluster = InProcessCluster::start(&common::single_region(1, 1), flags).await;
    let client = Client::new(&cluster, 0);
    let phone = client.login("dana", "phone").await;
    let mut events = sse(&cluster, 0, "user=dana", "", None, Some(&phone.token)).await;
    events.until("heartbeat", |_| true).await;
    let (status, body) = client
        .send(reqwest::Method::DELETE, "/v1/session", &phone, None)
        .await;
    assert_eq!(status, 204, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let chunk = tokio::time::timeout_at(deadline, events.response.chunk())
            .await
            .expect("the stream ends within 10 s of the logout");
        match chunk {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => break,
        }
    }
    cluster.shutdown().await;
}
