//! A flood of made-up tokens: well-formed tokens (the length and alphabet of genuine
//! ones) that this cluster never issued, sent as fast as the flood's clients can (64
//! closed-loop clients on their own threads, from eight loopback addresses). Each must
//! be refused without any cross-region read (the nodes' `/v1/status` counts those
//! reads), while the legitimate client keeps its p99. Past its failed-validation limit
//! an address has its rejections answered after a delay, so the rate the row reports is
//! the one the nodes let the flood have, not the one it asked for.

use super::probe::{client_from, login};
use super::raw::attacker_address;
use super::{Row, Target};
use anyhow::{Context, Result};
use base64::Engine;
use rand::RngCore;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub async fn run(target: &Target) -> Result<Row> {
    let (clients, duration) = if target.short {
        (16, Duration::from_secs(4))
    } else {
        (64, Duration::from_secs(20))
    };
    let genuine = login(
        &client_from(std::net::Ipv4Addr::LOCALHOST)?,
        target.nodes[0].http,
        "abuse-flood",
        "genuine",
    )
    .await?;
    let token_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&genuine.token)
        .context("a genuine token is not base64url")?
        .len();
    let before = remote_reads(target).await?;
    let deadline = Instant::now() + duration;
    let nodes: Vec<SocketAddr> = target.nodes.iter().map(|node| node.http).collect();
    // The flood runs on its own threads, as an attacker runs on its own machine: its
    // tasks do not queue in front of the legitimate client's in one runtime.
    let attacker = std::thread::spawn(move || -> Result<Vec<BTreeMap<u16, u64>>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the attacker's runtime")?;
        let floods = (0..clients).map(|index| flood(&nodes, index, token_bytes, deadline));
        Ok(runtime.block_on(futures::future::join_all(floods)))
    });
    let during = target.probe.run(super::probe_duration(target.short)).await;
    let counts = tokio::task::spawn_blocking(move || attacker.join())
        .await
        .context("the attacker's thread was lost")?
        .map_err(|_| anyhow::anyhow!("the attacker's thread panicked"))??;
    let after = remote_reads(target).await?;
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for count in counts {
        for (status, n) in count {
            *statuses.entry(status).or_default() += n;
        }
    }
    let sent: u64 = statuses.values().sum();
    let accepted: u64 = statuses
        .iter()
        .filter(|(status, _)| (200..300).contains(*status))
        .map(|(_, n)| n)
        .sum();
    let remote = after.saturating_sub(before);
    let (legit_ok, legit) = target.p99_verdict(&during, true);
    let pass = sent > 0 && accepted == 0 && remote == 0 && legit_ok;
    let measured = format!(
        "{sent} made-up tokens in {:.0} s ({:.0}/s; answers {}): {accepted} accepted, {remote} \
         cross-region validation reads ({:.3} per rejected token); {legit}",
        duration.as_secs_f64(),
        sent as f64 / duration.as_secs_f64(),
        statuses
            .iter()
            .map(|(status, n)| format!("{status}: {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        remote as f64 / sent.max(1) as f64,
    );
    Ok(Row::new("token-flood", pass, measured))
}

/// Sends made-up tokens until `deadline`; counts the answers by status (0: no answer).
async fn flood(
    nodes: &[SocketAddr],
    index: usize,
    token_bytes: usize,
    deadline: Instant,
) -> BTreeMap<u16, u64> {
    let mut counts = BTreeMap::new();
    let Ok(client) = client_from(attacker_address(index)) else {
        return counts;
    };
    let mut raw = vec![0u8; token_bytes];
    let mut turn = index;
    while Instant::now() < deadline {
        rand::thread_rng().fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
        let node = nodes[turn % nodes.len()];
        turn += 1;
        let status = super::probe::validate(&client, node, &token).await;
        *counts.entry(status).or_default() += 1;
    }
    counts
}

/// The sum over every node of its cross-region validation reads.
async fn remote_reads(target: &Target) -> Result<u64> {
    let client = reqwest::Client::new();
    let mut total = 0;
    for node in &target.nodes {
        let status = crate::cluster::fetch_status(&client, node.http).await?;
        total += status.sessions.remote_validation_reads;
    }
    Ok(total)
}
