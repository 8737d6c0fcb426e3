//! The RESP data commands against a 3-node cluster (N = 3, local quorum reads, region
//! safe writes), driven by the `redis` crate: every string, key and hash command with
//! its options and errors, values written through one node and read through another,
//! expiry, and `CARTWHEEL LEVEL`.

use crate::common::{single_region, InProcessCluster};

use cartwheel::config::TuningFlags;
use redis::aio::MultiplexedConnection;
use redis::{ErrorKind, RedisError, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The longest any single exchange in these tests may take.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(10);

/// A 3-node cluster and a connection to each node's RESP listener.
async fn cluster() -> (InProcessCluster, Vec<MultiplexedConnection>) {
    let cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let mut connections = Vec::new();
    for node in &cluster.nodes {
        let addr = node.resp_addr.expect("in-process nodes serve RESP");
        let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
        connections.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    (cluster, connections)
}

/// Runs `command` (words split at spaces) and decodes its answer.
async fn run<T: redis::FromRedisValue>(
    connection: &mut MultiplexedConnection,
    words: &str,
) -> redis::RedisResult<T> {
    let mut command = redis::Cmd::new();
    for word in words.split(' ') {
        command.arg(word);
    }
    tokio::time::timeout(EXCHANGE_LIMIT, command.query_async(connection))
        .await
        .expect("the node answers in time")
}

async fn ok(connection: &mut MultiplexedConnection, words: &str) {
    let answer: String = run(connection, words).await.expect(words);
    assert_eq!(answer, "OK", "{words}");
}

async fn int(connection: &mut MultiplexedConnection, words: &str) -> i64 {
    run(connection, words).await.expect(words)
}

async fn text(connection: &mut MultiplexedConnection, words: &str) -> Option<String> {
    run(connection, words).await.expect(words)
}

async fn error(connection: &mut MultiplexedConnection, words: &str) -> RedisError {
    let answer: redis::RedisResult<Value> = run(connection, words).await;
    answer.expect_err(words)
}

/// Asserts that `words` fails with exactly the error line `line` (code and message).
async fn fails(connection: &mut MultiplexedConnection, words: &str, line: &str) {
    let error = error(connection, words).await;
    let (code, message) = line.split_once(' ').unwrap_or((line, ""));
    assert_eq!(error.code(), Some(code), "{words}: {error}");
    assert_eq!(error.detail(), Some(message), "{words}: {error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn string_commands_answer_as_redis_does_across_nodes() {
    let (cluster, mut nodes) = cluster().await;
    let (a, b) = nodes.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    ok(a, "SET greeting hello").await;
    assert_eq!(text(b, "GET greeting").await.as_deref(), Some("hello"));
    assert_eq!(text(b, "GET missing").await, None);
    // NX and XX, decided on a quorum read: a key written through the other node counts.
    assert_eq!(text(b, "SET greeting other NX").await, None);
    assert_eq!(text(a, "SET fresh v XX").await, None);
    assert_eq!(text(a, "GET fresh").await, None);
    ok(a, "SET fresh v NX").await;
    ok(b, "SET fresh w XX").await;
    assert_eq!(text(a, "SET fresh x GET").await.as_deref(), Some("w"));
    assert_eq!(text(b, "SET fresh y NX GET").await.as_deref(), Some("x"));
    assert_eq!(text(a, "GET fresh").await.as_deref(), Some("x"));
    // Expiry options: EX sets a deadline, KEEPTTL keeps it, a plain SET clears it.
    ok(a, "SET timed v EX 100").await;
    let ttl = int(b, "TTL timed").await;
    assert!((99..=100).contains(&ttl), "{ttl}");
    ok(b, "SET timed w KEEPTTL").await;
    assert!(int(a, "PTTL timed").await > 90_000);
    ok(a, "SET timed v").await;
    assert_eq!(int(b, "TTL timed").await, -1);
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    ok(a, &format!("SET timed v PXAT {}", at + 50_000)).await;
    assert!((40..=50).contains(&int(b, "TTL timed").await));
    ok(a, &format!("SET timed v EXAT {}", at / 1000 + 500)).await;
    assert!((400..=500).contains(&int(b, "TTL timed").await));
    ok(a, "SETEX session 30 payload").await;
    assert!((29..=30).contains(&int(b, "TTL session").await));
    ok(a, "PSETEX session 30000 payload").await;
    assert!(int(b, "PTTL session").await > 29_000);
    assert_eq!(int(a, "SETNX once first").await, 1);
    assert_eq!(int(b, "SETNX once second").await, 0);
    assert_eq!(text(b, "GETDEL once").await.as_deref(), Some("first"));
    assert_eq!(text(a, "GETDEL once").await, None);
    assert_eq!(
        text(a, "GETEX session PERSIST").await.as_deref(),
        Some("payload")
    );
    assert_eq!(int(b, "TTL session").await, -1);
    assert_eq!(
        text(b, "GETEX session EX 60").await.as_deref(),
        Some("payload")
    );
    assert!((59..=60).contains(&int(a, "TTL session").await));
    assert_eq!(text(a, "GETEX session").await.as_deref(), Some("payload"));
    ok(a, "MSET m1 one m2 two").await;
    let values: Vec<Option<String>> = run(b, "MGET m1 missing m2").await.unwrap();
    assert_eq!(values, [Some("one".into()), None, Some("two".into())]);
    string_errors(a).await;
    counters(a, b).await;
    cluster.shutdown().await;
}

async fn string_errors(a: &mut MultiplexedConnection) {
    fails(
        a,
        "GET a b",
        "ERR wrong number of arguments for 'get' command",
    )
    .await;
    fails(
        a,
        "SET k",
        "ERR wrong number of arguments for 'set' command",
    )
    .await;
    fails(a, "SET k v NX XX", "ERR syntax error").await;
    fails(a, "SET k v EX 1 PX 1", "ERR syntax error").await;
    fails(
        a,
        "SET k v EX 0",
        "ERR invalid expire time in 'set' command",
    )
    .await;
    fails(
        a,
        "SET k v EX soon",
        "ERR value is not an integer or out of range",
    )
    .await;
    fails(
        a,
        "SETEX k -1 v",
        "ERR invalid expire time in 'setex' command",
    )
    .await;
    fails(a, "GETEX k PERSIST EX 1", "ERR syntax error").await;
    fails(
        a,
        "MSET a 1 b",
        "ERR wrong number of arguments for 'mset' command",
    )
    .await;
    fails(
        a,
        "MGET",
        "ERR wrong number of arguments for 'mget' command",
    )
    .await;
}

async fn counters(a: &mut MultiplexedConnection, b: &mut MultiplexedConnection) {
    assert_eq!(int(a, "INCR visits").await, 1);
    assert_eq!(int(b, "INCRBY visits 5").await, 6);
    assert_eq!(int(a, "DECR visits").await, 5);
    assert_eq!(int(b, "DECRBY visits 10").await, -5);
    assert_eq!(text(a, "GET visits").await.as_deref(), Some("-5"));
    ok(a, "SET number 41").await;
    assert_eq!(int(b, "INCR number").await, 42);
    ok(a, "SET word abc").await;
    let not_integer = "ERR value is not an integer or out of range";
    fails(b, "INCR word", not_integer).await;
    fails(b, "INCRBY visits x", not_integer).await;
    fails(b, "INCRBY visits 1.5", not_integer).await;
    fails(
        a,
        "INCR",
        "ERR wrong number of arguments for 'incr' command",
    )
    .await;
    ok(a, "SET big 9223372036854775807").await;
    fails(b, "INCR big", "ERR increment or decrement would overflow").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_commands_answer_as_redis_does_across_nodes() {
    let (cluster, mut nodes) = cluster().await;
    let (a, b) = nodes.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    ok(a, "MSET k1 v k2 v k3 v").await;
    assert_eq!(int(a, "HSET h f v").await, 1);
    assert_eq!(int(b, "EXISTS k1 k2 nope k1").await, 3);
    assert_eq!(int(b, "DEL k1 nope").await, 1);
    assert_eq!(int(a, "UNLINK k2 k3").await, 2);
    assert_eq!(int(a, "EXISTS k1 k2 k3").await, 0);
    assert_eq!(text(b, "TYPE h").await.as_deref(), Some("hash"));
    ok(a, "SET s v").await;
    assert_eq!(text(b, "TYPE s").await.as_deref(), Some("string"));
    assert_eq!(text(b, "TYPE nope").await.as_deref(), Some("none"));
    // TTL: -2 missing, -1 no deadline; EXPIRE's flags.
    assert_eq!(int(a, "TTL nope").await, -2);
    assert_eq!(int(a, "PTTL s").await, -1);
    assert_eq!(int(a, "EXPIRE nope 10").await, 0);
    assert_eq!(int(a, "EXPIRE s 100 XX").await, 0);
    assert_eq!(int(a, "EXPIRE s 100 GT").await, 0);
    assert_eq!(int(a, "EXPIRE s 100 NX").await, 1);
    assert_eq!(int(b, "EXPIRE s 200 NX").await, 0);
    assert_eq!(int(b, "EXPIRE s 50 GT").await, 0);
    assert_eq!(int(b, "EXPIRE s 200 GT").await, 1);
    assert_eq!(int(a, "EXPIRE s 300 LT").await, 0);
    assert_eq!(int(a, "EXPIRE s 150 XX LT").await, 1);
    assert!((149..=150).contains(&int(b, "TTL s").await));
    assert_eq!(int(b, "PEXPIRE s 120000").await, 1);
    assert!((119..=120).contains(&int(a, "TTL s").await));
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(int(a, &format!("EXPIREAT s {}", now_s + 1000)).await, 1);
    assert!((990..=1000).contains(&int(b, "TTL s").await));
    assert_eq!(
        int(a, &format!("PEXPIREAT s {}", (now_s + 2000) * 1000)).await,
        1
    );
    assert!((1990..=2000).contains(&int(b, "TTL s").await));
    assert_eq!(int(b, "PERSIST s").await, 1);
    assert_eq!(int(a, "PERSIST s").await, 0);
    assert_eq!(int(a, "TTL s").await, -1);
    // A time in the past removes the key at once.
    assert_eq!(int(a, "EXPIRE s -1").await, 1);
    assert_eq!(text(b, "GET s").await, None);
    // RENAME carries the value and its deadline.
    ok(a, "SET old v EX 100").await;
    ok(b, "RENAME old new").await;
    assert_eq!(text(a, "GET new").await.as_deref(), Some("v"));
    assert!(int(a, "TTL new").await > 90);
    assert_eq!(text(a, "GET old").await, None);
    key_errors(a).await;
    cluster.shutdown().await;
}

async fn key_errors(a: &mut MultiplexedConnection) {
    fails(a, "RENAME nope other", "ERR no such key").await;
    fails(
        a,
        "EXPIRE s 1 NX XX",
        "ERR NX and XX, GT or LT options at the same time are not compatible",
    )
    .await;
    fails(
        a,
        "EXPIRE s 1 GT LT",
        "ERR GT and LT options at the same time are not compatible",
    )
    .await;
    fails(a, "EXPIRE s 1 SOON", "ERR Unsupported option SOON").await;
    fails(
        a,
        "EXPIRE s x",
        "ERR value is not an integer or out of range",
    )
    .await;
    fails(
        a,
        "EXPIRE s 9223372036854775807",
        "ERR invalid expire time in 'expire' command",
    )
    .await;
    fails(a, "DEL", "ERR wrong number of arguments for 'del' command").await;
    fails(a, "TTL", "ERR wrong number of arguments for 'ttl' command").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hash_commands_answer_as_redis_does_across_nodes() {
    let (cluster, mut nodes) = cluster().await;
    let (a, b) = nodes.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    assert_eq!(int(a, "HSET cart apples 3 pears 2").await, 2);
    assert_eq!(int(b, "HSET cart apples 4").await, 0);
    assert_eq!(text(a, "HGET cart apples").await.as_deref(), Some("4"));
    assert_eq!(text(a, "HGET cart plums").await, None);
    assert_eq!(text(a, "HGET nope plums").await, None);
    ok(b, "HMSET cart plums 1 figs 7").await;
    let values: Vec<Option<String>> = run(a, "HMGET cart pears kiwis figs").await.unwrap();
    assert_eq!(values, [Some("2".into()), None, Some("7".into())]);
    let all: BTreeMap<String, String> = run(a, "HGETALL cart").await.unwrap();
    let expected = [
        ("apples", "4"),
        ("figs", "7"),
        ("pears", "2"),
        ("plums", "1"),
    ];
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(field, value)| (field.to_string(), value.to_string()))
        .collect();
    assert_eq!(all, expected);
    let fields: Vec<String> = run(b, "HKEYS cart").await.unwrap();
    assert_eq!(fields, ["apples", "figs", "pears", "plums"]);
    let values: Vec<String> = run(b, "HVALS cart").await.unwrap();
    assert_eq!(values, ["4", "7", "2", "1"]);
    assert_eq!(int(a, "HLEN cart").await, 4);
    assert_eq!(int(b, "HDEL cart figs kiwis").await, 1);
    assert_eq!(int(a, "HEXISTS cart figs").await, 0);
    assert_eq!(int(a, "HEXISTS cart pears").await, 1);
    assert_eq!(int(a, "HLEN nope").await, 0);
    assert_eq!(int(a, "HINCRBY cart pears 5").await, 7);
    assert_eq!(int(b, "HINCRBY cart pears -10").await, -3);
    let empty: Vec<String> = run(a, "HKEYS nope").await.unwrap();
    assert!(empty.is_empty());
    hash_errors(a, b).await;
    // A SET over a hash replaces it, as in Redis.
    ok(b, "SET cart now-a-string").await;
    assert_eq!(text(a, "TYPE cart").await.as_deref(), Some("string"));
    cluster.shutdown().await;
}

async fn hash_errors(a: &mut MultiplexedConnection, b: &mut MultiplexedConnection) {
    // WRONGTYPE both ways, and the other errors.
    let wrong = "WRONGTYPE Operation against a key holding the wrong kind of value";
    fails(b, "GET cart", wrong).await;
    fails(b, "INCR cart", wrong).await;
    ok(a, "SET plain v").await;
    fails(b, "HGET plain f", wrong).await;
    fails(b, "HSET plain f v", wrong).await;
    fails(b, "HGETALL plain", wrong).await;
    fails(
        a,
        "HINCRBY cart apples x",
        "ERR value is not an integer or out of range",
    )
    .await;
    assert_eq!(int(a, "HSET cart note text").await, 1);
    fails(a, "HINCRBY cart note 1", "ERR hash value is not an integer").await;
    fails(
        a,
        "HSET cart f",
        "ERR wrong number of arguments for 'hset' command",
    )
    .await;
    fails(
        a,
        "HMSET cart f v g",
        "ERR wrong number of arguments for 'hmset' command",
    )
    .await;
    fails(
        a,
        "HGET cart",
        "ERR wrong number of arguments for 'hget' command",
    )
    .await;
    fails(
        a,
        "HDEL cart",
        "ERR wrong number of arguments for 'hdel' command",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_keys_are_never_served_and_levels_are_per_connection() {
    let (cluster, mut nodes) = cluster().await;
    let (a, b) = nodes.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    ok(a, "SET brief v PX 200").await;
    assert_eq!(int(a, "HSET brief-hash f v").await, 1);
    assert_eq!(int(a, "PEXPIRE brief-hash 200").await, 1);
    let started = Instant::now();
    // Polled, bounded: the keys must be gone through the other node soon after 200 ms.
    loop {
        let string = text(b, "GET brief").await;
        let hash = int(b, "EXISTS brief-hash").await;
        if string.is_none() && hash == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "keys with PX 200 still served after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(int(b, "PTTL brief").await, -2);
    assert_eq!(text(b, "TYPE brief-hash").await.as_deref(), Some("none"));
    // Levels: set per connection; one that cannot be met answers TRYAGAIN.
    ok(a, "CARTWHEEL LEVEL write all").await;
    ok(a, "SET levelled v").await;
    ok(a, "CARTWHEEL LEVEL read 4").await;
    let unmet = error(a, "GET levelled").await;
    assert_eq!(unmet.kind(), ErrorKind::TryAgain, "{unmet}");
    assert_eq!(text(b, "GET levelled").await.as_deref(), Some("v"));
    let bad = error(a, "CARTWHEEL LEVEL read sometimes").await;
    assert!(
        bad.to_string().contains("unknown consistency level"),
        "{bad}"
    );
    let bad = error(a, "CARTWHEEL LEVEL both one").await;
    assert!(bad.to_string().contains("'both'"), "{bad}");
    ok(a, "CARTWHEEL LEVEL read one").await;
    assert_eq!(text(a, "GET levelled").await.as_deref(), Some("v"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_set_nx_through_two_nodes_converges_on_one_value() {
    let (cluster, mut nodes) = cluster().await;
    let (a, rest) = nodes.split_at_mut(1);
    let (b, c) = rest.split_at_mut(1);
    let (a, b, c) = (&mut a[0], &mut b[0], &mut c[0]);
    for round in 0..10 {
        let key = format!("lock-{round}");
        let (from_a, from_b) = (
            format!("SET {key} from-a NX"),
            format!("SET {key} from-b NX"),
        );
        let (first, second) = tokio::join!(
            run::<Option<String>>(a, &from_a),
            run::<Option<String>>(b, &from_b),
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        // At least one wins; both may (each saw no key): then one value stays.
        assert!(first.is_some() || second.is_some(), "round {round}");
        let seen = text(c, &format!("GET {key}")).await.expect("a value stays");
        assert!(seen == "from-a" || seen == "from-b", "{seen}");
        if first.is_none() {
            assert_eq!(seen, "from-b");
        }
        if second.is_none() {
            assert_eq!(seen, "from-a");
        }
        assert_eq!(
            text(a, &format!("GET {key}")).await.as_deref(),
            Some(seen.as_str())
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_answers_in_order_as_if_its_commands_ran_one_by_one() {
    let (cluster, mut nodes) = cluster().await;
    let mut pipeline = redis::pipe();
    let mut expected = Vec::new();
    let okay = || Value::Okay;
    let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
    // More writes on distinct keys than one wave runs at once.
    for index in 0..40 {
        pipeline
            .cmd("SET")
            .arg(format!("p:{index}"))
            .arg(format!("v{index}"));
        expected.push(okay());
    }
    // Requests on one key keep their order, among requests on other keys.
    for (command, answer) in [
        ("GET p:0", bulk("v0")),
        ("INCR pipelined-counter", Value::Int(1)),
        ("SET same first", okay()),
        ("INCR pipelined-counter", Value::Int(2)),
        ("SET same second", okay()),
        ("GET p:39", bulk("v39")),
        ("GET same", bulk("second")),
        ("DEL p:0", Value::Int(1)),
        ("GET p:0", Value::Nil),
        // A command of several keys waits for those before it.
        ("EXISTS p:0 p:1 p:2", Value::Int(2)),
        ("HSET pipelined-hash f 1", Value::Int(1)),
        ("HINCRBY pipelined-hash f 5", Value::Int(6)),
        ("INCR pipelined-counter", Value::Int(3)),
        ("HGET pipelined-hash f", bulk("6")),
        // A level change holds the requests after it.
        ("CARTWHEEL LEVEL write each_quorum", okay()),
        ("SET after-level x", okay()),
        ("GET after-level", bulk("x")),
    ] {
        let command_line: Vec<&str> = command.split(' ').collect();
        pipeline.cmd(command_line[0]).arg(&command_line[1..]);
        expected.push(answer);
    }
    let a = &mut nodes[0];
    let answers: Vec<Value> = tokio::time::timeout(EXCHANGE_LIMIT, pipeline.query_async(a))
        .await
        .expect("the node answers in time")
        .expect("every command succeeds");
    assert_eq!(answers.len(), expected.len());
    for (index, (answer, expected)) in answers.iter().zip(&expected).enumerate() {
        assert_eq!(answer, expected, "answer {index}");
    }
    // Another node reads what the pipeline wrote.
    let b = &mut nodes[1];
    assert_eq!(text(b, "GET p:17").await.as_deref(), Some("v17"));
    assert_eq!(int(b, "GET pipelined-counter").await, 3);
    cluster.shutdown().await;
}
