//! RESP3 client-side caching and keyspace notifications across regions, against a
//! cluster of `cartwheel` processes (three regions of two nodes): a key a client read
//! through a node of one region is invalidated after a write or a delete through
//! another region; `BCAST` prefixes; tracking off; keyspace notifications of deletes,
//! each once per subscriber; a node of the reader's region stopped (everything
//! invalidated); and redis-py's own client-side cache (the pinned virtual environment of
//! `resp_middleware`) invalidated by a write through another region.
//!
//! An expiry is reported at its deadline (each node reads its expiry index every
//! second), and again, under the same digest, when a write or the sweeper ends the key:
//! here a key left alone past its `PX` and one then deleted each make one `expired`
//! event and invalidate their readers.

use crate::common::ProcessCluster;

use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Session keys set to expire together, each of whose expiries must be published once.
const EXPIRING_KEYS: usize = 20;

/// Three regions of two nodes, every key on both nodes of each, with the default
/// topology's distances.
const THREE_REGIONS: &str = r#"
[cluster]
partitions = 64
replicas_per_region = 2
[[regions]]
name = "a"
nodes = 2
[[regions]]
name = "b"
nodes = 2
[[regions]]
name = "c"
nodes = 2
[latency]
intra_region_rtt_ms = 0.5
jitter_ms = 2.0
[latency.rtt_ms]
"a/b" = 67.0
"a/c" = 68.0
"b/c" = 124.0
"#;

/// The longest one exchange, or one change reaching a listener, may take.
const LIMIT: Duration = Duration::from_secs(15);
/// Pushes a test connection keeps unread at most.
const PUSHES_HELD_MAX: usize = 4096;

type Pushes = mpsc::Receiver<PushInfo>;

async fn plain(addr: SocketAddr) -> MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
    tokio::time::timeout(LIMIT, client.get_multiplexed_async_connection())
        .await
        .expect("connects in time")
        .expect("connects")
}

/// A RESP3 connection whose pushes arrive on the receiver.
async fn resp3(addr: SocketAddr) -> (MultiplexedConnection, Pushes) {
    let client = redis::Client::open(format!("redis://{addr}/?protocol=resp3")).expect("client");
    let (sender, receiver) = mpsc::channel(PUSHES_HELD_MAX);
    let config =
        redis::AsyncConnectionConfig::new().set_push_sender(move |push| sender.try_send(push));
    let connection = tokio::time::timeout(
        LIMIT,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .expect("connects in time")
    .expect("connects");
    (connection, receiver)
}

async fn run<T: redis::FromRedisValue>(
    connection: &mut MultiplexedConnection,
    command: &redis::Cmd,
) -> T {
    tokio::time::timeout(LIMIT, command.query_async(connection))
        .await
        .expect("answered in time")
        .unwrap_or_else(|error| panic!("{error}"))
}

fn cmd(words: &[&str]) -> redis::Cmd {
    let mut command = redis::cmd(words[0]);
    for word in &words[1..] {
        command.arg(*word);
    }
    command
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// Notifications of `kind` among `notes` that name `word` (channel or payload).
fn told(notes: &[PushInfo], kind: PushKind, word: &str) -> usize {
    notes
        .iter()
        .filter(|push| push.kind == kind)
        .filter(|push| push.data.iter().filter_map(text).any(|named| named == word))
        .count()
}

/// The keys an invalidation names; `None` for a flush (a null).
fn invalidated(push: &PushInfo) -> Option<Vec<String>> {
    match push.data.first() {
        Some(Value::Array(keys)) => Some(keys.iter().filter_map(text).collect()),
        _ => None,
    }
}

/// Reads pushes until `wanted` holds of one (returned), every push read kept in `seen`;
/// panics after `LIMIT`.
async fn until(
    pushes: &mut Pushes,
    seen: &mut Vec<PushInfo>,
    wanted: impl Fn(&PushInfo) -> bool,
) -> PushInfo {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let push = tokio::time::timeout_at(deadline, pushes.recv())
            .await
            .unwrap_or_else(|_| panic!("no such push within {LIMIT:?}; seen {seen:?}"))
            .expect("the connection's pushes");
        seen.push(push.clone());
        if wanted(&push) {
            return push;
        }
    }
}

fn names_key(push: &PushInfo, key: &str) -> bool {
    push.kind == PushKind::Invalidate
        && invalidated(push).is_some_and(|keys| keys.iter().any(|named| named == key))
}

fn is_flush(push: &PushInfo) -> bool {
    push.kind == PushKind::Invalidate && invalidated(push).is_none()
}

/// Reads `key` through `connection` until it answers `value`.
async fn read_until(connection: &mut MultiplexedConnection, key: &str, value: Option<&str>) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let read: Option<String> = run(connection, &cmd(&["GET", key])).await;
        if read.as_deref() == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} never read {value:?} (last {read:?})"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_and_notifications_follow_changes_across_regions() {
    let cluster = ProcessCluster::up(THREE_REGIONS, &[]);
    let resp = |id: &str| cluster.node(id).resp.expect("the node serves RESP");
    let (mut reader, mut reader_pushes) = resp3(resp("a-1")).await;
    let mut writer = plain(resp("b-1")).await;
    let mut seen = Vec::new();

    // Tracking on: the hub starts reading the region's feeds, which begins with a
    // flush (nothing before it can have been missed).
    let on: String = run(&mut reader, &cmd(&["CLIENT", "TRACKING", "ON"])).await;
    assert_eq!(on, "OK");
    until(&mut reader_pushes, &mut seen, is_flush).await;
    let info: Value = run(&mut reader, &cmd(&["CLIENT", "TRACKINGINFO"])).await;
    assert!(format!("{info:?}").contains("\"on\""), "{info:?}");

    // A write through region b invalidates the key read through region a.
    let _: () = run(&mut writer, &cmd(&["SET", "cart:1", "one"])).await;
    read_until(&mut reader, "cart:1", Some("one")).await;
    let _: () = run(&mut writer, &cmd(&["SET", "cart:1", "two"])).await;
    until(&mut reader_pushes, &mut seen, |push| {
        names_key(push, "cart:1")
    })
    .await;
    read_until(&mut reader, "cart:1", Some("two")).await;

    // So does a delete through region c.
    // (Read there first: a delete of a key its region has not seen yet deletes nothing.)
    let mut deleter = plain(resp("c-2")).await;
    read_until(&mut deleter, "cart:1", Some("two")).await;
    let deleted: i64 = run(&mut deleter, &cmd(&["DEL", "cart:1"])).await;
    assert_eq!(deleted, 1);
    until(&mut reader_pushes, &mut seen, |push| {
        names_key(push, "cart:1")
    })
    .await;
    read_until(&mut reader, "cart:1", None).await;

    // BCAST: every key under the prefix, read or not, and none outside it.
    let (mut broadcast, mut broadcast_pushes) = resp3(resp("a-2")).await;
    let refused = tokio::time::timeout(
        LIMIT,
        cmd(&["CLIENT", "TRACKING", "ON", "PREFIX", "user:"]).query_async::<()>(&mut broadcast),
    )
    .await
    .expect("answered in time")
    .unwrap_err();
    assert!(
        refused.to_string().contains("PREFIX option requires BCAST"),
        "{refused}"
    );
    let _: () = run(
        &mut broadcast,
        &cmd(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:"]),
    )
    .await;
    let mut broadcast_seen = Vec::new();
    until(&mut broadcast_pushes, &mut broadcast_seen, is_flush).await;
    let _: () = run(&mut writer, &cmd(&["SET", "other:7", "x"])).await;
    let _: () = run(&mut writer, &cmd(&["SET", "user:7", "x"])).await;
    until(&mut broadcast_pushes, &mut broadcast_seen, |push| {
        names_key(push, "user:7")
    })
    .await;
    assert!(
        !broadcast_seen.iter().any(|push| names_key(push, "other:7")),
        "a key outside the prefix was pushed: {broadcast_seen:?}"
    );

    // Keyspace notifications of deletes on a node of region a, each once.
    let mut admin = plain(resp("a-2")).await;
    let _: () = run(
        &mut admin,
        &cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEgx"]),
    )
    .await;
    let flags: Vec<String> = run(
        &mut admin,
        &cmd(&["CONFIG", "GET", "notify-keyspace-events"]),
    )
    .await;
    assert_eq!(flags, vec!["notify-keyspace-events", "gxKE"]);
    let (mut subscriber, mut messages) = resp3(resp("a-2")).await;
    tokio::time::timeout(LIMIT, subscriber.subscribe("__keyevent@0__:del"))
        .await
        .expect("in time")
        .expect("subscribed");
    tokio::time::timeout(LIMIT, subscriber.psubscribe("__keyspace@0__:user:*"))
        .await
        .expect("in time")
        .expect("subscribed");
    tokio::time::timeout(LIMIT, subscriber.subscribe("__keyevent@0__:expired"))
        .await
        .expect("in time")
        .expect("subscribed");
    let mut notes = Vec::new();
    read_until(&mut deleter, "user:7", Some("x")).await;
    let deleted: i64 = run(&mut deleter, &cmd(&["DEL", "user:7"])).await;
    assert_eq!(deleted, 1);
    let payload = |push: &PushInfo| push.data.last().and_then(text);
    until(&mut messages, &mut notes, |push| {
        push.kind == PushKind::Message && payload(push).as_deref() == Some("user:7")
    })
    .await;
    // Another delete after it, so that a second report of the first (by the other
    // replica of region a) has had its chance to be published twice.
    let _: () = run(&mut writer, &cmd(&["SET", "user:8", "x"])).await;
    read_until(&mut deleter, "user:8", Some("x")).await;
    let _: i64 = run(&mut deleter, &cmd(&["DEL", "user:8"])).await;
    until(&mut messages, &mut notes, |push| {
        push.kind == PushKind::Message && payload(push).as_deref() == Some("user:8")
    })
    .await;
    assert_eq!(told(&notes, PushKind::Message, "user:7"), 1, "{notes:?}");
    assert_eq!(
        told(&notes, PushKind::PMessage, "__keyspace@0__:user:7"),
        1,
        "{notes:?}"
    );
    assert_eq!(told(&notes, PushKind::Message, "user:8"), 1, "{notes:?}");

    // An expiry: the key's PX runs out; a write touching it then ends it (lazily), and
    // that is published as `expired`, once, and invalidates the readers.
    let _: () = run(&mut writer, &cmd(&["SET", "sess:9", "v", "PX", "300"])).await;
    read_until(&mut reader, "sess:9", Some("v")).await;
    read_until(&mut reader, "sess:9", None).await;
    read_until(&mut admin, "sess:9", None).await;
    let deleted: i64 = run(&mut admin, &cmd(&["DEL", "sess:9"])).await;
    assert_eq!(deleted, 0, "an expired key is not deleted");
    until(&mut messages, &mut notes, |push| {
        push.kind == PushKind::Message && payload(push).as_deref() == Some("sess:9")
    })
    .await;
    until(&mut reader_pushes, &mut seen, |push| {
        names_key(push, "sess:9")
    })
    .await;
    // An expiry of a key nobody touches after: reported at its deadline.
    let _: () = run(&mut writer, &cmd(&["SET", "sess:11", "v", "PX", "300"])).await;
    read_until(&mut reader, "sess:11", Some("v")).await;
    until(&mut reader_pushes, &mut seen, |push| {
        names_key(push, "sess:11")
    })
    .await;
    until(&mut messages, &mut notes, |push| {
        push.kind == PushKind::Message && payload(push).as_deref() == Some("sess:11")
    })
    .await;
    // Many session keys expiring together: each expiry is published once.
    let batch: Vec<String> = (0..EXPIRING_KEYS)
        .map(|n| format!("sess:batch:{n}"))
        .collect();
    for key in &batch {
        let _: () = run(&mut writer, &cmd(&["SET", key, "v", "PX", "400"])).await;
    }
    // In any order: wait until each has been published.
    while batch
        .iter()
        .any(|key| told(&notes, PushKind::Message, key) == 0)
    {
        until(&mut messages, &mut notes, |push| {
            push.kind == PushKind::Message && payload(push).is_some_and(|key| batch.contains(&key))
        })
        .await;
    }
    let _: () = run(&mut writer, &cmd(&["SET", "user:10", "x"])).await;
    read_until(&mut deleter, "user:10", Some("x")).await;
    let _: i64 = run(&mut deleter, &cmd(&["DEL", "user:10"])).await;
    until(&mut messages, &mut notes, |push| {
        push.kind == PushKind::Message && payload(push).as_deref() == Some("user:10")
    })
    .await;
    assert_eq!(told(&notes, PushKind::Message, "sess:9"), 1, "{notes:?}");
    assert_eq!(told(&notes, PushKind::Message, "sess:11"), 1, "{notes:?}");
    for key in &batch {
        assert_eq!(told(&notes, PushKind::Message, key), 1, "{key}: {notes:?}");
    }
    let expired = notes
        .iter()
        .find(|push| push.kind == PushKind::Message && payload(push).as_deref() == Some("sess:9"))
        .expect("the expiry");
    assert_eq!(
        text(&expired.data[0]).as_deref(),
        Some("__keyevent@0__:expired")
    );

    let broadcast_user8 = until(&mut broadcast_pushes, &mut broadcast_seen, |push| {
        names_key(push, "user:8")
    })
    .await;
    assert!(names_key(&broadcast_user8, "user:8"));

    // Tracking off: nothing more for the reader, while a witness is told.
    let (mut witness, mut witness_pushes) = resp3(resp("a-1")).await;
    let _: () = run(&mut witness, &cmd(&["CLIENT", "TRACKING", "ON"])).await;
    let _: () = run(&mut reader, &cmd(&["CLIENT", "TRACKING", "OFF"])).await;
    let redirect: i64 = run(&mut reader, &cmd(&["CLIENT", "GETREDIR"])).await;
    assert_eq!(redirect, -1);
    let _: () = run(&mut writer, &cmd(&["SET", "cart:2", "one"])).await;
    read_until(&mut witness, "cart:2", Some("one")).await;
    read_until(&mut reader, "cart:2", Some("one")).await;
    let mut witness_seen = Vec::new();
    let _: () = run(&mut writer, &cmd(&["SET", "cart:2", "two"])).await;
    until(&mut witness_pushes, &mut witness_seen, |push| {
        names_key(push, "cart:2")
    })
    .await;
    let _: String = run(&mut reader, &cmd(&["PING"])).await;
    while let Ok(push) = reader_pushes.try_recv() {
        assert!(!names_key(&push, "cart:2"), "tracking is off: {push:?}");
    }

    if let Some(python) = redis_py() {
        redis_py_cache_is_invalidated_across_regions(&python, resp("a-1"), resp("b-2"));
    }

    // A node of the witness's region stops: its feed is lost, so everything is.
    cluster.kill("a-2");
    until(&mut witness_pushes, &mut witness_seen, is_flush).await;
}

/// The pinned virtual environment's python, if python3 is there (else skipped, as
/// `resp_middleware` is).
fn redis_py() -> Option<std::path::PathBuf> {
    let found = std::process::Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success());
    let hint = "redis-py's client-side cache runs in a virtual environment: python3 with the \
                venv and pip modules (Debian: apt-get install python3 python3-venv python3-pip)";
    crate::common::real_client_available("python3 with venv and pip", found, hint)
        .then(super::resp_middleware::shop_python)
}

/// redis-py's client-side cache on a node of region a holds a value (with no time to
/// live: only an invalidation removes it); a write through region b reaches it.
const REDIS_PY_CACHE: &str = r#"
import sys, time
import redis
from redis.cache import CacheConfig

cached_at, writer_at = sys.argv[1], sys.argv[2]
host, port = cached_at.rsplit(":", 1)
cached = redis.Redis(host=host, port=int(port), protocol=3, cache_config=CacheConfig())
host, port = writer_at.rsplit(":", 1)
writer = redis.Redis(host=host, port=int(port))
writer.set("py:session", "first")
deadline = time.monotonic() + 15
while cached.get("py:session") != b"first":
    assert time.monotonic() < deadline, "the first value never arrived"
cache = cached.get_cache()
assert cache.size >= 1, "redis-py cached nothing"
assert cached.get("py:session") == b"first"
writer.set("py:session", "second")
deadline = time.monotonic() + 15
while cached.get("py:session") != b"second":
    assert time.monotonic() < deadline, "the cached value was never invalidated"
print("invalidated")
"#;

fn redis_py_cache_is_invalidated_across_regions(
    python: &std::path::Path,
    cached_at: SocketAddr,
    writer_at: SocketAddr,
) {
    let output = std::process::Command::new(python)
        .args(["-c", REDIS_PY_CACHE])
        .arg(cached_at.to_string())
        .arg(writer_at.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("python runs");
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("invalidated"),
        "redis-py's cache: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes measured by `invalidation_latency` per writer region.
const LATENCY_WRITES: usize = 300;

/// The time from a write's acknowledgement to the reader's invalidation push, on the
/// default topology, with the writer in the reader's region and in another: README's
/// figures. Run on a release build:
/// `cargo test --release --test integration resp_tracking::invalidation_latency -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run on a release build"]
async fn invalidation_latency() {
    let topology = std::fs::read_to_string(crate::common::repo_file("regions/default.toml"))
        .expect("the default topology");
    let cluster = ProcessCluster::up(&topology, &[]);
    let resp = |id: &str| cluster.node(id).resp.expect("the node serves RESP");
    let client = redis::Client::open(format!("redis://{}/?protocol=resp3", resp("us-east-1")))
        .expect("client");
    let (sender, mut pushes) = mpsc::channel(PUSHES_HELD_MAX);
    let config = redis::AsyncConnectionConfig::new()
        .set_push_sender(move |push| sender.try_send((Instant::now(), push)));
    let mut reader = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connects");
    let _: () = run(&mut reader, &cmd(&["CLIENT", "TRACKING", "ON"])).await;
    for (label, writer_node) in [("same region", "us-east-2"), ("cross region", "eu-west-1")] {
        let mut writer = plain(resp(writer_node)).await;
        let (mut pushed_us, mut acked_us) = (Vec::new(), Vec::new());
        let mut before_ack = 0;
        for index in 0..LATENCY_WRITES {
            let key = format!("latency:{writer_node}:{index}");
            let _: Option<String> = run(&mut reader, &cmd(&["GET", &key])).await;
            let sent = Instant::now();
            let _: () = run(&mut writer, &cmd(&["SET", &key, "x"])).await;
            let acknowledged = Instant::now();
            let deadline = tokio::time::Instant::now() + LIMIT;
            let pushed = loop {
                let (at, push) = tokio::time::timeout_at(deadline, pushes.recv())
                    .await
                    .expect("an invalidation in time")
                    .expect("pushes");
                if names_key(&push, &key) {
                    break at;
                }
            };
            before_ack += usize::from(pushed <= acknowledged);
            let micros = |at: Instant| {
                u64::try_from(at.duration_since(sent).as_micros()).unwrap_or(u64::MAX)
            };
            pushed_us.push(micros(pushed));
            acked_us.push(micros(acknowledged));
        }
        let quantiles = |samples: &mut Vec<u64>| {
            samples.sort_unstable();
            let at = |fraction: f64| {
                samples[((samples.len() as f64 * fraction) as usize).min(samples.len() - 1)] as f64
                    / 1000.0
            };
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                at(0.50),
                at(0.99),
                at(1.0)
            )
        };
        println!(
            "{label} ({writer_node} -> reader on us-east-1), {} writes: from the SET sent to the \
             invalidation push {}; to the SET's acknowledgement {}; {before_ack} pushes came \
             before the acknowledgement",
            pushed_us.len(),
            quantiles(&mut pushed_us),
            quantiles(&mut acked_us),
        );
    }
}
