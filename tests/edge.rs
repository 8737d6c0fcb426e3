//! The client edge against a real node: bodies over their limit are refused while they
//! stream in, the header, idle and write timeouts fire, and the connection caps answer
//! 503 `overloaded` to one address while another still gets in. Raw sockets, so what
//! the node reads and when it closes are seen exactly.

mod common;

use cartwheel::config::{HttpFlags, TuningFlags};
use cartwheel::limits;
use common::{single_region, InProcessCluster};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

const HEADER_TIMEOUT_MS: u64 = 500;
const IDLE_TIMEOUT_MS: u64 = 1_500;
const WRITE_TIMEOUT_MS: u64 = 1_000;
const PER_ADDRESS_MAX: usize = 8;

/// One node whose timeouts and caps are short enough to watch them fire.
async fn node() -> InProcessCluster {
    node_idle_ms(IDLE_TIMEOUT_MS).await
}

/// The same with another idle timeout.
async fn node_idle_ms(idle_ms: u64) -> InProcessCluster {
    let flags = TuningFlags {
        http: HttpFlags {
            http_header_timeout_ms: Some(HEADER_TIMEOUT_MS),
            http_idle_timeout_ms: Some(idle_ms),
            http_write_timeout_ms: Some(WRITE_TIMEOUT_MS),
            http_connections_per_address_max: Some(PER_ADDRESS_MAX),
            ..HttpFlags::default()
        },
        ..TuningFlags::default()
    };
    InProcessCluster::start(&single_region(1, 1), flags).await
}

/// An answer as read off the socket: the head (lowercased) and the body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn code(&self) -> String {
        let body: serde_json::Value = serde_json::from_slice(&self.body).expect("a JSON body");
        body["code"].as_str().expect("a code").to_string()
    }
}

/// Reads one HTTP/1.1 answer (with a `content-length`) within 10 s.
async fn read_answer(stream: &mut (impl AsyncRead + Unpin)) -> Answer {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let read = async {
        loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .map(|value| value.trim().parse().expect("a length"))
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    let status = head[9..12].parse().expect("a status");
                    let body = buffer[end + 4..end + 4 + length].to_vec();
                    return Answer { status, head, body };
                }
            }
            let count = stream.read(&mut chunk).await.expect("the answer arrives");
            assert!(count > 0, "closed before a whole answer: {buffer:?}");
            buffer.extend_from_slice(&chunk[..count]);
        }
    };
    timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s")
}

/// Whether the node closes the connection within `limit` (EOF or reset).
async fn closed_within(stream: &mut (impl AsyncRead + Unpin), limit: Duration) -> bool {
    let mut chunk = [0_u8; 4096];
    timeout(limit, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: node\r\n\r\n")
}

/// Streams 64 MiB chunked to `path` and returns the answer and what the client got
/// to send before the node closed.
async fn stream_far_over_the_limit(node: SocketAddr, path: &str) -> (Answer, usize) {
    const TOTAL_BYTES: usize = 64 * 1024 * 1024;
    let stream = TcpStream::connect(node).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: node\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );
    let method_fixed = if path.starts_with("/v1/kv/") {
        head.replacen("POST", "PUT", 1)
    } else {
        head
    };
    let writer = tokio::spawn(async move {
        write.write_all(method_fixed.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        let mut sent = 0;
        while sent < TOTAL_BYTES {
            if write.write_all(&frame).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let answer = read_answer(&mut read).await;
    assert!(closed_within(&mut read, Duration::from_secs(10)).await);
    let sent = timeout(Duration::from_secs(10), writer)
        .await
        .expect("the node stops the upload within 10 s")
        .unwrap();
    (answer, sent)
}

#[tokio::test]
async fn bodies_streamed_far_over_the_limit_are_refused_at_the_limit_and_closed() {
    let cluster = node().await;
    let addr = cluster.nodes[0].http_addr;
    // What loopback socket buffers and the node's lingering close may absorb besides
    // the limit itself; far below the 64 MiB offered.
    let slack_bytes = 16 * 1024 * 1024;
    for (path, limit, code) in [
        ("/v1/kv/big", limits::VALUE_BYTES_MAX, "value_too_large"),
        (
            "/v1/sessions",
            limits::SESSION_BODY_BYTES_MAX,
            "body_too_large",
        ),
        (
            "/v1/session/cart",
            limits::SESSION_BODY_BYTES_MAX,
            "body_too_large",
        ),
    ] {
        let (answer, sent) = stream_far_over_the_limit(addr, path).await;
        println!("{path}: the client sent {sent} bytes before the node closed");
        assert_eq!((answer.status, answer.code()), (413, code.to_string()));
        assert!(answer.head.contains("connection: close"), "{}", answer.head);
        assert!(sent <= limit + slack_bytes, "{path}: {sent} bytes sent");
    }
    // The node still serves.
    let status = reqwest::get(cluster.url(0, "/v1/status")).await.unwrap();
    assert_eq!(status.status(), 200);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_any_body_byte() {
    let cluster = node().await;
    let addr = cluster.nodes[0].http_addr;
    for (request, code) in [
        ("PUT /v1/kv/k", "value_too_large"),
        ("POST /v1/sessions", "body_too_large"),
        ("GET /v1/status", "body_too_large"),
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head =
            format!("{request} HTTP/1.1\r\nhost: node\r\ncontent-length: 2000000000\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        // No body byte is ever sent: the answer cannot wait for one.
        let answer = read_answer(&mut stream).await;
        assert_eq!((answer.status, answer.code()), (413, code.to_string()));
        assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_slowloris_head_is_closed_by_the_header_timeout() {
    let cluster = node().await;
    let mut stream = TcpStream::connect(cluster.nodes[0].http_addr)
        .await
        .unwrap();
    let head = get("/v1/status") + &"x-padding: y\r\n".repeat(100);
    let started = Instant::now();
    let mut cut_off = false;
    // One byte every 50 ms: the head would take 75 s; the timeout is 0.5 s.
    for byte in head.bytes() {
        if stream.write_all(&[byte]).await.is_err() {
            cut_off = true;
            break;
        }
        if closed_within(&mut stream, Duration::from_millis(50)).await {
            cut_off = true;
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(cut_off, "the slow head was never cut off");
    assert!(
        elapsed >= Duration::from_millis(HEADER_TIMEOUT_MS - 100),
        "{elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(HEADER_TIMEOUT_MS * 6),
        "{elapsed:?}"
    );
    assert!(cluster.status(0).await.edge.header_timeouts >= 1);
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let cluster = node().await;
    let mut stream = TcpStream::connect(cluster.nodes[0].http_addr)
        .await
        .unwrap();
    stream.write_all(get("/v1/ring").as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 200);
    let answered = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_millis(IDLE_TIMEOUT_MS * 4)).await);
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(IDLE_TIMEOUT_MS - 100),
        "{idle:?}"
    );
    assert!(cluster.status(0).await.edge.idle_closed >= 1);
    cluster.shutdown().await;
}

/// A connection from `local` (a loopback address) that completed one request.
async fn connected_from(local: &str, node: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(node).await.unwrap()
}

#[tokio::test]
async fn connections_over_the_per_address_cap_get_503_while_another_address_gets_in() {
    // Kept-alive connections must stay open for the whole test, however slow the machine.
    let cluster = node_idle_ms(60_000).await;
    let addr = cluster.nodes[0].http_addr;
    let mut open = Vec::new();
    for _ in 0..PER_ADDRESS_MAX {
        let mut stream = connected_from("127.0.0.1", addr).await;
        stream.write_all(get("/v1/ring").as_bytes()).await.unwrap();
        assert_eq!(read_answer(&mut stream).await.status, 200);
        open.push(stream);
    }
    let mut over = connected_from("127.0.0.1", addr).await;
    over.write_all(get("/v1/ring").as_bytes()).await.unwrap();
    let answer = read_answer(&mut over).await;
    assert_eq!(
        (answer.status, answer.code()),
        (503, "overloaded".to_string())
    );
    assert!(closed_within(&mut over, Duration::from_secs(5)).await);
    // Another client address is not held back by this one's connections.
    let mut other = connected_from("127.0.0.2", addr).await;
    other.write_all(get("/v1/status").as_bytes()).await.unwrap();
    let answer = read_answer(&mut other).await;
    assert_eq!(answer.status, 200);
    let status: cartwheel::api::Status = serde_json::from_slice(&answer.body).unwrap();
    assert!(status.edge.connections_refused_address >= 1);
    // A closed connection gives its slot back.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connected_from("127.0.0.1", addr).await;
        again.write_all(get("/v1/ring").as_bytes()).await.unwrap();
        if read_answer(&mut again).await.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(open);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_pipelined_client_that_never_reads_is_cut_off_and_others_are_served() {
    use cartwheel::api::{
        encode_pipeline_frame, PipelineRequest, PIPELINE_PATH, PIPELINE_PROTOCOL,
    };
    let cluster = node().await;
    let addr = cluster.nodes[0].http_addr;
    let client = reqwest::Client::new();
    let value = vec![7_u8; limits::VALUE_BYTES_MAX];
    let put = client.put(cluster.url(0, "/v1/kv/big")).body(value).send();
    assert_eq!(put.await.unwrap().status(), 204);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let upgrade = format!(
        "GET {PIPELINE_PATH} HTTP/1.1\r\nhost: node\r\nconnection: upgrade\r\nupgrade: {PIPELINE_PROTOCOL}\r\n\r\n"
    );
    stream.write_all(upgrade.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 101);
    let (_read, mut write) = stream.into_split();
    // Requests for a 1 MiB value, never reading an answer: the node's writes stall.
    // More request bytes than socket buffers hold, so the sender sees the cut-off.
    const FRAMES: u64 = 500_000;
    let sender = tokio::spawn(async move {
        for id in 1..=FRAMES {
            let frame = encode_pipeline_frame(&PipelineRequest {
                id,
                method: "GET".into(),
                path: "/v1/kv/big".into(),
                headers: Vec::new(),
                body: Vec::new(),
            });
            let prefix = (frame.len() as u32).to_be_bytes();
            if write
                .write_all(&[&prefix[..], &frame].concat())
                .await
                .is_err()
            {
                return id;
            }
        }
        0
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    // Cut off at once when its unwritten answers pass the output budget, or after the
    // write timeout if they stay under it.
    loop {
        let edge = cluster.status(0).await.edge;
        if edge.write_timeouts + edge.output_limit_cuts > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the silent reader was never cut off"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Others are served meanwhile and after.
    let read = client
        .get(cluster.url(0, "/v1/kv/big"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.bytes().await.unwrap().len(), limits::VALUE_BYTES_MAX);
    let stopped_at = timeout(Duration::from_secs(10), sender)
        .await
        .expect("the cut-off reaches the sender")
        .unwrap();
    assert!(
        stopped_at > 0,
        "the node read every request of a client that never reads"
    );
    cluster.shutdown().await;
}

/// A process's peak resident memory in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

#[tokio::test]
async fn a_node_process_keeps_its_memory_under_many_huge_uploads_and_takes_the_edge_flags() {
    // `cluster up` passes the edge flags on to its node processes.
    let idle_ms = "1000";
    let flags = ["--http-idle-timeout-ms", idle_ms, "--cache-mb", "16"];
    let cluster = common::ProcessCluster::up(&single_region(1, 1), &flags);
    let node = &cluster.nodes[0];
    let before_kib = peak_rss_kib(node.pid);
    // 16 uploads of 64 MiB at once (1 GiB offered): each refused at its limit.
    let uploads: Vec<_> = (0..16)
        .map(|index| {
            let path = if index % 2 == 0 {
                "/v1/kv/big"
            } else {
                "/v1/sessions"
            };
            tokio::spawn(stream_far_over_the_limit(node.http, path))
        })
        .collect();
    for upload in uploads {
        let (answer, _sent) = upload.await.unwrap();
        assert_eq!(answer.status, 413);
    }
    let after_kib = peak_rss_kib(node.pid);
    let growth_mib = after_kib.saturating_sub(before_kib) / 1024;
    println!("peak RSS {before_kib} KiB before, {after_kib} KiB after 1 GiB of refused uploads");
    assert!(growth_mib < 64, "peak RSS grew by {growth_mib} MiB");
    // The idle timeout given to `cluster up` is the node's.
    let mut stream = TcpStream::connect(node.http).await.unwrap();
    stream.write_all(get("/v1/ring").as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 200);
    let answered = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    assert!(answered.elapsed() >= Duration::from_millis(900));
    cluster.down();
}
