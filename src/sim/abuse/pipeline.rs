//! A pipelined client that sends and never reads: it upgrades connections to the
//! pipelined API and asks, without pause, for a large value whose answers it never
//! takes. A node that parks every answer grows by the value's size per request; one
//! that bounds its parked answers in bytes stops reading the client, then cuts it off
//! after its write timeout and frees what it held.

use super::raw::{attacker_address, connect_from, mib, RssSampler};
use super::{Row, Target};
use crate::api::{encode_pipeline_frame, PipelineRequest, PIPELINE_PATH, PIPELINE_PROTOCOL};
use crate::limits;
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The large value every request asks for.
const BIG_KEY: &str = "abuse-pipeline-big";
const BIG_VALUE_BYTES: usize = 512 * 1024;
/// How long a write may block before the client tries again (the node not reading is
/// what a bound looks like from here; only an error or the close ends the client).
const WRITE_STALL: Duration = Duration::from_millis(500);
/// Copies of one answer a node may hold while it makes it: the value the handler read,
/// the answer's body, the encoded frame.
const ANSWER_COPIES: u64 = 3;
/// Memory beyond the pipelines' own (allocator slack, connection buffers).
const FIXED_SLACK_BYTES: u64 = 64 * 1024 * 1024;

/// What a node may grow by with `connections` of these clients: per connection its
/// output budget plus the answers of its requests in flight in the making.
fn growth_bound_bytes(connections: u64) -> u64 {
    let in_making = limits::PIPELINE_IN_FLIGHT_MAX as u64 * ANSWER_COPIES * BIG_VALUE_BYTES as u64;
    connections * (limits::PIPELINE_CONNECTION_ANSWER_BYTES_MAX as u64 + in_making)
        + FIXED_SLACK_BYTES
}

pub async fn run(target: &Target) -> Result<Row> {
    let connections = if target.short { 4 } else { 16 };
    let first = target.nodes[0].http;
    let put = reqwest::Client::new()
        .put(format!("http://{first}/v1/kv/{BIG_KEY}"))
        .body(vec![b'b'; BIG_VALUE_BYTES])
        .send()
        .await?;
    if !put.status().is_success() {
        bail!("writing the large value answered {}", put.status());
    }
    let sampler = RssSampler::start(&target.nodes);
    let deadline = Instant::now() + target.slow_deadline;
    let clients = (0..connections).map(|index| {
        let node = target.nodes[index % target.nodes.len()].http;
        never_read(node, index, deadline, sampler.tripped.clone())
    });
    let (outcomes, during) = tokio::join!(
        futures::future::join_all(clients),
        target.probe.run(super::probe_duration(target.short))
    );
    let growth = sampler.max_growth_bytes();
    let bound = growth_bound_bytes(connections.div_ceil(target.nodes.len()) as u64);
    let mut cut = Vec::new();
    let mut problems = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(Some(after)) => cut.push(after),
            Ok(None) => problems.push("still connected at the deadline".to_string()),
            Err(error) => problems.push(format!("{error:#}")),
        }
    }
    let longest = cut.iter().max().copied().unwrap_or_default();
    let (legit_ok, legit) = target.p99_verdict(&during, false);
    let tripped = sampler.tripped.load(Ordering::Relaxed);
    let pass = problems.is_empty() && growth <= bound && !tripped && legit_ok;
    let measured =
        format!(
        "{connections} pipelined connections asking for a {} value and never reading: {} cut off \
         (the last after {:.1} s){}; largest node RSS growth {} (bound {}){}; {legit}",
        mib(BIG_VALUE_BYTES as u64),
        cut.len(),
        longest.as_secs_f64(),
        if problems.is_empty() {
            String::new()
        } else {
            format!(", {}", problems.join("; "))
        },
        mib(growth),
        mib(bound),
        if tripped { "; STOPPED at the memory ceiling" } else { "" },
    );
    Ok(Row::new("pipeline-no-read", pass, measured))
}

/// Upgrades a connection and sends requests until the node cuts it off (how long that
/// took) or `deadline` (None).
async fn never_read(
    node: SocketAddr,
    index: usize,
    deadline: Instant,
    stop: Arc<AtomicBool>,
) -> Result<Option<Duration>> {
    let mut stream = connect_from(attacker_address(index), node)
        .await
        .context("cannot connect")?;
    upgrade(&mut stream, node).await?;
    let started = Instant::now();
    let mut id = 1u64;
    let mut frame = Vec::new();
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if frame.is_empty() {
            let body = encode_pipeline_frame(&PipelineRequest {
                id,
                method: "GET".into(),
                path: format!("/v1/kv/{BIG_KEY}"),
                headers: Vec::new(),
                body: Vec::new(),
            });
            frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
            frame.extend_from_slice(&body);
            id += 1;
        }
        match tokio::time::timeout(WRITE_STALL, stream.write(&frame)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(Some(started.elapsed())),
            Ok(Ok(written)) => {
                frame.drain(..written);
            }
            Err(_) => {
                // Stalled: the node stopped reading. A closed connection shows as an
                // error on a later write, or as the end of the stream on a peek.
                let mut byte = [0u8; 1];
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut byte)).await
                {
                    return Ok(Some(started.elapsed()));
                }
            }
        }
    }
    Ok(None)
}

async fn upgrade(stream: &mut TcpStream, node: SocketAddr) -> Result<()> {
    let head = format!(
        "GET {PIPELINE_PATH} HTTP/1.1\r\nHost: {node}\r\nConnection: upgrade\r\n\
         Upgrade: {PIPELINE_PROTOCOL}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() > 4096 || stream.read(&mut byte).await? == 0 {
            bail!("the node did not upgrade the connection");
        }
        answer.push(byte[0]);
    }
    if !answer.starts_with(b"HTTP/1.1 101") {
        bail!(
            "the node answered the upgrade with {}",
            String::from_utf8_lossy(&answer[..answer.len().min(40)])
        );
    }
    Ok(())
}
