//! The RESP edge against real nodes, driven by the `redis` crate (the client Rust
//! session stores use) and by raw sockets for what no client sends: connection
//! commands with Redis's reply shapes, AUTH, RESP3 through HELLO, pipelining, and
//! malformed or oversized requests that close their connection and leave the node
//! serving.

use crate::common::{self, single_region, ProcessCluster};

use cartwheel::config::{RespFlags, TuningFlags};
use cartwheel::node::{self, NodeOptions, RunningNode};
use cartwheel::resp::Password;
use redis::aio::MultiplexedConnection;
use redis::{ErrorKind, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "resp-test-password";
/// The longest any single exchange in these tests may take.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(10);

/// One in-memory node serving RESP on a loopback port, with `password` if given.
async fn resp_node(password: Option<&str>, resp: RespFlags) -> (tempfile::TempDir, RunningNode) {
    resp_node_with(password, resp, None).await
}

async fn resp_node_with(
    password: Option<&str>,
    resp: RespFlags,
    tls: Option<cartwheel::config::EdgeTls>,
) -> (tempfile::TempDir, RunningNode) {
    let dir = tempfile::tempdir().unwrap();
    let flags = TuningFlags {
        resp,
        ..TuningFlags::default()
    };
    let running = node::start(NodeOptions {
        resp_bind: Some("127.0.0.1:0".parse().unwrap()),
        resp_password: password.map(|text| Password::new(text.as_bytes())),
        resp_tls: tls,
        http_tls: None,
        ..common::lone_node_options(dir.path(), &flags)
    })
    .await
    .expect("node starts");
    (dir, running)
}

async fn connect(addr: SocketAddr, url_tail: &str) -> redis::RedisResult<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{url_tail}{addr}/"))?;
    client.get_multiplexed_async_connection().await
}

async fn query<T: redis::FromRedisValue>(
    connection: &mut MultiplexedConnection,
    command: &redis::Cmd,
) -> redis::RedisResult<T> {
    tokio::time::timeout(EXCHANGE_LIMIT, command.query_async(connection))
        .await
        .expect("the node answers in time")
}

/// Sends `PING` on an open connection and checks the node answers `+PONG`.
async fn assert_pong(stream: &mut TcpStream) {
    stream.write_all(b"PING\r\n").await.unwrap();
    let mut pong = [0; 7];
    tokio::time::timeout(EXCHANGE_LIMIT, stream.read_exact(&mut pong))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
}

/// Sends `bytes` on a fresh connection and reads until the node closes it.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(EXCHANGE_LIMIT, stream.read_to_end(&mut answer))
        .await
        .expect("the node closes the connection in time")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_is_needed_and_checked() {
    let (_dir, node) = resp_node(Some(PASSWORD), RespFlags::default()).await;
    let addr = node.resp_addr.expect("the node serves RESP");
    // Connecting works (the client's CLIENT SETINFO is refused and ignored), commands not.
    let mut anonymous = connect(addr, "").await.unwrap();
    let error = query::<String>(&mut anonymous, redis::cmd("ECHO").arg("x"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("NOAUTH"), "{error}");
    let error = connect(addr, ":wrong@").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthenticationFailed, "{error}");
    let mut connection = connect(addr, &format!(":{PASSWORD}@")).await.unwrap();
    let pong: String = query(&mut connection, &redis::cmd("PING")).await.unwrap();
    assert_eq!(pong, "PONG");
    // AUTH as a command, on the anonymous connection.
    let ok: String = query(&mut anonymous, redis::cmd("AUTH").arg(PASSWORD))
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    let echoed: String = query(&mut anonymous, redis::cmd("ECHO").arg("x"))
        .await
        .unwrap();
    assert_eq!(echoed, "x");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_commands_answer_as_redis_does() {
    let (_dir, node) = resp_node(None, RespFlags::default()).await;
    let addr = node.resp_addr.unwrap();
    let mut connection = connect(addr, "").await.unwrap();
    let echoed: Vec<u8> = query(&mut connection, redis::cmd("ECHO").arg(&b"a\r\nb\0"[..]))
        .await
        .unwrap();
    assert_eq!(echoed, b"a\r\nb\0");
    let ok: String = query(&mut connection, redis::cmd("SELECT").arg(0))
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    let error = query::<String>(&mut connection, redis::cmd("SELECT").arg(1))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("DB index is out of range"),
        "{error}"
    );
    let _: () = query(
        &mut connection,
        redis::cmd("CLIENT").arg("SETNAME").arg("web"),
    )
    .await
    .unwrap();
    let name: String = query(&mut connection, redis::cmd("CLIENT").arg("GETNAME"))
        .await
        .unwrap();
    assert_eq!(name, "web");
    let id: i64 = query(&mut connection, redis::cmd("CLIENT").arg("ID"))
        .await
        .unwrap();
    assert!(id > 0);
    let info: String = query(&mut connection, redis::cmd("INFO").arg("server"))
        .await
        .unwrap();
    assert!(info.contains("redis_version:7.4.0"), "{info}");
    assert!(
        info.contains(&format!("tcp_port:{}", addr.port())),
        "{info}"
    );
    let size: i64 = query(&mut connection, &redis::cmd("DBSIZE")).await.unwrap();
    assert_eq!(size, 0);
    for (command, expected) in [
        (
            "FOO",
            "unknown command 'FOO', with args beginning with: 'bar'",
        ),
        ("MULTI", "'MULTI' is not supported by cartwheel"),
        ("PUBLISH", "'PUBLISH' is not supported by cartwheel"),
        ("SCAN", "invalid cursor"),
    ] {
        let error = query::<Value>(&mut connection, redis::cmd(command).arg("bar"))
            .await
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{command}: {error}");
    }
    // A pipeline of 100 PINGs is answered in order, on a connection that still serves.
    let mut pipeline = redis::pipe();
    for index in 0..100 {
        pipeline.cmd("ECHO").arg(index);
    }
    let echoed: Vec<i64> =
        tokio::time::timeout(EXCHANGE_LIMIT, pipeline.query_async(&mut connection))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(echoed, (0..100).collect::<Vec<i64>>());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_3_switches_the_connection_to_resp3() {
    let (_dir, node) = resp_node(Some(PASSWORD), RespFlags::default()).await;
    let addr = node.resp_addr.unwrap();
    // The client authenticates with HELLO 3 AUTH default <password>.
    let mut connection = connect(addr, &format!(":{PASSWORD}@")).await.unwrap();
    let client =
        redis::Client::open(format!("redis://:{PASSWORD}@{addr}/?protocol=resp3")).unwrap();
    let mut resp3 = client.get_multiplexed_async_connection().await.unwrap();
    let hello: Value = query(&mut resp3, redis::cmd("HELLO").arg(3)).await.unwrap();
    let Value::Map(pairs) = hello else {
        panic!("HELLO 3 answers a map, got {hello:?}");
    };
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| *key == Value::BulkString(name.as_bytes().to_vec()))
            .map(|(_, value)| value.clone())
    };
    assert_eq!(field("proto"), Some(Value::Int(3)));
    assert_eq!(field("server"), Some(Value::BulkString(b"redis".to_vec())));
    let name: Value = query(&mut resp3, redis::cmd("CLIENT").arg("GETNAME"))
        .await
        .unwrap();
    assert_eq!(name, Value::Nil);
    // A RESP2 connection still gets RESP2 shapes.
    let hello: Value = query(&mut connection, redis::cmd("HELLO").arg(2))
        .await
        .unwrap();
    assert!(
        matches!(&hello, Value::Array(items) if items.len() == 16),
        "{hello:?}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_oversized_requests_close_only_their_connection() {
    let (_dir, node) = resp_node(None, RespFlags::default()).await;
    let addr = node.resp_addr.unwrap();
    // Inline commands and pipelined arrays on one connection, answered in order.
    let answer = exchange(addr, b"PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nQUIT\r\n").await;
    assert_eq!(answer, "+PONG\r\n$2\r\nhi\r\n+OK\r\n");
    let answer = exchange(addr, b"PING\r\n*1\r\n+PING\r\nPING\r\n").await;
    assert_eq!(
        answer,
        "+PONG\r\n-ERR Protocol error: expected '$', got '+'\r\n"
    );
    let answer = exchange(addr, b"*1\r\n*1\r\n$4\r\nPING\r\n").await;
    assert_eq!(answer, "-ERR Protocol error: expected '$', got '*'\r\n");
    // A length far over the limit is refused at once: nothing of it is awaited.
    let answer = exchange(addr, b"*2\r\n$3\r\nSET\r\n$99999999999\r\n").await;
    assert_eq!(answer, "-ERR Protocol error: invalid bulk length\r\n");
    let answer = exchange(addr, b"*99999999\r\n").await;
    assert_eq!(answer, "-ERR Protocol error: invalid multibulk length\r\n");
    // A request whose arguments, each within the limit, pass the connection's input
    // budget together is cut off when they reach it.
    let bulk = cartwheel::limits::RESP_BULK_BYTES_MAX;
    let mut request = b"*5\r\n".to_vec();
    for _ in 0..4 {
        request.extend_from_slice(format!("${bulk}\r\n").as_bytes());
        request.extend(std::iter::repeat_n(b'v', bulk));
        request.extend_from_slice(b"\r\n");
    }
    let answer = exchange(addr, &request).await;
    assert!(
        answer.starts_with("-ERR Protocol error: request exceeds the connection's input budget"),
        "{answer}"
    );
    // The node still serves.
    let mut connection = connect(addr, "").await.unwrap();
    let pong: String = query(&mut connection, &redis::cmd("PING")).await.unwrap();
    assert_eq!(pong, "PONG");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connection_cap_refuses_and_idle_connections_close() {
    let flags = RespFlags {
        resp_connections_max: Some(1),
        resp_idle_timeout_ms: Some(300),
        ..RespFlags::default()
    };
    let (_dir, node) = resp_node(None, flags).await;
    let addr = node.resp_addr.unwrap();
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert_pong(&mut first).await;
    let refused = exchange(addr, b"PING\r\n").await;
    assert_eq!(refused, "-ERR max number of clients reached\r\n");
    // The first connection, idle, is closed by the node; then a new one is admitted.
    let mut rest = Vec::new();
    tokio::time::timeout(EXCHANGE_LIMIT, first.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed")
        .unwrap();
    assert!(rest.is_empty());
    let deadline = tokio::time::Instant::now() + EXCHANGE_LIMIT;
    loop {
        // The slot is given back once the node's task ends, just after the close.
        if exchange(addr, b"PING\r\n").await.starts_with("+PONG") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no slot freed");
        tokio::task::yield_now().await;
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_client_address_cannot_take_every_connection() {
    let flags = RespFlags {
        resp_connections_per_address_max: Some(1),
        ..RespFlags::default()
    };
    let (_dir, node) = resp_node(None, flags).await;
    let addr = node.resp_addr.unwrap();
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert_pong(&mut first).await;
    // A second connection from 127.0.0.1 is refused with Redis's error shape...
    let refused = exchange(addr, b"PING\r\n").await;
    assert_eq!(
        refused,
        "-ERR max number of clients from your address reached\r\n"
    );
    // ... while another address is served.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(addr).await.unwrap();
    assert_pong(&mut other).await;
    drop(first);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_up_gives_each_node_a_resp_port_and_refuses_an_open_one_without_password() {
    let cluster = ProcessCluster::up(&single_region(1, 1), &[]);
    let entry = cluster.node("local-1").clone();
    let resp = entry.resp.expect("cluster.json names the RESP address");
    let mut connection = connect(resp, "").await.unwrap();
    let pong: String = query(&mut connection, &redis::cmd("PING")).await.unwrap();
    assert_eq!(pong, "PONG");
    let status = cluster.status("local-1").await;
    assert_eq!(status.resp, Some(resp.to_string()));
    let commands = status.resp_edge.expect("the RESP edge's counters")["commands"].as_u64();
    assert!(commands >= Some(1), "{commands:?}");
    // A node asked to serve RESP on every address without a password does not start.
    let output = std::process::Command::new(common::binary())
        .args([
            "node",
            "--id",
            "local-1",
            "--memory",
            "--resp",
            "0.0.0.0:0",
            "--dir",
        ])
        .arg(cluster.dir.path())
        .arg("--topology")
        .arg(cluster.dir.path().join("topology.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--resp-password-file"), "{stderr}");
    cluster.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_on_the_resp_listener_serves_with_the_operators_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let files = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).unwrap();
    let tls = cartwheel::config::EdgeTls::from_files(&cert_path, &key_path, &[]).unwrap();
    let (_dir, node) = resp_node_with(None, RespFlags::default(), Some(tls)).await;
    let addr = node.resp_addr.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = tokio::time::timeout(EXCHANGE_LIMIT, connector.connect(name, tcp))
        .await
        .unwrap()
        .expect("TLS handshake");
    stream.write_all(b"PING\r\nQUIT\r\n").await.unwrap();
    let mut answer = vec![0; 12];
    tokio::time::timeout(EXCHANGE_LIMIT, stream.read_exact(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, b"+PONG\r\n+OK\r\n");
    // A plain client on the TLS port gets no answer, and the node serves on.
    let answer = exchange(addr, b"PING\r\n").await;
    assert!(!answer.contains("PONG"), "{answer}");
    let missing =
        cartwheel::config::EdgeTls::from_files(&files.path().join("none.pem"), &key_path, &[]);
    assert!(missing.unwrap_err().to_string().contains("none.pem"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_left_unfinished_is_cut_off_at_the_request_timeout() {
    let flags = RespFlags {
        resp_request_timeout_ms: Some(300),
        ..RespFlags::default()
    };
    let (_dir, node) = resp_node(None, flags).await;
    let addr = node.resp_addr.unwrap();
    let started = tokio::time::Instant::now();
    // Half a request, then nothing (slowloris): the idle timeout (300 s) does not apply.
    let answer = exchange(addr, b"PING\r\n*2\r\n$4\r\nECHO\r\n$5\r\nhe").await;
    assert_eq!(answer, "+PONG\r\n");
    assert!(started.elapsed() >= Duration::from_millis(300));
    node.shutdown().await;
}
