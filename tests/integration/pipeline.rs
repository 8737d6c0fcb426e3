//! `/v1/pipeline` against real nodes: many requests in flight on one upgraded
//! connection, answered by id with what HTTP would answer; bad frames and bad upgrades
//! get clear errors and leave the node serving.

use crate::common;

use bytes::Bytes;
use cartwheel::api::{
    encode_pipeline_frame, pipeline_codec, PipelineAnswer, PipelineRequest, PIPELINE_PATH,
    PIPELINE_PROTOCOL,
};
use cartwheel::config::TuningFlags;
use common::{single_region, InProcessCluster};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{ReadHalf, WriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

type Io = TokioIo<hyper::upgrade::Upgraded>;

struct Pipe {
    sink: FramedWrite<WriteHalf<Io>, LengthDelimitedCodec>,
    frames: FramedRead<ReadHalf<Io>, LengthDelimitedCodec>,
}

/// Upgrades a new connection to `node` into a pipeline.
async fn open(node: SocketAddr) -> Pipe {
    let stream = tokio::net::TcpStream::connect(node).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection.with_upgrades());
    let request = hyper::Request::builder()
        .uri(PIPELINE_PATH)
        .header("host", node.to_string())
        .header("connection", "upgrade")
        .header("upgrade", PIPELINE_PROTOCOL)
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.expect("upgrade request");
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["upgrade"], PIPELINE_PROTOCOL);
    let upgraded = hyper::upgrade::on(response).await.expect("upgraded");
    let (read, write) = tokio::io::split(TokioIo::new(upgraded));
    Pipe {
        sink: FramedWrite::new(write, pipeline_codec(1 << 24)),
        frames: FramedRead::new(read, pipeline_codec(1 << 24)),
    }
}

fn request(
    id: u64,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> PipelineRequest {
    PipelineRequest {
        id,
        method: method.into(),
        path: path.into(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        body: body.to_vec(),
    }
}

impl Pipe {
    /// Sends every request in one write, then reads as many answers, keyed by id.
    async fn exchange(&mut self, requests: &[PipelineRequest]) -> HashMap<u64, PipelineAnswer> {
        for request in requests {
            self.sink
                .feed(encode_pipeline_frame(request))
                .await
                .unwrap();
        }
        SinkExt::<Bytes>::flush(&mut self.sink).await.unwrap();
        let mut answers = HashMap::new();
        for _ in requests {
            let answer = self.next().await.expect("an answer");
            answers.insert(answer.id, answer);
        }
        answers
    }

    /// The next answer, or `None` once the node has closed the connection.
    async fn next(&mut self) -> Option<PipelineAnswer> {
        let frame = tokio::time::timeout(Duration::from_secs(10), self.frames.next())
            .await
            .expect("an answer or the end within 10 s")?;
        Some(rmp_serde::from_slice(&frame.expect("a whole frame")).expect("an answer frame"))
    }
}

fn header<'a>(answer: &'a PipelineAnswer, name: &str) -> Option<&'a str> {
    answer
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn code(answer: &PipelineAnswer) -> String {
    let body: Value = serde_json::from_slice(&answer.body).expect("errors are JSON");
    body["code"].as_str().expect("a code").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_kv_and_session_requests_are_answered_as_http_answers_them() {
    let cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let mut pipe = open(cluster.nodes[0].http_addr).await;
    // Twenty writes in flight at once, each answered under its own id.
    let writes: Vec<PipelineRequest> = (1..=20)
        .map(|id| {
            let path = format!("/v1/kv/p{id}?w=3");
            request(id, "PUT", &path, &[], format!("value {id}").as_bytes())
        })
        .collect();
    let answers = pipe.exchange(&writes).await;
    for id in 1..=20 {
        let answer = &answers[&id];
        assert_eq!(answer.status, 204, "{answer:?}");
        assert!(
            header(answer, "x-cartwheel-context").is_some(),
            "{answer:?}"
        );
    }
    // Read back through HTTP at another node and through the pipeline.
    let http = reqwest::Client::new();
    let read = http
        .get(cluster.url(2, "/v1/kv/p7?r=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.bytes().await.unwrap().as_ref(), b"value 7");
    let reads: Vec<PipelineRequest> = (1..=20)
        .map(|id| request(100 + id, "GET", &format!("/v1/kv/p{id}?r=2"), &[], b""))
        .collect();
    let answers = pipe.exchange(&reads).await;
    for id in 1..=20 {
        let answer = &answers[&(100 + id)];
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body, format!("value {id}").into_bytes());
        assert_eq!(
            header(answer, "content-type"),
            Some("application/octet-stream")
        );
    }
    // A session: log in, then read it with its bearer token, on the same connection.
    let login = request(
        200,
        "POST",
        "/v1/sessions",
        &[("content-type", "application/json")],
        br#"{"user_id": "ada", "device": "pipe"}"#,
    );
    let login = pipe.exchange(&[login]).await.remove(&200).unwrap();
    assert_eq!(login.status, 201, "{login:?}");
    let body: Value = serde_json::from_slice(&login.body).unwrap();
    let bearer = format!("Bearer {}", body["token"].as_str().unwrap());
    let read = request(
        201,
        "GET",
        "/v1/session",
        &[("authorization", &bearer)],
        b"",
    );
    let read = pipe.exchange(&[read]).await.remove(&201).unwrap();
    assert_eq!(read.status, 200, "{read:?}");
    let body: Value = serde_json::from_slice(&read.body).unwrap();
    assert_eq!(body["user_id"], "ada");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_the_http_errors_and_bad_frames_close_only_their_connection() {
    let cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let node = cluster.nodes[0].http_addr;
    // Without the upgrade header, and with another protocol: a JSON error, no upgrade.
    let http = reqwest::Client::new();
    for upgrade in [None, Some("websocket")] {
        let mut get = http.get(cluster.url(0, PIPELINE_PATH));
        if let Some(protocol) = upgrade {
            get = get
                .header("connection", "upgrade")
                .header("upgrade", protocol);
        }
        let answer = get.send().await.unwrap();
        assert_eq!(answer.status(), 400);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], "upgrade_required", "{body}");
    }
    let mut pipe = open(node).await;
    let too_large = vec![b'x'; cartwheel::limits::VALUE_BYTES_MAX + 1];
    let answers = pipe
        .exchange(&[
            request(1, "GET", "/v1/kv/k?r=0", &[], b""),
            request(2, "PUT", "/v1/kv/k", &[], &too_large),
            request(
                3,
                "POST",
                "/v1/sessions",
                &[("content-type", "application/json")],
                b"{",
            ),
            request(
                4,
                "GET",
                PIPELINE_PATH,
                &[("upgrade", PIPELINE_PROTOCOL)],
                b"",
            ),
            request(
                5,
                "PUT",
                "/v1/kv/k",
                &[("x-cartwheel-context", "%%%")],
                b"v",
            ),
            request(6, "GET", "/v1/nowhere", &[], b""),
        ])
        .await;
    let seen: Vec<(u16, String)> = (1..=6)
        .map(|id| (answers[&id].status, code(&answers[&id])))
        .collect();
    assert_eq!(
        seen,
        [
            (400, "bad_request".to_string()),
            (413, "value_too_large".to_string()),
            (400, "bad_json".to_string()),
            (400, "upgrade_required".to_string()),
            (400, "bad_context".to_string()),
            (404, "no_route".to_string()),
        ]
    );
    // Nothing was written by any of them.
    let read = http
        .get(cluster.url(1, "/v1/kv/k?r=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 404);
    // A frame that is not a request: answered `bad_frame` under id 0, then closed.
    pipe.sink
        .send(Bytes::from_static(b"\x93\x01\x02 not a request"))
        .await
        .unwrap();
    let answer = pipe.next().await.expect("the bad_frame answer");
    assert_eq!((answer.id, answer.status), (0, 400));
    assert_eq!(code(&answer), "bad_frame");
    assert!(pipe.next().await.is_none(), "the connection is closed");
    // The node goes on serving, over HTTP and over a new pipeline.
    let mut again = open(node).await;
    let answers = again
        .exchange(&[request(1, "PUT", "/v1/kv/after", &[], b"ok")])
        .await;
    assert_eq!(answers[&1].status, 204);
    let read = http
        .get(cluster.url(2, "/v1/kv/after?r=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    cluster.shutdown().await;
}
