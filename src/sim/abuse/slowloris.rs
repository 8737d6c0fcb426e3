//! Slowloris: thousands of connections that send a request head one byte a second and
//! never finish it, from eight loopback addresses. A node with a header timeout closes
//! each of them; one without keeps them all, and with them its connection slots.

use super::raw::{attacker_address, connect_from};
use super::{Row, Target};
use anyhow::Result;
use futures::StreamExt;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connections opened at once while the attack sets up.
const CONNECTS_IN_FLIGHT: usize = 256;
/// The head a slow client dribbles (it never reaches the blank line).
const SLOW_HEAD: &[u8] = b"GET /v1/status HTTP/1.1\r\nHost: abuse\r\nX-Slow: ";

/// How one slow connection ended.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// The node would not take the connection (or answered and closed at once).
    Refused,
    /// The node closed it after this long.
    Closed(Duration),
    /// Still open at the deadline.
    Open,
}

pub async fn run(target: &Target) -> Result<Row> {
    let connections = if target.short { 200 } else { 2000 };
    let deadline = target.slow_deadline;
    let streams: Vec<Option<TcpStream>> = futures::stream::iter(0..connections)
        .map(|index| {
            let node = target.nodes[index % target.nodes.len()].http;
            async move { connect_from(attacker_address(index), node).await.ok() }
        })
        .buffer_unordered(CONNECTS_IN_FLIGHT)
        .collect()
        .await;
    let started = Instant::now();
    let dribblers: Vec<_> = streams
        .into_iter()
        .map(|stream| tokio::spawn(dribble(stream, started + deadline)))
        .collect();
    let during = target.probe.run(super::probe_duration(target.short)).await;
    let mut endings = Vec::with_capacity(dribblers.len());
    for dribbler in dribblers {
        endings.push(dribbler.await.unwrap_or(Ending::Open));
    }
    let refused = endings
        .iter()
        .filter(|ending| matches!(ending, Ending::Refused))
        .count();
    let still_open = endings
        .iter()
        .filter(|ending| matches!(ending, Ending::Open))
        .count();
    let longest = endings
        .iter()
        .filter_map(|ending| match ending {
            Ending::Closed(after) => Some(*after),
            _ => None,
        })
        .max()
        .unwrap_or_default();
    let (legit_ok, legit) = target.p99_verdict(&during, true);
    let measured = format!(
        "{connections} connections sending a header byte a second: {} closed by the node \
         (the longest after {:.1} s), {refused} refused at once, {still_open} still open after \
         {:.0} s; {legit}",
        connections - refused - still_open,
        longest.as_secs_f64(),
        deadline.as_secs_f64(),
    );
    Ok(Row::new("slowloris", still_open == 0 && legit_ok, measured))
}

/// Sends `SLOW_HEAD` and then a byte a second until the node closes or `deadline`.
async fn dribble(stream: Option<TcpStream>, deadline: Instant) -> Ending {
    let Some(stream) = stream else {
        return Ending::Refused;
    };
    let opened = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut buffer = [0u8; 512];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if Instant::now() >= deadline {
                    return Ending::Open;
                }
                let byte = SLOW_HEAD.get(sent).copied().unwrap_or(b'a');
                sent += 1;
                if writer.write_all(&[byte]).await.is_err() {
                    return closed(opened);
                }
            }
            read = reader.read(&mut buffer) => match read {
                // An answer (a 408 or a 503) before the close is fine; keep reading.
                Ok(read) if read > 0 => {}
                _ => return closed(opened),
            },
        }
    }
}

fn closed(opened: Instant) -> Ending {
    let after = opened.elapsed();
    if after < Duration::from_millis(500) {
        Ending::Refused
    } else {
        Ending::Closed(after)
    }
}
