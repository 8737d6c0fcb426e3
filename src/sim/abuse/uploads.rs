//! Endless bodies: many concurrent chunked uploads to every route at once, each meant to
//! go on for a gigabyte (the short form: 64 MiB), while the legitimate client keeps
//! working. A node that reads a whole body before checking its size buffers them all;
//! one that enforces its limits answers 413 (or refuses earlier) and closes each
//! connection after at most its route's limit.

use super::raw::{attacker_address, connect_from, mib, status_of, RssSampler};
use super::{Row, Target};
use anyhow::Result;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every route, with a method that takes a body; none of them needs to exist or to
/// accept the caller for the attack to be meaningful.
const ROUTES: &[(&str, &str)] = &[
    ("PUT", "/v1/kv/abuse-upload"),
    ("POST", "/v1/sessions"),
    ("POST", "/v1/session/cart"),
    ("PUT", "/v1/session/prefs/abuse"),
    ("POST", "/v1/session/history"),
    ("POST", "/v1/session/rotate"),
    ("DELETE", "/v1/session/all"),
    ("POST", "/v1/admin/leave"),
    ("PUT", "/v1/admin/faults"),
    ("GET", "/v1/status"),
    ("POST", "/v1/no-such-route"),
];
/// Bytes of one chunk of an upload.
const CHUNK_BYTES: usize = 64 * 1024;
/// How long an upload waits for a write before counting the node as not reading.
const WRITE_STALL: Duration = Duration::from_secs(10);
/// How long an upload waits for the answer and the close after it stopped sending.
const ANSWER_WAIT: Duration = Duration::from_secs(15);
/// Extra memory a node may take per concurrent upload beyond its route's body limit
/// (connection buffers, the answer), and a fixed allowance for everything else.
const PER_UPLOAD_SLACK_BYTES: u64 = 256 * 1024;
const FIXED_SLACK_BYTES: u64 = 64 * 1024 * 1024;
/// The largest body limit of any route (a kv value).
const ROUTE_LIMIT_BYTES_MAX: u64 = crate::limits::VALUE_BYTES_MAX as u64;

/// What one upload saw.
#[derive(Debug, Default)]
struct Upload {
    /// Bytes of body sent before the node stopped it (or all of them).
    sent: u64,
    /// The answer's status, if one came.
    status: Option<u16>,
    /// The node closed the connection.
    closed: bool,
}

pub async fn run(target: &Target) -> Result<Row> {
    let (concurrent, total_bytes) = if target.short {
        (16, 64u64 << 20)
    } else {
        (64, 1u64 << 30)
    };
    let sampler = RssSampler::start(&target.nodes);
    let stop = sampler.tripped.clone();
    let attack = async {
        let mut all = Vec::new();
        for (method, path) in ROUTES {
            let uploads = (0..concurrent).map(|index| {
                let node = target.nodes[index % target.nodes.len()].http;
                upload(node, index, method, path, total_bytes, stop.clone())
            });
            all.extend(futures::future::join_all(uploads).await);
        }
        all
    };
    let (uploads, during) = tokio::join!(
        attack,
        target.probe.run(super::probe_duration(target.short))
    );
    let growth = sampler.max_growth_bytes();
    // Taken whole: every byte sent and a success answered. (A route that takes no body
    // may answer at once without reading it; that costs the node nothing.)
    let accepted = uploads
        .iter()
        .filter(|upload| {
            upload.sent >= total_bytes && upload.status.is_some_and(|status| status < 300)
        })
        .count();
    let refused_413 = uploads
        .iter()
        .filter(|upload| upload.status == Some(413))
        .count();
    let closed = uploads.iter().filter(|upload| upload.closed).count();
    let most_sent = uploads.iter().map(|upload| upload.sent).max().unwrap_or(0);
    let bound =
        concurrent as u64 * (ROUTE_LIMIT_BYTES_MAX + PER_UPLOAD_SLACK_BYTES) + FIXED_SLACK_BYTES;
    let (legit_ok, legit) = target.p99_verdict(&during, false);
    let tripped = stop.load(Ordering::Relaxed);
    let pass = accepted == 0 && closed == uploads.len() && growth <= bound && !tripped && legit_ok;
    let measured =
        format!(
        "{} uploads ({concurrent} at once per route, {} routes, {} each): {accepted} accepted, \
         {refused_413} answered 413, {closed} closed by the node; most sent before the close {}; \
         largest node RSS growth {} (bound {}){}; {legit}",
        uploads.len(),
        ROUTES.len(),
        mib(total_bytes),
        mib(most_sent),
        mib(growth),
        mib(bound),
        if tripped { "; STOPPED at the memory ceiling" } else { "" },
    );
    Ok(Row::new("uploads", pass, measured))
}

async fn upload(
    node: SocketAddr,
    index: usize,
    method: &str,
    path: &str,
    total_bytes: u64,
    stop: Arc<AtomicBool>,
) -> Upload {
    let mut seen = Upload::default();
    let Ok(stream) = connect_from(attacker_address(index), node).await else {
        // Refused before a byte: as good as a close.
        seen.closed = true;
        return seen;
    };
    let (mut reader, mut writer) = stream.into_split();
    let mut answer = tokio::spawn(async move {
        let mut head = Vec::with_capacity(4096);
        let mut buffer = [0u8; 4096];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return (status_of(&head), true),
                Ok(read) => {
                    if head.len() < 4096 {
                        head.extend_from_slice(&buffer[..read.min(4096 - head.len())]);
                    }
                }
            }
        }
    });
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {node}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer abuse\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let mut chunk = format!("{CHUNK_BYTES:x}\r\n").into_bytes();
    chunk.extend(std::iter::repeat_n(b'a', CHUNK_BYTES));
    chunk.extend_from_slice(b"\r\n");
    if writer.write_all(head.as_bytes()).await.is_ok() {
        while seen.sent < total_bytes && !stop.load(Ordering::Relaxed) && !answer.is_finished() {
            match tokio::time::timeout(WRITE_STALL, writer.write_all(&chunk)).await {
                Ok(Ok(())) => seen.sent += CHUNK_BYTES as u64,
                _ => break,
            }
        }
    }
    if let Ok(Ok((status, closed))) = tokio::time::timeout(ANSWER_WAIT, &mut answer).await {
        seen.status = status;
        seen.closed = closed;
    }
    answer.abort();
    seen
}
