//! `SCAN` over the whole cluster and `DBSIZE`, against a 3-node cluster (N = 3, local
//! quorum reads) through the `redis` crate: every key seeded through any node is
//! listed, by any node, with `MATCH`, `TYPE` and `COUNT`; a cursor moves between nodes
//! and survives a node stopping and a node joining (partitions moving) mid-iteration;
//! deleted and expired keys are neither listed nor counted.

use crate::common::{single_region, InProcessCluster, ProcessCluster};

use cartwheel::config::TuningFlags;
use redis::aio::MultiplexedConnection;
use redis::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The longest any single exchange in these tests may take.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(20);
/// Calls one full iteration may take (one key per call at worst, when `COUNT` is 1).
const CALLS_MAX: usize = 5000;

async fn cluster() -> (InProcessCluster, Vec<MultiplexedConnection>) {
    let cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let mut connections = Vec::new();
    for node in &cluster.nodes {
        connections.push(connect(node.resp_addr.expect("in-process nodes serve RESP")).await);
    }
    (cluster, connections)
}

async fn connect(addr: std::net::SocketAddr) -> MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

async fn query<T: redis::FromRedisValue>(
    connection: &mut MultiplexedConnection,
    command: &redis::Cmd,
) -> redis::RedisResult<T> {
    tokio::time::timeout(EXCHANGE_LIMIT, command.query_async(connection))
        .await
        .expect("the node answers in time")
}

fn words(text: &str) -> redis::Cmd {
    let mut command = redis::Cmd::new();
    for word in text.split(' ') {
        command.arg(word);
    }
    command
}

/// Seeds `count` string keys `prefix{i}`, each through node `i % nodes`.
async fn seed(nodes: &mut [MultiplexedConnection], prefix: &str, count: usize) -> Vec<String> {
    let mut pipelines = vec![redis::pipe(); nodes.len()];
    let mut keys = Vec::new();
    for index in 0..count {
        let key = format!("{prefix}{index}");
        pipelines[index % nodes.len()]
            .cmd("SET")
            .arg(&key)
            .arg(index)
            .ignore();
        keys.push(key);
    }
    for (pipeline, node) in pipelines.iter().zip(nodes.iter_mut()) {
        let done: redis::RedisResult<()> =
            tokio::time::timeout(EXCHANGE_LIMIT, pipeline.query_async(node))
                .await
                .expect("the seed is answered in time");
        done.expect("seeded");
    }
    keys
}

/// A full iteration with `options`, call `c` sent to node `c % nodes` (a cursor any
/// node resumes); every key returned, with how often, and the calls it took.
async fn iterate(
    nodes: &mut [MultiplexedConnection],
    options: &str,
) -> (BTreeMap<String, usize>, usize) {
    let mut seen = BTreeMap::new();
    let mut cursor = 0u64;
    for call in 0..CALLS_MAX {
        let node = &mut nodes[call % nodes.len()];
        let command = words(&format!("SCAN {cursor}{options}"));
        let (next, keys): (u64, Vec<String>) = query(node, &command).await.expect("SCAN");
        for key in keys {
            *seen.entry(key).or_insert(0) += 1;
        }
        if next == 0 {
            return (seen, call + 1);
        }
        assert_ne!(next, cursor, "the cursor moves on");
        cursor = next;
    }
    panic!("no full iteration within {CALLS_MAX} calls");
}

/// Goes on with an iteration from `cursor` at `COUNT 10`, call `c` through
/// `nodes[c % nodes.len()]`, adding what it lists to `seen`, until the cursor is `0` or
/// `seen` holds `enough` keys; the cursor reached.
async fn scan_on(
    nodes: &mut [MultiplexedConnection],
    mut cursor: u64,
    seen: &mut Vec<String>,
    enough: usize,
) -> u64 {
    for call in 0..CALLS_MAX {
        let node = &mut nodes[call % nodes.len()];
        let command = words(&format!("SCAN {cursor} COUNT 10"));
        let (next, page): (u64, Vec<String>) = query(node, &command).await.unwrap();
        seen.extend(page);
        cursor = next;
        if cursor == 0 || seen.len() >= enough {
            break;
        }
    }
    cursor
}

fn set(keys: &[String]) -> BTreeSet<String> {
    keys.iter().cloned().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_iteration_through_every_node_lists_every_key_once() {
    let (cluster, mut nodes) = cluster().await;
    let strings = seed(&mut nodes, "user:", 300).await;
    let (seen, calls) = iterate(&mut nodes, " COUNT 25").await;
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), set(&strings));
    // No key twice: the cursor only moves past positions already listed.
    assert!(seen.values().all(|times| *times == 1), "{seen:?}");
    assert!(calls > 1, "300 keys at COUNT 25 take several calls");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn match_type_and_count_filter_and_pace_the_iteration() {
    let (cluster, mut nodes) = cluster().await;
    let strings = seed(&mut nodes, "s:", 200).await;
    let mut hashes = Vec::new();
    for index in 0..20 {
        let key = format!("h:{index}");
        let node = &mut nodes[index % 3];
        let added: i64 = query(node, &words(&format!("HSET {key} f v")))
            .await
            .unwrap();
        assert_eq!(added, 1);
        hashes.push(key);
    }
    let (only_hashes, _) = iterate(&mut nodes, " TYPE hash").await;
    assert_eq!(
        only_hashes.keys().cloned().collect::<BTreeSet<_>>(),
        set(&hashes)
    );
    let (only_strings, _) = iterate(&mut nodes, " TYPE string").await;
    assert_eq!(
        only_strings.keys().cloned().collect::<BTreeSet<_>>(),
        set(&strings)
    );
    let (lists, _) = iterate(&mut nodes, " TYPE list").await;
    assert!(lists.is_empty(), "{lists:?}");
    // MATCH: a glob over the key, `?`, sets and escapes as in Redis.
    let (tens, _) = iterate(&mut nodes, " MATCH s:1? COUNT 100").await;
    let expected: BTreeSet<String> = (10..20).map(|index| format!("s:{index}")).collect();
    assert_eq!(tens.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let (ranged, _) = iterate(&mut nodes, " MATCH h:[0-2] TYPE hash").await;
    let expected: BTreeSet<String> = ["h:0", "h:1", "h:2"].map(String::from).into();
    assert_eq!(ranged.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let (none, _) = iterate(&mut nodes, r" MATCH s\:1").await;
    assert_eq!(none.keys().collect::<Vec<_>>(), vec!["s:1"]);
    // COUNT paces the calls: a large one visits up to 64 partitions per call (all of
    // this cluster's 64), COUNT 1 ends a call at its first key.
    let (_, few_calls) = iterate(&mut nodes, " COUNT 1000").await;
    let (_, many_calls) = iterate(&mut nodes, " COUNT 1").await;
    assert!(few_calls <= 2, "{few_calls} calls at COUNT 1000");
    assert!(many_calls > 100, "{many_calls} calls at COUNT 1");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_cursors_and_options_are_refused() {
    let (cluster, mut nodes) = cluster().await;
    let node = &mut nodes[0];
    let past_the_ring = (1024u64 << 32).to_string();
    for (command, expected) in [
        ("SCAN abc".to_string(), "invalid cursor"),
        ("SCAN -1".to_string(), "invalid cursor"),
        (format!("SCAN {past_the_ring}"), "invalid cursor"),
        ("SCAN 0 MATCH".to_string(), "syntax error"),
        ("SCAN 0 COUNT 0".to_string(), "syntax error"),
        ("SCAN 0 COUNT x".to_string(), "not an integer"),
        ("SCAN 0 TYPE nope".to_string(), "unknown type name 'nope'"),
        ("SCAN 0 FROM 1".to_string(), "syntax error"),
        (
            format!("SCAN 0 MATCH {}", "*".repeat(513)),
            "longer than 512 bytes",
        ),
        (
            "DBSIZE x".to_string(),
            "wrong number of arguments for 'dbsize'",
        ),
    ] {
        let error = query::<Value>(node, &words(&command)).await.unwrap_err();
        assert!(error.to_string().contains(expected), "{command}: {error}");
    }
    let error = query::<Value>(node, &redis::cmd("SCAN")).await.unwrap_err();
    assert!(
        error.to_string().contains("wrong number of arguments"),
        "{error}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_and_expired_keys_are_neither_listed_nor_counted() {
    let (cluster, mut nodes) = cluster().await;
    let keys = seed(&mut nodes, "k", 60).await;
    for node in nodes.iter_mut() {
        let size: i64 = query(node, &redis::cmd("DBSIZE")).await.unwrap();
        assert_eq!(size, 60);
    }
    let removed: i64 = query(&mut nodes[1], &words("DEL k0 k1 k2 k3 k4"))
        .await
        .unwrap();
    assert_eq!(removed, 5);
    for key in &keys[5..10] {
        // A deadline in the past: the key expires at once.
        let set: i64 = query(&mut nodes[2], &words(&format!("PEXPIREAT {key} 1")))
            .await
            .unwrap();
        assert_eq!(set, 1);
    }
    let (seen, _) = iterate(&mut nodes, " COUNT 7").await;
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        set(&keys[10..])
    );
    for node in nodes.iter_mut() {
        let size: i64 = query(node, &redis::cmd("DBSIZE")).await.unwrap();
        assert_eq!(size, 50);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_survives_a_node_stopping_mid_iteration() {
    let (mut cluster, mut nodes) = cluster().await;
    let keys = seed(&mut nodes, "survivor:", 200).await;
    let mut seen = Vec::new();
    // The first half of the key space through node 0.
    let cursor = scan_on(&mut nodes[..1], 0, &mut seen, keys.len() / 2).await;
    assert_ne!(cursor, 0, "the iteration is stopped half-way");
    let stopped = cluster.stop(2).await;
    nodes.truncate(2);
    cluster.wait_dead(1, stopped.as_str()).await;
    // The rest through node 1, with the cursor node 0 handed out.
    let cursor = scan_on(&mut nodes[1..2], cursor, &mut seen, usize::MAX).await;
    assert_eq!(cursor, 0, "the iteration ends");
    assert_eq!(seen.len(), keys.len(), "no key twice");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), set(&keys));
    let size: i64 = query(&mut nodes[0], &redis::cmd("DBSIZE")).await.unwrap();
    assert_eq!(size, 200);
    // A read level two live replicas cannot meet: SCAN and DBSIZE answer TRYAGAIN,
    // never a partial page or count.
    let levelled: String = query(&mut nodes[0], &words("CARTWHEEL LEVEL read all"))
        .await
        .unwrap();
    assert_eq!(levelled, "OK");
    for command in ["SCAN 0", "DBSIZE"] {
        let unmet = query::<Value>(&mut nodes[0], &words(command))
            .await
            .unwrap_err();
        assert_eq!(
            unmet.kind(),
            redis::ErrorKind::TryAgain,
            "{command}: {unmet}"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_survives_a_node_joining_mid_iteration() {
    // N = 2 of 3: the joiner takes partitions from the others while the scan runs.
    let mut cluster = ProcessCluster::up(&single_region(3, 2), &[]);
    let mut nodes = Vec::new();
    for node in &cluster.nodes {
        nodes.push(connect(node.resp.expect("cluster up gives each node RESP")).await);
    }
    let keys = seed(&mut nodes, "joining:", 300).await;
    let mut seen = Vec::new();
    let cursor = scan_on(&mut nodes[..1], 0, &mut seen, keys.len() / 3).await;
    assert_ne!(cursor, 0, "the iteration is stopped a third of the way");
    let added = cluster.cli(&["add", "--region", "local"]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    cluster.reload();
    let joiner = connect(
        cluster
            .node("local-4")
            .resp
            .expect("the joiner serves RESP"),
    )
    .await;
    nodes.push(joiner);
    // The rest through every node in turn, the joiner too, while partitions move.
    let cursor = scan_on(&mut nodes[1..], cursor, &mut seen, usize::MAX).await;
    assert_eq!(cursor, 0, "the iteration ends");
    let listed: BTreeSet<String> = seen.iter().cloned().collect();
    let missing: Vec<&String> = keys.iter().filter(|key| !listed.contains(*key)).collect();
    assert!(missing.is_empty(), "keys not listed: {missing:?}");
    assert_eq!(seen.len(), keys.len(), "no key twice");
    let done = cluster
        .wait_status("local-4", Duration::from_secs(60), |status| {
            !status.ring_change_pending && status.transfers_in_flight == 0
        })
        .await;
    assert!(done.partitions_owned > 0, "the joiner owns partitions");
    let size: i64 = query(&mut nodes[3], &redis::cmd("DBSIZE")).await.unwrap();
    assert_eq!(size, 300);
}
